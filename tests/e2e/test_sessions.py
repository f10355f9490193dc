"""Following sessions to their end in real DAGs, `airflow dags test` against the emulator: the
example pipeline step, every ending in the worker and deferred, a scheduled fire gated to the
end of its session, and a killed task interrupting the session it started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

pytestmark = pytest.mark.timeout(600)

ENDINGS = {
    "requires_action": "SessionRequiresActionError",
    "retries_exhausted": "SessionRetriesExhaustedError",
    "budget_reached": "SessionBudgetReachedError",
    "refusal": "SessionRefusedError",
    "terminated": "SessionTerminatedError",
    "outcome_failed": "SessionOutcomeNotMetError",
}


@pytest.fixture
def hook(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> ManagedAgentsHook:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    return ManagedAgentsHook()


def test_the_agent_as_a_pipeline_step_example(run_dag: Any, managed_agents_emulator: Any) -> None:
    result = run_dag("agent_as_pipeline_step")
    assert result.state == "success", result
    published = result.xcom[("publish_review", "return_value")]
    assert published["verdict"] == "satisfied"
    assert published["review"].startswith("Done: Review today's load")
    assert published["cost_usd"] > 0
    assert result.xcom[("review_load", "stop_reason")] == "end_turn"
    assert result.xcom[("review_load", "outcome")][0]["result"] == "satisfied"
    assert "Deferring: waiting for session" in result.output  # followed in the triggerer


@pytest.mark.parametrize("mode", ["worker", "deferred"])
def test_every_ending_fails_with_its_class_and_success_hands_the_work_on(
    run_dag: Any, tmp_path: Path, mode: str
) -> None:
    outcomes = tmp_path / "outcomes.jsonl"
    result = run_dag(f"session_endings_{mode}", test_dags=True, env={"AIRFLOW_VAR_OUTCOMES_FILE": str(outcomes)})
    assert result.task_states["run_success"] == "success", result
    handed_on = result.xcom[("after_success", "return_value")]
    assert handed_on["final_message"] == "All clear."
    assert handed_on["outcome"][0]["result"] == "satisfied" and handed_on["usage"]["output_tokens"] > 0
    recorded = {e["task"]: e for e in map(json.loads, outcomes.read_text().splitlines())}
    for ending, kind in ENDINGS.items():
        assert result.task_states[f"run_{ending}"] == "failed", (ending, result)
        assert recorded[f"run_{ending}"]["kind"] == kind, recorded[f"run_{ending}"]
        assert result.xcom[(f"run_{ending}", "session_status")] in ("idle", "terminated")  # XCom on failure too
        assert result.task_states[f"after_{ending}"] == "upstream_failed"
    assert "TaskDeferralError" not in result.output


def test_a_scheduled_fire_is_gated_to_the_end_of_its_session(
    run_dag: Any, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    from test_example_dags import once_waiting  # type: ignore[import-not-found]

    made = hook.create_deployment(
        name="nightly",
        agent="agent_demo",
        environment_id="env_demo",
        initial_events=[{"type": "user.message", "content": [{"type": "text", "text": "nightly review"}]}],
        schedule={"type": "cron", "expression": "0 3 * * *", "timezone": "UTC"},
    )
    managed_agents_emulator.control("POST", f"deployments/{made.id}/session_script", {"turn_seconds": 2})
    once_waiting(managed_agents_emulator, lambda: managed_agents_emulator.fire(made.id), looks=2)
    conf = {"deployment_id": made.id, "created_after": pendulum.now("UTC").isoformat()}
    result = run_dag("gate_on_session_deferrable", conf=conf, test_dags=True)
    assert result.state == "success", result
    assert result.xcom[("use_the_work", "return_value")] == "Done: nightly review"
    assert result.xcom[("gate", "deployment_run")]["trigger_context"]["type"] == "schedule"


def test_killing_a_task_that_follows_its_session_interrupts_the_session(
    airflow_db: Path, managed_agents_emulator: Any, tmp_path: Path
) -> None:
    import sys

    from conftest import TEST_DAGS  # type: ignore[import-not-found]

    env = dict(os.environ)
    env.update(
        AIRFLOW__CORE__DAGS_FOLDER=str(TEST_DAGS),
        AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT=managed_agents_emulator.connection_json(),
        AIRFLOW_VAR_EMULATOR_URL=managed_agents_emulator.base_url,
    )
    airflow = str(Path(sys.executable).parent / "airflow")
    log = tmp_path / "dags-test.log"  # a file, not a pipe nobody reads while the test polls
    with log.open("wb") as out:
        process = subprocess.Popen(
            [airflow, "dags", "test", "session_kill"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 240
        session: dict[str, Any] | None = None
        while time.monotonic() < deadline and process.poll() is None:  # until the task follows a running session
            sessions = managed_agents_emulator.state()["sessions"]
            looks = managed_agents_emulator.request_counts()["by_endpoint"].get("GET /v1/sessions/{session_id}", 0)
            if sessions and sessions[0]["status"] == "running" and looks:
                session = sessions[0]
                break
            time.sleep(0.2)
        assert session is not None, "the task never followed a running session"
        process.send_signal(signal.SIGTERM)  # what the executor does to a task it kills
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text(errors="replace")
    events = [e["type"] for e in managed_agents_emulator.state()["sessions"][0]["events"]]
    assert "user.interrupt" in events, output[-4000:]
    assert managed_agents_emulator.state()["sessions"][0]["status"] == "idle"
