"""The schedule-aware wait, counted at the emulator: at most 3 API requests per scheduled fire.

Time is simulated as in ``bench/waiting_cost.py`` (whose helpers this reuses): each sleep
advances the emulator's clock, whose scheduler really fires the run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.waiting import RunWait

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from waiting_cost import VirtualTime, just_after_a_fire, wait


@pytest.mark.parametrize("cron", ["* * * * *", "0 * * * *"], ids=["per-minute", "hourly"])
def test_a_scheduled_wait_costs_at_most_three_requests_per_fire(
    managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch, cron: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    hook = ManagedAgentsHook()
    clock = VirtualTime(managed_agents_emulator)
    deployment = just_after_a_fire(hook, clock, cron)
    question = RunWait(deployment_id=deployment.id, trigger_type="schedule", created_after=clock.now())

    requests, waited, verdict = wait(hook, managed_agents_emulator, clock, question, interval=None)

    assert verdict.status == "success", verdict.reason
    assert verdict.run is not None and verdict.run.trigger_context.type == "schedule"
    assert waited >= 45 if cron == "* * * * *" else waited >= 3500  # a whole period was waited out
    assert requests <= 3
