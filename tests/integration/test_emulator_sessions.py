"""Sessions in the emulator, over real HTTP: every successful run makes one, its script plays on
the (frozen) clock, each ending can be produced on demand, interrupts, archive and delete follow
the API's rules, lists and cursors behave, and the official SDK's models validate every session
and event the emulator returns, strictly."""

from __future__ import annotations

import json
import threading
from typing import Any, Union, get_args, get_origin

import httpx
import pendulum
import pytest

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import API_VERSION, MANAGED_AGENTS_BETA
from airflow_provider_managed_agents.waiting.sessions import SessionWait, final_message, look

MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "Summarise today's load"}]}
OUTCOME = {
    "type": "user.define_outcome",
    "description": "a one-paragraph summary",
    "rubric": {"type": "text", "content": "One paragraph, numbers included."},
    "max_iterations": 3,
}


def started(hook: ManagedAgentsHook, emulator: Any, *, outcome: bool = False, **script: Any) -> str:
    """A deployment with ``script`` for its sessions, run once: the new session's id."""
    events = [MESSAGE, OUTCOME] if outcome else [MESSAGE]
    deployment = hook.create_deployment(name="s", agent="agent_demo", environment_id="env_demo", initial_events=events)
    if script:
        emulator.control("POST", f"deployments/{deployment.id}/session_script", script)
    session_id = hook.run_deployment(deployment.id).session_id
    assert session_id is not None
    return session_id


def play(emulator: Any, seconds: float = 10) -> None:
    emulator.advance_clock(seconds)


def raw(emulator: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"x-api-key": emulator.api_key, "anthropic-version": API_VERSION, "anthropic-beta": MANAGED_AGENTS_BETA}
    return httpx.request(method, f"{emulator.base_url}{path}", headers=headers, timeout=10, **kwargs)


# --- the SDK as the oracle ------------------------------------------------------------------


def sdk_event_models() -> dict[str, Any]:
    sessions = pytest.importorskip("anthropic.types.beta.sessions")
    union = sessions.BetaManagedAgentsSessionEvent
    members = get_args(get_args(union)[0]) if get_origin(union) is not Union else get_args(union)
    models = {}
    for member in members:
        literal = member.model_fields["type"].annotation
        models[get_args(literal)[0]] = member
    return models


def assert_sdk_accepts(emulator: Any, session_id: str) -> int:
    """The session and every one of its events, as served, validate strictly with the SDK."""
    beta = pytest.importorskip("anthropic.types.beta")
    session = raw(emulator, "GET", f"/v1/sessions/{session_id}").text
    beta.BetaManagedAgentsSession.model_validate_json(session, strict=True)
    models = sdk_event_models()
    events = raw(emulator, "GET", f"/v1/sessions/{session_id}/events").json()["data"]
    for event in events:
        models[event["type"]].model_validate_json(json.dumps(event), strict=True)
    return len(events)


@pytest.mark.parametrize(
    "script",
    [
        {},
        {"ending": "requires_action"},
        {"ending": "retries_exhausted"},
        {"ending": "budget_reached"},
        {"ending": "refusal"},
        {"ending": "terminated"},
        {"rescheduling": True},
        {"outcome_result": "max_iterations_reached", "iterations": 3},
    ],
    ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()) or "default",
)
def test_the_official_sdk_validates_every_session_and_event_strictly(
    hook: ManagedAgentsHook, emulator: Any, script: dict[str, Any]
) -> None:
    session_id = started(hook, emulator, outcome="outcome_result" in script, **script)
    assert_sdk_accepts(emulator, session_id)  # a new, idle session
    play(emulator)
    assert assert_sdk_accepts(emulator, session_id) > 4  # after its whole script
    page = raw(emulator, "GET", "/v1/sessions", params={"limit": 5}).text
    beta = pytest.importorskip("anthropic.types.beta")
    for item in json.loads(page)["data"]:
        beta.BetaManagedAgentsSession.model_validate_json(json.dumps(item), strict=True)


# --- the script, on the clock ---------------------------------------------------------------


def test_a_run_makes_a_session_that_starts_idle_then_runs_its_script(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = started(hook, emulator, outcome=True, iterations=2)
    fresh = hook.get_session(session_id)
    assert fresh.status == "idle" and fresh.deployment_id is not None  # new sessions are idle
    assert [o.result for o in fresh.outcome_evaluations] == ["pending"]
    assert [e.type for e in hook.list_session_events(session_id)] == ["user.message", "user.define_outcome"]
    play(emulator, 1)
    assert hook.get_session(session_id).status == "running"
    play(emulator, 2)
    evaluation = hook.get_session(session_id).outcome_evaluations[0]
    assert (evaluation.iteration, evaluation.result) == (1, "running")  # needs revision: the agent works on
    play(emulator, 10)
    done = hook.get_session(session_id)
    assert done.status == "idle"
    assert (done.outcome_evaluations[0].iteration, done.outcome_evaluations[0].result) == (1, "satisfied")
    assert done.usage.input_tokens == 2400 and done.usage.list_cost is not None
    types = [e.type for e in hook.list_session_events(session_id)]
    assert types.count("span.outcome_evaluation_end") == 2 and types[-1] == "session.status_idle"
    assert final_message(hook, session_id) == "Done: Summarise today's load"


@pytest.mark.parametrize(
    ("script", "outcome", "expected"),
    [
        ({}, False, None),
        ({}, True, None),
        ({"final_text": "Three anomalies found."}, False, None),
        ({"ending": "requires_action"}, False, errors.SessionRequiresActionError),
        ({"ending": "retries_exhausted"}, False, errors.SessionRetriesExhaustedError),
        ({"ending": "budget_reached"}, False, errors.SessionBudgetReachedError),
        ({"ending": "refusal"}, False, errors.SessionRefusedError),
        ({"ending": "terminated"}, False, errors.SessionTerminatedError),
        ({"ending": "galaxy_brain"}, False, errors.UnknownSessionStopError),
        ({"outcome_result": "failed"}, True, errors.SessionOutcomeNotMetError),
        ({"outcome_result": "max_iterations_reached", "iterations": 3}, True, errors.SessionOutcomeNotMetError),
        ({"rescheduling": True}, False, None),
    ],
)
def test_each_ending_is_produced_on_demand_and_judged_by_its_class(
    hook: ManagedAgentsHook, emulator: Any, script: dict[str, Any], outcome: bool, expected: Any
) -> None:
    session_id = started(hook, emulator, outcome=outcome, **script)
    wait = SessionWait(session_id)
    assert look(wait, hook, pendulum.now("UTC")).status == "waiting"  # fresh idle is not done
    play(emulator, 1.5)
    assert look(wait, hook, pendulum.now("UTC")).status == "waiting"  # running
    play(emulator, 20)
    verdict = look(wait, hook, pendulum.now("UTC"))
    if expected is None:
        assert verdict.status == "success", verdict.reason
    else:
        assert verdict.status == "failed" and type(verdict.error) is expected, verdict.reason
        assert verdict.error is not None and verdict.error.session_id == session_id
    if script.get("final_text"):
        assert final_message(hook, session_id) == script["final_text"]


def test_scripts_apply_next_then_the_deployments_own_then_the_default(hook: ManagedAgentsHook, emulator: Any) -> None:
    emulator.control("POST", "sessions/default_script", {"final_text": "default"})
    own, other = (
        hook.create_deployment(name=name, agent="agent_demo", environment_id="env_demo", initial_events=[MESSAGE])
        for name in ("own", "other")
    )
    emulator.control("POST", f"deployments/{own.id}/session_script", {"final_text": "its own"})
    emulator.control("POST", "sessions/next_script", {"final_text": "next"})
    sessions = [hook.run_deployment(d.id).session_id for d in (own, own, other)]
    play(emulator, 10)
    assert [final_message(hook, s) for s in sessions if s] == ["next", "its own", "default"]


# --- what users may send ------------------------------------------------------------------------


def test_an_interrupt_ends_the_turn_and_an_unfinished_outcome(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = started(hook, emulator, outcome=True, iterations=3)
    play(emulator, 1)
    hook.interrupt_session(session_id)
    session = hook.get_session(session_id)
    assert session.status == "idle" and session.outcome_evaluations[0].result == "interrupted"
    idle = [e for e in hook.list_session_events(session_id) if e.type == "session.status_idle"]
    assert [e.stop_reason.type for e in idle] == ["end_turn"]  # type: ignore[union-attr]
    verdict = look(SessionWait(session_id), hook, pendulum.now("UTC"))
    assert isinstance(verdict.error, errors.SessionOutcomeNotMetError) and verdict.error.result == "interrupted"
    play(emulator, 30)  # the rest of the script never happens
    assert [e.type for e in hook.list_session_events(session_id)][-2:] == ["user.interrupt", "session.status_idle"]


def test_an_interrupted_turn_without_an_outcome_is_not_success(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = started(hook, emulator)
    play(emulator, 1)
    hook.interrupt_session(session_id)
    verdict = look(SessionWait(session_id), hook, pendulum.now("UTC"))
    assert isinstance(verdict.error, errors.SessionInterruptedError)


def test_archive_and_delete_are_refused_while_running_and_archived_sessions_refuse_events(
    hook: ManagedAgentsHook, emulator: Any
) -> None:
    session_id = started(hook, emulator)
    play(emulator, 1)
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="running"):
        hook.archive_session(session_id)
    assert raw(emulator, "DELETE", f"/v1/sessions/{session_id}").status_code == 400
    play(emulator, 10)
    archived = hook.archive_session(session_id)
    assert archived.status == "terminated" and archived.archived_at is not None
    with pytest.raises(errors.ManagedAgentsConflictError):
        hook.interrupt_session(session_id)
    deleted = raw(emulator, "DELETE", f"/v1/sessions/{session_id}")
    assert deleted.json() == {"id": session_id, "type": "session_deleted"}
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.get_session(session_id)


def test_a_message_on_an_idle_session_starts_a_new_turn(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = started(hook, emulator)
    play(emulator, 10)
    response = raw(emulator, "POST", f"/v1/sessions/{session_id}/events", json={"events": [MESSAGE]})
    assert response.status_code == 200 and response.json()["data"][0]["type"] == "user.message"
    play(emulator, 0.5)
    assert hook.get_session(session_id).status == "running"
    play(emulator, 10)
    assert final_message(hook, session_id) == "Re: Summarise today's load"


# --- lists and cursors ------------------------------------------------------------------------


def test_sessions_list_filters_and_walks_both_ways(hook: ManagedAgentsHook, emulator: Any) -> None:
    ids = [started(hook, emulator) for _ in range(5)]
    play(emulator, 1)
    hook.interrupt_session(ids[0])
    deployment_id = hook.get_session(ids[1]).deployment_id
    assert [s.id for s in hook.list_sessions(deployment_id=deployment_id)] == [ids[1]]
    running = {s.id for s in hook.list_sessions(statuses=["running"])}
    assert running == set(ids[1:])
    first = hook.list_sessions_page(limit=2, order="asc")
    assert [s.id for s in first.data] == ids[:2] and first.prev_page is None and first.next_page
    second = hook.list_sessions_page(limit=2, order="asc", page=first.next_page)
    assert [s.id for s in second.data] == ids[2:4] and second.prev_page
    back = hook.list_sessions_page(limit=2, order="asc", page=second.prev_page)
    assert [s.id for s in back.data] == ids[:2]
    assert [s.id for s in hook.list_sessions()] == list(reversed(ids))  # newest first by default


def test_events_list_filters_orders_and_keeps_its_cursor_to_its_order(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = started(hook, emulator, outcome=True, iterations=2)
    play(emulator, 20)
    every = [e.type for e in hook.list_session_events(session_id)]
    newest = hook.list_session_events_page(session_id, types=["session.status_idle", "agent.message"], order="desc")
    assert [e.type for e in newest.data] == ["session.status_idle", "agent.message", "agent.message"]
    pages = hook.list_session_events_page(session_id, limit=3)
    assert [e.type for e in pages.data] == every[:3] and pages.next_page
    assert [e.type for e in hook.list_session_events(session_id, limit=3)] == every  # all pages
    mixed = raw(emulator, "GET", f"/v1/sessions/{session_id}/events", params={"order": "desc", "page": pages.next_page})
    assert mixed.status_code == 400
    repeated = raw(emulator, "GET", f"/v1/sessions/{session_id}/events", params=[("types", "agent.message")])
    assert [e["type"] for e in repeated.json()["data"]] == ["agent.message", "agent.message"]


def test_the_event_stream_sends_what_happens_after_it_opens(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = started(hook, emulator)
    received: list[str] = []
    opened = threading.Event()

    def listen() -> None:
        headers = {
            "x-api-key": emulator.api_key,
            "anthropic-version": API_VERSION,
            "anthropic-beta": MANAGED_AGENTS_BETA,
        }
        with httpx.stream(
            "GET", f"{emulator.base_url}/v1/sessions/{session_id}/events/stream", headers=headers, timeout=30
        ) as response:
            opened.set()
            for line in response.iter_lines():
                if line.startswith("event: "):
                    received.append(line[7:])
                    if line == "event: session.status_idle":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(30)
    play(emulator, 10)  # the whole turn happens after the stream opened
    listener.join(60)
    assert received[0] == "session.status_running" and received[-1] == "session.status_idle"
    assert "user.message" not in received  # no replay of what came before
