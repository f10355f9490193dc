"""The seams between a run task, its trigger and Airflow, in real DAGs under `airflow dags test`
against the emulator: links after a deferral, a task that gives up on the session it started,
a session that vanishes while the trigger waits (the DAGs: ``tests/e2e/dags/seams.py``)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(600)


def sessions(emulator: Any) -> list[dict[str, Any]]:
    return list(emulator.state()["sessions"])


def test_links_read_what_the_task_recorded_after_a_deferral_and_without_a_wait(run_dag: Any) -> None:
    result = run_dag("seam_links", test_dags=True)
    assert result.state == "success", result
    for task_id in ("followed", "started"):
        deployment_url = result.xcom[(task_id, "deployment_url")]
        session_url = result.xcom[(task_id, "session_url")]
        assert deployment_url.endswith(f"/deployments/{result.xcom[('create_links', 'return_value')]}")
        assert session_url.endswith(f"/sessions/{result.xcom[(task_id, 'session_id')]}")
        assert result.xcom[(task_id, "_link_ManagedAgentsDeploymentLink")] == deployment_url, task_id
        assert result.xcom[(task_id, "_link_ManagedAgentsSessionLink")] == session_url, task_id


@pytest.mark.parametrize(
    ("how", "raised"),
    [
        ("timeout_worker", "AirflowSensorTimeout"),
        ("timeout_deferred", "AirflowSensorTimeout"),
        ("execution_timeout_worker", "AirflowTaskTimeout"),
    ],
)
def test_a_task_that_gives_up_on_the_session_it_started_interrupts_it(
    run_dag: Any, managed_agents_emulator: Any, how: str, raised: str
) -> None:
    result = run_dag(f"seam_give_up_{how}", test_dags=True)
    assert result.task_states["run"] == "failed", result
    assert raised in result.output, result
    (session,) = sessions(managed_agents_emulator)
    events = [e["type"] for e in session["events"]]
    assert "user.interrupt" in events, (how, events, result.output[-3000:])
    assert session["status"] == "idle"  # the interrupt ended the turn: nothing runs on, nothing costs


def test_a_session_that_vanishes_while_deferred_fails_with_the_apis_typed_error(
    run_dag: Any, managed_agents_emulator: Any
) -> None:
    vanished = threading.Event()

    def make_it_vanish() -> None:  # once the run made its session, as a deleted session or a revoked key would
        give_up = time.monotonic() + 300
        while time.monotonic() < give_up:
            if sessions(managed_agents_emulator):
                managed_agents_emulator.reset()
                vanished.set()
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=make_it_vanish, daemon=True)
    watcher.start()
    result = run_dag("seam_vanished", test_dags=True)
    watcher.join(timeout=10)
    assert vanished.is_set()
    assert result.task_states["run"] == "failed", result
    assert "ManagedAgentsNotFoundError" in result.output and "404 not_found_error" in result.output, result
    assert "KeyError" not in result.output
