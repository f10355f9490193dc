"""The emulator's HTTP surface: the Deployments API under ``/v1`` and controls under ``/_emulator``."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import html
import json
import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from airflow_provider_managed_agents.emulator.faults import FaultPlan
from airflow_provider_managed_agents.emulator.files import FileEndpoints
from airflow_provider_managed_agents.emulator.problems import ApiProblem, bad_request, not_found
from airflow_provider_managed_agents.emulator.provisioning import public
from airflow_provider_managed_agents.emulator.rate_limits import RateLimits
from airflow_provider_managed_agents.emulator.sessions import SessionScript
from airflow_provider_managed_agents.emulator.webhooks import DeliveryFaults, Webhooks
from airflow_provider_managed_agents.emulator.world import WORLD_KINDS, World
from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
from airflow_provider_managed_agents.hooks.wire import MANAGED_AGENTS_BETA
from airflow_provider_managed_agents.models.agents import (
    AgentListFilters,
    AgentVersionListFilters,
    CreateAgentParams,
    UpdateAgentParams,
)
from airflow_provider_managed_agents.models.base import format_timestamp
from airflow_provider_managed_agents.models.environments import (
    CreateEnvironmentParams,
    EnvironmentListFilters,
    UpdateEnvironmentParams,
)
from airflow_provider_managed_agents.models.memory_stores import (
    CreateMemoryStoreParams,
    MemoryStoreListFilters,
    UpdateMemoryStoreParams,
)
from airflow_provider_managed_agents.models.params import (
    CreateDeploymentParams,
    DeploymentListFilters,
    DeploymentRunListFilters,
    SessionEventListFilters,
    SessionListFilters,
    UpdateDeploymentParams,
    validate_params,
)
from airflow_provider_managed_agents.models.vaults import (
    CreateCredentialParams,
    CreateVaultParams,
    UpdateCredentialParams,
    UpdateVaultParams,
    VaultListFilters,
)

SCHEDULER_TICK_SECONDS = 0.25
STREAM_POLL_SECONDS = 0.1
STREAM_PING_SECONDS = 5.0
IGNORED_QUERY = frozenset({"beta"})
# Array parameters: the SDK sends ``name[]=v`` repeated; "repeat the parameter" is accepted too.
ARRAY_QUERY = frozenset({"statuses", "types"})
# Memory stores have their own beta; the API takes either (the SDK sends the memory one).
MEMORY_BETA = "agent-memory-2026-07-22"
MEMORY_BETAS = (MEMORY_BETA, MANAGED_AGENTS_BETA)
# The Files API needs no beta (the SDK sends none unless asked; the docs send managed-agents').
ANY_BETA: tuple[str, ...] = ()
Handler = Callable[[Request], Awaitable[Any]]


def _json(
    data: Any, status: int = 200, request_id: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    all_headers = {"request-id": request_id or f"req_{secrets.token_hex(12)}", **(headers or {})}
    return Response(json.dumps(data), status_code=status, media_type="application/json", headers=all_headers)


def _error(
    status: int,
    error_type: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> Response:
    request_id = f"req_{secrets.token_hex(12)}"
    error: dict[str, Any] = {"type": error_type, "message": message}
    if details:
        error["details"] = details
    body = {"type": "error", "error": error, "request_id": request_id}
    return _json(body, status, request_id, headers)


def _problem(problem: ApiProblem) -> Response:
    return _error(problem.status, problem.error_type, problem.message, problem.headers, problem.details)


async def _routing_error(request: Request, exc: Exception) -> Response:
    """No such path or method: the API's error envelope, like every other error."""
    assert isinstance(exc, HTTPException)
    error_type = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    headers = dict(exc.headers) if exc.headers else None
    return _error(exc.status_code, error_type, f"{request.method} {request.url.path}: {exc.detail}", headers)


class DropConnection(Exception):
    """Raised after the response has started, so that the server cuts the connection."""


class _QuietDrops(logging.Filter):
    """An injected drop is not a server error: keep it out of uvicorn's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DropConnection))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class Emulator:
    """Holds the world, the fault plan and the request counters; builds the ASGI app."""

    def __init__(self, *, api_key: str | None = None, max_jitter: float = 10.0, state_file: Path | None = None):
        self.api_key = api_key
        self.world = World(max_jitter=max_jitter, state_file=state_file)
        self.faults = FaultPlan()
        self.requests: Counter[str] = Counter()
        self.faults_injected = 0
        self.rate_limits = RateLimits(lambda: self.world.clock.now())
        self.webhooks = Webhooks(lambda: self.world.clock.now())
        self.world.notify = self.webhooks.emit
        self.app = _DatedByTheWorldClock(
            Starlette(
                routes=self._routes(),
                lifespan=self._lifespan,
                exception_handlers={HTTPException: _routing_error},
            ),
            self.world,
        )

    # --- plumbing --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(self._scheduler())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.webhooks.close()

    async def _scheduler(self) -> None:
        while True:
            if self.world.tick():
                self.world.save()
            await asyncio.sleep(SCHEDULER_TICK_SECONDS)

    def _authenticate(self, request: Request, accepted: tuple[str, ...]) -> Response | None:
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if not key or (self.api_key is not None and not secrets.compare_digest(key, self.api_key)):
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        betas = {b.strip() for b in request.headers.get("anthropic-beta", "").split(",")}
        if accepted and not betas & set(accepted):
            return _error(
                400,
                "invalid_request_error",
                f"anthropic-beta: this endpoint requires the beta header to include {' or '.join(accepted)}",
            )
        return None

    def api(
        self,
        endpoint: str,
        handler: Handler,
        *,
        writes: bool = False,
        betas: tuple[str, ...] = (MANAGED_AGENTS_BETA,),
    ) -> Callable[..., Any]:
        """Wrap an API handler: count it, authenticate (``betas``: the beta headers it takes),
        inject faults, answer errors in the envelope."""

        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive)
            self.requests[endpoint] += 1
            fault = self.faults.pick(endpoint)
            if fault is not None:
                self.faults_injected += 1
            response: Response
            limited = self.rate_limits.admit(writes=request.method != "GET") if fault is None else None
            if limited is not None:
                response = _error(429, "rate_limit_error", "rate limited: the organization's limit is reached", limited)
            elif fault in ("429", "529", "500", "503"):
                response = self._fault_response(fault)
            elif fault == "drop":
                await _cut(send)
                return
            else:
                if fault == "latency":
                    await asyncio.sleep(self.faults.latency_ms / 1000)
                response = self._authenticate(request, betas) or await self._answer(request, handler, writes)
                if fault == "commit_then_drop":
                    await _cut(send)
                    return
            await response(scope, receive, send)

        return asgi

    def _fault_response(self, fault: str) -> Response:
        if fault == "429":
            return _error(
                429, "rate_limit_error", "injected: rate limited", {"retry-after": f"{self.faults.retry_after:g}"}
            )
        if fault == "529":
            return _error(529, "overloaded_error", "injected: overloaded")
        return _error(int(fault), "api_error", f"injected: {fault}")

    async def _answer(self, request: Request, handler: Handler, writes: bool) -> Response:
        try:
            data = await handler(request)
        except ApiProblem as problem:
            return _problem(problem)
        except ManagedAgentsValidationError as invalid:
            return _error(400, "invalid_request_error", "; ".join(f"{p}: {m}" if p else m for p, m in invalid.problems))
        if writes:
            self.world.save()
        return data if isinstance(data, Response) else _json(data)

    # --- API handlers ------------------------------------------------------------------------

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise bad_request("request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        return body

    @staticmethod
    def _query(request: Request) -> dict[str, Any]:
        query: dict[str, Any] = {}
        for key in request.query_params:
            name = key.removesuffix("[]")
            if key in IGNORED_QUERY:
                continue
            if name in ARRAY_QUERY:
                query.setdefault(f"{name}[]", []).extend(request.query_params.getlist(key))
            else:
                query[key] = request.query_params[key]
        return query

    async def create(self, request: Request) -> Any:
        params = validate_params(CreateDeploymentParams, await self._body(request), "request body")
        return self.world.render_deployment(self.world.create_deployment(params))

    async def list_deployments(self, request: Request) -> Any:
        filters = validate_params(DeploymentListFilters, self._query(request), "query")
        return self.world.list_deployments(filters)

    async def get(self, request: Request) -> Any:
        return self.world.render_deployment(self.world.deployment(request.path_params["deployment_id"]))

    async def update(self, request: Request) -> Any:
        params = validate_params(UpdateDeploymentParams, await self._body(request), "request body")
        return self.world.render_deployment(self.world.update_deployment(request.path_params["deployment_id"], params))

    def _action(self, act: Callable[[str], dict[str, Any]]) -> Handler:
        async def handler(request: Request) -> Any:
            return self.world.render_deployment(act(request.path_params["deployment_id"]))

        return handler

    async def run(self, request: Request) -> Any:
        return self.world.run_now(request.path_params["deployment_id"])

    async def list_runs(self, request: Request) -> Any:
        filters = validate_params(DeploymentRunListFilters, self._query(request), "query")
        return self.world.list_runs(filters)

    async def get_run(self, request: Request) -> Any:
        return self.world.run(request.path_params["deployment_run_id"])

    async def get_session(self, request: Request) -> Any:
        return self.world.sessions.render(self.world.session(request.path_params["session_id"]))

    async def list_sessions(self, request: Request) -> Any:
        filters = validate_params(SessionListFilters, self._query(request), "query")
        return self.world.list_sessions(filters)

    async def list_session_events(self, request: Request) -> Any:
        filters = validate_params(SessionEventListFilters, self._query(request), "query")
        return self.world.session_events(request.path_params["session_id"], filters)

    async def send_session_events(self, request: Request) -> Any:
        events = (await self._body(request)).get("events")
        if not isinstance(events, list):
            raise bad_request("events: a list of events is required")
        return self.world.send_session_events(request.path_params["session_id"], events)

    async def archive_session(self, request: Request) -> Any:
        return self.world.archive_session(request.path_params["session_id"])

    async def delete_session(self, request: Request) -> Any:
        return self.world.delete_session(request.path_params["session_id"])

    async def stream_session_events(self, request: Request) -> Any:
        """Server-sent events from now on (no replay, as the API: list first, de-duplicate by
        id), ``event: ping`` heartbeats; ends when the session terminates or is deleted."""
        session_id = request.path_params["session_id"]
        seen = len(self.world.sessions.events(self.world.session(session_id)))

        async def frames() -> AsyncIterator[bytes]:
            nonlocal seen
            quiet = 0.0
            while True:
                session = self.world.sessions.by_id.get(session_id)
                if session is None:
                    yield _sse({"type": "session.deleted", "id": f"sevt_deleted_{session_id}"})
                    return
                self.world.sessions.advance(session, self.world.clock.now())
                events = self.world.sessions.events(session)
                for event in events[seen:]:
                    yield _sse(event)
                    quiet = 0.0
                seen = len(events)
                if session["status"] == "terminated":
                    return
                if quiet >= STREAM_PING_SECONDS:
                    yield b"event: ping\ndata: {}\n\n"
                    quiet = 0.0
                await asyncio.sleep(STREAM_POLL_SECONDS)
                quiet += STREAM_POLL_SECONDS

        return StreamingResponse(frames(), media_type="text/event-stream", headers={"cache-control": "no-cache"})

    # --- provisioning: agents, environments, vaults and credentials, memory stores -----------

    def _records(
        self,
        method: str,
        ids: tuple[str, ...] = (),
        *,
        body: type[Any] | None = None,
        query: type[Any] | None = None,
    ) -> Handler:
        """A handler calling ``world.records.<method>`` with the path's ids, then the validated
        body or query (the records are looked up per request: a reset replaces them)."""

        async def handler(request: Request) -> Any:
            args: list[Any] = [request.path_params[name] for name in ids]
            if body is not None:
                args.append(validate_params(body, await self._body(request), "request body"))
            if query is not None:
                args.append(validate_params(query, self._query(request), "query"))
            return public(getattr(self.world.records, method)(*args))

        return handler

    async def get_agent(self, request: Request) -> Any:
        raw = request.query_params.get("version")
        version: int | None = None
        if raw is not None:
            try:
                version = int(raw)
            except ValueError:
                raise bad_request(f"version: {raw!r} is not an integer") from None
            if version < 1:
                raise bad_request("version: must be at least 1")
        return public(self.world.records.agent_version(request.path_params["agent_id"], version))

    # --- control handlers --------------------------------------------------------------------

    def control(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                data = await handler(request)
            except ApiProblem as problem:
                return _problem(problem)
            except (ValueError, KeyError, TypeError) as exc:
                return _error(400, "invalid_request_error", str(exc))
            self.world.save()
            return _json(data)

        return endpoint

    @staticmethod
    def _kind(request: Request) -> str:
        kind = request.path_params["kind"]
        if kind not in WORLD_KINDS:
            raise not_found("kind", kind)
        return kind

    async def c_add(self, request: Request) -> Any:
        kind, body = self._kind(request), await self._body(request)
        return public(self.world.add(kind, body.get("id"), body.get("skills") or ()))

    async def c_archive(self, request: Request) -> Any:
        return public(self.world.archive_object(self._kind(request), request.path_params["ident"]))

    async def c_delete(self, request: Request) -> Any:
        return self.world.delete_object(self._kind(request), request.path_params["ident"])

    async def c_new_version(self, request: Request) -> Any:
        return public(self.world.records.mint_version(request.path_params["ident"]))

    async def c_organization(self, request: Request) -> Any:
        self.world.organization_disabled = bool((await self._body(request)).get("disabled", True))
        return {"disabled": self.world.organization_disabled}

    async def c_workspace(self, request: Request) -> Any:
        self.world.workspace_archived = bool((await self._body(request)).get("archived", True))
        return {"archived": self.world.workspace_archived}

    async def c_rate_limit(self, request: Request) -> Any:
        body = await self._body(request)
        if "sessions_per_minute" in body:
            limit = body["sessions_per_minute"]
            self.world.sessions_per_minute = None if limit is None else int(limit)
        return {"sessions_per_minute": self.world.sessions_per_minute, **self.rate_limits.configure(body)}

    async def c_next_run_error(self, request: Request) -> Any:
        deployment = self.world.deployment(request.path_params["deployment_id"])
        body = await self._body(request)
        error = {"type": str(body["type"]), "message": str(body.get("message") or "")}
        self.world.forced_errors[deployment["id"]].append(error)
        return {"queued": self.world.forced_errors[deployment["id"]]}

    async def c_session_script(self, request: Request) -> Any:
        return self.world.set_session_script(request.path_params["deployment_id"], await self._body(request))

    async def c_next_session_script(self, request: Request) -> Any:
        return self.world.set_session_script(None, await self._body(request))

    async def c_default_session_script(self, request: Request) -> Any:
        return self.world.set_session_script(None, await self._body(request), default=True)

    async def c_seed_runs(self, request: Request) -> Any:
        body = await self._body(request)
        scripts = [SessionScript.from_json(s) for s in body.get("scripts") or []]
        return {"runs": self.world.seed_runs(request.path_params["deployment_id"], int(body.get("count", 1)), scripts)}

    async def c_jitter(self, request: Request) -> Any:
        deployment_id = request.path_params["deployment_id"]
        self.world.deployment(deployment_id)  # a 404 for an unknown deployment
        seconds = float((await self._body(request))["seconds"])
        if not 0 <= seconds <= 60:
            raise ValueError("seconds must be between 0 and 60")
        self.world.jitters[deployment_id] = seconds
        return {"deployment_id": deployment_id, "jitter_seconds": seconds}

    async def c_fire(self, request: Request) -> Any:
        run = self.world.fire(request.path_params["deployment_id"])
        return {
            "run": run,
            "deployment": self.world.render_deployment(self.world.deployment(request.path_params["deployment_id"])),
        }

    async def c_clock(self, request: Request) -> Any:
        """Freeze or thaw the clock, move it forward, and run the scheduler at once: when the
        answer arrives, every fire due by the new time has been recorded."""
        from datetime import timedelta

        body = await self._body(request)
        if "freeze" in body:
            self.world.clock.freeze(bool(body["freeze"]))
        self.world.clock.offset += timedelta(seconds=float(body.get("advance_seconds", 0)))
        fired = self.world.tick()
        return {"now": format_timestamp(self.world.clock.now()), "fired": fired}

    async def c_set_faults(self, request: Request) -> Any:
        self.faults = FaultPlan.from_json(await self._body(request))
        return {"rate": self.faults.rate, "kinds": list(self.faults.kinds), "endpoints": list(self.faults.endpoints)}

    async def c_clear_faults(self, request: Request) -> Any:
        self.faults = FaultPlan()
        return {"rate": 0.0}

    async def c_requests(self, request: Request) -> Any:
        return {
            "total": sum(self.requests.values()),
            "by_endpoint": dict(self.requests),
            "faults": self.faults_injected,
            "rate_limited": dict(self.rate_limits.limited),
        }

    async def c_clear_requests(self, request: Request) -> Any:
        self.requests.clear()
        self.faults_injected = 0
        self.rate_limits.reset_counts()
        return {"total": 0}

    async def c_state(self, request: Request) -> Any:
        return self.world.snapshot()

    async def c_reset(self, request: Request) -> Any:
        self.world.reset()
        await self.webhooks.reset()
        self.faults = FaultPlan()
        self.requests.clear()
        self.faults_injected = 0
        self.rate_limits = RateLimits(lambda: self.world.clock.now())
        return {"reset": True}

    # --- webhooks (emulator/webhooks.py): endpoints as the Console registers them ----------------

    async def c_add_webhook(self, request: Request) -> Any:
        return self.webhooks.register(await self._body(request))

    async def c_list_webhooks(self, request: Request) -> Any:
        return self.webhooks.listing()

    async def c_delete_webhook(self, request: Request) -> Any:
        endpoint_id = request.path_params["endpoint_id"]
        if endpoint_id not in self.webhooks.endpoints:
            raise not_found("webhook endpoint", endpoint_id)
        return self.webhooks.remove(endpoint_id)

    async def c_webhook_deliveries(self, request: Request) -> Any:
        return self.webhooks.delivery_log()

    async def c_webhook_faults(self, request: Request) -> Any:
        self.webhooks.faults = DeliveryFaults.from_json(await self._body(request))
        return {"rate": self.webhooks.faults.rate, "kinds": list(self.webhooks.faults.kinds)}

    async def c_clear_webhook_faults(self, request: Request) -> Any:
        self.webhooks.faults = DeliveryFaults()
        return {"rate": 0.0}

    async def c_emit_webhook(self, request: Request) -> Any:
        body = await self._body(request)
        more = body.get("data") or {}
        if not isinstance(more, dict) or not all(isinstance(v, str) for v in more.values()):
            raise ValueError("data: an object of string fields (e.g. vault_id)")
        return {"event": self.webhooks.emit(str(body["type"]), str(body["id"]), **more)}

    # --- a stand-in for the Console, so that operators' extra links can be followed offline ---

    async def console_page(self, request: Request) -> Response:
        deployment = self.world.deployments.get(request.path_params["deployment_id"])
        if deployment is None:
            return Response("<h1>Deployment not found</h1>", status_code=404, media_type="text/html")
        state = "archived" if deployment["archived_at"] else deployment["status"]
        body = (
            f"<html><head><title>{html.escape(deployment['name'])}</title></head><body>"
            f"<h1>{html.escape(deployment['name'])}</h1><p id='deployment-id'>{html.escape(deployment['id'])}</p>"
            f"<p id='status'>{state}</p><p>Managed Agents emulator console</p></body></html>"
        )
        return Response(body, media_type="text/html")

    async def console_session_page(self, request: Request) -> Response:
        session = self.world.sessions.by_id.get(request.path_params["session_id"])
        if session is None:
            return Response("<h1>Session not found</h1>", status_code=404, media_type="text/html")
        body = (
            f"<html><head><title>{html.escape(session['id'])}</title></head><body>"
            f"<h1>Session</h1><p id='session-id'>{html.escape(session['id'])}</p>"
            f"<p id='status'>{html.escape(session['status'])}</p><p>Managed Agents emulator console</p></body></html>"
        )
        return Response(body, media_type="text/html")

    # --- routes ------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        w = self.world
        d = "/v1/deployments/{deployment_id}"
        api = [
            ("POST", "/v1/deployments", self.create, True),
            ("GET", "/v1/deployments", self.list_deployments, False),
            ("GET", d, self.get, False),
            ("POST", d, self.update, True),
            ("POST", f"{d}/archive", self._action(w.archive), True),
            ("POST", f"{d}/pause", self._action(w.pause), True),
            ("POST", f"{d}/unpause", self._action(w.unpause), True),
            ("POST", f"{d}/run", self.run, True),
            ("GET", "/v1/deployment_runs", self.list_runs, False),
            ("GET", "/v1/deployment_runs/{deployment_run_id}", self.get_run, False),
            ("GET", "/v1/sessions", self.list_sessions, False),
            ("GET", "/v1/sessions/{session_id}", self.get_session, False),
            ("DELETE", "/v1/sessions/{session_id}", self.delete_session, True),
            ("POST", "/v1/sessions/{session_id}/archive", self.archive_session, True),
            ("GET", "/v1/sessions/{session_id}/events", self.list_session_events, False),
            ("POST", "/v1/sessions/{session_id}/events", self.send_session_events, True),
            ("GET", "/v1/sessions/{session_id}/events/stream", self.stream_session_events, False),
            *self._provisioning_routes(),
            *FileEndpoints(self.world, self._query).routes(),
        ]
        # Routes sharing a path are merged so that each method finds its handler.
        by_path: dict[str, dict[str, Any]] = {}
        for method, path, handler, writes in api:
            betas: tuple[str, ...] = MEMORY_BETAS if path.startswith("/v1/memory_stores") else (MANAGED_AGENTS_BETA,)
            if path.startswith("/v1/files"):
                betas = ANY_BETA
            by_path.setdefault(path, {})[method] = self.api(f"{method} {path}", handler, writes=writes, betas=betas)
        routes = [Route(path, _method_switch(handlers), methods=list(handlers)) for path, handlers in by_path.items()]
        c = "/_emulator"
        controls = [
            ("POST", f"{c}/reset", self.c_reset),
            ("GET", f"{c}/state", self.c_state),
            ("GET", f"{c}/requests", self.c_requests),
            ("DELETE", f"{c}/requests", self.c_clear_requests),
            ("POST", f"{c}/faults", self.c_set_faults),
            ("DELETE", f"{c}/faults", self.c_clear_faults),
            ("POST", f"{c}/clock", self.c_clock),
            ("POST", f"{c}/organization", self.c_organization),
            ("POST", f"{c}/workspace", self.c_workspace),
            ("POST", f"{c}/rate_limit", self.c_rate_limit),
            ("POST", f"{c}/deployments/{{deployment_id}}/fire", self.c_fire),
            ("POST", f"{c}/deployments/{{deployment_id}}/next_run_error", self.c_next_run_error),
            ("POST", f"{c}/deployments/{{deployment_id}}/seed_runs", self.c_seed_runs),
            ("POST", f"{c}/deployments/{{deployment_id}}/jitter", self.c_jitter),
            ("POST", f"{c}/deployments/{{deployment_id}}/session_script", self.c_session_script),
            ("POST", f"{c}/sessions/next_script", self.c_next_session_script),
            ("POST", f"{c}/sessions/default_script", self.c_default_session_script),
            ("POST", f"{c}/agents/{{ident}}/versions", self.c_new_version),
            # Before the generic {kind} routes, which would take these paths.
            ("POST", f"{c}/webhooks", self.c_add_webhook),
            ("GET", f"{c}/webhooks", self.c_list_webhooks),
            ("GET", f"{c}/webhooks/deliveries", self.c_webhook_deliveries),
            ("POST", f"{c}/webhooks/faults", self.c_webhook_faults),
            ("DELETE", f"{c}/webhooks/faults", self.c_clear_webhook_faults),
            ("POST", f"{c}/webhooks/emit", self.c_emit_webhook),
            ("DELETE", f"{c}/webhooks/{{endpoint_id}}", self.c_delete_webhook),
            ("POST", f"{c}/{{kind}}", self.c_add),
            ("POST", f"{c}/{{kind}}/{{ident}}/archive", self.c_archive),
            ("DELETE", f"{c}/{{kind}}/{{ident}}", self.c_delete),
        ]
        routes += [Route(path, self.control(handler), methods=[method]) for method, path, handler in controls]
        routes.append(Route("/console/workspaces/{workspace}/deployments/{deployment_id}", self.console_page))
        routes.append(Route("/console/workspaces/{workspace}/sessions/{session_id}", self.console_session_page))
        return routes

    def _provisioning_routes(self) -> list[tuple[str, str, Handler, bool]]:
        r = self._records
        a, e, v, m = (
            "/v1/agents/{agent_id}",
            "/v1/environments/{environment_id}",
            "/v1/vaults/{vault_id}",
            "/v1/memory_stores/{memory_store_id}",
        )
        c = f"{v}/credentials/{{credential_id}}"
        vc = ("vault_id", "credential_id")
        return [
            ("POST", "/v1/agents", r("create_agent", body=CreateAgentParams), True),
            ("GET", "/v1/agents", r("list_agents", query=AgentListFilters), False),
            ("GET", a, self.get_agent, False),
            ("POST", a, r("update_agent", ("agent_id",), body=UpdateAgentParams), True),
            ("POST", f"{a}/archive", r("archive_agent", ("agent_id",)), True),
            ("GET", f"{a}/versions", r("list_agent_versions", ("agent_id",), query=AgentVersionListFilters), False),
            ("POST", "/v1/environments", r("create_environment", body=CreateEnvironmentParams), True),
            ("GET", "/v1/environments", r("list_environments", query=EnvironmentListFilters), False),
            ("GET", e, r("environment", ("environment_id",)), False),
            ("POST", e, r("update_environment", ("environment_id",), body=UpdateEnvironmentParams), True),
            ("POST", f"{e}/archive", r("archive_environment", ("environment_id",)), True),
            ("DELETE", e, r("delete_environment", ("environment_id",)), True),
            ("POST", "/v1/vaults", r("create_vault", body=CreateVaultParams), True),
            ("GET", "/v1/vaults", r("list_vaults", query=VaultListFilters), False),
            ("GET", v, r("vault", ("vault_id",)), False),
            ("POST", v, r("update_vault", ("vault_id",), body=UpdateVaultParams), True),
            ("POST", f"{v}/archive", r("archive_vault", ("vault_id",)), True),
            ("DELETE", v, r("delete_vault", ("vault_id",)), True),
            ("POST", f"{v}/credentials", r("create_credential", ("vault_id",), body=CreateCredentialParams), True),
            ("GET", f"{v}/credentials", r("list_credentials", ("vault_id",), query=VaultListFilters), False),
            ("GET", c, r("credential", vc), False),
            ("POST", c, r("update_credential", vc, body=UpdateCredentialParams), True),
            ("POST", f"{c}/archive", r("archive_credential", vc), True),
            ("DELETE", c, r("delete_credential", vc), True),
            ("POST", "/v1/memory_stores", r("create_memory_store", body=CreateMemoryStoreParams), True),
            ("GET", "/v1/memory_stores", r("list_memory_stores", query=MemoryStoreListFilters), False),
            ("GET", m, r("memory_store", ("memory_store_id",)), False),
            ("POST", m, r("update_memory_store", ("memory_store_id",), body=UpdateMemoryStoreParams), True),
            ("POST", f"{m}/archive", r("archive_memory_store", ("memory_store_id",)), True),
            ("DELETE", m, r("delete_memory_store", ("memory_store_id",)), True),
        ]


class _DatedByTheWorldClock:
    """Every answer's ``date`` header tells the world clock's time, frozen or moved, as a real
    service's tells its own: clients line up ``created_at`` against it."""

    def __init__(self, app: Starlette, world: World):
        self.app = app
        self.world = world  # not its clock: a reset gives the world a new one

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                stamp = email.utils.format_datetime(self.world.clock.now(), usegmt=True).encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                message = {**message, "headers": [*headers, (b"date", stamp)]}
            await send(message)

        await self.app(scope, receive, dated)


class _method_switch:
    def __init__(self, handlers: dict[str, Callable[..., Any]]):
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handlers[scope["method"]](scope, receive, send)


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\nid: {event['id']}\ndata: {json.dumps(event)}\n\n".encode()


async def _cut(send: Send) -> None:
    """Start a response that promises a body, then fail: the server closes the connection and the
    client sees it dropped without an answer."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
    raise DropConnection("connection dropped by fault injection")
