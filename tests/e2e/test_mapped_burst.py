"""A burst of 200 mapped run tasks (`airflow dags test`) against the emulator limited to 60
writes a minute: every task succeeds, no run is made twice, and the runs go out at the pace the
limit allows (the process's tasks share one request budget: a 429 pauses them all).

The emulator's clock is frozen and moves one second for each 429 it gives (the one token the
retry needs): the limit is met however fast or slow the machine runs the tasks, and the runs'
times show the pace the limit allows, not the machine's."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.models.base import parse_timestamp

COUNT = 200
WRITES_PER_MINUTE = 60


@pytest.mark.timeout(900)
def test_a_burst_of_mapped_run_tasks_rides_out_the_write_limit(
    run_dag: Any, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = managed_agents_emulator
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", emulator.connection_json())
    deployment = ManagedAgentsHook().create_deployment(
        name="burst",
        agent="agent_demo",
        environment_id="env_demo",
        initial_events=[{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
    )
    emulator.freeze_clock(True)
    emulator.control("POST", "rate_limit", {"writes_per_minute": WRITES_PER_MINUTE})  # a minute's worth at once
    emulator.control("DELETE", "requests")
    done = threading.Event()
    clock = threading.Thread(target=a_second_per_429, args=(emulator, done), daemon=True)
    clock.start()
    started = time.monotonic()
    try:
        conf = {"deployment_id": deployment.id, "count": COUNT}
        result = run_dag("mapped_burst", conf=conf, test_dags=True, timeout=840)
    finally:
        done.set()
        clock.join(timeout=30)
    wall = time.monotonic() - started
    assert result.state == "success", result
    assert set(result.task_states.values()) == {"success"}
    runs = [r for r in emulator.state()["runs"] if r["deployment_id"] == deployment.id]
    assert len(runs) == COUNT  # every task's run, none twice
    assert len({r["session_id"] for r in runs}) == COUNT
    counts = emulator.request_counts()
    limited = counts["rate_limited"]["writes"]
    assert limited > 0  # the limit was met, and ridden out
    # The pace the limit allows: 60 at once, then one a second (of the emulator's clock).
    created = sorted(parse_timestamp(r["created_at"]) for r in runs)
    span = (created[-1] - created[0]).total_seconds()
    assert span >= (COUNT - WRITES_PER_MINUTE - 1) * 60 / WRITES_PER_MINUTE - 1
    print(f"\n{COUNT} mapped run tasks: wall {wall:.0f} s, runs made over {span:.0f} s, {limited} x 429 ridden out")


def a_second_per_429(emulator: Any, done: threading.Event) -> None:
    """Move the frozen clock one second for each write the emulator refused: the token its retry
    needs comes back, and no sooner."""
    seen = 0
    while not done.wait(0.05):
        limited = emulator.request_counts()["rate_limited"]["writes"]
        if limited > seen:
            emulator.advance_clock(limited - seen)
            seen = limited
