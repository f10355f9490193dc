"""Provisioning operators and the rollout over real HTTP against the emulator: a re-run sends no
write, a changed prompt makes exactly one agent version, a credential's secret never leaves the
task, a failed smoke run puts the deployment back on the exact pin it had (in the worker and
deferred), and a retry neither rolls out twice nor leaves a rollout half done."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes import EmulatorClock, FakeTI, TaskStateStore, context, finish_deferred, use_clock

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.operators.provisioning import (
    ManagedAgentsEnsureAgentOperator,
    ManagedAgentsEnsureEnvironmentOperator,
    ManagedAgentsEnsureMemoryStoreOperator,
    ManagedAgentsEnsureVaultCredentialOperator,
    ManagedAgentsEnsureVaultOperator,
)
from airflow_provider_managed_agents.operators.rollout import ManagedAgentsRolloutDeploymentOperator

SENTINEL = "SENTINEL-VAULT-SECRET-8812"
MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "Review the load."}]}


@pytest.fixture
def hook(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> ManagedAgentsHook:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    monkeypatch.setenv("AIRFLOW_CONN_GITHUB_TOKEN", json.dumps({"conn_type": "generic", "password": SENTINEL}))
    return ManagedAgentsHook()


def writes(emulator: Any) -> dict[str, int]:
    """The API's write requests so far (controls aside), by endpoint."""
    counts = emulator.request_counts()["by_endpoint"]
    return {k: v for k, v in counts.items() if k.split(" ")[0] in ("POST", "DELETE") and " /v1/" in k}


def run_task(task: Any, ti: FakeTI | None = None, store: TaskStateStore | None = None) -> tuple[Any, FakeTI]:
    ti = ti or FakeTI(dag_id="provision", task_id=task.task_id)
    return task.execute(context(ti, store)), ti


def stack(system: str = "You review loads.") -> list[Any]:
    """One environment, vault, credential, memory store and agent, as a provisioning DAG declares them."""
    environment = ManagedAgentsEnsureEnvironmentOperator(
        task_id="environment",
        name="data-review",
        config={
            "type": "cloud",
            "networking": {"type": "limited", "allowed_hosts": ["api.github.com"], "allow_package_managers": True},
            "packages": {"pip": ["pandas==2.2.2"]},
        },
    )
    vault = ManagedAgentsEnsureVaultOperator(task_id="vault", display_name="data-review secrets")
    store = ManagedAgentsEnsureMemoryStoreOperator(task_id="memory_store", name="notes", description="Earlier reviews.")
    agent = ManagedAgentsEnsureAgentOperator(
        task_id="agent",
        name="Data reviewer",
        model="claude-sonnet-4-6",
        system=system,
        tools=[{"type": "agent_toolset_20260401"}, {"type": "mcp_toolset", "mcp_server_name": "github"}],
        mcp_servers=[{"type": "url", "name": "github", "url": "https://api.githubcopilot.com/mcp/"}],
    )
    return [environment, vault, store, agent]


def credential(vault_id: str) -> ManagedAgentsEnsureVaultCredentialOperator:
    return ManagedAgentsEnsureVaultCredentialOperator(
        task_id="github_credential",
        vault_id=vault_id,
        display_name="GitHub MCP",
        auth={"type": "static_bearer", "mcp_server_url": "https://api.githubcopilot.com/mcp/"},
        secrets={"token": "connection:github_token"},
    )


def provision(system: str = "You review loads.") -> dict[str, tuple[Any, FakeTI]]:
    done = {task.task_id: run_task(task) for task in stack(system)}
    done["github_credential"] = run_task(credential(done["vault"][0]))
    return done


def test_a_rerun_sends_no_write_and_a_changed_prompt_makes_exactly_one_version(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    first = provision()
    assert {name: ti.xcom["action"] for name, (_, ti) in first.items()} == dict.fromkeys(first, "created")
    agent_id = first["agent"][0]
    assert first["agent"][1].xcom["agent_pin"] == {"type": "agent", "id": agent_id, "version": 1}
    before = writes(managed_agents_emulator)
    again = provision()
    assert writes(managed_agents_emulator) == before  # not one write
    assert {name: ti.xcom["action"] for name, (_, ti) in again.items()} == dict.fromkeys(again, "unchanged")
    assert {name: result for name, (result, _) in again.items()} == {name: r for name, (r, _) in first.items()}
    changed = provision(system="You review loads, and say why.")
    assert changed["agent"][1].xcom["action"] == "updated" and changed["agent"][1].xcom["agent_version"] == 2
    assert [a.version for a in hook.list_agent_versions(agent_id)] == [2, 1]
    assert {n for n, (_, ti) in changed.items() if ti.xcom["action"] != "unchanged"} == {"agent"}
    before = writes(managed_agents_emulator)
    provision(system="You review loads, and say why.")
    assert writes(managed_agents_emulator) == before and hook.get_agent(agent_id).version == 2


def test_drift_made_outside_airflow_is_undone_once(hook: ManagedAgentsHook, managed_agents_emulator: Any) -> None:
    made = provision()
    agent_id = made["agent"][0]
    hook.update_agent(agent_id, system="Edited in the Console.")  # version 2, not as declared
    again = provision()
    assert again["agent"][1].xcom["action"] == "updated"
    agent = hook.get_agent(agent_id)
    assert agent.system == "You review loads." and agent.version == 3


def test_the_credential_secret_never_leaves_the_task(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any, caplog: Any
) -> None:
    vault_id, _ = run_task(ManagedAgentsEnsureVaultOperator(task_id="vault", display_name="v"))
    task = credential(vault_id)
    credential_id, ti = run_task(task)
    credential_made = hook.get_credential(vault_id, credential_id)
    assert credential_made.auth == {"type": "static_bearer", "mcp_server_url": "https://api.githubcopilot.com/mcp/"}
    seen = [
        json.dumps(ti.xcom),
        repr(task),
        repr(vars(task)),
        json.dumps(managed_agents_emulator.state()),
        capsys.readouterr().out,
        caplog.text,
    ]
    assert all(SENTINEL not in text for text in seen)
    # Unchanged: nothing sent; a new secret in the connection: one update, the new one.
    before = writes(managed_agents_emulator)
    assert run_task(credential(vault_id))[1].xcom["action"] == "unchanged"
    assert writes(managed_agents_emulator) == before
    monkeypatch.setenv("AIRFLOW_CONN_GITHUB_TOKEN", json.dumps({"conn_type": "generic", "password": SENTINEL + "-2"}))
    assert run_task(credential(vault_id))[1].xcom["action"] == "updated"
    after = writes(managed_agents_emulator)
    assert sum(after.values()) - sum(before.values()) == 1


def test_a_secret_given_in_auth_or_a_missing_one_is_refused_without_echoing_it(
    hook: ManagedAgentsHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline = ManagedAgentsEnsureVaultCredentialOperator(
        task_id="c",
        vault_id="vlt_x",
        auth={"type": "static_bearer", "mcp_server_url": "https://m", "token": SENTINEL},
        secrets={"token": "connection:github_token"},
    )
    with pytest.raises(errors.ManagedAgentsValidationError, match="give secrets through `secrets`") as caught:
        run_task(inline)
    assert SENTINEL not in str(caught.value)
    missing = ManagedAgentsEnsureVaultCredentialOperator(
        task_id="c",
        vault_id="vlt_x",
        auth={"type": "static_bearer", "mcp_server_url": "https://m"},
        secrets={"token": "variable:blank_secret"},
    )
    # Set but empty (an unset Variable reads the same in a task; outside one Airflow 3.0 cannot ask).
    monkeypatch.setenv("AIRFLOW_VAR_BLANK_SECRET", "")
    with pytest.raises(errors.ManagedAgentsValidationError, match="'variable:blank_secret' holds no secret"):
        run_task(missing)


def test_archive_on_request(hook: ManagedAgentsHook, managed_agents_emulator: Any) -> None:
    made = provision()
    archived = {}
    for task in stack():
        task.archive = True
        archived[task.task_id] = run_task(task)[1].xcom["action"]
    assert set(archived.values()) == {"archived"}
    assert hook.get_agent(made["agent"][0]).is_archived


# --- the rollout -------------------------------------------------------------------------------------


@pytest.fixture
def time(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch, hook: ManagedAgentsHook) -> EmulatorClock:
    return use_clock(monkeypatch, EmulatorClock(managed_agents_emulator))  # type: ignore[return-value]


def deployment_on_version_1(hook: ManagedAgentsHook) -> tuple[str, str]:
    agent = hook.create_agent(name="triage", model="claude-sonnet-4-6", system="v1")
    hook.update_agent(agent.id, system="v2", version=1)
    made = hook.create_deployment(
        name="triage",
        agent={"type": "agent", "id": agent.id, "version": 1},
        environment_id="env_demo",
        initial_events=[MESSAGE],
    )
    return made.id, agent.id


def rollout(deployment_id: str, agent_id: str, **kwargs: Any) -> ManagedAgentsRolloutDeploymentOperator:
    kwargs.setdefault("poll_interval", 2)
    return ManagedAgentsRolloutDeploymentOperator(
        task_id="rollout", deployment_id=deployment_id, agent={"type": "agent", "id": agent_id, "version": 2}, **kwargs
    )


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_a_passing_smoke_leaves_the_new_pin(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock, deferrable: bool
) -> None:
    deployment_id, agent_id = deployment_on_version_1(hook)
    ti = FakeTI()
    assert finish_deferred(rollout(deployment_id, agent_id, deferrable=deferrable), context(ti)) == deployment_id
    assert hook.get_deployment(deployment_id).agent.version == 2
    assert ti.xcom["agent_pin"] == {"type": "agent", "id": agent_id, "version": 2}
    assert ti.xcom["previous_agent_pin"]["version"] == 1 and "rolled_back_to" not in ti.xcom
    assert ti.xcom["stop_reason"] == "end_turn"


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_a_failed_smoke_restores_the_exact_pin_and_fails_with_the_smokes_error(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock, deferrable: bool
) -> None:
    deployment_id, agent_id = deployment_on_version_1(hook)
    before = hook.get_deployment(deployment_id)
    managed_agents_emulator.session_script(deployment_id, ending="refusal")
    ti, store = FakeTI(), TaskStateStore()
    with pytest.raises(errors.SessionRefusedError):
        finish_deferred(rollout(deployment_id, agent_id, deferrable=deferrable), context(ti, store))
    after = hook.get_deployment(deployment_id)
    assert after.agent == before.agent
    assert after.model_dump(exclude={"updated_at"}) == before.model_dump(exclude={"updated_at"})
    assert ti.xcom["rolled_back_to"] == {"type": "agent", "id": agent_id, "version": 1}
    assert store.values == {}  # nothing half done for a retry to find


def test_a_run_error_of_the_smoke_rolls_back_too(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock
) -> None:
    deployment_id, agent_id = deployment_on_version_1(hook)
    managed_agents_emulator.force_next_run_error(deployment_id, "session_rate_limited_error")
    with pytest.raises(errors.SessionRateLimitedRunError):
        rollout(deployment_id, agent_id).execute(context(FakeTI()))
    assert hook.get_deployment(deployment_id).agent.version == 1


def test_a_retry_after_a_crash_mid_smoke_carries_on_with_the_same_smoke_run(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_managed_agents.waiting import clock

    deployment_id, agent_id = deployment_on_version_1(hook)
    store = TaskStateStore()

    class WorkerDied(BaseException):
        pass

    def dies(seconds: float) -> None:
        raise WorkerDied

    monkeypatch.setattr(clock, "sleep", dies)
    with pytest.raises(WorkerDied):
        rollout(deployment_id, agent_id, on_kill_session="none").execute(context(FakeTI(1), store))
    assert hook.get_deployment(deployment_id).agent.version == 2  # pinned, smoke in flight
    monkeypatch.setattr(clock, "sleep", time.sleep)
    second = FakeTI(2)
    assert rollout(deployment_id, agent_id).execute(context(second, store)) == deployment_id
    runs = [r for r in managed_agents_emulator.state()["runs"] if r["deployment_id"] == deployment_id]
    assert len(runs) == 1 and second.xcom["previous_agent_pin"]["version"] == 1 and store.values == {}


def test_a_deployment_already_on_the_version_is_left_alone(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock
) -> None:
    deployment_id, agent_id = deployment_on_version_1(hook)
    hook.update_deployment(deployment_id, agent={"type": "agent", "id": agent_id, "version": 2})
    before = writes(managed_agents_emulator)
    ti = FakeTI()
    assert rollout(deployment_id, agent_id).execute(context(ti)) == deployment_id
    assert writes(managed_agents_emulator) == before and ti.xcom["agent_pin"]["version"] == 2
