"""The deployment-runs watcher over real HTTP: each new matching run announced once, in order,
across restarts (the watermark in an asset state store), through Airflow 3.3's real shared-stream
manager as well as on its own, and paced by the deployment's schedule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from airflow.sdk import Asset, AssetWatcher
from fakes import AssetStateStore

from airflow_provider_managed_agents.assets import deployment_runs_asset, run_details
from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.models.deployments import DeploymentState
from airflow_provider_managed_agents.triggers import deployment_run_events as events_module
from airflow_provider_managed_agents.triggers import watermark_stores
from airflow_provider_managed_agents.triggers.deployment_run_events import ManagedAgentsDeploymentRunEventTrigger
from airflow_provider_managed_agents.triggers.runs_feed import runs_feed
from airflow_provider_managed_agents.waiting.runs import SCHEDULE_JITTER, SCHEDULE_MARGIN

MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}
POLL = 0.2


def announced(store: AssetStateStore) -> set[str]:
    """The runs a watcher's saved watermark says it announced."""
    return set((store.values.get(watermark_stores.STATE_KEY) or {}).get("announced", {}))


@pytest.fixture
def hook(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> ManagedAgentsHook:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    monkeypatch.setattr(events_module, "MIN_POLL_INTERVAL", 0.05)
    monkeypatch.setattr(watermark_stores, "SAVE_AFTER", timedelta(seconds=0.3))
    return ManagedAgentsHook()


def new_deployment(hook: ManagedAgentsHook, **extra: Any) -> str:
    fields = {"name": "watched", "agent": "agent_demo", "environment_id": "env_demo", "initial_events": [MESSAGE]}
    return hook.create_deployment(**fields, **extra).id


def watcher(deployment_id: str, store: AssetStateStore | None = None, **filters: Any) -> Any:
    trigger = ManagedAgentsDeploymentRunEventTrigger(deployment_id=deployment_id, poll_interval=POLL, **filters)
    trigger.asset_state_store = store or AssetStateStore()
    return trigger


async def until(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    give_up = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < give_up, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def collect(events: Any, into: list[dict[str, Any]]) -> asyncio.Task[None]:
    async def drain() -> None:
        async for event in events:
            into.append(event.payload)

    return asyncio.create_task(drain())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_each_new_matching_run_is_announced_once_in_order(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = new_deployment(hook, schedule={"type": "cron", "expression": "0 0 1 1 *", "timezone": "UTC"})
    managed_agents_emulator.control("POST", f"deployments/{deployment_id}/seed_runs", {"count": 5})  # history

    def fire() -> str:
        return str(managed_agents_emulator.control("POST", f"deployments/{deployment_id}/fire")["run"]["id"])

    def failing_run() -> str:
        managed_agents_emulator.control(
            "POST", f"deployments/{deployment_id}/next_run_error", {"type": "environment_unavailable"}
        )
        return hook.run_deployment(deployment_id).id

    async def scenario() -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
        filters: dict[str, dict[str, Any]] = {
            "all": {},
            "manual": {"trigger_type": "manual"},
            "failed": {"has_error": True},
            "sessions": {"has_error": False},
            "manual sessions": {"trigger_type": "manual", "has_error": False},
        }
        seen: dict[str, list[dict[str, Any]]] = {name: [] for name in filters}
        tasks = [collect(watcher(deployment_id, **f).run(), seen[name]) for name, f in filters.items()]
        await until(lambda: runs_feed("managed_agents_default").status().runs_reads >= 1, "the first read")
        made = [
            ("manual", "session", (await asyncio.to_thread(hook.run_deployment, deployment_id)).id),
            ("schedule", "session", await asyncio.to_thread(fire)),
            ("manual", "error", await asyncio.to_thread(failing_run)),
            ("manual", "session", (await asyncio.to_thread(hook.run_deployment, deployment_id)).id),
        ]
        expected = {
            "all": [r for _, _, r in made],
            "manual": [r for kind, _, r in made if kind == "manual"],
            "failed": [r for _, outcome, r in made if outcome == "error"],
            "sessions": [r for _, outcome, r in made if outcome == "session"],
            "manual sessions": [r for kind, outcome, r in made if kind == "manual" and outcome == "session"],
        }
        await until(lambda: all(len(seen[n]) >= len(expected[n]) for n in filters), "every announcement")
        reads = runs_feed("managed_agents_default").status().runs_reads
        await until(lambda: runs_feed("managed_agents_default").status().runs_reads >= reads + 3, "three more reads")
        for task in tasks:
            await stop(task)
        return seen, expected

    seen, expected = asyncio.run(scenario())
    for name, ids in expected.items():
        assert [e["deployment_run_id"] for e in seen[name]] == ids, name  # once each, oldest first
    failed = seen["failed"][0]
    assert failed["error_type"] == "environment_unavailable" and failed["session_id"] is None
    first = seen["all"][0]
    assert first["session_id"] and first["trigger_type"] == "manual" and first["deployment_id"] == deployment_id
    assert first["deployment_run"]["id"] == first["deployment_run_id"]  # the run as the API gave it


def test_a_restart_announces_what_came_while_down_once_and_nothing_twice(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = new_deployment(hook)
    store = AssetStateStore()

    async def triggerer(runs_while_up: int = 0) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        task = collect(watcher(deployment_id, store).run(), seen)
        await until(lambda: watermark_stores.STATE_KEY in store.values, "the first watermark")
        for _ in range(runs_while_up):
            await asyncio.to_thread(run)
        await until(lambda: set(made) <= announced(store), "the watermark to record every run")
        await stop(task)
        return seen

    def run() -> None:
        made.append(hook.run_deployment(deployment_id).id)

    made: list[str] = []
    first = asyncio.run(triggerer(runs_while_up=2))
    assert asyncio.run(triggerer()) == []  # nothing new: the store keeps the watermark where it was
    assert [e["deployment_run_id"] for e in first] == made
    run()  # while no triggerer runs
    run()
    second = asyncio.run(triggerer())
    assert [e["deployment_run_id"] for e in second] == made[2:]


def test_a_watcher_killed_before_its_watermark_was_saved_announces_again_not_never(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watermark_stores, "SAVE_AFTER", timedelta(hours=1))
    deployment_id = new_deployment(hook)
    store = AssetStateStore()

    async def triggerer(run_first: bool) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        task = collect(watcher(deployment_id, store).run(), seen)
        await until(lambda: watermark_stores.STATE_KEY in store.values, "the first watermark")
        if run_first:
            await asyncio.to_thread(hook.run_deployment, deployment_id)
        await until(lambda: len(seen) == 1, "the announcement")
        await stop(task)
        return seen

    first = asyncio.run(triggerer(run_first=True))
    again = asyncio.run(triggerer(run_first=False))
    assert [e["deployment_run_id"] for e in again] == [e["deployment_run_id"] for e in first]


def test_watchers_of_one_deployment_share_one_stream_in_airflows_manager(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    """Airflow 3.3's own SharedStreamManager drives the watchers, as the triggerer does: one
    group, one feed subscription, each member its matching runs; a member joining late with an
    older watermark catches up without the others announcing anything twice."""
    shared_stream = pytest.importorskip("airflow.triggers.shared_stream", reason="shared streams: Airflow >= 3.3")
    deployment_id = new_deployment(hook)
    late_store = AssetStateStore()

    async def scenario() -> dict[str, Any]:
        manager = shared_stream.SharedStreamManager()
        members = {
            "all": watcher(deployment_id),
            "failed": watcher(deployment_id, has_error=True),
            "sessions": watcher(deployment_id, has_error=False),
        }
        keys = {m.shared_stream_key() for m in members.values()}
        assert len(keys) == 1
        (key,) = keys
        seen: dict[str, list[dict[str, Any]]] = {name: [] for name in [*members, "late"]}
        tasks = {}
        for number, (name, member) in enumerate(members.items()):
            stream = manager.subscribe(trigger_id=number, trigger=member, key=key)
            tasks[name] = collect(member.filter_shared_stream(stream), seen[name])
        # The late member's watermark is from before every run below, as after a restart.
        late = watcher(deployment_id, late_store)
        late_start = pendulum.now("UTC")
        late_store.values[watermark_stores.STATE_KEY] = {"since": late_start.isoformat(), "announced": {}}
        await until(lambda: runs_feed("managed_agents_default").status().runs_reads >= 1, "the first read")
        made = [(await asyncio.to_thread(hook.run_deployment, deployment_id)).id for _ in range(2)]
        managed_agents_emulator.control(
            "POST", f"deployments/{deployment_id}/next_run_error", {"type": "environment_unavailable"}
        )
        made.append((await asyncio.to_thread(hook.run_deployment, deployment_id)).id)
        await until(lambda: len(seen["all"]) == 3 and len(seen["failed"]) == 1, "the members' announcements")
        tasks["late"] = collect(
            late.filter_shared_stream(manager.subscribe(trigger_id=9, trigger=late, key=key)), seen["late"]
        )
        await until(lambda: len(seen["late"]) == 3, "the late member's catch-up")
        reads = runs_feed("managed_agents_default").status().runs_reads
        await until(lambda: runs_feed("managed_agents_default").status().runs_reads >= reads + 3, "three more reads")
        streams = runs_feed("managed_agents_default").status().streams
        for number, task in enumerate(tasks.values()):
            await stop(task)
            await manager.unsubscribe(number if number < 3 else 9, key)
        return {
            "seen": seen,
            "made": made,
            "streams": streams,
            "after": runs_feed("managed_agents_default").status().streams,
        }

    result = asyncio.run(scenario())
    seen, made = result["seen"], result["made"]
    assert [e["deployment_run_id"] for e in seen["all"]] == made
    assert [e["deployment_run_id"] for e in seen["late"]] == made
    assert [e["deployment_run_id"] for e in seen["failed"]] == made[2:]
    assert [e["deployment_run_id"] for e in seen["sessions"]] == made[:2]
    assert result["streams"] == 1 and result["after"] == 0  # one subscription for the group, gone with it


def test_a_scheduled_runs_watcher_reads_just_after_each_fire(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    """Between fires it only re-reads the deployment once a minute; the runs are read again
    just after the fire's jitter (here a month away, so at the next re-read first)."""
    deployment_id = new_deployment(hook, schedule={"type": "cron", "expression": "0 0 1 1 *", "timezone": "UTC"})

    async def scenario() -> Any:
        seen: list[dict[str, Any]] = []
        task = collect(watcher(deployment_id, trigger_type="schedule").run(), seen)
        feed = runs_feed("managed_agents_default")
        await until(
            lambda: feed.status().runs_reads >= 1 and feed.status().deployments_read_at is not None, "the first reads"
        )
        await asyncio.sleep(5 * POLL)  # a manual-pace watcher would have read five more times
        status = feed.status()
        await stop(task)
        return status.runs_reads, status.next_look_at, status.deployments_read_at, status.next_runs_look[deployment_id]

    reads, planned, deployment_read, fire_look = asyncio.run(scenario())
    next_fire = DeploymentState.of(hook.get_deployment(deployment_id)).upcoming_runs_at[0]
    assert reads == 1
    assert fire_look == next_fire + SCHEDULE_JITTER + SCHEDULE_MARGIN
    assert planned == deployment_read + timedelta(seconds=60)


def test_the_asset_names_its_deployment_and_filters_and_watches_with_the_trigger() -> None:
    asset = deployment_runs_asset("depl_01", trigger_type="schedule", has_error=True, poll_interval=30)
    assert isinstance(asset, Asset)
    assert asset.name == "managed_agents_deployment_runs__depl_01__scheduled__failed"
    assert asset.uri == "managed-agents://deployments/depl_01/runs?has_error=true&trigger_type=schedule"
    (watch,) = asset.watchers
    assert isinstance(watch, AssetWatcher)
    classpath, kwargs = watch.trigger.serialize()
    assert (
        classpath
        == "airflow_provider_managed_agents.triggers.deployment_run_events.ManagedAgentsDeploymentRunEventTrigger"
    )
    assert ManagedAgentsDeploymentRunEventTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert deployment_runs_asset("depl_01").name == "managed_agents_deployment_runs__depl_01"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"deployment_id": ""}, "deployment_id"),
        ({"deployment_id": "a/b"}, "deployment_id"),
        ({"deployment_id": "d", "trigger_type": "cron"}, "trigger_type"),
        ({"deployment_id": "d", "has_error": "yes"}, "has_error"),
        ({"deployment_id": "d", "poll_interval": 0.1}, "poll_interval"),
    ],
)
def test_bad_watcher_arguments_fail_when_the_dag_is_parsed(kwargs: dict[str, Any], field: str) -> None:
    deployment_id = kwargs.pop("deployment_id")
    with pytest.raises(ManagedAgentsValidationError, match=field):
        deployment_runs_asset(deployment_id, **kwargs)


def test_run_details_reads_both_kinds_of_events() -> None:
    class Event:
        def __init__(self, extra: dict[str, Any]) -> None:
            self.extra = extra

    from_watcher = Event({"from_trigger": True, "payload": {"deployment_run_id": "drun_1", "session_id": "s"}})
    from_task = Event({"deployment_run_id": "drun_2", "session_id": "t", "deployment_id": "d"})
    assert run_details(from_watcher) == {"deployment_run_id": "drun_1", "session_id": "s"}
    assert run_details(from_task)["deployment_run_id"] == "drun_2"
