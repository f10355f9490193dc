"""The emulator's provisioning API over real HTTP: agents (and their versions), environments,
vaults and their credentials, memory stores. The official SDK's models validate every answer
strictly; the project's own hook is the client for the semantics; deployments and runs use
what the API made."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pendulum
import pytest

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import API_VERSION, MANAGED_AGENTS_BETA

MEMORY_BETA = "agent-memory-2026-07-22"
SENTINEL = "SENTINEL-SECRET-4711"
EVENTS = [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]
MCP_URL = "https://mcp.example.com/sse"
FULL_AGENT: dict[str, Any] = {
    "name": "reviewer",
    "model": {"id": "claude-opus-4-7", "effort": "medium", "speed": "fast", "inference_geo": "us"},
    "system": "You review PRs.",
    "description": "reviews",
    "tools": [
        {
            "type": "agent_toolset_20260401",
            "default_config": {"permission_policy": {"type": "always_ask"}},
            "configs": [
                {"name": "bash", "enabled": False},
                {"name": "edit", "permission_policy": {"type": "auto"}},
                {
                    "name": "web_fetch",
                    "allowed_domains": ["example.com"],
                    "max_content_tokens": 5000,
                    "url_sources": {
                        "user_input": "all",
                        "client_tool_results": {"type": "none"},
                        "server_tool_results": {"type": "only", "tools": [{"type": "tool_reference", "name": "x"}]},
                    },
                },
                {"name": "web_search", "user_location": {"type": "approximate", "city": "Paris", "country": "FR"}},
            ],
        },
        {"type": "mcp_toolset", "mcp_server_name": "gh", "configs": [{"name": "create_issue", "enabled": False}]},
        {
            "type": "custom",
            "name": "lookup",
            "description": "d",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
        },
    ],
    "mcp_servers": [{"type": "url", "name": "gh", "url": MCP_URL}],
    "skills": [{"type": "anthropic", "skill_id": "xlsx"}, {"type": "custom", "skill_id": "skill_1", "version": "3"}],
    "metadata": {"team": "data"},
}


@pytest.fixture
def emulator(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    return managed_agents_emulator


@pytest.fixture
def hook(emulator: Any) -> ManagedAgentsHook:
    hook = ManagedAgentsHook()
    hook._sleep = lambda seconds: time.sleep(min(seconds, 0.05))  # type: ignore[method-assign]
    return hook


def raw(emulator: Any, method: str, path: str, *, beta: str = MANAGED_AGENTS_BETA, **kwargs: Any) -> httpx.Response:
    headers = {"x-api-key": emulator.api_key, "anthropic-version": API_VERSION, "anthropic-beta": beta}
    return httpx.request(method, f"{emulator.base_url}{path}", headers=headers, timeout=10, **kwargs)


def sdk() -> Any:
    return pytest.importorskip("anthropic.types.beta")


def strict(model: Any, response: httpx.Response) -> dict[str, Any]:
    """The answer, a 200 the SDK's ``model`` validates strictly."""
    assert response.status_code == 200, response.text
    model.model_validate_json(response.text, strict=True)
    body: dict[str, Any] = response.json()
    return body


def strict_page(model: Any, response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"data", "next_page"}
    for item in page["data"]:
        model.model_validate_json(json.dumps(item), strict=True)
    items: list[dict[str, Any]] = page["data"]
    return items


def writes(emulator: Any) -> int:
    counts = emulator.request_counts()["by_endpoint"]
    return sum(n for endpoint, n in counts.items() if endpoint.startswith(("POST ", "DELETE ")))


def deployment_params(agent: Any, environment_id: str, **extra: Any) -> dict[str, Any]:
    return {"agent": agent, "environment_id": environment_id, "name": "d", "initial_events": EVENTS, **extra}


# --- the official SDK validates every answer strictly ---------------------------------------


def test_every_agent_answer_validates_strictly(emulator: Any) -> None:
    beta = sdk()
    agent_model = beta.BetaManagedAgentsAgent
    full = strict(agent_model, raw(emulator, "POST", "/v1/agents", json=FULL_AGENT))
    assert full["model"] == {
        "id": "claude-opus-4-7",
        "effort": {"type": "medium"},
        "speed": "fast",
        "inference_geo": "us",
    }
    toolset, mcp, custom = full["tools"]
    assert toolset["default_config"] == {"enabled": True, "permission_policy": {"type": "always_ask"}}
    assert toolset["configs"][0] == {
        "type": "bash",
        "name": "bash",
        "enabled": False,
        "permission_policy": {"type": "always_ask"},
    }
    assert toolset["configs"][2]["url_sources"]["user_input"] == {"type": "all"}
    assert mcp["default_config"] == {"enabled": True, "permission_policy": {"type": "always_ask"}}
    assert mcp["configs"] == [{"name": "create_issue", "enabled": False, "permission_policy": {"type": "always_ask"}}]
    assert custom == FULL_AGENT["tools"][2]
    assert full["skills"] == [
        {"type": "anthropic", "skill_id": "xlsx", "version": "latest"},
        {"type": "custom", "skill_id": "skill_1", "version": "3"},
    ]
    assert full["execution_identity"] == {"type": "service_account"} and full["multiagent"] is None
    minimal = strict(agent_model, raw(emulator, "POST", "/v1/agents", json={"name": "m", "model": "claude-haiku-4-5"}))
    assert minimal["model"] == {
        "id": "claude-haiku-4-5",
        "effort": {"type": "high"},
        "speed": "standard",
        "inference_geo": None,
    }
    assert (minimal["tools"], minimal["mcp_servers"], minimal["skills"], minimal["metadata"]) == ([], [], [], {})
    bare_toolset = {"name": "t", "model": "claude-opus-4-7", "tools": [{"type": "agent_toolset_20260401"}]}
    resolved = strict(agent_model, raw(emulator, "POST", "/v1/agents", json=bare_toolset))["tools"][0]
    assert resolved == {
        "type": "agent_toolset_20260401",
        "default_config": {"enabled": True, "permission_policy": {"type": "always_allow"}},
        "configs": [],
    }
    path = f"/v1/agents/{full['id']}"
    strict(agent_model, raw(emulator, "GET", path))
    strict(agent_model, raw(emulator, "POST", path, json={"system": "new", "version": 1}))
    strict(agent_model, raw(emulator, "GET", path, params={"version": 1}))
    assert [a["version"] for a in strict_page(agent_model, raw(emulator, "GET", f"{path}/versions"))] == [2, 1]
    assert len(strict_page(agent_model, raw(emulator, "GET", "/v1/agents"))) == 4  # agent_demo included
    strict(agent_model, raw(emulator, "GET", "/v1/agents/agent_demo"))
    archived = strict(agent_model, raw(emulator, "POST", f"{path}/archive"))
    assert archived["archived_at"] is not None
    strict_page(agent_model, raw(emulator, "GET", "/v1/agents", params={"include_archived": "true"}))


def test_every_environment_answer_validates_strictly(emulator: Any) -> None:
    model = sdk().BetaEnvironment
    limited = {
        "type": "cloud",
        "networking": {"type": "limited", "allowed_hosts": ["api.example.com"], "allow_package_managers": True},
        "packages": {"pip": ["pandas==2.2.2"], "apt": ["jq"]},
    }
    made = [
        strict(model, raw(emulator, "POST", "/v1/environments", json=body))
        for body in (
            {"name": "default"},
            {"name": "limited", "config": limited, "description": "d", "metadata": {"k": "v"}},
            {"name": "open", "config": {"type": "cloud", "networking": {"type": "unrestricted"}}},
            {"name": "runner", "config": {"type": "self_hosted"}, "scope": "organization"},
        )
    ]
    default, limited_env, _, runner = made
    assert default["config"] == {
        "type": "cloud",
        "networking": {"type": "unrestricted"},
        "packages": {"type": "packages", "apt": [], "cargo": [], "gem": [], "go": [], "npm": [], "pip": []},
    }
    assert default["scope"] == "organization" and default["description"] is None
    assert limited_env["config"]["networking"] == {
        "type": "limited",
        "allowed_hosts": ["api.example.com"],
        "allow_mcp_servers": False,
        "allow_package_managers": True,
    }
    assert limited_env["config"]["packages"]["pip"] == ["pandas==2.2.2"]
    assert runner["config"] == {"type": "self_hosted"}
    path = f"/v1/environments/{limited_env['id']}"
    strict(model, raw(emulator, "GET", path))
    strict(model, raw(emulator, "GET", "/v1/environments/env_demo"))
    strict(model, raw(emulator, "POST", path, json={"config": {"type": "cloud", "packages": {"npm": ["x"]}}}))
    assert len(strict_page(model, raw(emulator, "GET", "/v1/environments"))) == 5
    strict(model, raw(emulator, "POST", f"{path}/archive"))
    strict(sdk().BetaEnvironmentDeleteResponse, raw(emulator, "DELETE", path))


def test_every_vault_and_credential_answer_validates_strictly(emulator: Any) -> None:
    beta, vaults = sdk(), pytest.importorskip("anthropic.types.beta.vaults")
    vault = strict(beta.BetaManagedAgentsVault, raw(emulator, "POST", "/v1/vaults", json={"display_name": "prod"}))
    path = f"/v1/vaults/{vault['id']}"
    strict(beta.BetaManagedAgentsVault, raw(emulator, "GET", path))
    strict(beta.BetaManagedAgentsVault, raw(emulator, "POST", path, json={"metadata": {"env": "prod"}}))
    strict_page(beta.BetaManagedAgentsVault, raw(emulator, "GET", "/v1/vaults"))
    auths = [
        {"type": "static_bearer", "token": SENTINEL, "mcp_server_url": MCP_URL},
        {
            "type": "environment_variable",
            "secret_name": "DB_PASSWORD",
            "secret_value": SENTINEL,
            "networking": {"type": "limited", "allowed_hosts": ["db.example.com"]},
        },
        {
            "type": "environment_variable",
            "secret_name": "OTHER",
            "secret_value": SENTINEL,
            "networking": {"type": "unrestricted"},
            "injection_location": {"header": False, "body": True},
        },
        {
            "type": "mcp_oauth",
            "access_token": SENTINEL,
            "mcp_server_url": MCP_URL,
            "expires_at": "2099-06-01T00:00:00Z",
            "refresh": {
                "client_id": "cid",
                "refresh_token": SENTINEL,
                "token_endpoint": "https://auth.example.com/token",
                "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": SENTINEL},
                "scope": "read",
            },
        },
        {"type": "mcp_oauth", "access_token": SENTINEL, "mcp_server_url": MCP_URL},
        {
            "type": "mcp_oauth",
            "access_token": SENTINEL,
            "mcp_server_url": MCP_URL,
            "refresh": {
                "client_id": "cid",
                "refresh_token": SENTINEL,
                "token_endpoint": "https://auth.example.com/token",
                "token_endpoint_auth": {"type": "none"},
            },
        },
    ]
    credential_model = vaults.BetaManagedAgentsCredential
    made = []
    for auth in auths:
        response = raw(emulator, "POST", f"{path}/credentials", json={"auth": auth, "display_name": "c"})
        assert SENTINEL not in response.text
        made.append(strict(credential_model, response))
    assert made[0]["auth"] == {"type": "static_bearer", "mcp_server_url": MCP_URL}
    assert made[1]["auth"]["injection_location"] == {"header": True, "body": False}
    assert made[3]["auth"]["refresh"]["token_endpoint_auth"] == {"type": "client_secret_basic"}
    one = f"{path}/credentials/{made[0]['id']}"
    strict(credential_model, raw(emulator, "GET", one))
    strict(credential_model, raw(emulator, "POST", one, json={"auth": {"type": "static_bearer", "token": "new"}}))
    assert len(strict_page(credential_model, raw(emulator, "GET", f"{path}/credentials"))) == len(auths)
    strict(credential_model, raw(emulator, "POST", f"{one}/archive"))
    strict(vaults.BetaManagedAgentsDeletedCredential, raw(emulator, "DELETE", one))
    strict(beta.BetaManagedAgentsVault, raw(emulator, "POST", f"{path}/archive"))
    strict(beta.BetaManagedAgentsDeletedVault, raw(emulator, "DELETE", path))


def test_every_memory_store_answer_validates_strictly(emulator: Any) -> None:
    beta = sdk()
    model = beta.BetaManagedAgentsMemoryStore
    body = {"name": "User prefs", "description": "prefs", "metadata": {"user": "u1"}}
    store = strict(model, raw(emulator, "POST", "/v1/memory_stores", json=body, beta=MEMORY_BETA))
    bare = strict(model, raw(emulator, "POST", "/v1/memory_stores", json={"name": "n"}, beta=MEMORY_BETA))
    assert bare["description"] == ""
    path = f"/v1/memory_stores/{store['id']}"
    strict(model, raw(emulator, "GET", path, beta=MEMORY_BETA))
    strict(model, raw(emulator, "GET", path))  # the managed-agents beta is taken too
    strict(model, raw(emulator, "POST", path, json={"description": "", "metadata": {"user": None}}, beta=MEMORY_BETA))
    assert len(strict_page(model, raw(emulator, "GET", "/v1/memory_stores", beta=MEMORY_BETA))) == 2
    strict(model, raw(emulator, "POST", f"{path}/archive", beta=MEMORY_BETA))
    strict(beta.BetaManagedAgentsDeletedMemoryStore, raw(emulator, "DELETE", path, beta=MEMORY_BETA))
    refused = raw(emulator, "GET", "/v1/memory_stores", beta="other-beta")
    assert refused.status_code == 400 and MEMORY_BETA in refused.json()["error"]["message"]
    assert raw(emulator, "GET", "/v1/agents", beta=MEMORY_BETA).status_code == 400


def test_a_session_snapshots_the_api_made_agent_and_validates_strictly(hook: ManagedAgentsHook, emulator: Any) -> None:
    agent = hook.create_agent({**FULL_AGENT, "skills": [{"type": "anthropic", "skill_id": "xlsx"}]})
    deployment = hook.create_deployment(deployment_params(agent.id, "env_demo"))
    session_id = hook.run_deployment(deployment.id).session_id
    assert session_id is not None
    session = strict(sdk().BetaManagedAgentsSession, raw(emulator, "GET", f"/v1/sessions/{session_id}"))
    assert session["agent"]["name"] == "reviewer" and session["agent"]["model"]["id"] == "claude-opus-4-7"
    assert session["agent"]["version"] == 1 and session["agent"]["system"] == "You review PRs."
    demo = hook.create_deployment(deployment_params("agent_demo", "env_demo"))
    demo_session = hook.run_deployment(demo.id).session_id
    snapshot = strict(sdk().BetaManagedAgentsSession, raw(emulator, "GET", f"/v1/sessions/{demo_session}"))["agent"]
    assert (snapshot["name"], snapshot["model"]["id"]) == ("Demo agent", "claude-sonnet-4-6")


# --- agents ----------------------------------------------------------------------------------


def test_agent_versions_no_ops_and_conflicts(hook: ManagedAgentsHook, emulator: Any) -> None:
    agent = hook.create_agent(name="reviewer", model="claude-opus-4-7", system="s1", metadata={"team": "data"})
    assert agent.version == 1 and agent.id.startswith("agent_") and agent.model.id == "claude-opus-4-7"
    assert agent.model.effort is not None and agent.model.effort.type == "high"
    second = hook.update_agent(agent.id, system="s2", version=1)
    assert second.version == 2 and second.system == "s2" and second.metadata == {"team": "data"}
    same = hook.update_agent(agent.id, system="s2", metadata={"team": "data"})
    assert same.version == 2 and same.updated_at == second.updated_at  # a no-op makes no version
    assert [a.version for a in hook.list_agent_versions(agent.id)] == [2, 1]
    before = emulator.request_counts()["by_endpoint"].get("POST /v1/agents/{agent_id}", 0)
    with pytest.raises(errors.ManagedAgentsConflictError) as conflict:
        hook.update_agent(agent.id, system="stale", version=1)
    assert conflict.value.error_type == "conflict_error"
    assert emulator.request_counts()["by_endpoint"]["POST /v1/agents/{agent_id}"] == before + 1  # sent once
    stale = raw(emulator, "POST", f"/v1/agents/{agent.id}", json={"system": "x", "version": 1})
    assert stale.status_code == 409 and stale.headers["x-should-retry"] == "false"
    assert hook.get_agent(agent.id, version=1).system == "s1"
    assert hook.get_agent(agent.id).system == "s2"
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.get_agent(agent.id, version=3)
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.get_agent("agent_missing")


def test_agent_updates_keep_clear_replace_and_patch(hook: ManagedAgentsHook) -> None:
    agent = hook.create_agent(FULL_AGENT)
    kept = hook.update_agent(agent.id, name="renamed")
    assert (kept.system, kept.description, kept.tools, kept.skills) == (
        agent.system,
        agent.description,
        agent.tools,
        agent.skills,
    )
    patched = hook.update_agent(agent.id, metadata={"team": None, "owner": "x"})
    assert patched.metadata == {"owner": "x"}
    cleared = hook.update_agent(
        agent.id, system=None, description="", tools=None, mcp_servers=None, skills=None, model="claude-sonnet-4-6"
    )
    assert cleared.system is None and cleared.description is None
    assert (cleared.tools, cleared.mcp_servers, cleared.skills) == ([], [], [])
    assert cleared.model.id == "claude-sonnet-4-6" and cleared.model.effort.type == "medium"  # type: ignore[union-attr]
    assert cleared.version == 4
    replaced = hook.update_agent(
        agent.id, tools=[{"type": "custom", "name": "t", "description": "d", "input_schema": {"type": "object"}}]
    )
    assert [t["name"] for t in replaced.tools] == ["t"]
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="metadata"):
        hook.update_agent(agent.id, metadata={f"k{i}": "v" for i in range(16)})  # 1 + 16 > 16 after the merge
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="mcp_servers"):
        hook.update_agent(agent.id, mcp_servers=[{"type": "url", "name": "unused", "url": MCP_URL}])
    archived = hook.archive_agent(agent.id)
    assert archived.is_archived and hook.archive_agent(agent.id).archived_at == archived.archived_at
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="archived"):
        hook.update_agent(agent.id, name="again")


def test_the_agents_list_pages_filters_and_hides_archived(hook: ManagedAgentsHook, emulator: Any) -> None:
    made = [hook.create_agent(name=f"a{i}", model="claude-opus-4-7").id for i in range(4)]
    emulator.control("DELETE", "requests")
    listed = [a.id for a in hook.list_agents(limit=1)]
    assert listed == [*reversed(made), "agent_demo"]  # newest first
    assert emulator.request_counts()["by_endpoint"]["GET /v1/agents"] == 5
    hook.archive_agent(made[0])
    assert made[0] not in {a.id for a in hook.list_agents()}
    assert made[0] in {a.id for a in hook.list_agents(include_archived=True)}
    future = pendulum.now("UTC").add(minutes=5)
    assert list(hook.list_agents(created_at_gte=future)) == []
    assert len(list(hook.list_agents(created_at_lte=future))) == 4
    for i in range(3):
        hook.update_agent(made[1], name=f"v{i}")
    assert [a.version for a in hook.list_agent_versions(made[1], limit=1)] == [4, 3, 2, 1]
    assert raw(emulator, "GET", "/v1/agents", params={"limit": "101"}).status_code == 400
    assert raw(emulator, "GET", "/v1/agents", params={"page": "not-a-cursor!"}).status_code == 400


def test_agent_requests_are_validated(emulator: Any) -> None:
    for body, fragment in [
        ({"name": "x"}, "model"),
        ({"name": "x", "model": "m", "color": "red"}, "color"),
        ({"name": "x", "model": {"id": "m", "effort": "extreme"}}, "effort"),
        (
            {"name": "x", "model": "m", "tools": [{"type": "agent_toolset_20260401", "configs": [{"name": "rm"}]}]},
            "name",
        ),
        ({"name": "x", "model": "m", "tools": [{"type": "mcp_toolset", "mcp_server_name": "nowhere"}]}, "mcp_servers"),
    ]:
        refused = raw(emulator, "POST", "/v1/agents", json=body)
        assert refused.status_code == 400, body
        assert refused.json()["error"]["type"] == "invalid_request_error"
        assert fragment in refused.json()["error"]["message"]


# --- environments ----------------------------------------------------------------------------


def test_environment_config_merges_and_its_type_cannot_change(hook: ManagedAgentsHook) -> None:
    config = {
        "type": "cloud",
        "networking": {"type": "limited", "allowed_hosts": ["a.example.com"], "allow_package_managers": True},
        "packages": {"pip": ["pandas"]},
    }
    environment = hook.create_environment(name="py", config=config, metadata={"k": "v", "j": "w"}, description="d")
    merged = hook.update_environment(environment.id, config={"type": "cloud", "packages": {"apt": ["jq"]}})
    assert merged.config["networking"]["allowed_hosts"] == ["a.example.com"]
    assert merged.config["packages"]["pip"] == ["pandas"] and merged.config["packages"]["apt"] == ["jq"]
    opened = hook.update_environment(environment.id, config={"type": "cloud", "networking": {"type": "unrestricted"}})
    assert opened.config["networking"] == {"type": "unrestricted"} and opened.config["packages"]["pip"] == ["pandas"]
    with pytest.raises(errors.ManagedAgentsBadRequestError) as refused:
        hook.update_environment(environment.id, config={"type": "self_hosted"})
    assert refused.value.error_code == "invalid_config_type_change"
    patched = hook.update_environment(environment.id, metadata={"k": "", "j": None, "n": "1"}, description="")
    assert patched.metadata == {"n": "1"} and patched.description == ""
    assert hook.update_environment(environment.id, description=None).description is None
    default = hook.create_environment(name="plain")
    assert default.config["type"] == "cloud" and default.config["networking"] == {"type": "unrestricted"}
    assert default.scope == "organization"


def test_environment_archive_delete_and_list(hook: ManagedAgentsHook, emulator: Any) -> None:
    made = [hook.create_environment(name=f"e{i}").id for i in range(3)]
    assert [e.id for e in hook.list_environments(limit=1)] == [*reversed(made), "env_demo"]
    archived = hook.archive_environment(made[0])
    assert archived.is_archived and hook.archive_environment(made[0]).archived_at == archived.archived_at
    with pytest.raises(errors.ManagedAgentsBadRequestError) as refused:
        hook.update_environment(made[0], name="x")
    assert refused.value.error_code == "environment_archived"
    assert made[0] not in {e.id for e in hook.list_environments()}
    assert made[0] in {e.id for e in hook.list_environments(include_archived=True)}
    deleted = hook.delete_environment(made[1])
    assert (deleted.id, deleted.type) == (made[1], "environment_deleted")
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.get_environment(made[1])
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.create_deployment(deployment_params("agent_demo", made[1]))
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="archived"):
        hook.create_deployment(deployment_params("agent_demo", made[0]))


# --- vaults and credentials --------------------------------------------------------------------


def test_credential_secrets_are_never_returned_nor_stored(hook: ManagedAgentsHook, emulator: Any) -> None:
    vault = hook.create_vault(display_name="prod", metadata={"env": "prod"})
    assert vault.id.startswith("vlt_")
    bearer = hook.create_credential(
        vault.id, auth={"type": "static_bearer", "token": SENTINEL, "mcp_server_url": MCP_URL}, display_name="gh"
    )
    variable = hook.create_credential(
        vault.id,
        auth={
            "type": "environment_variable",
            "secret_name": "DB_PASSWORD",
            "secret_value": SENTINEL + "-value",
            "networking": {"type": "unrestricted"},
        },
    )
    oauth = hook.create_credential(
        vault.id,
        auth={
            "type": "mcp_oauth",
            "access_token": SENTINEL + "-access",
            "mcp_server_url": MCP_URL,
            "refresh": {
                "client_id": "cid",
                "refresh_token": SENTINEL + "-refresh",
                "token_endpoint": "https://auth.example.com/token",
                "token_endpoint_auth": {"type": "client_secret_post", "client_secret": SENTINEL + "-client"},
            },
        },
    )
    assert bearer.id.startswith("vcrd_") and bearer.vault_id == vault.id
    state_before = emulator.state()
    hashes_before = {c["id"]: c["secret_sha256"] for c in state_before["vaults"][0]["credentials"]}
    updated = hook.update_credential(
        vault.id,
        oauth.id,
        auth={"type": "mcp_oauth", "access_token": SENTINEL + "-new", "refresh": {"refresh_token": SENTINEL + "-r2"}},
    )
    assert updated.auth["mcp_server_url"] == MCP_URL
    hook.update_credential(
        vault.id, variable.id, auth={"type": "environment_variable", "injection_location": {"body": True}}
    )
    answers = [
        raw(emulator, "GET", f"/v1/vaults/{vault.id}/credentials").text,
        *(raw(emulator, "GET", f"/v1/vaults/{vault.id}/credentials/{c.id}").text for c in (bearer, variable, oauth)),
        *(c.model_dump_json() for c in (bearer, variable, oauth, updated)),
    ]
    for text in answers:
        assert SENTINEL not in text
        for secret in ("token", "secret_value", "access_token", "refresh_token", "client_secret"):
            assert f'"{secret}"' not in text
    state = emulator.state()
    assert SENTINEL not in json.dumps(state)
    hashes_after = {c["id"]: c["secret_sha256"] for c in state["vaults"][0]["credentials"]}
    assert {c["id"] for c in state["vault_credentials"]} == set(hashes_after) == {bearer.id, variable.id, oauth.id}
    assert hashes_after[bearer.id] == hashes_before[bearer.id]
    assert hashes_after[oauth.id]["access_token"] != hashes_before[oauth.id]["access_token"]
    assert hashes_after[oauth.id]["client_secret"] == hashes_before[oauth.id]["client_secret"]
    assert hook.get_credential(vault.id, variable.id).auth["injection_location"] == {"header": True, "body": True}


def test_credential_updates_keep_their_type_and_fixed_fields(hook: ManagedAgentsHook, emulator: Any) -> None:
    vault = hook.create_vault(display_name="v")
    bearer = hook.create_credential(
        vault.id, auth={"type": "static_bearer", "token": "t", "mcp_server_url": MCP_URL}, metadata={"a": "1"}
    )
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="type"):
        hook.update_credential(vault.id, bearer.id, auth={"type": "mcp_oauth", "access_token": "x"})
    path = f"/v1/vaults/{vault.id}/credentials/{bearer.id}"
    moved = raw(emulator, "POST", path, json={"auth": {"type": "static_bearer", "mcp_server_url": "https://else"}})
    assert moved.status_code == 400 and "mcp_server_url" in moved.json()["error"]["message"]
    patched = hook.update_credential(vault.id, bearer.id, metadata={"a": None, "b": "2"}, display_name="named")
    assert patched.metadata == {"b": "2"} and patched.display_name == "named"
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="header or body"):
        hook.create_credential(
            vault.id,
            auth={
                "type": "environment_variable",
                "secret_name": "S",
                "secret_value": "v",
                "networking": {"type": "unrestricted"},
                "injection_location": {"header": False},
            },
        )
    archived = hook.archive_credential(vault.id, bearer.id)
    assert archived.is_archived and hook.archive_credential(vault.id, bearer.id).archived_at == archived.archived_at
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="archived"):
        hook.update_credential(vault.id, bearer.id, display_name="x")
    assert list(hook.list_credentials(vault.id)) == []
    assert [c.id for c in hook.list_credentials(vault.id, include_archived=True)] == [bearer.id]
    deleted = hook.delete_credential(vault.id, bearer.id)
    assert (deleted.id, deleted.type) == (bearer.id, "vault_credential_deleted")
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.get_credential(vault.id, bearer.id)


def test_vault_archive_delete_and_list(hook: ManagedAgentsHook, emulator: Any) -> None:
    vaults = [hook.create_vault(display_name=f"v{i}").id for i in range(3)]
    assert [v.id for v in hook.list_vaults(limit=1)] == list(reversed(vaults))
    patched = hook.update_vault(vaults[0], metadata={"a": "1"}, display_name="renamed")
    assert (patched.display_name, patched.metadata) == ("renamed", {"a": "1"})
    assert hook.update_vault(vaults[0], metadata={"a": None}).metadata == {}
    credential = hook.create_credential(
        vaults[1], auth={"type": "static_bearer", "token": "t", "mcp_server_url": MCP_URL}
    )
    for i in range(2):
        hook.create_credential(
            vaults[1], auth={"type": "static_bearer", "token": "t", "mcp_server_url": f"{MCP_URL}{i}"}
        )
    assert len(list(hook.list_credentials(vaults[1], limit=1))) == 3
    archived = hook.archive_vault(vaults[0])
    assert archived.is_archived and hook.archive_vault(vaults[0]).archived_at == archived.archived_at
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="archived"):
        hook.create_credential(vaults[0], auth={"type": "static_bearer", "token": "t", "mcp_server_url": MCP_URL})
    assert vaults[0] not in {v.id for v in hook.list_vaults()}
    assert vaults[0] in {v.id for v in hook.list_vaults(include_archived=True)}
    deleted = hook.delete_vault(vaults[1])
    assert (deleted.id, deleted.type) == (vaults[1], "vault_deleted")
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.get_credential(vaults[1], credential.id)
    assert all(not v["credentials"] for v in emulator.state()["vaults"])  # its credentials went with it


# --- memory stores ---------------------------------------------------------------------------


def test_memory_stores(hook: ManagedAgentsHook, emulator: Any) -> None:
    store = hook.create_memory_store(name="User prefs", metadata={"user": "u1", "team": "t"})
    assert store.id.startswith("memstore_") and store.description == ""
    described = hook.update_memory_store(store.id, description="prefs", metadata={"user": None})
    assert described.description == "prefs" and described.metadata == {"team": "t"}
    assert hook.update_memory_store(store.id, description="").description == ""
    others = [hook.create_memory_store(name=f"s{i}").id for i in range(2)]
    assert [s.id for s in hook.list_memory_stores(limit=1)] == [*reversed(others), store.id]
    archived = hook.archive_memory_store(store.id)
    assert archived.is_archived and hook.archive_memory_store(store.id) == archived  # unchanged
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="archived"):
        hook.update_memory_store(store.id, name="x")
    assert store.id not in {s.id for s in hook.list_memory_stores()}
    deleted = hook.delete_memory_store(store.id)
    assert (deleted.id, deleted.type) == (store.id, "memory_store_deleted")
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.get_memory_store(store.id)
    counts = emulator.request_counts()["by_endpoint"]
    assert counts["POST /v1/memory_stores"] == 3 and counts["DELETE /v1/memory_stores/{memory_store_id}"] == 1


# --- deployments and runs use what the API made -------------------------------------------


def test_deployments_and_runs_use_what_the_api_made(hook: ManagedAgentsHook, emulator: Any) -> None:
    agent = hook.create_agent(name="worker", model="claude-opus-4-7", system="v1")
    environment = hook.create_environment(name="py")
    vault = hook.create_vault(display_name="secrets")
    store = hook.create_memory_store(name="notes")
    hook.update_agent(agent.id, system="v2")
    deployment = hook.create_deployment(
        deployment_params(
            {"type": "agent", "id": agent.id, "version": 2},
            environment.id,
            vault_ids=[vault.id],
            resources=[{"type": "memory_store", "memory_store_id": store.id}],
        )
    )
    assert deployment.agent.version == 2
    run = hook.run_deployment(deployment.id)
    assert run.session_id is not None and run.error is None
    session = raw(emulator, "GET", f"/v1/sessions/{run.session_id}").json()
    assert (session["agent"]["name"], session["agent"]["version"], session["agent"]["system"]) == ("worker", 2, "v2")
    hook.update_agent(agent.id, system="v3")
    assert hook.create_deployment(deployment_params(agent.id, environment.id)).agent.version == 3  # the latest
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="no version 4"):
        hook.create_deployment(deployment_params({"type": "agent", "id": agent.id, "version": 4}, environment.id))

    hook.archive_memory_store(store.id)
    assert hook.run_deployment(deployment.id).error.type == "memory_store_archived_error"  # type: ignore[union-attr]
    hook.delete_memory_store(store.id)
    assert hook.run_deployment(deployment.id).error.type == "session_resource_not_found_error"  # type: ignore[union-attr]
    hook.update_deployment(deployment.id, {"resources": []})
    hook.archive_vault(vault.id)
    assert hook.run_deployment(deployment.id).error.type == "vault_archived_error"  # type: ignore[union-attr]
    hook.delete_vault(vault.id)
    assert hook.run_deployment(deployment.id).error.type == "vault_not_found_error"  # type: ignore[union-attr]
    hook.update_deployment(deployment.id, {"vault_ids": ["vlt_never_told_about"]})
    assert hook.run_deployment(deployment.id).session_id is not None  # unknown vault ids are taken to exist
    hook.archive_environment(environment.id)
    assert hook.run_deployment(deployment.id).error.type == "environment_archived_error"  # type: ignore[union-attr]

    other = hook.create_deployment(deployment_params(agent.id, "env_demo"))
    assert hook.run_deployment(other.id).session_id is not None
    hook.archive_agent(agent.id)
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="archived"):
        hook.create_deployment(deployment_params(agent.id, "env_demo"))
    # As with an agent archived through the controls: the run is refused and the deployment archived.
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="archived"):
        hook.run_deployment(other.id)
    assert hook.get_deployment(other.id).is_archived


def test_the_controls_act_on_the_api_records(hook: ManagedAgentsHook, emulator: Any) -> None:
    demo = hook.get_agent("agent_demo")
    assert (demo.name, demo.model.id, demo.version) == ("Demo agent", "claude-sonnet-4-6", 1)
    assert hook.get_environment("env_demo").config["type"] == "cloud"
    emulator.control("POST", "agents/agent_demo/versions", {})
    assert hook.get_agent("agent_demo").version == 2
    assert [a.version for a in hook.list_agent_versions("agent_demo")] == [2, 1]
    made = emulator.control("POST", "agents", {"id": "agent_other"})
    assert made["id"] == "agent_other" and made["version"] == 1
    assert hook.get_agent("agent_other").name == "agent_other"
    emulator.control("POST", "vaults", {"id": "vlt_ctl"})
    emulator.control("POST", "memory_stores", {"id": "memstore_ctl"})
    assert hook.get_vault("vlt_ctl").display_name == "vlt_ctl"
    assert hook.get_memory_store("memstore_ctl").name == "memstore_ctl"
    emulator.control("POST", "vaults/vlt_ctl/archive", {})
    assert hook.get_vault("vlt_ctl").is_archived
    emulator.control("DELETE", "memory_stores/memstore_ctl")
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.get_memory_store("memstore_ctl")
    emulator.control("POST", "environments/env_demo/archive", {})
    assert hook.get_environment("env_demo").is_archived
    emulator.control("POST", "agents/agent_other/archive", {})
    assert hook.get_agent("agent_other").is_archived
    emulator.control("DELETE", "agents/agent_other")
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.get_agent("agent_other")
    state = emulator.state()
    assert [a["id"] for a in state["agents"]] == ["agent_demo"] and len(state["agents"][0]["versions"]) == 2
    assert state["deleted"]["agents"] == ["agent_other"] and state["deleted"]["memory_stores"] == ["memstore_ctl"]


def test_a_rerun_of_finished_provisioning_sends_no_write(hook: ManagedAgentsHook, emulator: Any) -> None:
    """Creates with an idempotency key and ``look_first`` adopt what an earlier run made: the
    request counters prove that the second pass sends no POST or DELETE."""

    def provision() -> tuple[str, str, str, str]:
        agent = hook.create_agent(name="a", model="claude-opus-4-7", idempotency_key="agent-1", look_first=True)
        environment = hook.create_environment(name="e", idempotency_key="env-1", look_first=True)
        vault = hook.create_vault(display_name="v", idempotency_key="vault-1", look_first=True)
        store = hook.create_memory_store(name="s", idempotency_key="store-1", look_first=True)
        return agent.id, environment.id, vault.id, store.id

    first = provision()
    emulator.control("DELETE", "requests")
    assert provision() == first
    assert writes(emulator) == 0


def test_records_survive_a_restart_with_a_state_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_managed_agents.emulator.server import run_emulator

    state_file = tmp_path / "emulator.sqlite"
    with run_emulator(state_file=state_file) as first:
        monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", first.connection_json())
        hook = ManagedAgentsHook()
        agent = hook.create_agent(name="kept", model="claude-opus-4-7")
        hook.update_agent(agent.id, system="v2")
        vault = hook.create_vault(display_name="v")
        credential = hook.create_credential(
            vault.id, auth={"type": "static_bearer", "token": SENTINEL, "mcp_server_url": MCP_URL}
        )
        store = hook.create_memory_store(name="s")
        hook.archive_memory_store(store.id)
    with run_emulator(state_file=state_file) as second:
        monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", second.connection_json())
        hook = ManagedAgentsHook()
        assert hook.get_agent(agent.id).version == 2 and hook.get_agent(agent.id, version=1).system is None
        assert hook.get_credential(vault.id, credential.id).auth["type"] == "static_bearer"
        assert hook.get_memory_store(store.id).is_archived
        assert hook.get_agent("agent_demo").name == "Demo agent"
    assert SENTINEL.encode() not in state_file.read_bytes()
