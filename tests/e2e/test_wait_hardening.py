"""What users hit in their own DAGs, run for real with `airflow dags test` against the emulator:
retries that must not adopt another task's run, an explicit idempotency key across DAG runs, the
same failures in every sensor mode, and a deferred wait that ends at its own timeout."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def hook(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> ManagedAgentsHook:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    return ManagedAgentsHook()


def runs_of(emulator: Any, deployment_id: str) -> list[dict[str, Any]]:
    return [r for r in emulator.state()["runs"] if r["deployment_id"] == deployment_id]


def test_a_retry_never_adopts_another_tasks_run(run_dag: Any, managed_agents_emulator: Any, airflow_db: Path) -> None:
    result = run_dag("retry_adoption", test_dags=True)
    assert result.state == "success", result
    deployment_id = result.xcom[("create", "return_value")]
    smoke_run = result.xcom[("smoke", "return_value")]
    real_run = result.xcom[("real", "return_value")]
    runs = runs_of(managed_agents_emulator, deployment_id)
    # smoke's run, real's rate-limited first try, real's second try: three runs, real's is new.
    assert [r["error"]["type"] if r["error"] else "session" for r in runs] == [
        "session",
        "session_rate_limited_error",
        "session",
    ]
    assert real_run == runs[2]["id"] and real_run != smoke_run
    assert "Adopted run" not in result.output
    assert "XCom not found" not in result.output  # the failed first try has no spurious extra-link error
    with sqlite3.connect(airflow_db) as db:
        rendered = db.execute(
            "select rendered_fields from rendered_task_instance_fields where dag_id = ? and task_id = ?",
            ("retry_adoption", "update"),
        ).fetchall()
    assert rendered and all("UNSET" not in fields and "NOT_GIVEN" not in fields for (fields,) in rendered)


def test_an_explicit_idempotency_key_makes_one_deployment_across_dag_runs(
    run_dag: Any, managed_agents_emulator: Any
) -> None:
    first = run_dag("keyed_create", test_dags=True, logical_date="2026-05-01")
    assert first.state == "success", first
    second = run_dag("keyed_create", test_dags=True, logical_date="2026-05-01")
    assert second.state == "success", second
    marked = [
        d
        for d in managed_agents_emulator.state()["deployments"]
        if d["metadata"].get("airflow_idempotency_key") == "nightly-2026-05-01"
    ]
    assert len(marked) == 1
    assert f"Adopted deployment {marked[0]['id']}" in second.output
    posts = managed_agents_emulator.request_counts()["by_endpoint"].get("POST /v1/deployments", 0)
    assert posts == 1


def test_every_sensor_mode_fails_the_same_way(
    run_dag: Any, hook: ManagedAgentsHook, managed_agents_emulator: Any, tmp_path: Path
) -> None:
    deployment = hook.create_deployment(
        agent="agent_demo",
        environment_id="env_demo",
        name="never runs",
        initial_events=[{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
    )
    managed_agents_emulator.force_next_run_error(deployment.id, "vault_archived_error", "vault vlt_x is archived")
    failed_run = hook.run_deployment(deployment.id)
    outcomes = tmp_path / "outcomes.jsonl"
    conf = {
        "deployment_id": deployment.id,
        "failed_run_id": failed_run.id,
        "created_after": pendulum.now("UTC").isoformat(),
    }
    outputs = {}
    for mode in ("poke", "reschedule", "deferrable"):
        result = run_dag(
            f"wait_outcomes_{mode}", conf=conf, test_dags=True, env={"AIRFLOW_VAR_OUTCOMES_FILE": str(outcomes)}
        )
        assert set(result.task_states.values()) == {"failed"}, result
        outputs[mode] = result.output
    recorded: dict[str, dict[str, tuple[str, str]]] = {}
    for line in outcomes.read_text().splitlines():
        entry = json.loads(line)
        # Each request has its own request-id; everything else must be identical.
        message = re.sub(r"request-id req_\w+", "request-id <id>", entry["message"])
        recorded.setdefault(entry["task"], {})[entry["mode"]] = (entry["kind"], message)
    expected = {
        "run_error": "VaultArchivedRunError",
        "missing_run": "ManagedAgentsNotFoundError",
        "bad_argument": "ManagedAgentsValidationError",
        "timeout": "AirflowSensorTimeout",
    }
    for task_id, kind in expected.items():
        by_mode = recorded[task_id]
        assert set(by_mode) == {"poke", "reschedule", "deferrable"}, (task_id, by_mode)
        assert len(set(by_mode.values())) == 1, (task_id, by_mode)  # same class, same message
        assert by_mode["poke"][0] == kind, (task_id, by_mode)
    assert recorded["timeout"]["deferrable"][1].startswith(
        f"Timed out after 4 s waiting for the next manual run of deployment {deployment.id}"
    )
    # Before deferring, the sensor says what it waits for and when it looks next.
    assert f"Waiting for the next manual run of deployment {deployment.id}" in outputs["deferrable"]
    assert "next look at" in outputs["deferrable"]
    assert "TaskDeferralError" not in outputs["deferrable"]
