"""Where waits met the clock, the schedule and the network, over real HTTP against the emulator:
a lost run answer never adopts a run made before the send; a scheduled wait started anywhere in
the minute finds its fire's run right after the fire's jitter (sensor and event watcher, on the
emulator's frozen clock); a deferred wait across an outage resolves with the earliest run."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from fakes import AssetStateStore, EmulatorClock, FakeTI, context, use_clock

from airflow_provider_managed_agents.emulator.server import free_port, run_emulator
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.sensors.deployment_runs import ManagedAgentsDeploymentRunSensor
from airflow_provider_managed_agents.triggers import watermark_stores
from airflow_provider_managed_agents.triggers.deployment_run_events import ManagedAgentsDeploymentRunEventTrigger
from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger
from airflow_provider_managed_agents.triggers.runs_feed import runs_feed
from airflow_provider_managed_agents.waiting.events import RunWaitEvent, decode
from airflow_provider_managed_agents.waiting.runs import SCHEDULE_JITTER, SCHEDULE_MARGIN, LookState, RunWait

MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}
EVERY_MINUTE = {"type": "cron", "expression": "* * * * *", "timezone": "UTC"}
JITTER = 8.0
WINDOW = SCHEDULE_JITTER + SCHEDULE_MARGIN


@pytest.fixture
def hook(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> ManagedAgentsHook:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    return ManagedAgentsHook()


# --- exactly-once: a lost answer never adopts an earlier run --------------------------------------


def test_a_run_whose_answer_is_lost_is_never_taken_for_the_one_made_just_before(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    """Two manual runs of one deployment within a second, and a plain 503 (not committed) on
    the second: the second is sent again and returns its own run (the issue's reproduction,
    with no gap at all: the worst case of 0.2, 0.5 and 0.9 s)."""
    deployment_id = hook.create_deployment(
        name="twice", agent="agent_demo", environment_id="env_demo", initial_events=[MESSAGE]
    ).id
    earlier = hook.run_deployment(deployment_id)
    managed_agents_emulator.inject_faults(
        rate=1.0, kinds=["503"], count=1, endpoints=["POST /v1/deployments/{deployment_id}/run"]
    )
    mine = hook.run_deployment(deployment_id)
    assert mine.id != earlier.id
    runs = [r["id"] for r in managed_agents_emulator.state()["runs"] if r["deployment_id"] == deployment_id]
    assert sorted(runs) == sorted([earlier.id, mine.id])
    assert managed_agents_emulator.request_counts()["faults"] == 1


# --- a scheduled wait, started at every second of the minute -----------------------------------


def minute_deployment(hook: ManagedAgentsHook, emulator: Any, time_: EmulatorClock, second: int) -> Any:
    """A per-minute deployment whose fires run JITTER s late; the clock then at ``second`` past
    the minute of its first fire (inside that fire's jitter window when ``second`` < JITTER)."""
    made = hook.create_deployment(
        name=f"at {second}",
        agent="agent_demo",
        environment_id="env_demo",
        initial_events=[MESSAGE],
        schedule=EVERY_MINUTE,
    )
    emulator.control("POST", f"deployments/{made.id}/jitter", {"seconds": JITTER})
    first_fire = time_.now().replace(second=0, microsecond=0).add(minutes=1)
    time_.sleep((first_fire - time_.now()).total_seconds())
    if second > JITTER:  # the fire's run is recorded when the clock passes its jitter, at that time
        time_.sleep(JITTER)
    time_.sleep(second - (JITTER if second > JITTER else 0))
    return made.id, first_fire


def scheduled_runs(emulator: Any, deployment_id: str) -> list[dict[str, Any]]:
    runs = [r for r in emulator.state()["runs"] if r["deployment_id"] == deployment_id]
    return sorted((r for r in runs if r["trigger_context"]["type"] == "schedule"), key=lambda r: r["created_at"])


@pytest.mark.slow
def test_a_sensor_started_anywhere_in_the_minute_finds_its_fire_right_after_the_jitter(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    time_ = use_clock(monkeypatch, EmulatorClock(managed_agents_emulator))
    late: list[tuple[int, str]] = []
    for second in range(60):
        deployment_id, first_fire = minute_deployment(hook, managed_agents_emulator, time_, second)  # type: ignore[arg-type]
        started = time_.now()
        sensor = ManagedAgentsDeploymentRunSensor(
            task_id="gate",
            deployment_id=deployment_id,
            trigger_type="schedule",
            created_after=started.isoformat(),
            poll_interval=60,
            timeout=600,
        )
        found = sensor.execute(context(FakeTI()))
        found_at = time_.now()
        expected = next(
            r
            for r in scheduled_runs(managed_agents_emulator, deployment_id)
            if pendulum.parse(r["created_at"]) >= started
        )
        fire = pendulum.parse(expected["trigger_context"]["scheduled_at"])
        if found != expected["id"] or found_at > fire + WINDOW + timedelta(seconds=1):
            late.append((second, f"found {found} at {found_at}, expected {expected['id']} of the fire at {fire}"))
        hook.archive_deployment(deployment_id)  # its schedule stops: the next case's clock moves alone
        assert (second <= JITTER) == (fire == first_fire)  # inside the window, its own fire's run counts
    assert late == []


@pytest.mark.slow
def test_an_event_watcher_started_anywhere_in_the_minute_announces_every_fire_right_after_it(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher's runs reads follow each fire, whatever second of the minute its once-a-minute
    deployment re-read lands on: three fires, three announcements, each by fire + jitter window."""
    monkeypatch.setattr(watermark_stores, "SAVE_AFTER", timedelta(0))  # one sleeper: the feed
    fires = 3
    silent: list[tuple[int, int]] = []
    for second in range(60):
        time_ = BoundedClock(managed_agents_emulator)
        use_clock(monkeypatch, time_)
        deployment_id, first_fire = minute_deployment(hook, managed_agents_emulator, time_, second)  # type: ignore[arg-type]
        started = time_.now()
        first_counted = first_fire if second <= JITTER else first_fire.add(minutes=1)
        # The clock stops just after the last counted fire's window: its run must be announced by then.
        time_.limit = first_counted.add(minutes=fires - 1) + WINDOW + timedelta(seconds=1)
        announced = asyncio.run(watch_until_parked(deployment_id, time_))
        expected = [
            r["id"]
            for r in scheduled_runs(managed_agents_emulator, deployment_id)
            if pendulum.parse(r["created_at"]) >= started
        ][:fires]
        if announced[:fires] != expected or len(expected) != fires:
            silent.append((second, len(announced)))
        hook.archive_deployment(deployment_id)
    assert silent == []


class BoundedClock(EmulatorClock):
    """The emulator's frozen clock, moved by the sleeps of the (only) sleeper, up to ``limit``:
    a sleep past it parks the sleeper for good, so a test can count what happened by then."""

    limit: Any = None
    parked = False

    async def asleep(self, seconds: float) -> None:
        if self.limit is not None and self.t + timedelta(seconds=seconds) > self.limit:
            self.sleep(max((self.limit - self.t).total_seconds(), 0.0))
            self.parked = True
            await asyncio.Event().wait()
        self.sleep(seconds)


async def watch_until_parked(deployment_id: str, time_: BoundedClock) -> list[str]:
    trigger = ManagedAgentsDeploymentRunEventTrigger(deployment_id=deployment_id, trigger_type="schedule")
    trigger.asset_state_store = AssetStateStore()
    announced: list[str] = []

    async def drain() -> None:
        async for event in trigger.run():
            announced.append(event.payload["deployment_run_id"])

    task = asyncio.create_task(drain())
    give_up = time.monotonic() + 120
    while not time_.parked:
        assert time.monotonic() < give_up, "the watcher's feed never reached the end of the scenario"
        await asyncio.sleep(0.01)
    for _ in range(100):  # what the last read delivered reaches the watcher without any I/O
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return announced


# --- a deferred wait across an outage ------------------------------------------------------------


def test_a_deferred_wait_across_an_outage_resolves_with_the_earliest_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's outage: the deferring sensor looked (no run yet), the schedule fired, the
    service went away before the trigger's first read and came back: the first read after the
    outage covers everything since the sensor's look, and the wait gets the run made before the
    outage, not the one made after it."""
    state_file, port = tmp_path / "emulator.db", free_port()
    with run_emulator(state_file=state_file, port=port) as up:
        monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", up.connection_json())
        hook = ManagedAgentsHook()
        deployment_id = hook.create_deployment(
            name="outage",
            agent="agent_demo",
            environment_id="env_demo",
            initial_events=[MESSAGE],
            schedule={"type": "cron", "expression": "0 3 * * *", "timezone": "UTC"},
        ).id
        wait = RunWait(
            deployment_id=deployment_id, trigger_type="schedule", created_after=pendulum.now("UTC"), poll_interval=0.2
        )
        state = LookState()  # the sensor's look: no run yet
        state.runs_read_at = pendulum.now("UTC")
        before_outage = up.fire(deployment_id)["run"]
        hook.close()
    trigger = ManagedAgentsDeploymentRunTrigger(
        wait=wait.to_dict(),
        deadline=pendulum.now("UTC").add(minutes=5).isoformat(),
        timeout=300,
        not_before=pendulum.now("UTC").isoformat(),
        state=state.to_dict(),
    )

    async def scenario() -> Any:
        waiting = asyncio.create_task(anext(aiter(trigger.run())))
        feed = runs_feed("managed_agents_default")
        give_up = time.monotonic() + 120
        while feed.status().failed_cycles < 2:  # the service is away: reads fail, and are ridden out
            assert time.monotonic() < give_up and not waiting.done()
            await asyncio.sleep(0.05)
        with run_emulator(state_file=state_file, port=port) as back:
            after_outage = await asyncio.to_thread(back.fire, deployment_id)
            event = await asyncio.wait_for(waiting, 120)
        return event, after_outage["run"]

    event, after_outage = asyncio.run(scenario())
    verdict = decode(event.payload, RunWaitEvent).verdict()
    assert verdict.status == "success" and verdict.run is not None
    assert verdict.run.id == before_outage["id"] != after_outage["id"]
