"""The HTTP conversation without the I/O: settings, headers, calls, retry decisions, parsing.

The hook's sync and async paths both drive :class:`Attempts`; everything that decides what is
sent, whether to retry, how long to wait and what a response means lives here once.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from airflow_provider_managed_agents import __version__
from airflow_provider_managed_agents.exceptions import (
    ManagedAgentsAPIError,
    ManagedAgentsConnectionError,
    ManagedAgentsError,
    ManagedAgentsResponseError,
    ManagedAgentsTimeoutError,
    api_error_class,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_CONSOLE_URL = "https://platform.claude.com"
API_VERSION = "2023-06-01"
MANAGED_AGENTS_BETA = "managed-agents-2026-04-01"
DEFAULT_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 5.0
# Connections per client; also how many requests one triggerer has in flight at once.
MAX_CONNECTIONS = 32
DEFAULT_MAX_RETRIES = 2
USER_AGENT = f"airflow-provider-managed-agents/{__version__} httpx/{httpx.__version__}"


class Secret:
    """A string that never shows itself in repr, str or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """Everything a client needs, read from an Airflow connection (or the environment)."""

    api_key: Secret
    base_url: str = DEFAULT_BASE_URL
    workspace_id: str | None = None
    betas: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_MAX_RETRIES
    console_url: str = DEFAULT_CONSOLE_URL
    # Client-side caps (requests a minute) of this process's requests on the connection, by
    # class: see hooks/budget.py. None: no cap (429s are still honoured by every request).
    reads_per_minute: float | None = None
    writes_per_minute: float | None = None

    def headers(self) -> dict[str, str]:
        betas = [b for b in dict.fromkeys(self.betas) if b and b != MANAGED_AGENTS_BETA]
        headers = {
            "x-api-key": self.api_key.reveal(),
            "anthropic-version": API_VERSION,
            # Caller betas first, the managed-agents beta last, as the official SDK sends them.
            "anthropic-beta": ",".join([*betas, MANAGED_AGENTS_BETA]),
            "user-agent": USER_AGENT,
            "accept": "application/json",
        }
        if self.workspace_id:
            headers["anthropic-workspace-id"] = self.workspace_id
        return headers

    def timeouts(self) -> httpx.Timeout:
        return httpx.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT_SECONDS, self.timeout))

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments shared by the sync and async httpx clients."""
        return {
            "base_url": self.base_url.rstrip("/"),
            "headers": self.headers(),
            "timeout": self.timeouts(),
            "limits": httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS),
        }


ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Call(Generic[ModelT]):
    """One API operation: what to send and what the answer parses into.

    ``idempotent`` calls may be re-sent after any transient failure. Non-idempotent ones
    (create, run) are re-sent only when the request provably did not take effect, or when the
    caller can look for what a failed attempt may have made first (``Attempts.reconcilable``).
    ``beta`` replaces the managed-agents beta for APIs that have their own (memory stores).
    """

    method: str
    path: str
    response_model: type[ModelT]
    query: Mapping[str, str | list[str]] | None = None
    body: Mapping[str, Any] | None = None
    idempotent: bool = True
    beta: str | None = None

    def build(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        kwargs: dict[str, Any] = {"params": dict(self.query) if self.query else None}
        headers: dict[str, str] = {}
        if self.body is not None:
            kwargs["json"] = self.body
        elif self.method in ("POST", "DELETE"):
            # Action endpoints take no body; say so explicitly, as the official SDK does.
            headers["content-type"] = "application/json"
        if self.beta is not None:
            headers["anthropic-beta"] = client.headers["anthropic-beta"].replace(MANAGED_AGENTS_BETA, self.beta)
        return client.build_request(self.method, self.path, headers=headers or None, **kwargs)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


# --- retry policy --------------------------------------------------------------------------

# Plus every 5xx (see _retryable_status).
RETRYABLE_STATUSES = frozenset({408, 409, 429})
# Statuses that mean the server refused the request before acting on it.
UNPROCESSED_STATUSES = frozenset({429, 529})
INITIAL_DELAY_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
# The SDK sleeps for any retry-after, however long; a worker slot should not. Longer waits
# surface as an error and Airflow's own task retries take over.
MAX_RETRY_AFTER_SECONDS = 60.0
# A 429 says the request was refused unprocessed: riding out the rate limit is not the transient
# trouble max_retries budgets for. These many 429s per call are waited through on top of it.
RATE_LIMITED_RETRIES = 4

# Transport errors raised before a single byte of the request could reach the server.
_UNSENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def backoff_seconds(retry_number: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with up to 25 % jitter taken off: ~0.5 s, 1 s, 2 s ... capped at 8 s."""
    base = min(INITIAL_DELAY_SECONDS * 2**retry_number, MAX_BACKOFF_SECONDS)
    return base * (1 - 0.25 * (rng or random).random())


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The server's requested delay from ``retry-after-ms`` or ``retry-after`` (seconds or date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(float(raw_ms) / 1000, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (now if now is not None else time.time()), 0.0)


def _retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def _should_retry_header(response: httpx.Response) -> bool | None:
    value = response.headers.get("x-should-retry")
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def longest_call(settings: Settings) -> float:
    """Seconds one call can take, every retry and every wait between them included (a server's
    ``retry-after`` up to :data:`MAX_RETRY_AFTER_SECONDS`, the 429s ridden out, each attempt's
    wait for its turn in the connection's budget): how long after its start a write can still
    land."""
    from airflow_provider_managed_agents.hooks.budget import MAX_BUDGET_WAIT_SECONDS

    retries = settings.max_retries + RATE_LIMITED_RETRIES
    attempts = retries + 1
    return (settings.timeout + MAX_BUDGET_WAIT_SECONDS) * attempts + max(
        MAX_BACKOFF_SECONDS, MAX_RETRY_AFTER_SECONDS
    ) * retries


def error_from_response(response: httpx.Response, call: Call[Any]) -> ManagedAgentsAPIError:
    """The typed exception for an error response, from the API's JSON error envelope."""
    error_type: str | None = None
    message = response.reason_phrase or "error"
    details: dict[str, Any] | None = None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        error = payload["error"]
        error_type = error.get("type") if isinstance(error.get("type"), str) else None
        message = str(error.get("message") or message)
        details = error.get("details") if isinstance(error.get("details"), dict) else None
    elif response.text:
        message = response.text[:500]
    return api_error_class(response.status_code)(
        message,
        status=response.status_code,
        error_type=error_type,
        request_id=response.headers.get("request-id"),
        details=details,
        method=call.method,
        path=call.path,
    )


AMBIGUOUS_STATUSES = frozenset({408, 409, 500, 502, 503, 504})


def is_ambiguous(exc: BaseException) -> bool:
    """Whether a failed non-idempotent request may still have taken effect on the server."""
    if isinstance(exc, ManagedAgentsConnectionError):
        return exc.request_sent is not False
    if isinstance(exc, ManagedAgentsAPIError):
        return _ambiguous_status(exc.status)
    return False


def _ambiguous_status(status: int) -> bool:
    return status in AMBIGUOUS_STATUSES or (status >= 500 and status not in UNPROCESSED_STATUSES)


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is the service's passing trouble (worth waiting out), not a verdict."""
    if isinstance(exc, ManagedAgentsConnectionError):
        return True
    return isinstance(exc, ManagedAgentsAPIError) and exc.status is not None and _retryable_status(exc.status)


def error_from_transport(exc: httpx.TransportError, call: Call[Any]) -> ManagedAgentsConnectionError:
    """The typed error of a request that got no answer, naming the URL it tried (without its
    query) so that a wrong base URL shows; the httpx message never holds headers (the key)."""
    sent = not isinstance(exc, _UNSENT_ERRORS)
    try:
        where = f"{call.method} {exc.request.url.copy_with(query=None)}"
    except RuntimeError:  # no request attached to the error
        where = call.label
    text = f"{where}: {type(exc).__name__}: {exc}" if str(exc) else f"{where}: {type(exc).__name__}"
    if isinstance(exc, httpx.TimeoutException):
        return ManagedAgentsTimeoutError(text, request_sent=sent)
    return ManagedAgentsConnectionError(text, request_sent=sent)


@dataclass
class Attempts(Generic[ModelT]):
    """Decides, after each attempt of a call, whether to retry, after how long, or to finish.

    One budget of ``max_retries`` covers every re-send of the call, including a non-idempotent
    one re-sent after its caller looked for (``reconcilable``) and did not find what the failed
    attempt may have made: sends never exceed ``max_retries + 1``.
    """

    call: Call[ModelT]
    max_retries: int
    rng: random.Random | None = None
    reconcilable: bool = False
    retries_done: int = 0
    rate_limited_retries: int = 0
    _last: httpx.Response | ManagedAgentsError | None = field(default=None, repr=False)

    def record(self, outcome: httpx.Response | httpx.TransportError) -> float | None:
        """Take one attempt's outcome; return seconds to wait before retrying, or None when done."""
        if isinstance(outcome, httpx.TransportError):
            self._last = error_from_transport(outcome, self.call)
            retry = self._may_resend(unsent=not self._last.request_sent)
            delay = backoff_seconds(self.retries_done, self.rng) if retry else None
        else:
            self._last = outcome
            if outcome.is_success:
                return None
            retry = self._should_retry_response(outcome)
            delay = None
            if retry:
                delay = retry_after_seconds(outcome.headers)
                if delay is None:
                    delay = backoff_seconds(self.retries_done + self.rate_limited_retries, self.rng)
                elif delay > MAX_RETRY_AFTER_SECONDS:
                    retry, delay = False, None
        if delay is None:
            return None
        rate_limited = isinstance(outcome, httpx.Response) and outcome.status_code == 429
        if rate_limited and self.rate_limited_retries < RATE_LIMITED_RETRIES:
            self.rate_limited_retries += 1
            log.warning("%s was rate limited (HTTP 429); sending again in %.2fs", self.call.label, delay)
            return delay
        if self.retries_done >= self.max_retries:
            return None
        self.retries_done += 1
        log.warning(
            "%s failed (%s); retry %d of %d in %.2fs",
            self.call.label,
            self._describe_last(),
            self.retries_done,
            self.max_retries,
            delay,
        )
        return delay

    def _may_resend(self, *, unsent: bool) -> bool:
        return self.call.idempotent or unsent or self.reconcilable

    @property
    def may_have_landed(self) -> bool:
        """Whether the last failed attempt of a non-idempotent call may have taken effect: its
        caller must look for what it made before the call is sent again."""
        if self.call.idempotent:
            return False
        last = self._last
        if isinstance(last, httpx.Response):
            return not last.is_success and _ambiguous_status(last.status_code)
        return last is not None and is_ambiguous(last)

    def _should_retry_response(self, response: httpx.Response) -> bool:
        may_resend = self._may_resend(unsent=response.status_code in UNPROCESSED_STATUSES)
        override = _should_retry_header(response)
        if override is not None:
            # The server may veto a retry, but cannot make a write that may have landed safe to re-send.
            return override and may_resend
        return _retryable_status(response.status_code) and may_resend

    def _describe_last(self) -> str:
        if isinstance(self._last, httpx.Response):
            return f"HTTP {self._last.status_code}"
        return type(self._last).__name__

    def result(self) -> ModelT:
        """The parsed response of the last attempt, or its typed exception."""
        last = self._last
        if isinstance(last, httpx.Response):
            if not last.is_success:
                raise error_from_response(last, self.call)
            return parse_response(last, self.call)
        assert last is not None, "result() before record()"
        raise last


def parse_response(response: httpx.Response, call: Call[ModelT]) -> ModelT:
    """The response body as the call's model; a body that truly cannot be read raises a
    :class:`ManagedAgentsResponseError` naming the field and the request-id."""
    try:
        parsed = call.response_model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ManagedAgentsResponseError.from_validation(exc, call.label, response.headers.get("request-id")) from None
    _unbind_stream(response)
    return parsed


def _unbind_stream(response: httpx.Response) -> None:
    """Let a read, closed response be freed as soon as it is dropped.

    httpx binds a response's stream back to the response, a reference cycle that keeps the raw
    body (up to a 1,000-item page) alive until the cyclic collector runs: a pager would then
    hold several pages' bodies at once. The stream is spent once the body is read.
    """
    response.stream = httpx.ByteStream(b"")
