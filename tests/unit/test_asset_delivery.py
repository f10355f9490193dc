"""How a managed-agents asset is fed (``delivery``): one argument switches polling to push, the
asset's name and URI stay, the watcher keeps its identity (and so its watermark), and bad values
fail when the DAG file is parsed."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from airflow_provider_managed_agents.assets import (
    DELIVERY_EXTRA_KEY,
    deployment_runs_asset,
    deployment_sessions_ended_asset,
    runs_asset_key,
    triggering_events,
)
from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError


def test_the_one_argument_keeps_the_asset_and_changes_only_how_it_is_fed() -> None:
    polled = deployment_runs_asset("depl_01", trigger_type="schedule")
    pushed = deployment_runs_asset("depl_01", trigger_type="schedule", delivery="webhook")
    both = deployment_runs_asset("depl_01", trigger_type="schedule", delivery="both")
    assert {(a.name, a.uri) for a in (polled, pushed, both)} == {runs_asset_key("depl_01", "schedule")}
    assert polled.uri == "managed-agents://deployments/depl_01/runs?trigger_type=schedule"
    assert not polled.extra and len(polled.watchers) == 1
    assert pushed.extra == {DELIVERY_EXTRA_KEY: "webhook"} and not pushed.watchers
    assert both.extra == {DELIVERY_EXTRA_KEY: "both"} and len(both.watchers) == 1
    polling, backing_up = polled.watchers[0].trigger, both.watchers[0].trigger
    assert "delivery" not in polling.serialize()[1]  # the kwargs of every watcher made before
    assert backing_up.serialize()[1]["delivery"] == "both"
    # The same watermark: a watcher switched to "both" carries on where it stopped.
    assert polling.filters.identity() == backing_up.filters.identity()


def test_bad_values_fail_at_parse_time_naming_the_argument() -> None:
    with pytest.raises(ManagedAgentsValidationError, match="delivery: must be one of 'poll', 'webhook', 'both'"):
        deployment_runs_asset("depl_01", delivery="push")
    with pytest.raises(ManagedAgentsValidationError, match="poll_interval"):
        deployment_runs_asset("depl_01", delivery="webhook", poll_interval=0)
    with pytest.raises(ManagedAgentsValidationError, match="deployment_id"):
        deployment_sessions_ended_asset("depl/../x")


def test_the_session_ended_asset() -> None:
    ended = deployment_sessions_ended_asset("depl_01")
    assert ended.name == "managed_agents_deployment_sessions_ended__depl_01"
    assert ended.uri == "managed-agents://deployments/depl_01/sessions/ended"
    assert ended.extra == {DELIVERY_EXTRA_KEY: "webhook"} and not ended.watchers


class _ByAsset(dict):  # type: ignore[type-arg]
    """The task runner's accessor: keyed by the asset."""

    def __getitem__(self, key: Any) -> Any:
        return super().__getitem__((key.name, key.uri))


def test_triggering_events_reads_either_form_of_the_context() -> None:
    asset = deployment_runs_asset("depl_01", delivery="webhook")
    by_uri: defaultdict[str, list[str]] = defaultdict(list, {asset.uri: ["e1"]})  # Airflow 3.0's `dags test`

    class Unhashable:  # what 3.0 raises for an asset key into that dict
        def __getitem__(self, key: Any) -> Any:
            raise TypeError("unhashable type: 'Asset'")

        def get(self, key: str, default: Any) -> Any:
            return by_uri.get(key, default)

    assert triggering_events({"triggering_asset_events": Unhashable()}, asset) == ["e1"]  # type: ignore[arg-type]
    runner = _ByAsset({(asset.name, asset.uri): ["e2"]})
    assert triggering_events({"triggering_asset_events": runner}, asset) == ["e2"]  # type: ignore[arg-type]
