"""The hook's requests against the official SDK's, call by call (the SDK as an independent
oracle): the same method, path, query (``types[]=`` / ``statuses[]=`` arrays, bracketed time
bounds) and body, and the same beta and workspace headers. The key header is the one place they
differ on purpose (``x-api-key`` here, ``Authorization: Bearer`` there; the API takes both)."""

from __future__ import annotations

import asyncio
import io
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
from airflow_provider_managed_agents.models.session_events import ACTION_EVENT_TYPES

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


T = "2026-05-01T00:00:00Z"
AGENT = {
    "id": "agent_1",
    "type": "agent",
    "name": "a",
    "model": {"id": "claude-opus-4-7"},
    "tools": [],
    "mcp_servers": [],
    "skills": [],
    "metadata": {},
    "execution_identity": {"type": "service_account"},
    "version": 2,
    "created_at": T,
    "updated_at": T,
}
ENVIRONMENT = {
    "id": "env_1",
    "type": "environment",
    "name": "e",
    "config": {"type": "self_hosted"},
    "metadata": {},
    "created_at": T,
    "updated_at": T,
}
VAULT = {"id": "vlt_1", "type": "vault", "display_name": "v", "metadata": {}, "created_at": T, "updated_at": T}
CREDENTIAL = {
    "id": "vcrd_1",
    "type": "vault_credential",
    "vault_id": "vlt_1",
    "auth": {"type": "static_bearer", "mcp_server_url": "https://mcp.example.com"},
    "metadata": {},
    "created_at": T,
    "updated_at": T,
}
STORE = {
    "id": "memstore_1",
    "type": "memory_store",
    "name": "m",
    "description": "",
    "metadata": {},
    "created_at": T,
    "updated_at": T,
}
FILE = {
    "id": "file_1",
    "type": "file",
    "filename": "report.md",
    "mime_type": "text/markdown",
    "size_bytes": 12,
    "created_at": T,
    "downloadable": True,
    "scope": {"type": "session", "id": "sesn_1"},
}
LISTS = (
    "/v1/sessions",
    "/v1/deployments",
    "/v1/deployment_runs",
    "/v1/agents",
    "/v1/environments",
    "/v1/vaults",
    "/v1/files",
)
OBJECTS = {"agents": AGENT, "environments": ENVIRONMENT, "vaults": VAULT, "memory_stores": STORE}


def answer(path: str, method: str) -> Any:
    parts = path.strip("/").split("/")
    if method == "GET" and (
        path in LISTS or path.endswith(("/versions", "/credentials")) or path == "/v1/memory_stores"
    ):
        return {"data": [], "next_page": None}
    if method == "DELETE":
        return {"id": parts[-1], "type": "deleted"}
    if "credentials" in parts:
        return CREDENTIAL
    if parts[1] == "files":
        return FILE  # also the "content" of a download: its bytes are not parsed
    if parts[1] in OBJECTS:
        return OBJECTS[parts[1]]
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


# Every answer a session waiting on actions takes, as the SDK's TypedDicts spell them.
ANSWERS = [
    {"type": "user.tool_confirmation", "tool_use_id": "sevt_1", "result": "allow"},
    {"type": "user.tool_confirmation", "tool_use_id": "sevt_2", "result": "deny", "deny_message": "not in prod"},
    {
        "type": "user.custom_tool_result",
        "custom_tool_use_id": "sevt_3",
        "content": [{"type": "text", "text": "42 rows"}],
        "is_error": False,
    },
]

CREATE = {
    "name": "n",
    "agent": "agent_1",
    "environment_id": "env_1",
    "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
    "schedule": {"type": "cron", "expression": "0 9 * * 1-5", "timezone": "UTC"},
    "metadata": {"team": "data"},
}

AGENT_FIELDS = {
    "name": "reviewer",
    "model": "claude-opus-4-7",
    "system": "You review.",
    "tools": [
        {"type": "agent_toolset_20260401"},
        {"type": "mcp_toolset", "mcp_server_name": "gh"},
        {"type": "custom", "name": "lookup", "description": "d", "input_schema": {"type": "object"}},
    ],
    "mcp_servers": [{"type": "url", "name": "gh", "url": "https://mcp.example.com/sse"}],
    "skills": [{"type": "anthropic", "skill_id": "xlsx"}],
    "metadata": {"team": "data"},
}
ENVIRONMENT_FIELDS = {
    "name": "py",
    "config": {
        "type": "cloud",
        "networking": {"type": "limited", "allowed_hosts": ["api.example.com"], "allow_package_managers": True},
        "packages": {"pip": ["pandas==2.2.2"]},
    },
    "metadata": {"k": "v"},
}
BEARER = {"type": "static_bearer", "token": "ghp_x", "mcp_server_url": "https://mcp.example.com/sse"}
PROVISIONING: list[tuple[str, Callable[[Any], Any], Callable[[ManagedAgentsHook], Any]]] = [
    ("create agent", lambda b: b.agents.create(**AGENT_FIELDS), lambda h: h.create_agent(**AGENT_FIELDS)),
    ("get agent", lambda b: b.agents.retrieve("agent_1", version=3), lambda h: h.get_agent("agent_1", version=3)),
    (
        "update agent",
        lambda b: b.agents.update("agent_1", system="new", metadata={"a": None}, version=1),
        lambda h: h.update_agent("agent_1", system="new", metadata={"a": None}, version=1),
    ),
    (
        "list agents",
        lambda b: b.agents.list(include_archived=True, created_at_gte=WHEN, limit=50),
        lambda h: h.list_agents(include_archived=True, created_at_gte=WHEN, limit=50),
    ),
    (
        "agent versions",
        lambda b: b.agents.versions.list("agent_1", limit=10),
        lambda h: h.list_agent_versions("agent_1", limit=10),
    ),
    ("archive agent", lambda b: b.agents.archive("agent_1"), lambda h: h.archive_agent("agent_1")),
    (
        "create environment",
        lambda b: b.environments.create(**ENVIRONMENT_FIELDS),
        lambda h: h.create_environment(**ENVIRONMENT_FIELDS),
    ),
    ("get environment", lambda b: b.environments.retrieve("env_1"), lambda h: h.get_environment("env_1")),
    (
        "update environment",
        lambda b: b.environments.update("env_1", description=None, metadata={"k": None}),
        lambda h: h.update_environment("env_1", description=None, metadata={"k": None}),
    ),
    (
        "list environments",
        lambda b: b.environments.list(include_archived=True, limit=5),
        lambda h: h.list_environments(include_archived=True, limit=5),
    ),
    ("archive environment", lambda b: b.environments.archive("env_1"), lambda h: h.archive_environment("env_1")),
    ("delete environment", lambda b: b.environments.delete("env_1"), lambda h: h.delete_environment("env_1")),
    (
        "create vault",
        lambda b: b.vaults.create(display_name="prod", metadata={"e": "p"}),
        lambda h: h.create_vault(display_name="prod", metadata={"e": "p"}),
    ),
    ("get vault", lambda b: b.vaults.retrieve("vlt_1"), lambda h: h.get_vault("vlt_1")),
    (
        "update vault",
        lambda b: b.vaults.update("vlt_1", display_name="x", metadata={"e": None}),
        lambda h: h.update_vault("vlt_1", display_name="x", metadata={"e": None}),
    ),
    ("list vaults", lambda b: b.vaults.list(limit=100), lambda h: h.list_vaults(limit=100)),
    ("archive vault", lambda b: b.vaults.archive("vlt_1"), lambda h: h.archive_vault("vlt_1")),
    ("delete vault", lambda b: b.vaults.delete("vlt_1"), lambda h: h.delete_vault("vlt_1")),
    (
        "create credential",
        lambda b: b.vaults.credentials.create("vlt_1", auth=BEARER, display_name="gh"),
        lambda h: h.create_credential("vlt_1", auth=BEARER, display_name="gh"),
    ),
    (
        "get credential",
        lambda b: b.vaults.credentials.retrieve("vcrd_1", vault_id="vlt_1"),
        lambda h: h.get_credential("vlt_1", "vcrd_1"),
    ),
    (
        "update credential",
        lambda b: b.vaults.credentials.update(
            "vcrd_1", vault_id="vlt_1", auth={"type": "static_bearer", "token": "new"}, metadata={"a": None}
        ),
        lambda h: h.update_credential(
            "vlt_1", "vcrd_1", auth={"type": "static_bearer", "token": "new"}, metadata={"a": None}
        ),
    ),
    (
        "list credentials",
        lambda b: b.vaults.credentials.list("vlt_1", include_archived=True),
        lambda h: h.list_credentials("vlt_1", include_archived=True),
    ),
    (
        "archive credential",
        lambda b: b.vaults.credentials.archive("vcrd_1", vault_id="vlt_1"),
        lambda h: h.archive_credential("vlt_1", "vcrd_1"),
    ),
    (
        "delete credential",
        lambda b: b.vaults.credentials.delete("vcrd_1", vault_id="vlt_1"),
        lambda h: h.delete_credential("vlt_1", "vcrd_1"),
    ),
    (
        "create memory store",
        lambda b: b.memory_stores.create(name="prefs", description="d", metadata={"u": "1"}),
        lambda h: h.create_memory_store(name="prefs", description="d", metadata={"u": "1"}),
    ),
    ("get memory store", lambda b: b.memory_stores.retrieve("memstore_1"), lambda h: h.get_memory_store("memstore_1")),
    (
        "update memory store",
        lambda b: b.memory_stores.update("memstore_1", description="", metadata={"u": None}),
        lambda h: h.update_memory_store("memstore_1", description="", metadata={"u": None}),
    ),
    (
        "list memory stores",
        lambda b: b.memory_stores.list(include_archived=True, created_at_gte=WHEN, limit=10),
        lambda h: h.list_memory_stores(include_archived=True, created_at_gte=WHEN, limit=10),
    ),
    (
        "archive memory store",
        lambda b: b.memory_stores.archive("memstore_1"),
        lambda h: h.archive_memory_store("memstore_1"),
    ),
    (
        "delete memory store",
        lambda b: b.memory_stores.delete("memstore_1"),
        lambda h: h.delete_memory_store("memstore_1"),
    ),
]

# A session's files go out with the managed-agents beta, as the API's docs send them; the SDK
# sends it when asked (``betas=``), which is how its users list a session's outputs.
AS_DOCUMENTED = {"betas": ["managed-agents-2026-04-01"]}
FILES: list[tuple[str, Callable[[Any], Any], Callable[[ManagedAgentsHook], Any]]] = [
    (
        "list a session's files",
        lambda b: b.files.list(scope_id="sesn_1", limit=100, **AS_DOCUMENTED),
        lambda h: h.list_files(scope_id="sesn_1", limit=100),
    ),
    (
        "one page of files",
        lambda b: b.files.list(scope_id="sesn_1", page="page_abc", **AS_DOCUMENTED),
        lambda h: h.list_files_page(scope_id="sesn_1", page="page_abc"),
    ),
    (
        "file metadata",
        lambda b: b.files.retrieve_metadata("file_1", **AS_DOCUMENTED),
        lambda h: h.get_file_metadata("file_1"),
    ),
    (
        "download a file",
        lambda b: b.files.download("file_1", **AS_DOCUMENTED).read(),
        lambda h: h.download_file("file_1", io.BytesIO()),
    ),
]

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
    (
        "answer pending actions",
        lambda b: b.sessions.events.send("sesn_1", events=ANSWERS),
        lambda h: h.answer_actions("sesn_1", ANSWERS),
    ),
    (
        "read pending actions",
        lambda b: b.sessions.events.list("sesn_1", types=list(ACTION_EVENT_TYPES), order="desc", limit=100),
        lambda h: h.find_action_events("sesn_1", ["sevt_1"]),
    ),
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
    *PROVISIONING,
    *FILES,
]


@pytest.mark.parametrize(("name", "sdk", "ours"), PAIRS, ids=[p[0] for p in PAIRS])
def test_the_hook_sends_what_the_official_sdk_sends(name: str, sdk: Any, ours: Any) -> None:
    theirs = through_sdk(sdk)
    mine = through_hook(ours)
    if theirs["method"] == "POST" and theirs["body"] is None:
        assert mine["body"] is None  # action endpoints: no body at all
    assert mine == theirs


def test_a_download_asks_for_binary_as_the_sdk_does_and_streams_in_chunks() -> None:
    sdk_headers: list[Any] = []

    def sdk_handler(request: Any) -> Any:
        sdk_headers.append(request.headers)
        return httpx2.Response(200, content=b"x" * 10)

    client = anthropic.Anthropic(
        api_key="sk-test",
        base_url="http://api.test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(sdk_handler)),
    )
    client.beta.files.download("file_1", **AS_DOCUMENTED).read()
    body = bytes(range(256)) * 1000
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=body, headers={"content-type": "application/octet-stream"})

    hook = ManagedAgentsHook()
    hook._settings = Settings(api_key=Secret("sk-test"), base_url="http://api.test")
    hook.__dict__["client"] = httpx.Client(transport=httpx.MockTransport(handler), **hook._settings.client_options())
    with hook.stream_file("file_1", chunk_size=4096) as chunks:
        sizes = [len(chunk) for chunk in chunks]
    assert max(sizes) == 4096 and sum(sizes) == len(body)
    assert seen[0].headers["accept"] == sdk_headers[0]["accept"] == "application/binary"


def test_the_async_download_sends_what_the_sync_one_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_managed_agents.hooks import loop_pool as pool_module

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/content"):
            return httpx.Response(200, content=b"abc" * 1000)
        return httpx.Response(200, json=FILE)

    settings = Settings(api_key=Secret("sk-test"), base_url="http://api.test")
    monkeypatch.setattr(
        pool_module,
        "new_async_client",
        lambda s: httpx.AsyncClient(transport=httpx.MockTransport(handler), **s.client_options()),
    )
    hook = ManagedAgentsHook()

    async def settings_here() -> Settings:
        return settings

    monkeypatch.setattr(hook, "asettings", settings_here)

    async def download() -> tuple[bytes, Any]:
        sink = io.BytesIO()
        written = await hook.adownload_file("file_1", sink, chunk_size=100)
        metadata = await hook.aget_file_metadata("file_1")
        return sink.getvalue()[:written], metadata

    content, metadata = asyncio.run(download())
    assert content == b"abc" * 1000
    assert metadata.filename == "report.md" and metadata.scope is not None and metadata.scope.id == "sesn_1"
    sync = through_hook(lambda h: h.download_file("file_1", io.BytesIO()))
    assert normalised(seen[0].method, str(seen[0].url), seen[0].content, seen[0].headers) == sync
    assert seen[0].headers["accept"] == "application/binary"
