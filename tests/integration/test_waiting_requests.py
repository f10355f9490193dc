"""The schedule-aware wait, counted at the emulator: 3 requests per fire of a per-minute
schedule; toward a far fire, two runs queries in all and one deployment read per minute waited.

Time is simulated as in ``bench/waiting_cost.py`` (whose helpers this reuses): the emulator's
clock is frozen and each sleep moves it, and its scheduler really fires the run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.waiting.runs import RunWait

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

    made, waited, verdict = wait(hook, managed_agents_emulator, clock, question, interval=None)

    assert verdict.status == "success", verdict.reason
    assert verdict.run is not None and verdict.run.trigger_context.type == "schedule"
    runs_queries = made.pop("GET /v1/deployment_runs")
    deployment_reads = made.pop("GET /v1/deployments/{deployment_id}")
    assert made == {}
    assert runs_queries == 2
    if cron == "* * * * *":
        assert waited >= 45  # a whole period was waited out
        assert runs_queries + deployment_reads <= 3
    else:
        assert waited >= 3500
        assert deployment_reads <= waited / 60 + 1  # at least once a minute, no more
        assert deployment_reads >= waited / 60 - 1
