"""The hook's requests against the official SDK's, call by call (the SDK as an independent
oracle): the same method, path, query (``types[]=`` / ``statuses[]=`` arrays, bracketed time
bounds) and body, and the same beta and workspace headers. The key header is the one place they
differ on purpose (``x-api-key`` here, ``Authorization: Bearer`` there; the API takes both)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import api_samples
import httpx
import pytest

from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import Secret, Settings

anthropic = pytest.importorskip("anthropic")
httpx2 = pytest.importorskip("httpx2")

WHEN = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SESSION = {
    "id": "sesn_1",
    "type": "session",
    "status": "idle",
    "agent": {
        "id": "agent_1",
        "type": "agent",
        "name": "a",
        "version": 1,
        "model": {"id": "claude-sonnet-4-6"},
        "execution_identity": {"type": "service_account"},
        "mcp_servers": [],
        "skills": [],
        "tools": [],
    },
    "created_at": "2026-05-01T00:00:00Z",
    "updated_at": "2026-05-01T00:00:00Z",
    "environment_id": "env_1",
    "metadata": {},
    "outcome_evaluations": [],
    "resources": [],
    "stats": {},
    "usage": {},
    "vault_ids": [],
}
DEPLOYMENT = api_samples.deployment_json(created_at="2026-05-01T00:00:00Z", updated_at="2026-05-01T00:00:00Z")
RUN = api_samples.run_json(created_at="2026-05-01T00:00:00Z")


def answer(path: str, method: str) -> Any:
    if path.endswith("/events") and method == "POST":
        return {"data": []}
    if method == "GET" and (
        path.endswith("/events") or path in ("/v1/sessions", "/v1/deployments", "/v1/deployment_runs")
    ):
        return {"data": [], "next_page": None}
    if path.startswith("/v1/sessions"):
        return SESSION
    if path.startswith("/v1/deployment_runs") or path.endswith("/run"):
        return RUN
    return DEPLOYMENT


def normalised(method: str, url: str, body: bytes, headers: Any) -> dict[str, Any]:
    parts = urlsplit(url)
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.startswith("created_at["):
            value = datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()  # Z and +00:00 alike
        query.append((key, value))
    return {
        "method": method,
        "path": parts.path,
        "query": sorted(query),
        "body": json.loads(body) if body else None,
        "beta": headers.get("anthropic-beta"),
        "workspace": headers.get("anthropic-workspace-id"),
    }


def through_sdk(call: Callable[[Any], Any]) -> dict[str, Any]:
    seen: list[Any] = []

    def handler(request: Any) -> Any:
        seen.append(request)
        return httpx2.Response(200, json=answer(request.url.path, request.method))

    client = anthropic.Anthropic(
        api_key="sk-test",
        base_url="http://api.test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    result = call(client.beta)
    if hasattr(result, "__iter__") and not isinstance(result, (dict, str)):
        list(result)
    (request,) = seen
    return normalised(request.method, str(request.url), request.content, request.headers)


def through_hook(call: Callable[[ManagedAgentsHook], Any]) -> dict[str, Any]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer(request.url.path, request.method))

    hook = ManagedAgentsHook()
    hook._settings = Settings(api_key=Secret("sk-test"), base_url="http://api.test", workspace_id=None)
    hook.__dict__["client"] = httpx.Client(transport=httpx.MockTransport(handler), **hook._settings.client_options())
    result = call(hook)
    if hasattr(result, "__iter__") and not isinstance(result, (dict, str)) and not hasattr(result, "model_dump"):
        list(result)
    request = seen[-1]  # a run first notes the runs already there (a read the SDK does not make)
    return normalised(request.method, str(request.url), request.content, request.headers)


CREATE = {
    "name": "n",
    "agent": "agent_1",
    "environment_id": "env_1",
    "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
    "schedule": {"type": "cron", "expression": "0 9 * * 1-5", "timezone": "UTC"},
    "metadata": {"team": "data"},
}

PAIRS: list[tuple[str, Callable[[Any], Any], Callable[[ManagedAgentsHook], Any]]] = [
    ("get session", lambda b: b.sessions.retrieve("sesn_1"), lambda h: h.get_session("sesn_1")),
    (
        "list sessions",
        lambda b: b.sessions.list(
            deployment_id="depl_1", statuses=["running", "idle"], order="asc", limit=5, created_at_gte=WHEN
        ),
        lambda h: h.list_sessions_page(
            deployment_id="depl_1", statuses=["running", "idle"], order="asc", limit=5, created_at_gte=WHEN
        ),
    ),
    (
        "list session events",
        lambda b: b.sessions.events.list(
            "sesn_1", types=["session.status_idle", "agent.message"], order="desc", limit=1
        ),
        lambda h: h.list_session_events_page(
            "sesn_1", types=["session.status_idle", "agent.message"], order="desc", limit=1
        ),
    ),
    (
        "interrupt",
        lambda b: b.sessions.events.send("sesn_1", events=[{"type": "user.interrupt"}]),
        lambda h: h.interrupt_session("sesn_1"),
    ),
    ("archive session", lambda b: b.sessions.archive("sesn_1"), lambda h: h.archive_session("sesn_1")),
    ("create deployment", lambda b: b.deployments.create(**CREATE), lambda h: h.create_deployment(**CREATE)),
    (
        "update deployment",
        lambda b: b.deployments.update("depl_1", schedule=None, metadata={"a": None, "b": "x"}),
        lambda h: h.update_deployment("depl_1", schedule=None, metadata={"a": None, "b": "x"}),
    ),
    ("get deployment", lambda b: b.deployments.retrieve("depl_1"), lambda h: h.get_deployment("depl_1")),
    ("pause", lambda b: b.deployments.pause("depl_1"), lambda h: h.pause_deployment("depl_1")),
    ("run", lambda b: b.deployments.run("depl_1"), lambda h: h.run_deployment("depl_1")),
    (
        "list runs",
        lambda b: b.deployment_runs.list(
            deployment_id="depl_1", has_error=False, trigger_type="schedule", created_at_gt=WHEN, limit=1000
        ),
        lambda h: h.list_deployment_runs_page(
            deployment_id="depl_1", has_error=False, trigger_type="schedule", created_at_gt=WHEN, limit=1000
        ),
    ),
    ("get run", lambda b: b.deployment_runs.retrieve("drun_1"), lambda h: h.get_deployment_run("drun_1")),
]


@pytest.mark.parametrize(("name", "sdk", "ours"), PAIRS, ids=[p[0] for p in PAIRS])
def test_the_hook_sends_what_the_official_sdk_sends(name: str, sdk: Any, ours: Any) -> None:
    theirs = through_sdk(sdk)
    mine = through_hook(ours)
    if theirs["method"] == "POST" and theirs["body"] is None:
        assert mine["body"] is None  # action endpoints: no body at all
    assert mine == theirs
