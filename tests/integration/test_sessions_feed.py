"""The sessions feed over real HTTP: many deferred session waits in one event loop share one list
of the working sessions per poll, and each ends as a wait looking alone would, whatever its
session does: idle before it ever ran, idle and running again, created while the list pages,
archived, ended badly; through faults, a missing session, deadlines and cancellations.

Time is the emulator's frozen clock (the provider's clock sleeps by moving it), so a feed's poll
loop plays whole scripts out with no wall-clock waits and every count below is exact."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fakes import EmulatorClock

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.hooks import loop_pool as loop_pool_module
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import API_VERSION, MANAGED_AGENTS_BETA
from airflow_provider_managed_agents.triggers import sessions_feed as feed_module
from airflow_provider_managed_agents.triggers.sessions import ManagedAgentsSessionTrigger
from airflow_provider_managed_agents.triggers.sessions_feed import sessions_feed
from airflow_provider_managed_agents.waiting import clock
from airflow_provider_managed_agents.waiting.events import SessionWaitEvent, decode
from airflow_provider_managed_agents.waiting.sessions import SessionVerdict, SessionWait, look

MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}
OUTCOME = {"type": "user.define_outcome", "description": "a verdict", "rubric": {"type": "text", "content": "r"}}
POLL = 5.0


@pytest.fixture
def hook(time: EmulatorClock) -> ManagedAgentsHook:
    return ManagedAgentsHook()


def new_deployment(hook: ManagedAgentsHook, *, outcome: bool = False) -> str:
    events = [MESSAGE, OUTCOME] if outcome else [MESSAGE]
    return hook.create_deployment(name="feed", agent="agent_demo", environment_id="env_demo", initial_events=events).id


def start(hook: ManagedAgentsHook, emulator: Any, deployment_id: str, **script: Any) -> str:
    emulator.control("POST", "sessions/next_script", script)
    session_id = hook.run_deployment(deployment_id).session_id
    assert session_id is not None
    return session_id


def trigger(session_id: str, *, known: bool = True, timeout: float = 3600.0) -> ManagedAgentsSessionTrigger:
    created_after = clock.now().subtract(minutes=5).isoformat() if known else None
    made = ManagedAgentsSessionTrigger(
        session_id=session_id,
        poll_interval=POLL,
        deadline=clock.now().add(seconds=timeout).isoformat(),
        timeout=timeout,
        created_after=created_after,
    )
    return type(made)(**made.serialize()[1])  # as the triggerer rebuilds it


async def ending(made: ManagedAgentsSessionTrigger) -> SessionWaitEvent:
    event = await anext(aiter(made.run()))
    return decode(event.payload, SessionWaitEvent)


def alone(hook: ManagedAgentsHook, session_id: str) -> SessionVerdict:
    """What one wait looking at the session alone decides, now."""
    return look(SessionWait(session_id, POLL), hook, clock.now())


def counts(emulator: Any) -> dict[str, int]:
    return emulator.request_counts()["by_endpoint"]


def test_many_waits_end_as_a_wait_alone_would(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = managed_agents_emulator
    monkeypatch.setattr(feed_module, "SESSIONS_PAGE", 3)  # the working sessions span several pages
    plain, with_outcome = new_deployment(hook), new_deployment(hook, outcome=True)
    scripts: list[tuple[str, dict[str, Any]]] = [
        (plain, {"turn_seconds": 20}),
        (plain, {"turn_seconds": 60, "start_delay": 30}),  # idle for a while before it ever runs
        (plain, {"ending": "refusal", "turn_seconds": 15}),
        (plain, {"ending": "terminated", "turn_seconds": 25}),
        (plain, {"ending": "retries_exhausted", "turn_seconds": 40}),
        (plain, {"ending": "requires_action", "turn_seconds": 12}),
        (plain, {"rescheduling": True, "turn_seconds": 50}),
        (with_outcome, {"iterations": 3, "turn_seconds": 20}),
        (with_outcome, {"iterations": 2, "outcome_result": "failed", "turn_seconds": 30}),
    ]
    sessions = [start(hook, emulator, d, **s) for d, s in scripts * 3]
    archived = start(hook, emulator, plain, turn_seconds=1)
    emulator.advance_clock(2)
    hook.archive_session(archived)  # ended, then archived: the working list leaves it out
    sessions.append(archived)
    late: list[str] = []

    async def scenario() -> list[SessionWaitEvent]:
        waits = [
            asyncio.create_task(ending(trigger(s, known=i % 4 != 0)))  # some triggers without a creation bound
            for i, s in enumerate(sessions)
        ]
        await asyncio.sleep(0)
        for _ in range(3):  # sessions that start while the feed is already polling
            late.append(await asyncio.to_thread(start, hook, emulator, plain, turn_seconds=35))
            waits.append(asyncio.create_task(ending(trigger(late[-1]))))
            await asyncio.sleep(0)
        return list(await asyncio.wait_for(asyncio.gather(*waits), 120))

    events = asyncio.run(scenario())
    assert [e.session_id for e in events] == sessions + late
    for event in events:
        verdict, truth = event.verdict(), alone(hook, event.session_id)
        assert truth.done, truth
        assert (verdict.status, type(verdict.error)) == (truth.status, type(truth.error)), event.session_id
    statuses = [e.verdict().status for e in events]
    assert statuses.count("success") == 3 * 4 + 3  # plain, idle first, rescheduled, outcome met; the late ones
    assert statuses.count("failed") == 3 * 5 + 1  # each ending's class; the archived one reads terminated


def test_requests_per_poll_do_not_grow_with_the_waits(hook: ManagedAgentsHook, managed_agents_emulator: Any) -> None:
    emulator = managed_agents_emulator
    deployment_id = new_deployment(hook)
    sessions = [start(hook, emulator, deployment_id, start_delay=0, turn_seconds=600) for _ in range(40)]
    emulator.control("DELETE", "requests")

    async def scenario() -> tuple[list[SessionWaitEvent], Any]:
        waits = [asyncio.create_task(ending(trigger(s))) for s in sessions]
        events = await asyncio.wait_for(asyncio.gather(*waits), 120)
        return list(events), sessions_feed("managed_agents_default").status()

    events, status = asyncio.run(scenario())
    assert {e.verdict().status for e in events} == {"success"}
    seen = counts(emulator)
    # While the 40 sessions ran (600 s, a poll every 5 s): one list per poll, no session read.
    assert seen["GET /v1/sessions"] == status.list_reads
    assert status.list_reads <= 600 / POLL + 3
    # At their end: one look each, at most 2 requests (the session, its status events).
    assert seen["GET /v1/sessions/{session_id}"] == 40 == status.own_looks
    assert seen["GET /v1/sessions/{session_id}/events"] == 40


def test_a_session_idle_before_it_ever_ran_is_not_taken_for_ended(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    emulator = managed_agents_emulator
    session_id = start(hook, emulator, new_deployment(hook), start_delay=60, turn_seconds=30)

    async def scenario() -> SessionWaitEvent:
        return await asyncio.wait_for(ending(trigger(session_id)), 60)

    event = asyncio.run(scenario())
    assert event.verdict().status == "success"
    facts = event.verdict().facts
    assert facts is not None and facts.ran_before_idle and facts.stop_reason == "end_turn"
    # It was looked at on its own while it idled before running (it is not in the working list),
    # then left to the list while it ran.
    assert 60 / POLL - 2 <= counts(emulator)["GET /v1/sessions/{session_id}"] <= 60 / POLL + 3


def test_a_session_that_goes_idle_and_runs_again_is_judged_on_its_newest_turn(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    emulator = managed_agents_emulator
    session_id = start(hook, emulator, new_deployment(hook), start_delay=0, turn_seconds=20)
    emulator.advance_clock(21)  # the first turn ended
    sent = httpx.post(  # and a new one starts at once
        f"{emulator.base_url}/v1/sessions/{session_id}/events",
        json={"events": [MESSAGE]},
        headers={
            "x-api-key": emulator.api_key,
            "anthropic-version": API_VERSION,
            "anthropic-beta": MANAGED_AGENTS_BETA,
        },
        timeout=10,
    )
    sent.raise_for_status()

    async def scenario() -> SessionWaitEvent:
        return await asyncio.wait_for(ending(trigger(session_id)), 60)

    event = asyncio.run(scenario())
    assert event.verdict().status == "success"
    newest = hook.list_session_events_page(session_id, types=["agent.message"], order="desc", limit=1).data[0]
    assert newest.text().startswith("Re: ")  # the second turn's answer: the wait saw it through


def test_faults_are_transient_for_every_wait_and_errors_stay_with_their_wait(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    emulator = managed_agents_emulator
    deployment_id = new_deployment(hook)
    sessions = [start(hook, emulator, deployment_id, turn_seconds=20 + 5 * i) for i in range(12)]
    cancelled = set(sessions[::4])

    async def scenario() -> tuple[dict[str, Any], Any]:
        emulator.inject_faults(
            rate=0.3,
            kinds=["429", "500", "503", "drop"],
            seed=5,
            retry_after=0,
            endpoints=["GET /v1/sessions", "GET /v1/sessions/{session_id}", "GET /v1/sessions/{session_id}/events"],
        )
        tasks = {s: asyncio.create_task(ending(trigger(s))) for s in [*sessions, "sesn_missing"]}
        await asyncio.sleep(0.2)
        for session_id in cancelled:  # a trigger torn down mid-poll
            tasks[session_id].cancel()
        done = await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 120)
        emulator.clear_faults()
        feed = sessions_feed("managed_agents_default")
        for _ in range(200):  # the loop ends once its last wait is gone
            if not feed.status().running:
                break
            await asyncio.sleep(0.05)
        return dict(zip(tasks, done, strict=True)), feed.status()

    outcomes, status = asyncio.run(scenario())
    for session_id, outcome in outcomes.items():
        if session_id in cancelled:
            assert isinstance(outcome, asyncio.CancelledError)
        elif session_id == "sesn_missing":  # its own error class, for its own wait only
            assert isinstance(outcome.verdict().error, errors.ManagedAgentsNotFoundError), outcome
        else:
            assert outcome.verdict().status == "success", outcome
    assert status.waits == 0 and not status.running
    assert emulator.request_counts()["faults"] > 0


def test_a_wait_at_its_deadline_times_out_with_the_sessions_last_facts(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    emulator = managed_agents_emulator
    session_id = start(hook, emulator, new_deployment(hook), start_delay=0, turn_seconds=3600)
    quick = start(hook, emulator, new_deployment(hook), start_delay=0, turn_seconds=10)

    async def scenario() -> list[SessionWaitEvent]:
        return list(
            await asyncio.wait_for(asyncio.gather(ending(trigger(session_id, timeout=60)), ending(trigger(quick))), 60)
        )

    slow, fast = asyncio.run(scenario())
    assert slow.verdict().status == "timeout"
    assert slow.verdict().facts is not None and slow.verdict().facts.status == "running"
    assert fast.verdict().status == "success"


def test_several_waits_on_one_session_share_its_look(hook: ManagedAgentsHook, managed_agents_emulator: Any) -> None:
    emulator = managed_agents_emulator
    session_id = start(hook, emulator, new_deployment(hook), start_delay=0, turn_seconds=30)
    emulator.control("DELETE", "requests")

    async def scenario() -> list[SessionWaitEvent]:
        return list(await asyncio.wait_for(asyncio.gather(*(ending(trigger(session_id)) for _ in range(5))), 60))

    events = asyncio.run(scenario())
    assert {e.verdict().status for e in events} == {"success"}
    assert counts(emulator)["GET /v1/sessions/{session_id}"] == 1


def test_a_connection_whose_key_is_refused_fails_every_wait_with_its_class(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = managed_agents_emulator
    sessions = [start(hook, emulator, new_deployment(hook), turn_seconds=30) for _ in range(3)]
    bad = {"conn_type": "managed_agents", "host": emulator.base_url, "password": "wrong-key"}
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", json.dumps(bad))
    monkeypatch.setattr(loop_pool_module, "SETTINGS_TTL_SECONDS", 0.0)

    async def scenario() -> list[SessionWaitEvent]:
        return list(await asyncio.wait_for(asyncio.gather(*(ending(trigger(s)) for s in sessions)), 60))

    for event in asyncio.run(scenario()):
        assert isinstance(event.verdict().error, errors.ManagedAgentsAuthenticationError)
