"""The webhook receiver: a small FastAPI app that the plugin mounts on Airflow's api-server.

Routes, below :data:`~.connection.URL_PREFIX` (``/managed-agents/webhooks``):

- ``POST /events``: the API's deliveries (register ``<[api] base_url><URL_PREFIX>/events``);
- ``POST /watcher-runs``: runs handed over by watchers with ``delivery="both"``, signed with the
  same secret (:mod:`~airflow_provider_managed_agents.triggers.webhook_handover`);
- ``GET /health``: whether the receiver has a usable webhook connection.

Each delivery, in this order, before anything is recorded or read:

1. its size: a ``Content-Length`` above ``max_body_bytes`` is refused (413) without reading the
   body; a body without one is counted as it streams in and refused past the limit;
2. its signature (:func:`~.signing.verify`): missing headers 400; a timestamp outside the
   five-minute tolerance, or a signature no configured secret made, 401;
3. its body: the event envelope (:class:`~airflow_provider_managed_agents.models.webhooks.WebhookEvent`),
   400 otherwise.

Then, in a worker thread (blocking I/O stays off the event loop), :mod:`.announcing` reads the
object and announces it in one database transaction, and the answer is 200 with what it did
(``announced``, ``duplicate``, ...). A failed read of the API or a database error is answered
503 with nothing recorded (the API delivers it again); a receiver without a usable webhook
connection answers 503 and says why in the api-server's log. Answers never quote the body, the
headers or the secret.

The app has no Airflow authentication (Airflow guards its own routes, not a plugin's): the
signature is the authentication. See the README's security review.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from airflow_provider_managed_agents.exceptions import ManagedAgentsError
from airflow_provider_managed_agents.webhooks import EVENTS_PATH, WATCHER_PATH
from airflow_provider_managed_agents.webhooks.announcing import (
    HookReader,
    Outcome,
    Reader,
    airflow_session,
    handle_event,
    handle_handover,
)
from airflow_provider_managed_agents.webhooks.connection import (
    WebhookSettings,
    settings_from_connection,
    webhook_conn_id,
)
from airflow_provider_managed_agents.webhooks.signing import SignatureRejected, verify

log = logging.getLogger(__name__)

# A rotated secret reaches a running api-server after at most this long; a missing connection
# is looked up again after the shorter one (so that a flood of forged deliveries cannot turn
# into a flood of connection lookups).
SETTINGS_TTL_SECONDS = 60.0
MISSING_TTL_SECONDS = 10.0


class NotConfigured(Exception):
    """No usable webhook connection: said in the log, answered 503."""


@dataclass
class Configured:
    settings: WebhookSettings
    reader: Reader


def load_configured() -> Configured:
    """The webhook connection (read where the api-server reads connections: environment,
    secrets backends, metadata database) and a reader on the API connection it names."""
    from airflow_provider_managed_agents.hooks.managed_agents import settings_from_connection as api_settings

    try:
        import standardwebhooks  # noqa: F401
    except ImportError:
        raise NotConfigured(
            "the standardwebhooks package is missing: install airflow-provider-managed-agents[webhooks]"
        ) from None
    conn_id = webhook_conn_id()
    try:
        settings = settings_from_connection(_connection(conn_id))
        api_conn_id = settings.managed_agents_conn_id
        reader = HookReader(api_conn_id, api_settings(_connection(api_conn_id)))
    except ManagedAgentsError as exc:  # our checks: they name the field, never its value
        raise NotConfigured(str(exc)) from None
    return Configured(settings, reader)


def _connection(conn_id: str) -> Any:
    from airflow.models.connection import Connection

    from airflow_provider_managed_agents.compat import AirflowNotFoundException

    try:
        return Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        raise NotConfigured(f"the connection {conn_id!r} is not defined") from None
    except Exception as exc:  # a malformed definition: its message could quote the secret
        raise NotConfigured(f"the connection {conn_id!r} could not be read ({type(exc).__name__})") from None


class Receiver:
    """The app's state: the configuration, read once a minute; how events are handled."""

    def __init__(
        self,
        load: Callable[[], Configured] = load_configured,
        handle: Callable[[Any, Reader], Outcome] = handle_event,
    ) -> None:
        self._load = load
        self._handle = handle
        self._configured: Configured | None = None
        self._problem: str | None = None
        self._read_at = float("-inf")
        self._loading = asyncio.Lock()

    async def configured(self) -> Configured:
        async with self._loading:  # deliveries arriving during a lookup wait for it, not fail
            ttl = SETTINGS_TTL_SECONDS if self._configured is not None else MISSING_TTL_SECONDS
            if time.monotonic() - self._read_at > ttl:
                try:
                    fresh = await run_in_threadpool(self._load)
                except NotConfigured as exc:
                    if str(exc) != self._problem:
                        log.error("The Managed Agents webhook receiver cannot verify deliveries: %s", exc)
                    self._configured, self._problem = None, str(exc)
                else:
                    self._configured, self._problem = fresh, None
                self._read_at = time.monotonic()
        if self._configured is None:
            raise NotConfigured(self._problem or "not configured")
        return self._configured

    async def verified_body(self, request: Request) -> tuple[Configured, bytes]:
        configured = await self.configured()
        body = await read_limited(request, configured.settings.max_body_bytes)
        verify(configured.settings.secrets, body, request.headers)
        return configured, body

    async def events(self, request: Request) -> JSONResponse:
        from airflow_provider_managed_agents.models.webhooks import WebhookEvent

        try:
            configured, body = await self.verified_body(request)
            event = parse(WebhookEvent, body)
        except SignatureRejected as rejected:
            return refuse(rejected)
        except NotConfigured:
            return JSONResponse({"error": "the receiver is not configured"}, status_code=503)
        return await self._answer(f"event {event.id} ({event.data.type})", self._handle, event, configured.reader)

    async def watcher_runs(self, request: Request) -> JSONResponse:
        from airflow_provider_managed_agents.models.webhooks import HandedOverRun

        try:
            configured, body = await self.verified_body(request)
            run = parse(HandedOverRun, body)
        except SignatureRejected as rejected:
            return refuse(rejected)
        except NotConfigured:
            return JSONResponse({"error": "the receiver is not configured"}, status_code=503)
        return await self._answer(f"run {run.id} from a watcher", handle_handover, run.id, configured.reader)

    async def _answer(self, what: str, handle: Callable[..., Outcome], *args: Any) -> JSONResponse:
        try:
            outcome = await run_in_threadpool(handle, *args)
        except ManagedAgentsError as exc:
            log.warning("Webhook %s: could not read the API (%s); answered 503, to be delivered again", what, exc)
            return JSONResponse({"error": "could not read the object from the API; deliver again"}, status_code=503)
        except Exception:
            log.exception("Webhook %s: not recorded; answered 503, to be delivered again", what)
            return JSONResponse({"error": "not recorded; deliver again"}, status_code=503)
        return JSONResponse({"status": outcome.status, "subject": outcome.subject, "assets": list(outcome.assets)})

    async def health(self) -> JSONResponse:
        try:
            await self.configured()
        except NotConfigured:
            return JSONResponse({"configured": False}, status_code=503)
        return JSONResponse({"configured": True})


def refuse(rejected: SignatureRejected) -> JSONResponse:
    return JSONResponse({"error": rejected.reason}, status_code=rejected.status)


def parse(model: Any, body: bytes) -> Any:
    """The verified body as ``model``; 400 when it is not one (signed, but not what we take)."""
    try:
        return model.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        raise SignatureRejected(400, f"the body is not a {model.__name__}") from None


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused (413) past ``limit`` bytes: by ``Content-Length`` before reading
    anything, else while it streams in."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise SignatureRejected(400, "content-length is not a number") from None
        if size > limit:
            raise SignatureRejected(413, f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise SignatureRejected(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(receiver: Receiver | None = None) -> FastAPI:
    """The receiver's app (the plugin mounts it at :data:`~.connection.URL_PREFIX`)."""
    receiver = receiver or Receiver()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Create the tables before the first delivery (the first delivery would, too).
        try:
            await run_in_threadpool(_ensure_tables)
        except Exception as exc:
            log.warning("The Managed Agents webhook receiver could not create its tables yet: %s", exc)
        yield

    app = FastAPI(title="Managed Agents webhooks", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_api_route(EVENTS_PATH, receiver.events, methods=["POST"], include_in_schema=False)
    app.add_api_route(WATCHER_PATH, receiver.watcher_runs, methods=["POST"], include_in_schema=False)
    app.add_api_route("/health", receiver.health, methods=["GET"], include_in_schema=False)
    app.state.receiver = receiver
    return app


def _ensure_tables() -> None:
    with airflow_session():
        pass
