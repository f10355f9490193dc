"""ManagedAgentsHook: the one place that talks HTTP to the Managed Agents API."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx
import pendulum

from airflow_provider_managed_agents.compat import (
    AirflowNotFoundException,
    BaseHook,
    aextra_dejson,
    aget_connection,
    amask_secret,
    get_connection,
    mask_secret,
)
from airflow_provider_managed_agents.exceptions import (
    ManagedAgentsAuthenticationError,
    ManagedAgentsError,
    ManagedAgentsPermissionError,
    ManagedAgentsValidationError,
)
from airflow_provider_managed_agents.get_provider_info import CONN_TYPE, DEFAULT_CONN_ID
from airflow_provider_managed_agents.hooks.budget import RequestBudget, budget_for, request_class
from airflow_provider_managed_agents.hooks.loop_pool import loop_pool
from airflow_provider_managed_agents.hooks.wire import (
    DEFAULT_BASE_URL,
    DEFAULT_CONSOLE_URL,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_SECONDS,
    Attempts,
    Call,
    Secret,
    Settings,
    error_from_transport,
    longest_call,
)
from airflow_provider_managed_agents.models.actions import AnswersParams, CustomToolResultParam, ToolConfirmationParam
from airflow_provider_managed_agents.models.agents import (
    Agent,
    AgentListFilters,
    AgentVersionListFilters,
    CreateAgentParams,
    UpdateAgentParams,
)
from airflow_provider_managed_agents.models.deployments import Deployment
from airflow_provider_managed_agents.models.environments import (
    CreateEnvironmentParams,
    Environment,
    EnvironmentListFilters,
    UpdateEnvironmentParams,
)
from airflow_provider_managed_agents.models.files import FileListFilters, FileMetadata, FilePage
from airflow_provider_managed_agents.models.memory_stores import (
    CreateMemoryStoreParams,
    MemoryStore,
    MemoryStoreListFilters,
    UpdateMemoryStoreParams,
)
from airflow_provider_managed_agents.models.pages import Page
from airflow_provider_managed_agents.models.params import (
    DEPLOYMENT_RUNS_PAGE_MAX,
    DEPLOYMENTS_PAGE_MAX,
    IDEMPOTENCY_METADATA_KEY,
    CreateDeploymentParams,
    DeploymentListFilters,
    DeploymentRunListFilters,
    ListFilters,
    SessionEventListFilters,
    SessionListFilters,
    UpdateDeploymentParams,
    checked_id,
    validate_params,
    with_idempotency_marker,
)
from airflow_provider_managed_agents.models.runs import DeploymentRun, RunSend
from airflow_provider_managed_agents.models.session_events import (
    ACTION_EVENT_TYPES,
    ActionAnswer,
    ActionCall,
    AgentCustomToolUse,
    AgentMcpToolUse,
    AgentToolUse,
    SentEvents,
    SessionEvent,
    SessionEventPage,
    UserCustomToolResult,
    UserToolConfirmation,
)
from airflow_provider_managed_agents.models.sessions import Session, SessionPage
from airflow_provider_managed_agents.models.vaults import (
    CreateCredentialParams,
    CreateVaultParams,
    Deleted,
    UpdateCredentialParams,
    UpdateVaultParams,
    Vault,
    VaultCredential,
    VaultListFilters,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound="BaseModel")
ParamsT = TypeVar("ParamsT", bound="BaseModel")
FiltersT = TypeVar("FiltersT", bound="ListFilters")
ResourceT = TypeVar("ResourceT", Agent, Environment, Vault, VaultCredential, MemoryStore)
# Memory stores answer to their own beta (the SDK sends it; the managed-agents one works too).
MEMORY_BETA = "agent-memory-2026-07-22"

DeploymentPage = Page[Deployment]
DeploymentRunPage = Page[DeploymentRun]

# How far before a send its result may carry a created_at, by the service's clock: allowance for
# the worker's clock running ahead. Generous for deployments (the idempotency marker, not the
# time, identifies the one to adopt), tight for runs (the time window is all there is).
DEPLOYMENT_CLOCK_ALLOWANCE = timedelta(minutes=5)
RUN_CLOCK_ALLOWANCE = timedelta(seconds=5)
# Stopping a session: archive is refused while it runs, so interrupt first and give the turn
# this long to wind down before archiving.
ARCHIVE_ATTEMPTS = 6
ARCHIVE_PAUSE_SECONDS = 1.0
# A download holds at most this much of a file in memory.
DOWNLOAD_CHUNK_BYTES = 1024 * 1024


def path_id(value: Any, field: str) -> str:
    """An id checked (:func:`~airflow_provider_managed_agents.models.params.checked_id`) and
    escaped for a URL path."""
    return quote(checked_id(value, field), safe="")


def _coerce(model: type[ParamsT], data: ParamsT | Mapping[str, Any], what: str) -> ParamsT:
    return data if isinstance(data, model) else validate_params(model, dict(data), what)


def _params_or_fields(
    model: type[ParamsT], params: ParamsT | Mapping[str, Any] | None, fields: dict[str, Any], what: str
) -> ParamsT:
    """The request parameters, given either as one object or as the API's fields as keywords."""
    if params is not None and fields:
        raise ManagedAgentsValidationError(what, [("", "give a params object or keyword fields, not both")])
    return _coerce(model, fields if params is None else params, what)


def settings_from_connection(conn: Connection, extra: Mapping[str, Any] | None = None) -> Settings:
    """Read :class:`Settings` from an Airflow connection of type ``managed_agents`` (or
    ``anthropic``, from ``apache-airflow-providers-anthropic``: the same password and host).

    ``extra`` is the decoded extra field when the caller already has it (the async path reads it
    without blocking the triggerer's event loop). Extras this provider does not know are ignored.
    """
    extra = conn.extra_dejson if extra is None else extra
    extra = extra or {}
    if not conn.password or not conn.password.strip():
        raise ManagedAgentsValidationError(
            f"connection {conn.conn_id!r}",
            [
                (
                    "password",
                    "the API key is empty: set it (e.g. `airflow connections add "
                    f"{conn.conn_id} --conn-type {CONN_TYPE} --conn-password ...`, with ANTHROPIC_API_KEY set if "
                    "you pass it from there)",
                )
            ],
        )
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
        reads_per_minute=_cap(conn.conn_id, extra, "reads_per_minute"),
        writes_per_minute=_cap(conn.conn_id, extra, "writes_per_minute"),
    )


def _cap(conn_id: str, extra: Mapping[str, Any], field: str) -> float | None:
    """A requests-a-minute cap from the extras: empty for none, else a number above 0."""
    value = _blank_as(extra.get(field), None)
    if value is None:
        return None
    try:
        cap = float(value)
    except (TypeError, ValueError):
        cap = 0.0
    if cap <= 0:
        problem = f"must be a number of requests a minute above 0, not {value!r}"
        raise ManagedAgentsValidationError(f"connection {conn_id!r}", [(f"extra.{field}", problem)])
    return cap


def _holding(items: Iterator[ResourceT], key: str) -> ResourceT | None:
    """The first of ``items`` whose metadata holds the idempotency ``key``."""
    return next((item for item in items if item.metadata.get(IDEMPOTENCY_METADATA_KEY) == key), None)


def _blank_as(value: Any, default: Any) -> Any:
    """A form field left empty arrives as None or "": the default, not an error (0 stays 0)."""
    return default if value is None or (isinstance(value, str) and not value.strip()) else value


def _utc_now() -> datetime:
    return pendulum.now("UTC")


class ManagedAgentsHook(BaseHook):
    """Talks to the Managed Agents API: deployments, deployment runs and the sessions they make.

    Connection (type ``managed_agents``, or an ``anthropic`` connection as-is): password = API
    key; host = base URL (default ``https://api.anthropic.com``); extras ``workspace_id``,
    ``betas`` (list or comma-separated), ``timeout`` (seconds), ``max_retries``, ``console_url``
    (for operator links). When the connection does not exist and ``ANTHROPIC_API_KEY`` is set,
    that key is used (with ``ANTHROPIC_BASE_URL`` if set).

    Every method returns parsed models and raises the typed exceptions of
    :mod:`airflow_provider_managed_agents.exceptions`. Transient failures are retried with
    backoff, within one budget of ``max_retries`` re-sends per call. ``create_deployment`` and
    ``run_deployment`` are exactly-once within a call: after a failure that may have taken
    effect they look for what it made and adopt it before sending again.
    """

    conn_name_attr = "managed_agents_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Anthropic Managed Agents"

    def __init__(self, managed_agents_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.managed_agents_conn_id = managed_agents_conn_id
        self._settings: Settings | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(managed_agents_conn_id={self.managed_agents_conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form's labels, for Airflow versions that do not read the provider
        info's declarative ``ui-field-behaviour``."""
        from airflow_provider_managed_agents.get_provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection form's extra fields, for Airflow versions that do not read the
        provider info's declarative ``conn-fields``."""
        from airflow_provider_managed_agents.compat import connection_form_widgets

        return connection_form_widgets()

    # --- connection ------------------------------------------------------------------------

    def _settings_from_env(self) -> Settings:
        key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
        if not key:
            raise AirflowNotFoundException(
                f"The connection {self.managed_agents_conn_id!r} is not defined and ANTHROPIC_API_KEY is not set "
                f"(or empty): define the connection (type {CONN_TYPE}, the API key as its password) or set the variable"
            )
        self.log.info(
            "Connection %r not found; using ANTHROPIC_API_KEY from the environment",
            self.managed_agents_conn_id,
        )
        return Settings(api_key=Secret(key), base_url=os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL)

    @property
    def settings(self) -> Settings:
        """Connection settings for the sync path, read once per hook.

        :return: the connection's settings (the API key masked in every log from then on).
        """
        if self._settings is None:
            try:
                conn = get_connection(self, self.managed_agents_conn_id)
            except AirflowNotFoundException:
                settings = self._settings_from_env()
            else:
                settings = settings_from_connection(conn)
            mask_secret(settings.api_key.reveal())
            self._settings = settings
        return self._settings

    async def asettings(self) -> Settings:
        """Connection settings for the async path: shared by every hook of the event loop and
        looked up again after ``SETTINGS_TTL_SECONDS``, so a rotated key reaches a running trigger.

        :return: the connection's settings.
        """
        return await loop_pool().settings(self.managed_agents_conn_id, self._aload_settings)

    async def _aload_settings(self) -> Settings:
        try:
            conn = await aget_connection(self, self.managed_agents_conn_id)
        except AirflowNotFoundException:
            settings = self._settings_from_env()
        else:
            settings = settings_from_connection(conn, await aextra_dejson(conn))
        await amask_secret(settings.api_key.reveal())
        return settings

    # --- transport -------------------------------------------------------------------------

    @cached_property
    def client(self) -> httpx.Client:
        """One keep-alive client per hook.

        :return: the hook's blocking HTTP client (closed by :meth:`close`).
        """
        return httpx.Client(**self.settings.client_options())

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def _asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def close(self) -> None:
        """Close the blocking client, if this hook opened one (the async clients belong to the
        event loop: :mod:`~airflow_provider_managed_agents.hooks.loop_pool`)."""
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    def _budget(self, settings: Settings) -> RequestBudget:
        """This process's request budget for the connection, with the connection's caps."""
        budget = budget_for(self.managed_agents_conn_id)
        budget.configure(settings.reads_per_minute, settings.writes_per_minute)
        return budget

    def _call(self, call: Call[ModelT], reconcile: Callable[[], ModelT | None] | None = None) -> ModelT:
        """Send ``call``, retrying transient failures. For a non-idempotent call, ``reconcile``
        looks for what a failed attempt may have made; it is adopted instead of sending again."""
        attempts = Attempts(call, self.settings.max_retries, reconcilable=reconcile is not None)
        budget, klass = self._budget(self.settings), request_class(call.method)
        slept_until: float | None = None
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                for pause in budget.turns(klass, slept_until):
                    self._sleep(pause)
                sent_at = budget.monotonic()
                outcome = self.client.send(call.build(self.client))
            except httpx.TransportError as exc:
                outcome = exc
            delay = attempts.record(outcome)
            if isinstance(outcome, httpx.Response):
                budget.heard(klass, outcome, delay or 0.0, sent_at)
            if delay is None:
                return attempts.result()
            if reconcile is not None and attempts.may_have_landed:
                self.log.warning("%s may have taken effect; looking for it before sending again", call.label)
                found = reconcile()
                if found is not None:
                    return found
            slept_until = budget.after(delay)
            self._sleep(delay)

    async def _acall(self, call: Call[ModelT]) -> ModelT:
        settings = await self.asettings()
        attempts = Attempts(call, settings.max_retries)
        pool = loop_pool()
        klass = request_class(call.method)
        slept_until: float | None = None
        while True:
            budget = self._budget(settings)
            outcome: httpx.Response | httpx.TransportError
            try:
                for pause in budget.turns(klass, slept_until):
                    await self._asleep(pause)
                async with pool.request_slot(self.managed_agents_conn_id, settings) as client:
                    sent_at = budget.monotonic()
                    outcome = await client.send(call.build(client))
            except httpx.TransportError as exc:
                outcome = exc
            delay = attempts.record(outcome)
            if isinstance(outcome, httpx.Response):
                budget.heard(klass, outcome, delay or 0.0, sent_at)
            if delay is None:
                return attempts.result()
            slept_until = budget.after(delay)
            await self._asleep(delay)
            settings = await self.asettings()

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

    async def _apaginate(
        self, filters: FiltersT, make_call: Callable[[FiltersT], Call[Page[ModelT]]]
    ) -> AsyncIterator[ModelT]:
        while True:
            page = await self._acall(make_call(filters))
            for item in page.data:
                yield item
            if not page.next_page:
                return
            filters = filters.model_copy(update={"page": page.next_page})

    # --- calls (shared by the sync and async methods) ----------------------------------------

    @staticmethod
    def _get_deployment_call(deployment_id: str) -> Call[Deployment]:
        return Call("GET", f"/v1/deployments/{path_id(deployment_id, 'deployment_id')}", Deployment)

    @staticmethod
    def _action_call(deployment_id: str, action: str) -> Call[Deployment]:
        return Call("POST", f"/v1/deployments/{path_id(deployment_id, 'deployment_id')}/{action}", Deployment)

    @staticmethod
    def _list_deployments_call(filters: DeploymentListFilters) -> Call[DeploymentPage]:
        return Call("GET", "/v1/deployments", DeploymentPage, query=filters.to_query())

    @staticmethod
    def _list_runs_call(filters: DeploymentRunListFilters) -> Call[DeploymentRunPage]:
        return Call("GET", "/v1/deployment_runs", DeploymentRunPage, query=filters.to_query())

    @staticmethod
    def _get_run_call(deployment_run_id: str) -> Call[DeploymentRun]:
        return Call("GET", f"/v1/deployment_runs/{path_id(deployment_run_id, 'deployment_run_id')}", DeploymentRun)

    # --- deployments -------------------------------------------------------------------------

    def create_deployment(
        self,
        params: CreateDeploymentParams | Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        look_first: bool = False,
        on_adopt: Callable[[Deployment], None] | None = None,
        **fields: Any,
    ) -> Deployment:
        """Create a deployment from ``params`` or from the API's fields as keywords
        (``create_deployment(name=..., agent=..., environment_id=..., initial_events=...)``);
        everything is validated before anything is sent.

        With ``idempotency_key`` the key is stored in ``metadata`` under
        ``airflow_idempotency_key`` (it needs one of the 16 pairs) and the create is exactly-once:
        after a failure that may have taken effect, the agent's deployments created since the
        send are listed (one page, normally one request) and the one holding the key is adopted.
        ``look_first`` also looks before the first send, through all of the agent's live
        deployments (``ceil(N / 100)`` requests for N of them), for one an earlier run made.
        Without a key the create is re-sent only when it provably did not reach the server.

        :param params: the fields as one object (or give them as keywords, not both).
        :param idempotency_key: the deployment's identity across sends (and DAG runs).
        :param look_first: adopt the live deployment holding the key before sending.
        :param on_adopt: called with a deployment ``look_first`` found (one an earlier run made),
            before it is returned: what a caller tells apart from a deployment just made.
        :return: the deployment made (or adopted).
        """
        validated = _params_or_fields(CreateDeploymentParams, params, fields, "create_deployment parameters")
        if idempotency_key is None:
            if look_first:
                raise ManagedAgentsValidationError(
                    "create_deployment parameters", [("look_first", "needs an idempotency_key to look for")]
                )
            return self._call(self._create_call(validated))
        validated = with_idempotency_marker(validated, idempotency_key)
        agent_id = validated.agent if isinstance(validated.agent, str) else validated.agent.id
        if look_first and (existing := self.find_deployment(agent_id, idempotency_key)) is not None:
            self.log.info("Adopted deployment %s, which holds idempotency key %r", existing.id, idempotency_key)
            if on_adopt is not None:
                on_adopt(existing)
            return existing
        sent_from = _utc_now() - DEPLOYMENT_CLOCK_ALLOWANCE

        def made_by_the_failed_send() -> Deployment | None:
            found = self.find_deployment(agent_id, idempotency_key, created_since=sent_from)
            if found is not None:
                self.log.info("Adopted deployment %s, made by the request that failed", found.id)
            return found

        return self._call(self._create_call(validated), made_by_the_failed_send)

    def find_deployment(
        self, agent_id: str, idempotency_key: str, *, created_since: datetime | None = None
    ) -> Deployment | None:
        """The live deployment of ``agent_id`` holding ``idempotency_key`` (archived ones are
        not looked at): one request per 100 of the agent's deployments created since
        ``created_since`` (all of them without it).

        :param agent_id: the agent whose deployments to look through.
        :param idempotency_key: the key a create stored in the deployment's metadata.
        :param created_since: look only at deployments created since then.
        :return: the deployment, or None.
        """
        listed = self.list_deployments(agent_id=agent_id, created_at_gte=created_since, limit=DEPLOYMENTS_PAGE_MAX)
        return next((d for d in listed if d.metadata.get(IDEMPOTENCY_METADATA_KEY) == idempotency_key), None)

    @staticmethod
    def _create_call(params: CreateDeploymentParams) -> Call[Deployment]:
        return Call("POST", "/v1/deployments", Deployment, body=params.to_body(), idempotent=False)

    def get_deployment(self, deployment_id: str) -> Deployment:
        """Read a deployment.

        :param deployment_id: the deployment.
        :return: the deployment, with its schedule's upcoming fires.
        """
        return self._call(self._get_deployment_call(deployment_id))

    async def aget_deployment(self, deployment_id: str) -> Deployment:
        """:meth:`get_deployment` with the async client.

        :param deployment_id: the deployment.
        :return: the deployment.
        """
        return await self._acall(self._get_deployment_call(deployment_id))

    def list_deployments(self, **filters: Any) -> Iterator[Deployment]:
        """Every deployment matching ``filters``, fetched page by page (one page in memory).

        :param filters: ``agent_id``, ``status``, ``include_archived``, ``created_at_gte``,
            ``created_at_lte``, ``limit`` (page size), validated before any request.
        :return: a lazy iterator of deployments.
        """
        first = _coerce(DeploymentListFilters, filters, "list_deployments filters")
        return self._paginate(first, self._list_deployments_call)

    def alist_deployments(self, **filters: Any) -> AsyncIterator[Deployment]:
        """:meth:`list_deployments` with the async client.

        :param filters: as :meth:`list_deployments`.
        :return: a lazy async iterator of deployments.
        """
        first = _coerce(DeploymentListFilters, filters, "list_deployments filters")
        return self._apaginate(first, self._list_deployments_call)

    def update_deployment(
        self,
        deployment_id: str,
        params: UpdateDeploymentParams | Mapping[str, Any] | None = None,
        /,
        **fields: Any,
    ) -> Deployment:
        """Update only the fields given: omitted = preserve, None = clear, ``metadata`` a merge
        patch. Safe to re-send: the same update converges to the same state.

        :param deployment_id: the deployment.
        :param params: the fields as one object (or give them as keywords, not both).
        :return: the updated deployment.
        """
        body = _params_or_fields(UpdateDeploymentParams, params, fields, "update_deployment parameters").to_body()
        path = f"/v1/deployments/{path_id(deployment_id, 'deployment_id')}"
        # Replaying the same full replacement converges to the same state: safe to re-send.
        return self._call(Call("POST", path, Deployment, body=body))

    def archive_deployment(self, deployment_id: str) -> Deployment:
        """Archive a deployment (terminal; archiving an archived one changes nothing).

        :param deployment_id: the deployment.
        :return: the deployment, ``archived_at`` set.
        """
        return self._call(self._action_call(deployment_id, "archive"))

    def pause_deployment(self, deployment_id: str) -> Deployment:
        """Pause a deployment's schedule (manual runs stay allowed).

        :param deployment_id: the deployment.
        :return: the deployment, paused.
        """
        return self._call(self._action_call(deployment_id, "pause"))

    def unpause_deployment(self, deployment_id: str) -> Deployment:
        """Resume a deployment's schedule from its next fire (no backfill).

        :param deployment_id: the deployment.
        :return: the deployment, active.
        """
        return self._call(self._action_call(deployment_id, "unpause"))

    def run_deployment(self, deployment_id: str, *, on_send: Callable[[RunSend], None] | None = None) -> DeploymentRun:
        """Start a manual run now.

        Exactly-once: the API has no idempotency key for runs, so before sending, the manual
        runs the deployment already has in the send's window are noted (one request: a
        :class:`~airflow_provider_managed_agents.models.runs.RunSend`). After a failure that may
        have taken effect, the oldest manual run created since that is not one of them is adopted
        (one request), and only when there is none is the run sent again. A manual run someone
        else starts while the request is in flight would be taken for this one.

        :param deployment_id: the deployment to run.
        :param on_send: called with the send's record just before the first send, for a caller
            that must find this run again after a crash (the run operator's journal).
        :return: the run record: ``session_id`` on success, a typed ``error`` on failure.
        """
        path = f"/v1/deployments/{path_id(deployment_id, 'deployment_id')}/run"
        send = self._note_run_send(deployment_id)
        if on_send is not None:
            on_send(send)

        def made_by_the_failed_send() -> DeploymentRun | None:
            run = self.find_run_made_by(send)
            if run is not None:
                self.log.info("Adopted run %s, made by the request that failed", run.id)
            return run

        return self._call(Call("POST", path, DeploymentRun, idempotent=False), made_by_the_failed_send)

    def _note_run_send(self, deployment_id: str) -> RunSend:
        sent_from = _utc_now() - RUN_CLOCK_ALLOWANCE
        page = self.list_deployment_runs_page(
            deployment_id=deployment_id,
            trigger_type="manual",
            created_at_gte=sent_from,
            limit=DEPLOYMENT_RUNS_PAGE_MAX,
        )
        until = _utc_now() + timedelta(seconds=longest_call(self.settings)) + RUN_CLOCK_ALLOWANCE
        return RunSend(
            deployment_id=deployment_id,
            sent_from=sent_from,
            sent_until=until,
            before=tuple(sorted(run.id for run in page.data)),
        )

    def find_run_made_by(self, send: RunSend) -> DeploymentRun | None:
        """The run a :meth:`run_deployment` send made, when its answer was lost.

        :param send: the record the send was noted in.
        :return: the oldest manual run of the deployment created in the send's window that was
            not there before it (one request), or None when the send made none.
        """
        page = self.list_deployment_runs_page(
            deployment_id=send.deployment_id,
            trigger_type="manual",
            created_at_gte=send.sent_from,
            created_at_lte=send.sent_until,
            limit=DEPLOYMENT_RUNS_PAGE_MAX,
        )
        made = [run for run in page.data if run.id not in send.before]
        return min(made, key=lambda run: (run.created_at, run.id), default=None)

    # --- deployment runs ---------------------------------------------------------------------

    def get_deployment_run(self, deployment_run_id: str) -> DeploymentRun:
        """Read a run (it never changes once written).

        :param deployment_run_id: the run.
        :return: the run: ``session_id`` or a typed ``error``.
        """
        return self._call(self._get_run_call(deployment_run_id))

    async def aget_deployment_run(self, deployment_run_id: str) -> DeploymentRun:
        """:meth:`get_deployment_run` with the async client.

        :param deployment_run_id: the run.
        :return: the run.
        """
        return await self._acall(self._get_run_call(deployment_run_id))

    def list_deployment_runs(self, **filters: Any) -> Iterator[DeploymentRun]:
        """Every run matching ``filters``, fetched lazily page by page.

        :param filters: ``deployment_id``, ``has_error``, ``trigger_type``,
            ``created_at_gt|gte|lt|lte``, ``limit`` (page size, up to 1,000).
        :return: a lazy iterator of runs.
        """
        first = _coerce(DeploymentRunListFilters, filters, "list_deployment_runs filters")
        return self._paginate(first, self._list_runs_call)

    def alist_deployment_runs(self, **filters: Any) -> AsyncIterator[DeploymentRun]:
        """:meth:`list_deployment_runs` with the async client.

        :param filters: as :meth:`list_deployment_runs`.
        :return: a lazy async iterator of runs.
        """
        first = _coerce(DeploymentRunListFilters, filters, "list_deployment_runs filters")
        return self._apaginate(first, self._list_runs_call)

    def list_deployment_runs_page(self, **filters: Any) -> DeploymentRunPage:
        """One page of runs: a single request.

        :param filters: as :meth:`list_deployment_runs`, and ``page`` (a cursor).
        :return: the page (``data``, ``next_page``).
        """
        first = _coerce(DeploymentRunListFilters, filters, "list_deployment_runs filters")
        return self._call(self._list_runs_call(first))

    async def alist_deployment_runs_page(self, **filters: Any) -> DeploymentRunPage:
        """:meth:`list_deployment_runs_page` with the async client.

        :param filters: as :meth:`list_deployment_runs_page`.
        :return: the page.
        """
        first = _coerce(DeploymentRunListFilters, filters, "list_deployment_runs filters")
        return await self._acall(self._list_runs_call(first))

    # --- sessions ------------------------------------------------------------------------------

    @staticmethod
    def _session_path(session_id: str, suffix: str = "") -> str:
        return f"/v1/sessions/{path_id(session_id, 'session_id')}{suffix}"

    def _get_session_call(self, session_id: str) -> Call[Session]:
        return Call("GET", self._session_path(session_id), Session)

    def _list_sessions_call(self, filters: SessionListFilters) -> Call[Page[Session]]:
        return Call("GET", "/v1/sessions", SessionPage, query=filters.to_query())

    def _events_call(self, session_id: str) -> Callable[[SessionEventListFilters], Call[SessionEventPage]]:
        path = self._session_path(session_id, "/events")
        return lambda filters: Call("GET", path, SessionEventPage, query=filters.to_query())

    def _send_events_call(self, session_id: str, events: list[dict[str, Any]]) -> Call[SentEvents]:
        # An interrupt sent twice interrupts once: safe to re-send after a lost answer.
        return Call("POST", self._session_path(session_id, "/events"), SentEvents, body={"events": events})

    def _archive_session_call(self, session_id: str) -> Call[Session]:
        return Call("POST", self._session_path(session_id, "/archive"), Session)

    def get_session(self, session_id: str) -> Session:
        """Read a session.

        :param session_id: the session.
        :return: the session: status, outcome evaluations, usage.
        """
        return self._call(self._get_session_call(session_id))

    async def aget_session(self, session_id: str) -> Session:
        """:meth:`get_session` with the async client.

        :param session_id: the session.
        :return: the session.
        """
        return await self._acall(self._get_session_call(session_id))

    def list_sessions(self, **filters: Any) -> Iterator[Session]:
        """Every session matching ``filters``, newest first by default, page by page.

        :param filters: ``deployment_id``, ``statuses``, ``agent_id``, ``agent_version``,
            ``created_at_gt|gte|lt|lte``, ``include_archived``, ``order``, ``memory_store_id``,
            ``limit`` (page size).
        :return: a lazy iterator of sessions.
        """
        first = _coerce(SessionListFilters, filters, "list_sessions filters")
        return self._paginate(first, self._list_sessions_call)

    def alist_sessions(self, **filters: Any) -> AsyncIterator[Session]:
        """:meth:`list_sessions` with the async client.

        :param filters: as :meth:`list_sessions`.
        :return: a lazy async iterator of sessions.
        """
        first = _coerce(SessionListFilters, filters, "list_sessions filters")
        return self._apaginate(first, self._list_sessions_call)

    def list_sessions_page(self, **filters: Any) -> SessionPage:
        """One page of sessions: a single request.

        :param filters: as :meth:`list_sessions`, and ``page`` (a cursor).
        :return: the page (``data``, ``next_page``, ``prev_page``).
        """
        first = _coerce(SessionListFilters, filters, "list_sessions filters")
        return self._call(Call("GET", "/v1/sessions", SessionPage, query=first.to_query()))

    def list_session_events(self, session_id: str, **filters: Any) -> Iterator[SessionEvent]:
        """The session's events matching ``filters``, fetched lazily page by page.

        :param session_id: the session.
        :param filters: ``types``, ``order`` (default oldest first), ``created_at_gt|gte|lt|lte``
            (against ``processed_at``), ``limit`` (page size).
        :return: a lazy iterator of events (unknown types kept as they came).
        """
        first = _coerce(SessionEventListFilters, filters, "list_session_events filters")
        return self._paginate(first, self._events_call(session_id))

    def list_session_events_page(self, session_id: str, **filters: Any) -> SessionEventPage:
        """One page of the session's events: a single request.

        :param session_id: the session.
        :param filters: as :meth:`list_session_events`, and ``page`` (a cursor).
        :return: the page.
        """
        first = _coerce(SessionEventListFilters, filters, "list_session_events filters")
        return self._call(self._events_call(session_id)(first))

    async def alist_session_events_page(self, session_id: str, **filters: Any) -> SessionEventPage:
        """:meth:`list_session_events_page` with the async client.

        :param session_id: the session.
        :param filters: as :meth:`list_session_events_page`.
        :return: the page.
        """
        first = _coerce(SessionEventListFilters, filters, "list_session_events filters")
        return await self._acall(self._events_call(session_id)(first))

    def interrupt_session(self, session_id: str) -> None:
        """Send ``user.interrupt``: the running turn ends (``end_turn``), an active outcome
        becomes ``interrupted``; no effect on an idle session. Safe to re-send.

        :param session_id: the session.
        """
        self._call(self._send_events_call(session_id, [{"type": "user.interrupt"}]))

    async def ainterrupt_session(self, session_id: str) -> None:
        """:meth:`interrupt_session` with the async client.

        :param session_id: the session.
        """
        await self._acall(self._send_events_call(session_id, [{"type": "user.interrupt"}]))

    def archive_session(self, session_id: str) -> Session:
        """Archive the session (read-only afterwards); refused (400) while it runs.

        :param session_id: the session.
        :return: the session, archived.
        """
        return self._call(self._archive_session_call(session_id))

    async def aarchive_session(self, session_id: str) -> Session:
        """:meth:`archive_session` with the async client.

        :param session_id: the session.
        :return: the session, archived.
        """
        return await self._acall(self._archive_session_call(session_id))

    def stop_session(self, session_id: str, how: str) -> None:
        """Stop a session a task gives up on: ``interrupt`` it, or ``archive`` it (interrupting
        first, and archiving once the turn has wound down: refused while it still runs).

        :param session_id: the session.
        :param how: ``interrupt`` or ``archive``.
        """
        from airflow_provider_managed_agents.exceptions import ManagedAgentsBadRequestError

        self.interrupt_session(session_id)
        if how != "archive":
            return
        for attempt in range(ARCHIVE_ATTEMPTS):
            try:
                self.archive_session(session_id)
                return
            except ManagedAgentsBadRequestError:
                if attempt == ARCHIVE_ATTEMPTS - 1:
                    raise
                self._sleep(ARCHIVE_PAUSE_SECONDS)

    async def astop_session(self, session_id: str, how: str) -> None:
        """:meth:`stop_session` with the async client (a trigger giving up).

        :param session_id: the session.
        :param how: ``interrupt`` or ``archive``.
        """
        from airflow_provider_managed_agents.exceptions import ManagedAgentsBadRequestError

        await self.ainterrupt_session(session_id)
        if how != "archive":
            return
        for attempt in range(ARCHIVE_ATTEMPTS):
            try:
                await self.aarchive_session(session_id)
                return
            except ManagedAgentsBadRequestError:
                if attempt == ARCHIVE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(ARCHIVE_PAUSE_SECONDS)

    # --- answering what a session waits for (requires_action) ----------------------------------

    def find_action_events(
        self, session_id: str, event_ids: Sequence[str]
    ) -> tuple[dict[str, ActionCall], dict[str, ActionAnswer]]:
        """The tool calls ``event_ids`` names (a ``requires_action`` stop reason's), and the
        answers the session already holds to them: its tool-call and answer events read newest
        first, page by page, until every call is found (usually one request).

        :param session_id: the session.
        :param event_ids: the pending events' ids.
        :return: the calls by event id (a call not found is missing), and the answers by the id
            of the call each answers.
        """
        wanted = set(event_ids)
        calls: dict[str, ActionCall] = {}
        answers: dict[str, ActionAnswer] = {}
        events = self.list_session_events(session_id, types=list(ACTION_EVENT_TYPES), order="desc", limit=100)
        for event in events:
            if isinstance(event, (AgentToolUse, AgentMcpToolUse, AgentCustomToolUse)) and event.id in wanted:
                calls[event.id] = event
                if len(calls) == len(wanted):
                    break
            elif isinstance(event, UserToolConfirmation) and event.tool_use_id in wanted:
                answers.setdefault(event.tool_use_id, event)
            elif isinstance(event, UserCustomToolResult) and event.custom_tool_use_id in wanted:
                answers.setdefault(event.custom_tool_use_id, event)
        return calls, answers

    def answer_actions(
        self, session_id: str, answers: Sequence[ToolConfirmationParam | CustomToolResultParam | Mapping[str, Any]]
    ) -> SentEvents:
        """Answer what an idle session waits for, in one request: ``user.tool_confirmation``
        (allow or deny a pending tool call) and ``user.custom_tool_result`` events. The session
        runs again once every pending event is answered.

        Exactly once: the API refuses an answer to a call that is no longer pending, so a send
        whose answer was lost is not re-sent blindly; the session's events are read and, when
        they hold the answers, those are the result.

        :param session_id: the session.
        :param answers: the answers, as param objects or dicts with their ``type``.
        :return: the answers as the session recorded them.
        """
        params = validate_params(AnswersParams, {"events": list(answers)}, "answers")
        path = self._session_path(session_id, "/events")
        call = Call("POST", path, SentEvents, body=params.to_wire(), idempotent=False)

        def recorded_by_the_failed_send() -> SentEvents | None:
            _, found = self.find_action_events(session_id, params.answered_ids)
            if not found:
                return None
            self.log.info("The answers to %s were recorded by the request that failed", ", ".join(found))
            return SentEvents(data=list(found.values()))

        return self._call(call, recorded_by_the_failed_send)

    # --- provisioning: agents, environments, vaults and credentials, memory stores --------------
    #
    # Creates take an ``idempotency_key`` as deployments do: it goes into ``metadata`` and makes
    # the create exactly-once (after a failure that may have taken effect, the resource holding
    # the key is adopted; with ``look_first``, also one an earlier run made). Updates are safe to
    # re-send, but an agent's (each makes a version): it is sent once, and after a lost answer the
    # agent is read to see whether it landed.

    def _create_once(
        self,
        call: Call[ResourceT],
        idempotency_key: str | None,
        look_first: bool,
        find: Callable[[datetime | None], ResourceT | None],
    ) -> ResourceT:
        if idempotency_key is None:
            if look_first:
                raise ManagedAgentsValidationError("create parameters", [("look_first", "needs an idempotency_key")])
            return self._call(call)
        if look_first and (existing := find(None)) is not None:
            self.log.info("Adopted %s %s, which holds idempotency key %r", existing.type, existing.id, idempotency_key)
            return existing
        sent_from = _utc_now() - DEPLOYMENT_CLOCK_ALLOWANCE

        def made_by_the_failed_send() -> ResourceT | None:
            found = find(sent_from)
            if found is not None:
                self.log.info("Adopted %s %s, made by the request that failed", found.type, found.id)
            return found

        return self._call(call, made_by_the_failed_send)

    def find_agent(self, idempotency_key: str, *, created_since: datetime | None = None) -> Agent | None:
        """The live agent holding ``idempotency_key`` (one request per 100 agents).

        :param idempotency_key: the key a create stored in its metadata.
        :param created_since: look only at agents created since then.
        :return: the agent, or None.
        """
        return _holding(self.list_agents(created_at_gte=created_since), idempotency_key)

    def find_environment(self, idempotency_key: str) -> Environment | None:
        """The live environment holding ``idempotency_key`` (one request per 100).

        :param idempotency_key: the key a create stored in its metadata.
        :return: the environment, or None.
        """
        return _holding(self.list_environments(), idempotency_key)

    def find_vault(self, idempotency_key: str) -> Vault | None:
        """The live vault holding ``idempotency_key`` (one request per 100).

        :param idempotency_key: the key a create stored in its metadata.
        :return: the vault, or None.
        """
        return _holding(self.list_vaults(), idempotency_key)

    def find_credential(self, vault_id: str, idempotency_key: str) -> VaultCredential | None:
        """The live credential of ``vault_id`` holding ``idempotency_key``.

        :param vault_id: the vault.
        :param idempotency_key: the key a create stored in its metadata.
        :return: the credential, or None.
        """
        return _holding(self.list_credentials(vault_id), idempotency_key)

    def find_memory_store(self, idempotency_key: str, *, created_since: datetime | None = None) -> MemoryStore | None:
        """The live memory store holding ``idempotency_key`` (one request per 100).

        :param idempotency_key: the key a create stored in its metadata.
        :param created_since: look only at stores created since then.
        :return: the store, or None.
        """
        return _holding(self.list_memory_stores(created_at_gte=created_since), idempotency_key)

    # agents

    def create_agent(
        self,
        params: CreateAgentParams | Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        look_first: bool = False,
        **fields: Any,
    ) -> Agent:
        """Create an agent (version 1), validated before anything is sent.

        :param params: the fields as one object (or give them as keywords, not both).
        :param idempotency_key: the agent's identity across sends (kept in its metadata).
        :param look_first: adopt the live agent holding the key before sending.
        :return: the agent made (or adopted).
        """
        validated = _params_or_fields(CreateAgentParams, params, fields, "create_agent parameters")
        if idempotency_key is not None:
            validated = with_idempotency_marker(validated, idempotency_key, "create_agent parameters")
        call = Call("POST", "/v1/agents", Agent, body=validated.to_body(), idempotent=False)
        key = idempotency_key or ""
        return self._create_once(
            call, idempotency_key, look_first, lambda since: self.find_agent(key, created_since=since)
        )

    def get_agent(self, agent_id: str, version: int | None = None) -> Agent:
        """Read an agent, at its latest version or at ``version``.

        :param agent_id: the agent.
        :param version: a version it had (default: the latest).
        :return: the agent.
        """
        query = {"version": str(version)} if version is not None else None
        return self._call(Call("GET", f"/v1/agents/{path_id(agent_id, 'agent_id')}", Agent, query=query))

    def update_agent(
        self, agent_id: str, params: UpdateAgentParams | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Agent:
        """Update an agent: a change makes a new version. Omitted fields are kept; with
        ``version`` the API refuses the update (409) when the agent is no longer at it.

        Sent once: after an answer that may be lost, the agent is read, and the update counts as
        landed when the agent moved past ``version`` holding the update's metadata.

        :param agent_id: the agent.
        :param params: the fields as one object (or keywords), ``version`` among them.
        :return: the agent at its new version.
        """
        validated = _params_or_fields(UpdateAgentParams, params, fields, "update_agent parameters")
        path = f"/v1/agents/{path_id(agent_id, 'agent_id')}"
        call = Call("POST", path, Agent, body=validated.to_body(), idempotent=False)
        if validated.version is None:
            return self._call(call)
        based_on, marks = validated.version, {k: v for k, v in (validated.metadata or {}).items() if v is not None}

        def landed() -> Agent | None:
            agent = self.get_agent(agent_id)
            if agent.version > based_on and all(agent.metadata.get(k) == v for k, v in marks.items()):
                self.log.info("Agent %s is at version %d: the update that failed landed", agent.id, agent.version)
                return agent
            return None

        return self._call(call, landed)

    def list_agents(self, **filters: Any) -> Iterator[Agent]:
        """Every agent matching ``filters``, page by page.

        :param filters: ``include_archived``, ``created_at_gte``, ``created_at_lte``, ``limit``.
        :return: a lazy iterator of agents (latest versions).
        """
        first = _coerce(AgentListFilters, filters, "list_agents filters")
        return self._paginate(first, lambda f: Call("GET", "/v1/agents", Page[Agent], query=f.to_query()))

    def list_agent_versions(self, agent_id: str, **filters: Any) -> Iterator[Agent]:
        """Every version of an agent, page by page.

        :param agent_id: the agent.
        :param filters: ``limit`` (page size).
        :return: a lazy iterator of the agent at each version.
        """
        first = _coerce(AgentVersionListFilters, filters, "list_agent_versions filters")
        path = f"/v1/agents/{path_id(agent_id, 'agent_id')}/versions"
        return self._paginate(first, lambda f: Call("GET", path, Page[Agent], query=f.to_query()))

    def archive_agent(self, agent_id: str) -> Agent:
        """Archive an agent: deployments pinned to it can no longer run.

        :param agent_id: the agent.
        :return: the agent, ``archived_at`` set.
        """
        return self._call(Call("POST", f"/v1/agents/{path_id(agent_id, 'agent_id')}/archive", Agent))

    # environments

    def create_environment(
        self,
        params: CreateEnvironmentParams | Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        look_first: bool = False,
        **fields: Any,
    ) -> Environment:
        """Create an environment, validated before anything is sent.

        :param params: the fields as one object (or keywords).
        :param idempotency_key: the environment's identity across sends (kept in its metadata).
        :param look_first: adopt the live environment holding the key before sending.
        :return: the environment made (or adopted).
        """
        validated = _params_or_fields(CreateEnvironmentParams, params, fields, "create_environment parameters")
        if idempotency_key is not None:
            validated = with_idempotency_marker(validated, idempotency_key, "create_environment parameters")
        call = Call("POST", "/v1/environments", Environment, body=validated.to_body(), idempotent=False)
        key = idempotency_key or ""
        return self._create_once(call, idempotency_key, look_first, lambda _: self.find_environment(key))

    def get_environment(self, environment_id: str) -> Environment:
        """Read an environment.

        :param environment_id: the environment.
        :return: the environment.
        """
        return self._call(Call("GET", self._environment_path(environment_id), Environment))

    def update_environment(
        self, environment_id: str, params: UpdateEnvironmentParams | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Environment:
        """Update an environment: omitted fields are kept (also inside ``config``), ``metadata``
        is a merge patch. Safe to re-send.

        :param environment_id: the environment.
        :param params: the fields as one object (or keywords).
        :return: the updated environment.
        """
        body = _params_or_fields(UpdateEnvironmentParams, params, fields, "update_environment parameters").to_body()
        return self._call(Call("POST", self._environment_path(environment_id), Environment, body=body))

    def list_environments(self, **filters: Any) -> Iterator[Environment]:
        """Every environment matching ``filters``, page by page.

        :param filters: ``include_archived``, ``limit``.
        :return: a lazy iterator of environments.
        """
        first = _coerce(EnvironmentListFilters, filters, "list_environments filters")
        return self._paginate(first, lambda f: Call("GET", "/v1/environments", Page[Environment], query=f.to_query()))

    def archive_environment(self, environment_id: str) -> Environment:
        """Archive an environment: no new session runs in it.

        :param environment_id: the environment.
        :return: the environment, ``archived_at`` set.
        """
        return self._call(Call("POST", self._environment_path(environment_id, "/archive"), Environment))

    def delete_environment(self, environment_id: str) -> Deleted:
        """Delete an environment.

        :param environment_id: the environment.
        :return: ``{"id", "type": "environment_deleted"}``.
        """
        return self._call(Call("DELETE", self._environment_path(environment_id), Deleted))

    @staticmethod
    def _environment_path(environment_id: str, suffix: str = "") -> str:
        return f"/v1/environments/{path_id(environment_id, 'environment_id')}{suffix}"

    # vaults

    def create_vault(
        self,
        params: CreateVaultParams | Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        look_first: bool = False,
        **fields: Any,
    ) -> Vault:
        """Create a vault.

        :param params: the fields as one object (or keywords: ``display_name``, ``metadata``).
        :param idempotency_key: the vault's identity across sends (kept in its metadata).
        :param look_first: adopt the live vault holding the key before sending.
        :return: the vault made (or adopted).
        """
        validated = _params_or_fields(CreateVaultParams, params, fields, "create_vault parameters")
        if idempotency_key is not None:
            validated = with_idempotency_marker(validated, idempotency_key, "create_vault parameters")
        call = Call("POST", "/v1/vaults", Vault, body=validated.to_body(), idempotent=False)
        key = idempotency_key or ""
        return self._create_once(call, idempotency_key, look_first, lambda _: self.find_vault(key))

    def get_vault(self, vault_id: str) -> Vault:
        """Read a vault.

        :param vault_id: the vault.
        :return: the vault.
        """
        return self._call(Call("GET", self._vault_path(vault_id), Vault))

    def update_vault(
        self, vault_id: str, params: UpdateVaultParams | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Vault:
        """Update a vault (``display_name``; ``metadata`` a merge patch). Safe to re-send.

        :param vault_id: the vault.
        :param params: the fields as one object (or keywords).
        :return: the updated vault.
        """
        body = _params_or_fields(UpdateVaultParams, params, fields, "update_vault parameters").to_body()
        return self._call(Call("POST", self._vault_path(vault_id), Vault, body=body))

    def list_vaults(self, **filters: Any) -> Iterator[Vault]:
        """Every vault matching ``filters``, page by page.

        :param filters: ``include_archived``, ``limit``.
        :return: a lazy iterator of vaults.
        """
        first = _coerce(VaultListFilters, filters, "list_vaults filters")
        return self._paginate(first, lambda f: Call("GET", "/v1/vaults", Page[Vault], query=f.to_query()))

    def archive_vault(self, vault_id: str) -> Vault:
        """Archive a vault: runs of deployments that list it fail (``vault_archived_error``).

        :param vault_id: the vault.
        :return: the vault, ``archived_at`` set.
        """
        return self._call(Call("POST", self._vault_path(vault_id, "/archive"), Vault))

    def delete_vault(self, vault_id: str) -> Deleted:
        """Delete a vault and its credentials.

        :param vault_id: the vault.
        :return: ``{"id", "type": "vault_deleted"}``.
        """
        return self._call(Call("DELETE", self._vault_path(vault_id), Deleted))

    @staticmethod
    def _vault_path(vault_id: str, suffix: str = "") -> str:
        return f"/v1/vaults/{path_id(vault_id, 'vault_id')}{suffix}"

    # credentials

    def create_credential(
        self,
        vault_id: str,
        params: CreateCredentialParams | Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        look_first: bool = False,
        **fields: Any,
    ) -> VaultCredential:
        """Create a credential in a vault. Its secrets are sent once and never returned.

        :param vault_id: the vault.
        :param params: the fields as one object (or keywords: ``auth``, ``display_name``,
            ``metadata``).
        :param idempotency_key: the credential's identity across sends (kept in its metadata).
        :param look_first: adopt the live credential holding the key before sending.
        :return: the credential made (or adopted), without its secrets.
        """
        validated = _params_or_fields(CreateCredentialParams, params, fields, "create_credential parameters")
        if idempotency_key is not None:
            validated = with_idempotency_marker(validated, idempotency_key, "create_credential parameters")
        call = Call(
            "POST",
            self._vault_path(vault_id, "/credentials"),
            VaultCredential,
            body=validated.to_body(),
            idempotent=False,
        )
        key = idempotency_key or ""
        return self._create_once(call, idempotency_key, look_first, lambda _: self.find_credential(vault_id, key))

    def get_credential(self, vault_id: str, credential_id: str) -> VaultCredential:
        """Read a credential (never its secrets).

        :param vault_id: the vault.
        :param credential_id: the credential.
        :return: the credential.
        """
        return self._call(Call("GET", self._credential_path(vault_id, credential_id), VaultCredential))

    def update_credential(
        self,
        vault_id: str,
        credential_id: str,
        params: UpdateCredentialParams | Mapping[str, Any] | None = None,
        /,
        **fields: Any,
    ) -> VaultCredential:
        """Update a credential: a new secret in ``auth`` (of the stored type), ``display_name``,
        ``metadata`` (a merge patch). Safe to re-send.

        :param vault_id: the vault.
        :param credential_id: the credential.
        :param params: the fields as one object (or keywords).
        :return: the updated credential, without its secrets.
        """
        body = _params_or_fields(UpdateCredentialParams, params, fields, "update_credential parameters").to_body()
        return self._call(Call("POST", self._credential_path(vault_id, credential_id), VaultCredential, body=body))

    def list_credentials(self, vault_id: str, **filters: Any) -> Iterator[VaultCredential]:
        """Every credential of a vault matching ``filters``, page by page.

        :param vault_id: the vault.
        :param filters: ``include_archived``, ``limit``.
        :return: a lazy iterator of credentials, without their secrets.
        """
        first = _coerce(VaultListFilters, filters, "list_credentials filters")
        path = self._vault_path(vault_id, "/credentials")
        return self._paginate(first, lambda f: Call("GET", path, Page[VaultCredential], query=f.to_query()))

    def archive_credential(self, vault_id: str, credential_id: str) -> VaultCredential:
        """Archive a credential.

        :param vault_id: the vault.
        :param credential_id: the credential.
        :return: the credential, ``archived_at`` set.
        """
        return self._call(Call("POST", self._credential_path(vault_id, credential_id, "/archive"), VaultCredential))

    def delete_credential(self, vault_id: str, credential_id: str) -> Deleted:
        """Delete a credential.

        :param vault_id: the vault.
        :param credential_id: the credential.
        :return: ``{"id", "type": "vault_credential_deleted"}``.
        """
        return self._call(Call("DELETE", self._credential_path(vault_id, credential_id), Deleted))

    @classmethod
    def _credential_path(cls, vault_id: str, credential_id: str, suffix: str = "") -> str:
        return cls._vault_path(vault_id, f"/credentials/{path_id(credential_id, 'credential_id')}{suffix}")

    # memory stores (their own beta)

    def create_memory_store(
        self,
        params: CreateMemoryStoreParams | Mapping[str, Any] | None = None,
        /,
        *,
        idempotency_key: str | None = None,
        look_first: bool = False,
        **fields: Any,
    ) -> MemoryStore:
        """Create a memory store.

        :param params: the fields as one object (or keywords: ``name``, ``description``,
            ``metadata``).
        :param idempotency_key: the store's identity across sends (kept in its metadata).
        :param look_first: adopt the live store holding the key before sending.
        :return: the store made (or adopted).
        """
        validated = _params_or_fields(CreateMemoryStoreParams, params, fields, "create_memory_store parameters")
        if idempotency_key is not None:
            validated = with_idempotency_marker(validated, idempotency_key, "create_memory_store parameters")
        call = Call(
            "POST", "/v1/memory_stores", MemoryStore, body=validated.to_body(), idempotent=False, beta=MEMORY_BETA
        )
        key = idempotency_key or ""
        return self._create_once(
            call,
            idempotency_key,
            look_first,
            lambda since: self.find_memory_store(key, created_since=since),
        )

    def get_memory_store(self, memory_store_id: str) -> MemoryStore:
        """Read a memory store.

        :param memory_store_id: the store.
        :return: the store.
        """
        return self._call(Call("GET", self._store_path(memory_store_id), MemoryStore, beta=MEMORY_BETA))

    def update_memory_store(
        self, memory_store_id: str, params: UpdateMemoryStoreParams | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> MemoryStore:
        """Update a memory store (``name``, ``description``, ``metadata`` a merge patch); an
        archived store refuses it. Safe to re-send.

        :param memory_store_id: the store.
        :param params: the fields as one object (or keywords).
        :return: the updated store.
        """
        body = _params_or_fields(UpdateMemoryStoreParams, params, fields, "update_memory_store parameters").to_body()
        return self._call(Call("POST", self._store_path(memory_store_id), MemoryStore, body=body, beta=MEMORY_BETA))

    def list_memory_stores(self, **filters: Any) -> Iterator[MemoryStore]:
        """Every memory store matching ``filters``, page by page.

        :param filters: ``include_archived``, ``created_at_gte``, ``created_at_lte``, ``limit``.
        :return: a lazy iterator of stores.
        """
        first = _coerce(MemoryStoreListFilters, filters, "list_memory_stores filters")
        return self._paginate(
            first, lambda f: Call("GET", "/v1/memory_stores", Page[MemoryStore], query=f.to_query(), beta=MEMORY_BETA)
        )

    def archive_memory_store(self, memory_store_id: str) -> MemoryStore:
        """Archive a memory store (final; archiving it again changes nothing).

        :param memory_store_id: the store.
        :return: the store, ``archived_at`` set.
        """
        return self._call(Call("POST", self._store_path(memory_store_id, "/archive"), MemoryStore, beta=MEMORY_BETA))

    def delete_memory_store(self, memory_store_id: str) -> Deleted:
        """Delete a memory store and its memories.

        :param memory_store_id: the store.
        :return: ``{"id", "type": "memory_store_deleted"}``.
        """
        return self._call(Call("DELETE", self._store_path(memory_store_id), Deleted, beta=MEMORY_BETA))

    @staticmethod
    def _store_path(memory_store_id: str, suffix: str = "") -> str:
        return f"/v1/memory_stores/{path_id(memory_store_id, 'memory_store_id')}{suffix}"

    # --- UI ----------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """For the UI's Test button: one cheap authenticated call.

        :return: whether it worked, and what to show.
        """
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

    # --- files: what a session wrote (the Files API) --------------------------------------------
    #
    # A session's outputs are files scoped to it: listed with ``scope_id`` = the session id, read
    # as metadata, downloaded as a stream (never whole in memory). They go out with the
    # managed-agents beta, as the API's documentation sends them (the SDK with that beta in
    # ``betas``). Only the start of a download is retried (as any read): bytes lost mid-stream
    # raise ``ManagedAgentsConnectionError`` and the caller downloads again.

    @staticmethod
    def _file_path(file_id: str, suffix: str = "") -> str:
        return f"/v1/files/{path_id(file_id, 'file_id')}{suffix}"

    @staticmethod
    def _list_files_call(filters: FileListFilters) -> Call[FilePage]:
        return Call("GET", "/v1/files", FilePage, query=filters.to_query())

    def _download_call(self, file_id: str) -> Call[FileMetadata]:
        # The body is the file's bytes and is never parsed: the model only types the call (an
        # error answer still parses from the API's envelope).
        return Call("GET", self._file_path(file_id, "/content"), FileMetadata)

    def list_files(self, **filters: Any) -> Iterator[FileMetadata]:
        """Every file matching ``filters``, page by page (one page in memory).

        :param filters: ``scope_id`` (a session id: the files that session wrote), ``limit``
            (page size, up to 1,000).
        :return: a lazy iterator of file metadata.
        """
        first = _coerce(FileListFilters, filters, "list_files filters")
        return self._paginate(first, self._list_files_call)

    def alist_files(self, **filters: Any) -> AsyncIterator[FileMetadata]:
        """:meth:`list_files` with the async client.

        :param filters: as :meth:`list_files`.
        :return: a lazy async iterator of file metadata.
        """
        first = _coerce(FileListFilters, filters, "list_files filters")
        return self._apaginate(first, self._list_files_call)

    def list_files_page(self, **filters: Any) -> FilePage:
        """One page of files: a single request.

        :param filters: as :meth:`list_files`, and ``page`` (a cursor).
        :return: the page (``data``, ``next_page``).
        """
        return self._call(self._list_files_call(_coerce(FileListFilters, filters, "list_files filters")))

    def get_file_metadata(self, file_id: str) -> FileMetadata:
        """Read a file's metadata.

        :param file_id: the file.
        :return: its name, MIME type, size, scope.
        """
        return self._call(Call("GET", self._file_path(file_id), FileMetadata))

    async def aget_file_metadata(self, file_id: str) -> FileMetadata:
        """:meth:`get_file_metadata` with the async client.

        :param file_id: the file.
        :return: its metadata.
        """
        return await self._acall(Call("GET", self._file_path(file_id), FileMetadata))

    @staticmethod
    def _binary(request: httpx.Request) -> httpx.Request:
        request.headers["accept"] = "application/binary"  # what a download asks for, as the SDK's
        return request

    @contextlib.contextmanager
    def stream_file(self, file_id: str, *, chunk_size: int = DOWNLOAD_CHUNK_BYTES) -> Iterator[Iterator[bytes]]:
        """Download a file's content as a stream: ``with hook.stream_file(id) as chunks:``. At
        most ``chunk_size`` bytes are held at a time; the connection is released on exit.

        :param file_id: the file.
        :param chunk_size: bytes per chunk.
        :return: a context manager giving an iterator of byte chunks.
        """
        call = self._download_call(file_id)
        response = self._open_stream(call)
        try:
            yield _chunks(response, call, chunk_size)
        finally:
            response.close()

    def _open_stream(self, call: Call[Any]) -> httpx.Response:
        """The response of ``call`` with its body not read yet, retried as any read until it
        starts; an error answer raises its typed exception."""
        attempts = Attempts(call, self.settings.max_retries)
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                response = self.client.send(self._binary(call.build(self.client)), stream=True)
            except httpx.TransportError as exc:
                outcome = exc
            else:
                if response.is_success:
                    return response
                try:
                    response.read()  # the error envelope
                    outcome = response
                except httpx.TransportError as exc:
                    outcome = exc
                finally:
                    response.close()
            delay = attempts.record(outcome)
            if delay is None:
                attempts.result()  # raises the typed error
                raise AssertionError("an error answer always raises")
            self._sleep(delay)

    @contextlib.asynccontextmanager
    async def astream_file(
        self, file_id: str, *, chunk_size: int = DOWNLOAD_CHUNK_BYTES
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """:meth:`stream_file` with the async client (one request slot held while streaming).

        :param file_id: the file.
        :param chunk_size: bytes per chunk.
        :return: an async context manager giving an async iterator of byte chunks.
        """
        call = self._download_call(file_id)
        settings = await self.asettings()
        attempts = Attempts(call, settings.max_retries)
        pool = loop_pool()
        while True:
            outcome: httpx.Response | httpx.TransportError
            async with pool.request_slot(self.managed_agents_conn_id, settings) as client:
                try:
                    response = await client.send(self._binary(call.build(client)), stream=True)
                except httpx.TransportError as exc:
                    outcome = exc
                else:
                    if response.is_success:
                        try:
                            yield _achunks(response, call, chunk_size)
                        finally:
                            await response.aclose()
                        return
                    try:
                        await response.aread()  # the error envelope
                        outcome = response
                    except httpx.TransportError as exc:
                        outcome = exc
                    finally:
                        await response.aclose()
            delay = attempts.record(outcome)
            if delay is None:
                attempts.result()  # raises the typed error
                raise AssertionError("an error answer always raises")
            await self._asleep(delay)
            settings = await self.asettings()

    def download_file(self, file_id: str, to: IO[bytes], *, chunk_size: int = DOWNLOAD_CHUNK_BYTES) -> int:
        """Stream a file's content into ``to`` (a binary file object: local, or an fsspec one).

        :param file_id: the file.
        :param to: where the bytes go.
        :param chunk_size: bytes per chunk (the most held at a time).
        :return: the number of bytes written.
        """
        written = 0
        with self.stream_file(file_id, chunk_size=chunk_size) as chunks:
            for chunk in chunks:
                to.write(chunk)
                written += len(chunk)
        return written

    async def adownload_file(self, file_id: str, to: IO[bytes], *, chunk_size: int = DOWNLOAD_CHUNK_BYTES) -> int:
        """:meth:`download_file` with the async client (``to`` is written synchronously: give
        it a local file).

        :param file_id: the file.
        :param to: where the bytes go.
        :param chunk_size: bytes per chunk.
        :return: the number of bytes written.
        """
        written = 0
        async with self.astream_file(file_id, chunk_size=chunk_size) as chunks:
            async for chunk in chunks:
                to.write(chunk)
                written += len(chunk)
        return written

    # --- reads with a deadline -------------------------------------------------------------------

    def bounded(self, *, timeout: float, max_retries: int = 0) -> ManagedAgentsHook:
        """A new hook on the same connection with its own client and a shorter budget: each
        call takes at most ``timeout`` seconds per attempt and ``max_retries`` re-sends. For reads
        that must end by a deadline, such as OpenLineage's, which Airflow makes in a child process
        it kills after ``[openlineage] execution_timeout``.

        :param timeout: seconds per request (connect included).
        :param max_retries: re-sends of a transient failure.
        :return: the new hook (close it when done).
        """
        hook = type(self)(managed_agents_conn_id=self.managed_agents_conn_id)
        hook._settings = dataclasses.replace(self.settings, timeout=timeout, max_retries=max_retries)
        return hook


def _chunks(response: httpx.Response, call: Call[Any], chunk_size: int) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes(chunk_size)
    except httpx.TransportError as exc:
        raise error_from_transport(exc, call) from None


async def _achunks(response: httpx.Response, call: Call[Any], chunk_size: int) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes(chunk_size):
            yield chunk
    except httpx.TransportError as exc:
        raise error_from_transport(exc, call) from None
