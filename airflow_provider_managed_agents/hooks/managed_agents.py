"""ManagedAgentsHook: the one place that talks HTTP to the Managed Agents Deployments API."""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_provider_managed_agents.exceptions import (
    ManagedAgentsAuthenticationError,
    ManagedAgentsError,
    ManagedAgentsPermissionError,
    ManagedAgentsValidationError,
)
from airflow_provider_managed_agents.hooks.wire import (
    DEFAULT_BASE_URL,
    DEFAULT_CONSOLE_URL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_CONNECTIONS,
    Attempts,
    Call,
    Secret,
    Settings,
    is_ambiguous,
)
from airflow_provider_managed_agents.models.deployments import Deployment
from airflow_provider_managed_agents.models.pages import Page
from airflow_provider_managed_agents.models.params import (
    DEPLOYMENT_RUNS_PAGE_MAX,
    IDEMPOTENCY_METADATA_KEY,
    CreateDeploymentParams,
    DeploymentListFilters,
    DeploymentRunListFilters,
    UpdateDeploymentParams,
    validate_params,
    with_idempotency_marker,
)
from airflow_provider_managed_agents.models.runs import DeploymentRun

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound="BaseModel")
ParamsT = TypeVar("ParamsT", bound="BaseModel")

FiltersT = TypeVar("FiltersT", DeploymentListFilters, DeploymentRunListFilters)

DeploymentPage = Page[Deployment]
DeploymentRunPage = Page[DeploymentRun]


def _path_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or value in {".", ".."}:
        raise ManagedAgentsValidationError(f"{what}", [(what, "must be a non-empty id")])
    return quote(value, safe="")


def _coerce(model: type[ParamsT], data: ParamsT | Mapping[str, Any], what: str) -> ParamsT:
    return data if isinstance(data, model) else validate_params(model, dict(data), what)


def settings_from_connection(conn: Connection, extra: Mapping[str, Any] | None = None) -> Settings:
    """Read :class:`Settings` from an Airflow connection of type ``managed_agents``.

    ``extra`` is the decoded extra field when the caller already has it (the async path reads it
    without blocking the triggerer's event loop).
    """
    extra = conn.extra_dejson if extra is None else extra
    extra = extra or {}
    if not conn.password:
        raise ManagedAgentsValidationError(f"connection {conn.conn_id!r}", [("password", "the API key is missing")])
    base_url = DEFAULT_BASE_URL
    if conn.host:
        base_url = conn.host if "://" in conn.host else f"{conn.schema or 'https'}://{conn.host}"
        if conn.port and base_url.count(":") < 2:
            base_url = f"{base_url.rstrip('/')}:{conn.port}"
    betas = extra.get("betas") or ()
    if isinstance(betas, str):
        betas = [b.strip() for b in betas.split(",")]
    return Settings(
        api_key=Secret(conn.password),
        base_url=base_url,
        workspace_id=extra.get("workspace_id") or None,
        betas=tuple(b for b in betas if b),
        timeout=float(_blank_as(extra.get("timeout"), DEFAULT_TIMEOUT_SECONDS)),
        max_retries=int(_blank_as(extra.get("max_retries"), DEFAULT_MAX_RETRIES)),
        console_url=str(extra.get("console_url") or DEFAULT_CONSOLE_URL),
    )


def _blank_as(value: Any, default: Any) -> Any:
    """A form field left empty arrives as None or "": the default, not an error (0 stays 0)."""
    return default if value is None or (isinstance(value, str) and not value.strip()) else value


SETTINGS_TTL_SECONDS = 300.0


class _LoopShared:
    """What the hooks of one event loop share. A triggerer runs thousands of triggers in one
    loop: they look each connection up once per ``SETTINGS_TTL_SECONDS``, use one AsyncClient
    (one connection pool) per settings, and have at most ``MAX_CONNECTIONS`` requests in flight
    on it.

    A lookup in flight is shared by concurrent callers and runs as its own task, so one caller
    being cancelled (a trigger torn down) does not cancel it for the others; a failed lookup is
    not kept, and neither is a finished task (it would hold the loop alive).
    """

    def __init__(self) -> None:
        self.settled: dict[str, tuple[float, Settings]] = {}
        self.in_flight: dict[str, asyncio.Task[Settings]] = {}
        self.clients: dict[Settings, httpx.AsyncClient] = {}
        self.slots: dict[Settings, asyncio.Semaphore] = {}

    async def settings(self, conn_id: str, load: Callable[[], Awaitable[Settings]]) -> Settings:
        settled = self.settled.get(conn_id)
        if settled is not None and time.monotonic() - settled[0] <= SETTINGS_TTL_SECONDS:
            return settled[1]
        task = self.in_flight.get(conn_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load(conn_id, load))
            self.in_flight[conn_id] = task
        return await asyncio.shield(task)

    async def _load(self, conn_id: str, load: Callable[[], Awaitable[Settings]]) -> Settings:
        try:
            settings = await load()
            self.settled[conn_id] = (time.monotonic(), settings)
            return settings
        finally:
            del self.in_flight[conn_id]

    def client(self, settings: Settings) -> httpx.AsyncClient:
        client = self.clients.get(settings)
        if client is None or client.is_closed:
            client = self.clients[settings] = httpx.AsyncClient(**settings.client_options())
        return client

    def slot(self, settings: Settings) -> asyncio.Semaphore:
        """httpcore matches every queued request against every pooled connection each time one
        frees up, milliseconds of CPU per request with a thousand triggers polling at once:
        admitting no more requests than there are connections keeps its queue empty."""
        slot = self.slots.get(settings)
        if slot is None:
            slot = self.slots[settings] = asyncio.Semaphore(MAX_CONNECTIONS)
        return slot


_loop_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopShared] = weakref.WeakKeyDictionary()


def _shared() -> _LoopShared:
    return _loop_shared.setdefault(asyncio.get_running_loop(), _LoopShared())


def shared_async_client(settings: Settings) -> httpx.AsyncClient:
    """This event loop's client for ``settings``."""
    return _shared().client(settings)


class ManagedAgentsHook(BaseHook):
    """Talks to the Managed Agents Deployments API.

    Connection (type ``managed_agents``): password = API key; host = base URL (default
    ``https://api.anthropic.com``); extras ``workspace_id``, ``betas`` (list or comma-separated),
    ``timeout`` (seconds), ``max_retries``, ``console_url`` (for operator links). When the
    connection does not exist and ``ANTHROPIC_API_KEY`` is set, that key is used
    (with ``ANTHROPIC_BASE_URL`` if set).

    Every method returns parsed models and raises the typed exceptions of
    :mod:`airflow_provider_managed_agents.exceptions`. Transient failures are retried with
    backoff; ``create_deployment`` and ``run_deployment`` are never blindly re-sent once the
    request may have reached the server.
    """

    conn_name_attr = "managed_agents_conn_id"
    default_conn_name = "managed_agents_default"
    conn_type = "managed_agents"
    hook_name = "Anthropic Managed Agents"

    def __init__(self, managed_agents_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.managed_agents_conn_id = managed_agents_conn_id
        self._settings: Settings | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(managed_agents_conn_id={self.managed_agents_conn_id!r})"

    # --- connection ------------------------------------------------------------------------

    def _settings_from_env(self) -> Settings:
        key = os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise AirflowNotFoundException(
                f"The connection {self.managed_agents_conn_id!r} is not defined and ANTHROPIC_API_KEY is not set"
            )
        self.log.info(
            "Connection %r not found; using ANTHROPIC_API_KEY from the environment",
            self.managed_agents_conn_id,
        )
        return Settings(api_key=Secret(key), base_url=os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL)

    def _remember(self, settings: Settings) -> Settings:
        _mask(settings.api_key.reveal())
        self._settings = settings
        return settings

    @property
    def settings(self) -> Settings:
        """Connection settings, read once per hook."""
        if self._settings is None:
            try:
                conn = self.get_connection(self.managed_agents_conn_id)
            except AirflowNotFoundException:
                return self._remember(self._settings_from_env())
            return self._remember(settings_from_connection(conn))
        return self._settings

    async def asettings(self) -> Settings:
        """Connection settings for the async path. A triggerer runs many triggers on one
        connection: they share one lookup per ``SETTINGS_TTL_SECONDS`` instead of one each."""
        if self._settings is None:
            self._settings = await _shared().settings(self.managed_agents_conn_id, self._aload_settings)
        return self._settings

    async def _aload_settings(self) -> Settings:
        try:
            conn = await self.aget_connection(self.managed_agents_conn_id)
        except AirflowNotFoundException:
            return self._remember(self._settings_from_env())
        read_extra = getattr(conn, "aextra_dejson", None)  # Airflow >= 3.3.2
        extra = await read_extra() if read_extra is not None else None
        return self._remember(settings_from_connection(conn, extra))

    # --- transport -------------------------------------------------------------------------

    @cached_property
    def client(self) -> httpx.Client:
        """One keep-alive client per hook."""
        return httpx.Client(**self.settings.client_options())

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    def _call(self, call: Call[ModelT]) -> ModelT:
        attempts = Attempts(call, self.settings.max_retries)
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = self.client.send(call.build(self.client))
            except httpx.TransportError as exc:
                outcome = exc
            delay = attempts.record(outcome)
            if delay is None:
                return attempts.result()
            self._sleep(delay)

    async def _acall(self, call: Call[ModelT]) -> ModelT:
        settings = await self.asettings()
        client = shared_async_client(settings)
        attempts = Attempts(call, settings.max_retries)
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                async with _shared().slot(settings):
                    outcome = await client.send(call.build(client))
            except httpx.TransportError as exc:
                outcome = exc
            delay = attempts.record(outcome)
            if delay is None:
                return attempts.result()
            await asyncio.sleep(delay)

    # --- calls (shared by the sync and async methods) ----------------------------------------

    @staticmethod
    def _get_deployment_call(deployment_id: str) -> Call[Deployment]:
        return Call("GET", f"/v1/deployments/{_path_id(deployment_id, 'deployment_id')}", Deployment)

    @staticmethod
    def _action_call(deployment_id: str, action: str) -> Call[Deployment]:
        path = f"/v1/deployments/{_path_id(deployment_id, 'deployment_id')}/{action}"
        return Call("POST", path, Deployment)

    @staticmethod
    def _list_deployments_call(filters: DeploymentListFilters) -> Call[DeploymentPage]:
        return Call("GET", "/v1/deployments", DeploymentPage, query=filters.to_query())

    @staticmethod
    def _list_runs_call(filters: DeploymentRunListFilters) -> Call[DeploymentRunPage]:
        return Call("GET", "/v1/deployment_runs", DeploymentRunPage, query=filters.to_query())

    @staticmethod
    def _get_run_call(deployment_run_id: str) -> Call[DeploymentRun]:
        path = f"/v1/deployment_runs/{_path_id(deployment_run_id, 'deployment_run_id')}"
        return Call("GET", path, DeploymentRun)

    # --- deployments -------------------------------------------------------------------------

    def create_deployment(
        self,
        params: CreateDeploymentParams | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        look_first: bool = False,
        retry_ambiguous: bool = False,
    ) -> Deployment:
        """Create a deployment; ``params`` are validated before anything is sent.

        Without ``idempotency_key`` the request is re-sent only when it provably did not reach
        the server (connect error, 429, 529). With one, the key is stored in ``metadata`` under
        ``airflow_idempotency_key`` and the create is exactly-once: after an ambiguous failure
        (timeout, dropped connection, 5xx) the deployments of that agent are scanned for the key
        and a match is adopted instead of creating another. ``look_first`` scans before the first
        send, for an Airflow task retry. The scan costs one paged list call, only on those paths.
        ``retry_ambiguous`` re-sends blindly instead, for callers that accept duplicates.
        """
        validated = _coerce(CreateDeploymentParams, params, "create_deployment parameters")
        if idempotency_key is None:
            return self._call(self._create_call(validated, retry_ambiguous))
        validated = with_idempotency_marker(validated, idempotency_key)
        agent_id = validated.agent if isinstance(validated.agent, str) else validated.agent.id

        def find() -> Deployment | None:
            return next(
                (
                    d
                    for d in self.list_deployments(agent_id=agent_id, limit=100)
                    if d.metadata.get(IDEMPOTENCY_METADATA_KEY) == idempotency_key
                ),
                None,
            )

        send = lambda: self._call(self._create_call(validated))  # noqa: E731
        return self._exactly_once(send, find, find if look_first else None, "deployment")

    @staticmethod
    def _create_call(params: CreateDeploymentParams, retry_ambiguous: bool = False) -> Call[Deployment]:
        body = params.to_body()
        return Call("POST", "/v1/deployments", Deployment, body=body, idempotent=False, retry_ambiguous=retry_ambiguous)

    def _exactly_once(
        self,
        send: Callable[[], ModelT],
        find: Callable[[], ModelT | None],
        find_first: Callable[[], ModelT | None] | None,
        what: str,
    ) -> ModelT:
        """Send a non-idempotent request at most once in effect: before every re-send look
        (``find``) for what the failed send may have made, and adopt it; ``find_first`` looks
        before the first send, for what an earlier task try made."""
        if find_first is not None and (found := find_first()) is not None:
            self.log.info("Adopting %s made by an earlier attempt", what)
            return found
        sends_left = self.settings.max_retries + 1
        while True:
            sends_left -= 1
            try:
                return send()
            except ManagedAgentsError as exc:
                if not is_ambiguous(exc) or sends_left <= 0:
                    raise
                self.log.warning("%s; checking whether the %s was made before sending again", exc, what)
                if (found := find()) is not None:
                    self.log.info("Adopting the %s that the failed attempt made", what)
                    return found

    def get_deployment(self, deployment_id: str) -> Deployment:
        return self._call(self._get_deployment_call(deployment_id))

    async def aget_deployment(self, deployment_id: str) -> Deployment:
        return await self._acall(self._get_deployment_call(deployment_id))

    def list_deployments(self, **filters: Any) -> Iterator[Deployment]:
        """Every deployment matching ``filters`` (``agent_id``, ``status``, ``include_archived``,
        ``created_at_gte``, ``created_at_lte``, ``limit`` = page size), fetched page by page."""
        first = _coerce(DeploymentListFilters, filters, "list_deployments filters")
        return self._paginate(first, self._list_deployments_call)

    def update_deployment(self, deployment_id: str, params: UpdateDeploymentParams | Mapping[str, Any]) -> Deployment:
        """Update only the fields present in ``params``: omitted = preserve, None = clear."""
        body = _coerce(UpdateDeploymentParams, params, "update_deployment parameters").to_body()
        path = f"/v1/deployments/{_path_id(deployment_id, 'deployment_id')}"
        # Replaying the same full replacement converges to the same state: safe to re-send.
        return self._call(Call("POST", path, Deployment, body=body))

    def archive_deployment(self, deployment_id: str) -> Deployment:
        return self._call(self._action_call(deployment_id, "archive"))

    def pause_deployment(self, deployment_id: str) -> Deployment:
        return self._call(self._action_call(deployment_id, "pause"))

    def unpause_deployment(self, deployment_id: str) -> Deployment:
        return self._call(self._action_call(deployment_id, "unpause"))

    def run_deployment(
        self,
        deployment_id: str,
        *,
        adopt_since: datetime | None = None,
        look_first: bool = False,
        retry_ambiguous: bool = False,
    ) -> DeploymentRun:
        """Start a manual run now and return its run record.

        Never blindly re-sent once the request may have reached the server. With
        ``adopt_since``, an ambiguous failure first looks for a manual run of this deployment
        created at or after ``adopt_since`` and adopts it; with ``look_first`` (an Airflow task
        retry), a session-creating manual run in that window is adopted before sending. The API
        has no idempotency key for runs, so a manual run started by someone else in that window
        would be adopted too; keep the window small.
        """
        path = f"/v1/deployments/{_path_id(deployment_id, 'deployment_id')}/run"
        call = Call("POST", path, DeploymentRun, idempotent=False, retry_ambiguous=retry_ambiguous)
        if adopt_since is None:
            return self._call(call)

        def find(successful_only: bool) -> DeploymentRun | None:
            page = self.list_deployment_runs_page(
                deployment_id=deployment_id,
                trigger_type="manual",
                has_error=False if successful_only else None,
                created_at_gte=adopt_since,
                limit=DEPLOYMENT_RUNS_PAGE_MAX,
            )
            return min(page.data, key=lambda run: (run.created_at, run.id), default=None)

        # A failed send adopts whatever run it made, failed or not; an earlier task try that
        # ended with a run error must be run again, so only a run that created a session counts.
        earlier_try = (lambda: find(True)) if look_first else None
        return self._exactly_once(lambda: self._call(call), lambda: find(False), earlier_try, "manual run")

    # --- deployment runs ---------------------------------------------------------------------

    def get_deployment_run(self, deployment_run_id: str) -> DeploymentRun:
        return self._call(self._get_run_call(deployment_run_id))

    async def aget_deployment_run(self, deployment_run_id: str) -> DeploymentRun:
        return await self._acall(self._get_run_call(deployment_run_id))

    def list_deployment_runs(self, **filters: Any) -> Iterator[DeploymentRun]:
        """Every run matching ``filters`` (``deployment_id``, ``has_error``, ``trigger_type``,
        ``created_at_gt|gte|lt|lte``, ``limit`` = page size), fetched lazily page by page."""
        first = _coerce(DeploymentRunListFilters, filters, "list_deployment_runs filters")
        return self._paginate(first, self._list_runs_call)

    def list_deployment_runs_page(self, **filters: Any) -> DeploymentRunPage:
        """One page of runs: a single request."""
        first = _coerce(DeploymentRunListFilters, filters, "list_deployment_runs filters")
        return self._call(self._list_runs_call(first))

    async def alist_deployment_runs_page(self, **filters: Any) -> DeploymentRunPage:
        first = _coerce(DeploymentRunListFilters, filters, "list_deployment_runs filters")
        return await self._acall(self._list_runs_call(first))

    async def alist_deployment_runs(self, **filters: Any) -> AsyncIterator[DeploymentRun]:
        filters_model = _coerce(DeploymentRunListFilters, filters, "list_deployment_runs filters")
        while True:
            page = await self._acall(self._list_runs_call(filters_model))
            for run in page.data:
                yield run
            if not page.next_page:
                return
            filters_model = filters_model.model_copy(update={"page": page.next_page})

    def _paginate(self, filters: FiltersT, make_call: Callable[[FiltersT], Call[Page[ModelT]]]) -> Iterator[ModelT]:
        """Items of every page, fetching the next page only once this one is consumed and
        holding one page at a time: memory stays flat however many items there are."""
        while True:
            page = self._call(make_call(filters))
            cursor, items = page.next_page, page.data
            del page
            yield from items
            del items
            if not cursor:
                return
            filters = filters.model_copy(update={"page": cursor})

    # --- UI ----------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """For the UI's Test button: one cheap authenticated call."""
        try:
            page = self._call(self._list_deployments_call(DeploymentListFilters(limit=1)))
        except ManagedAgentsAuthenticationError:
            return False, "Authentication failed: the API key was rejected (401). Check the password field."
        except ManagedAgentsPermissionError:
            return False, "Permission denied (403): the key cannot use Managed Agents in this workspace."
        except (ManagedAgentsError, AirflowNotFoundException) as exc:
            return False, str(exc)
        return (
            True,
            f"Connected to {self.settings.base_url} ({len(page.data)} deployment(s) visible on the first page).",
        )


def _mask(secret: str) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older Task SDK
        return
    mask_secret(secret)
