"""Exactly-once under faults: the CI sample of the campaign (``make reliability`` runs 500)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from campaign import run_campaign  # type: ignore[import-not-found]

CYCLES = int(os.environ.get("RELIABILITY_CYCLES", "60"))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fault_campaign_creates_and_runs_exactly_once(
    managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same retry budget for the async path (the runs feed) as the campaign gives the sync one.
    conn = {**json.loads(managed_agents_emulator.connection_json()), "extra": {"max_retries": 8, "timeout": 10}}
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", json.dumps(conn))
    result = run_campaign(managed_agents_emulator, CYCLES)
    print("\n" + result.table())
    assert result.faults_injected > CYCLES  # the campaign really was under fire
    assert result.failed_cycles == []
    assert result.duplicate_deployments == 0
    assert result.duplicate_manual_runs == 0
    assert result.lost_runs == 0
    assert result.sessions_followed == CYCLES
    assert result.wrong_verdicts == []
    assert result.feed_waits == CYCLES and result.feed_lost == [] and result.feed_wrong == 0
    assert result.session_feed_waits == CYCLES and result.session_feed_wrong == []
