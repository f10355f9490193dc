"""The example DAGs and the sensor, run for real by `airflow dags test` against the emulator."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pendulum
import pytest

from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

pytestmark = pytest.mark.timeout(400)


def control(emulator: Any, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(method, f"{emulator.base_url}/_emulator/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json() if response.content else None


def state(emulator: Any) -> dict[str, Any]:
    return control(emulator, "GET", "state")


@pytest.fixture
def hook(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> ManagedAgentsHook:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    return ManagedAgentsHook()


def new_deployment(hook: ManagedAgentsHook, *, schedule: str | None = None) -> str:
    params: dict[str, Any] = {
        "agent": "agent_demo",
        "environment_id": "env_demo",
        "name": "e2e",
        "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
    }
    if schedule:
        params["schedule"] = {"type": "cron", "expression": schedule, "timezone": "UTC"}
    return hook.create_deployment(params).id


def once_waiting(emulator: Any, action: Any, *, looks: int = 1, deadline: float = 240) -> threading.Thread:
    """Run ``action`` once the sensor under test has made ``looks`` runs queries: an observable
    condition (the emulator's own count), not a guess at how long ``airflow dags test`` takes
    to reach the sensor on a loaded machine."""

    def watch() -> None:
        give_up = time.monotonic() + deadline
        while emulator.request_counts()["by_endpoint"].get("GET /v1/deployment_runs", 0) < looks:
            if time.monotonic() > give_up:
                return
            time.sleep(0.1)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_example_dags_import_without_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(Path(__file__).resolve().parents[2] / "example_dags"))
    assert bag.import_errors == {}
    expected = {"deployment_lifecycle", "data_pipeline_trigger", "agent_version_rollout", "agent_as_pipeline_step"}
    expected |= {"react_to_agent_runs", "run_agent_and_announce", "after_agent_run", "provision_agent_environment"}
    expected |= {"react_to_pushed_runs", "after_pushed_sessions_end"}
    expected |= {"agent_report_to_object_storage"}
    expected |= {"agent_with_approval"}  # Airflow >= 3.1 (these tests run on 3.3)
    assert expected <= set(bag.dag_ids)


def test_deployment_lifecycle_end_to_end(run_dag: Any, managed_agents_emulator: Any) -> None:
    result = run_dag("deployment_lifecycle")
    assert result.state == "success", result
    assert set(result.task_states.values()) == {"success"}, result
    deployment_id = result.xcom[("create_deployment", "return_value")]
    assert deployment_id.startswith("depl_")
    session_id = result.xcom[("wait_for_session", "session_id")]
    assert session_id.startswith("sesn_")
    assert result.xcom[("run_now", "session_id")] == session_id
    assert result.xcom[("create_deployment", "deployment")]["metadata"]["airflow_task_id"] == "create_deployment"
    world = state(managed_agents_emulator)
    (deployment,) = [d for d in world["deployments"] if d["id"] == deployment_id]
    assert deployment["archived_at"] is not None
    runs = [r for r in world["runs"] if r["deployment_id"] == deployment_id]
    assert [r["trigger_context"]["type"] for r in runs] == ["manual"]


def test_data_pipeline_hands_the_session_downstream(run_dag: Any) -> None:
    result = run_dag("data_pipeline_trigger")
    assert result.state == "success", result
    assert result.task_states["publish_session"] == "success", result
    assert result.task_states["handle_run_failure"] == "skipped", result
    assert result.xcom[("publish_session", "return_value")] == result.xcom[("run_agent", "session_id")]


def test_a_typed_run_error_fails_the_run_and_takes_the_failure_branch(
    run_dag: Any, managed_agents_emulator: Any
) -> None:
    # The deployment can still be created; starting a session then fails with a typed run error.
    control(managed_agents_emulator, "POST", "organization", {"disabled": True})
    result = run_dag("data_pipeline_trigger")
    assert result.state == "failed", result
    assert result.task_states["run_agent"] == "failed", result
    assert result.task_states["publish_session"] == "upstream_failed", result
    assert result.task_states["handle_run_failure"] == "success", result
    assert result.task_states["archive"] == "success", result  # the teardown still ran
    assert result.xcom[("handle_run_failure", "return_value")] == "organization_disabled_error"
    assert "OrganizationDisabledRunError" in result.output
    # Terminal: failed at once, no retry, so exactly one run was recorded.
    world = state(managed_agents_emulator)
    assert len([r for r in world["runs"] if r["error"]]) == 1


WRITES = ("POST ", "PUT ", "PATCH ", "DELETE ")


def writes(emulator: Any) -> dict[str, int]:
    counts = emulator.request_counts()["by_endpoint"]
    return {k: v for k, v in counts.items() if k.startswith(WRITES) and " /v1/" in k}


def test_provisioning_builds_the_stack_once_and_a_rerun_writes_nothing(
    run_dag: Any, managed_agents_emulator: Any
) -> None:
    token = {"AIRFLOW_CONN_GITHUB_MCP_TOKEN": '{"conn_type": "generic", "password": "ghp_example"}'}
    first = run_dag("provision_agent_environment", env=token, timeout=300)
    assert first.state == "success", first
    assert first.task_states["smoke_run"] == "success", first
    actions = {task: first.xcom[(task, "action")] for task in ("environment", "vault", "agent", "memory_store")}
    assert actions == dict.fromkeys(actions, "created")
    assert first.xcom[("github_credential", "action")] == "created"
    assert first.xcom[("deployment", "action")] == "created"
    pin = first.xcom[("agent", "agent_pin")]
    world = state(managed_agents_emulator)
    (deployment,) = [d for d in world["deployments"] if d["id"] == first.xcom[("deployment", "return_value")]]
    assert deployment["agent"] == pin
    assert deployment["vault_ids"] == [first.xcom[("vault", "return_value")]]
    assert [r["trigger_context"]["type"] for r in world["runs"] if r["deployment_id"] == deployment["id"]] == [
        "manual"
    ]  # the smoke run, once

    httpx.delete(f"{managed_agents_emulator.base_url}/_emulator/requests", timeout=10).raise_for_status()
    second = run_dag("provision_agent_environment", env=token, timeout=300)
    assert second.state == "success", second
    assert writes(managed_agents_emulator) == {}
    assert {second.xcom[(t, "action")] for t in ("environment", "vault", "github_credential", "agent")} == {"unchanged"}
    assert second.xcom[("deployment", "action")] == "adopted"
    assert second.task_states["smoke_run"] == "skipped", second
    assert second.task_states["the_work"] == "success", second
    assert second.xcom[("agent", "agent_pin")] == pin


def test_agent_version_rollout_pins_the_new_version(run_dag: Any, managed_agents_emulator: Any) -> None:
    control(managed_agents_emulator, "POST", "agents/agent_demo/versions", {})
    result = run_dag("agent_version_rollout", conf={"agent_version": 2})
    assert result.state == "success", result
    assert result.xcom[("roll_out", "agent_pin")] == {"type": "agent", "id": "agent_demo", "version": 2}
    assert result.xcom[("roll_out", "previous_agent_pin")]["version"] == 1
    assert ("roll_out", "rolled_back_to") not in result.xcom
    assert result.xcom[("report", "return_value")] == "live on version 2"
    deployment_id = result.xcom[("support_triage", "return_value")]
    (deployment,) = [d for d in state(managed_agents_emulator)["deployments"] if d["id"] == deployment_id]
    assert deployment["agent"]["version"] == 2


def test_a_failed_smoke_run_rolls_back_to_the_exact_pin(
    run_dag: Any, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    control(managed_agents_emulator, "POST", "agents/agent_demo/versions", {})
    deployment = hook.create_deployment(
        {
            "agent": {"type": "agent", "id": "agent_demo", "version": 1},
            "environment_id": "env_demo",
            "name": "Support triage",
            "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
            "metadata": {"airflow_idempotency_key": "support-triage"},
        }
    )
    before = hook.get_deployment(deployment.id)
    control(managed_agents_emulator, "POST", "sessions/next_script", {"ending": "refusal"})
    result = run_dag("agent_version_rollout", conf={"agent_version": 2})
    assert result.state == "failed", result
    assert result.task_states["roll_out"] == "failed", result
    assert result.task_states["report"] == "success", result
    assert result.xcom[("support_triage", "action")] == "adopted"
    assert result.xcom[("roll_out", "rolled_back_to")] == before.agent.model_dump(mode="json")
    assert result.xcom[("report", "return_value")] == "smoke failed: still on version 1"
    assert "SessionRefusedError" in result.output
    after = hook.get_deployment(deployment.id)
    assert after.agent == before.agent


@pytest.mark.parametrize("mode", ["deferrable", "poke", "reschedule"])
def test_sensor_passes_on_a_manual_run(
    run_dag: Any, hook: ManagedAgentsHook, managed_agents_emulator: Any, mode: str
) -> None:
    deployment_id = new_deployment(hook)
    since = pendulum.now("UTC")
    # Deferrable: the sensor's own look, then the trigger's; the run comes while the trigger waits.
    looks = 2 if mode == "deferrable" else 1
    once_waiting(managed_agents_emulator, lambda: hook.run_deployment(deployment_id), looks=looks)
    conf = {"deployment_id": deployment_id, "trigger_type": "manual", "created_after": since.isoformat()}
    result = run_dag(f"wait_for_run_{mode}", conf=conf, test_dags=True)
    assert result.state == "success", result
    session_id = result.xcom[("gate", "session_id")]
    assert session_id.startswith("sesn_")
    assert result.xcom[("after_gate", "return_value")] == session_id


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
def test_sensor_passes_on_a_scheduled_fire(
    run_dag: Any, hook: ManagedAgentsHook, managed_agents_emulator: Any, mode: str
) -> None:
    # A daily schedule never fires by itself during the test; the control endpoint fires it.
    deployment_id = new_deployment(hook, schedule="0 3 * * *")
    since = pendulum.now("UTC")
    once_waiting(
        managed_agents_emulator,
        lambda: control(managed_agents_emulator, "POST", f"deployments/{deployment_id}/fire", {}),
        looks=2 if mode == "deferrable" else 1,
    )
    conf = {"deployment_id": deployment_id, "trigger_type": None, "created_after": since.isoformat()}
    result = run_dag(f"wait_for_run_{mode}", conf=conf, test_dags=True)
    assert result.state == "success", result
    run = result.xcom[("gate", "deployment_run")]
    assert run["trigger_context"]["type"] == "schedule"


def assert_gate_failed_with(result: Any, error_class: str) -> None:
    """The sensor failed with ``error_class`` and its downstream task never ran."""
    assert result.task_states["gate"] == "failed", result
    assert result.task_states["after_gate"] == "upstream_failed", result
    assert error_class in result.output


def past_the_jitter_window() -> None:
    """Start a per-minute wait well after a fire, so the wait's first fire is the next one."""
    second = pendulum.now("UTC").second
    if second < 15:
        time.sleep(15 - second)


def test_a_schedule_aware_deferral_sleeps_to_the_fire_in_three_requests(
    run_dag: Any, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    """The sensor looks once, defers until the next listed fire plus jitter, and the trigger's
    one look then finds the run the emulator's scheduler made: 3 requests in all."""
    deployment_id = new_deployment(hook, schedule="* * * * *")
    past_the_jitter_window()
    before = managed_agents_emulator.request_counts()["total"]
    conf = {
        "deployment_id": deployment_id,
        "trigger_type": "schedule",
        "created_after": pendulum.now("UTC").isoformat(),
    }
    result = run_dag("wait_for_run_deferrable", conf=conf, test_dags=True)
    assert result.state == "success", result
    assert result.xcom[("gate", "deployment_run")]["trigger_context"]["type"] == "schedule"
    requests = managed_agents_emulator.request_counts()["total"] - before
    assert requests <= 3, managed_agents_emulator.request_counts()["by_endpoint"]


def test_an_auto_pause_while_waiting_fails_at_the_failed_fire(
    run_dag: Any, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    """The emulator's clock stands still until the sensor has looked: then the vault goes and
    the next fire happens (and fails), however long `airflow dags test` took to get there."""
    deployment_id = new_deployment(hook, schedule="* * * * *")
    control(managed_agents_emulator, "POST", "vaults", {"id": "vlt_going"})
    hook.update_deployment(deployment_id, {"vault_ids": ["vlt_going"]})
    managed_agents_emulator.freeze_clock(True)
    since = pendulum.parse(managed_agents_emulator.state()["now"])

    def fail_the_next_fire() -> None:
        control(managed_agents_emulator, "DELETE", "vaults/vlt_going")
        next_fire = since.replace(second=0, microsecond=0).add(minutes=1)
        managed_agents_emulator.advance_clock((next_fire - since).total_seconds() + 2)

    once_waiting(managed_agents_emulator, fail_the_next_fire)
    conf = {"deployment_id": deployment_id, "trigger_type": "schedule", "created_after": since.isoformat()}
    result = run_dag("wait_for_run_poke", conf=conf, test_dags=True)
    assert_gate_failed_with(result, "VaultNotFoundRunError")
    assert hook.get_deployment(deployment_id).status == "paused"


def test_the_reference_time_defaults_to_the_sensors_first_start(
    run_dag: Any, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    """No created_after: a run made after the sensor started counts, also across reschedules."""
    deployment_id = new_deployment(hook)
    hook.run_deployment(deployment_id)  # before the sensor: must not count
    once_waiting(managed_agents_emulator, lambda: hook.run_deployment(deployment_id), looks=2)  # after a reschedule
    result = run_dag(
        "wait_for_run_reschedule", conf={"deployment_id": deployment_id, "trigger_type": "manual"}, test_dags=True
    )
    assert result.state == "success", result
    runs = list(hook.list_deployment_runs(deployment_id=deployment_id))
    newest = max(runs, key=lambda r: r.created_at)
    assert result.xcom[("gate", "return_value")] == newest.id


def test_a_typed_error_fails_the_sensor_and_its_downstream(
    run_dag: Any, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = new_deployment(hook)
    since = pendulum.now("UTC")
    control(managed_agents_emulator, "POST", "organization", {"disabled": True})
    once_waiting(managed_agents_emulator, lambda: hook.run_deployment(deployment_id), looks=2)
    conf = {"deployment_id": deployment_id, "trigger_type": "manual", "created_after": since.isoformat()}
    result = run_dag("wait_for_run_deferrable", conf=conf, test_dags=True)
    assert_gate_failed_with(result, "OrganizationDisabledRunError")


def test_an_already_auto_paused_deployment_fails_a_scheduled_wait_at_once(
    run_dag: Any, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = new_deployment(hook, schedule="0 3 * * *")
    control(managed_agents_emulator, "POST", "vaults", {"id": "vlt_gone"})
    hook.update_deployment(deployment_id, {"vault_ids": ["vlt_gone"]})
    control(managed_agents_emulator, "DELETE", "vaults/vlt_gone")
    control(managed_agents_emulator, "POST", f"deployments/{deployment_id}/fire", {})
    paused = hook.get_deployment(deployment_id)
    assert paused.status == "paused"
    managed_agents_emulator.control("DELETE", "requests")
    conf = {
        "deployment_id": deployment_id,
        "trigger_type": "schedule",
        "created_after": pendulum.now("UTC").isoformat(),
    }
    result = run_dag("wait_for_run_deferrable", conf=conf, test_dags=True)
    assert result.task_states["gate"] == "failed", result
    assert "DeploymentPausedError" in result.output
    assert "vault_not_found_error" in result.output
    # Failed on its first look (one runs read, one deployment read), never deferred to wait.
    counts = managed_agents_emulator.request_counts()["by_endpoint"]
    assert counts.get("GET /v1/deployment_runs") == 1 and counts.get("GET /v1/deployments/{deployment_id}") == 1
    assert "Deferring" not in result.output


def test_a_run_task_with_a_managed_agents_outlet_announces_its_ids(
    run_dag: Any, hook: ManagedAgentsHook, airflow_db: Path
) -> None:
    """`run_agent_and_announce` from react_to_agent_runs.py: the asset event Airflow recorded
    for the task's outlet carries the deployment, run and session it made."""
    import json
    import sqlite3

    deployment_id = new_deployment(hook)
    result = run_dag("run_agent_and_announce", conf={"deployment_id": deployment_id})
    assert result.state == "success", result
    (run,) = hook.list_deployment_runs_page(deployment_id=deployment_id).data  # exactly one run
    with sqlite3.connect(airflow_db) as db:
        rows = db.execute(
            "select e.extra, e.source_dag_id from asset_event e join asset a on a.id = e.asset_id "
            "where a.name = 'agent_run_done' order by e.id desc limit 1"
        ).fetchall()
    assert rows, "no asset event for the outlet"
    extra, source = json.loads(rows[0][0]), rows[0][1]
    assert source == "run_agent_and_announce"
    assert extra == {"deployment_id": deployment_id, "deployment_run_id": run.id, "session_id": run.session_id}
