"""Every kind of trigger event through the one codec: encoded, through JSON (the metadata
database), decoded, and judged again on the worker into the same verdict, the same exception
class and the same message; a malformed event names its trigger and the missing field."""

from __future__ import annotations

import json
from typing import Any

import pendulum
import pytest

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.compat import AirflowNotFoundException
from airflow_provider_managed_agents.models.deployments import DeploymentState
from airflow_provider_managed_agents.models.runs import DeploymentRun
from airflow_provider_managed_agents.models.session_events import SessionEventPage
from airflow_provider_managed_agents.models.sessions import Session
from airflow_provider_managed_agents.waiting.events import (
    DeploymentDecided,
    Failed,
    RunAnnouncement,
    RunDecided,
    RunWaitEvent,
    SessionDecided,
    SessionWaitEvent,
    TimedOut,
    decode,
    encode,
)
from airflow_provider_managed_agents.waiting.runs import RunWait, Verdict
from airflow_provider_managed_agents.waiting.sessions import SessionFacts, judge

T0 = pendulum.datetime(2026, 5, 1, 12, 0, 0)
WAIT = RunWait(deployment_id="depl_1", trigger_type="schedule", created_after=T0, poll_interval=30)
BY_ID = RunWait(deployment_run_id="drun_1")


def run(error: str | None = None) -> DeploymentRun:
    return DeploymentRun.model_validate(
        {
            "id": "drun_1",
            "type": "deployment_run",
            "deployment_id": "depl_1",
            "agent": {"type": "agent", "id": "agent_1", "version": 1},
            "created_at": T0.add(seconds=5).isoformat(),
            "session_id": None if error else "sesn_1",
            "error": {"type": error, "message": "it failed"} if error else None,
            "trigger_context": {"type": "schedule", "scheduled_at": T0.isoformat()},
        }
    )


def facts(stop: str | None, status: str = "idle") -> SessionFacts:
    session = Session.model_validate(
        {
            "id": "sesn_1",
            "type": "session",
            "status": status,
            "usage": {"input_tokens": 1, "output_tokens": 2},
            "created_at": T0.isoformat(),
            "updated_at": T0.isoformat(),
        }
    )
    data: list[dict[str, Any]] = []
    if stop is not None:
        data = [
            {
                "id": "sevt_2",
                "processed_at": T0.isoformat(),
                "type": "session.status_idle",
                "stop_reason": {"type": stop},
            },
            {"id": "sevt_1", "processed_at": T0.isoformat(), "type": "session.status_running"},
        ]
    return SessionFacts.of(session, list(SessionEventPage.model_validate({"data": data}).data))


API_ERRORS: list[Exception] = [
    errors.api_error_class(status)(
        "no", status=status, error_type="x_error", request_id="req_1", method="GET", path="/v1/sessions/sesn_1"
    )
    for status in (400, 401, 403, 404, 413, 422, 500)
]
ERRORS: list[Exception] = [
    *API_ERRORS,
    errors.ManagedAgentsValidationError("sensor arguments", [("trigger_type", "must be 'schedule'")]),
    errors.ManagedAgentsResponseError("Unreadable response", request_id="req_2", field="data.0.id"),
    AirflowNotFoundException("The conn_id `missing` isn't defined"),
    errors.ManagedAgentsError("something else"),
]


def through_json(event: Any, kind: type[Any]) -> Any:
    payload = json.loads(json.dumps(encode(event)))
    return decode(payload, kind)


def same(a: Any, b: Any) -> tuple[Any, ...]:
    return (a.status, type(a.error), str(a.error) if a.error else None), (
        b.status,
        type(b.error),
        str(b.error) if b.error else None,
    )


# --- the deployment-run trigger -------------------------------------------------------------------


@pytest.mark.parametrize(
    "verdict",
    [
        WAIT.on_run(run()),
        WAIT.on_run(run("vault_not_found_error")),
        WAIT.on_run(run("session_rate_limited_error")),
        WAIT.on_run(run("brand_new_error")),
        WAIT.timed_out(30),
        *[Verdict("failed", error=error, reason=str(error)) for error in ERRORS],
    ],
    ids=lambda v: f"{v.status}-{type(v.error).__name__}",
)
def test_every_run_wait_ending_round_trips_to_the_same_verdict(verdict: Verdict) -> None:
    again = through_json(RunWaitEvent.of(verdict, WAIT, T0.add(hours=1)), RunWaitEvent)
    assert again.wait == WAIT and again.deadline == T0.add(hours=1)
    rejudged = again.verdict()
    first, second = same(verdict, rejudged)
    assert first == second
    assert rejudged.reason == verdict.reason or verdict.status == "success"
    assert (rejudged.run.id if rejudged.run else None) == (verdict.run.id if verdict.run else None)


def test_an_unrunnable_deployment_travels_as_its_few_fields() -> None:
    paused = DeploymentState(
        id="depl_1",
        status="paused",
        paused_reason={"type": "error", "error": {"type": "vault_archived_error"}},
        scheduled=True,
        upcoming_runs_at=[T0.add(hours=i) for i in range(5)],
    )
    event = RunWaitEvent(WAIT, DeploymentDecided(paused), None)
    payload = encode(event)
    assert set(payload["deployment"]) == {"id", "status", "paused_reason", "archived_at"}
    verdict = decode(json.loads(json.dumps(payload)), RunWaitEvent).verdict()
    assert isinstance(verdict.error, errors.DeploymentPausedError)
    assert verdict.error.run_error_class is errors.VaultArchivedRunError


def test_a_wait_for_a_run_id_round_trips_too() -> None:
    again = through_json(RunWaitEvent(BY_ID, RunDecided(run()), None), RunWaitEvent)
    assert again.wait == BY_ID and again.deadline is None and again.verdict().status == "success"


# --- the session trigger --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stop", ["end_turn", "requires_action", "retries_exhausted", "budget_reached", "refusal", "a_new_stop"]
)
def test_every_session_ending_round_trips_to_the_same_verdict(stop: str) -> None:
    direct = judge(facts(stop))
    assert direct.facts is not None and direct.done
    event = SessionWaitEvent("sesn_1", SessionDecided(direct.facts), run_id="drun_1", deployment_id="depl_1")
    again = through_json(event, SessionWaitEvent)
    assert (again.run_id, again.deployment_id, again.stopped) == ("drun_1", "depl_1", None)
    first, second = same(direct, again.verdict())
    assert first == second


def test_a_terminated_session_round_trips() -> None:
    direct = judge(facts(None, status="terminated"))
    assert direct.facts is not None
    again = through_json(SessionWaitEvent("sesn_1", SessionDecided(direct.facts)), SessionWaitEvent)
    assert isinstance(again.verdict().error, errors.SessionTerminatedError)


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_of_a_session_wait_decodes_into_its_own_class(error: Exception) -> None:
    """A session that vanished (404), a revoked key (401), a missing connection: each reaches
    the task as its own class with its own message, whatever the event carries besides."""
    again = through_json(SessionWaitEvent("sesn_1", Failed(error), run_id="drun_1"), SessionWaitEvent)
    verdict = again.verdict()
    assert type(verdict.error) is type(error) and str(verdict.error) == str(error)
    assert again.run_id == "drun_1"


def test_a_session_timeout_keeps_the_last_facts_the_limit_and_what_was_done() -> None:
    last = facts(None, status="running")
    event = SessionWaitEvent(
        "sesn_1", TimedOut("Timed out after 10 s", last, "execution_timeout"), "drun_1", "depl_1", "interrupt"
    )
    again = through_json(event, SessionWaitEvent)
    assert isinstance(again.ending, TimedOut) and again.ending.limit == "execution_timeout"
    assert again.stopped == "interrupt"
    verdict = again.verdict()
    assert verdict.status == "timeout" and verdict.facts == last and verdict.reason == "Timed out after 10 s"


# --- the event watcher ----------------------------------------------------------------------------


@pytest.mark.parametrize("error", [None, "skill_not_found_error"])
def test_an_announced_run_is_flat_for_dag_authors_and_decodes_back(error: str | None) -> None:
    payload = json.loads(json.dumps(encode(RunAnnouncement(run(error)))))
    assert payload["deployment_run_id"] == "drun_1" and payload["deployment_id"] == "depl_1"
    assert payload["session_id"] == (None if error else "sesn_1") and payload["error_type"] == error
    assert payload["trigger_type"] == "schedule" and payload["deployment_run"]["id"] == "drun_1"
    assert decode(payload, RunAnnouncement).run == run(error)


# --- what cannot be read -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "kind", "drop", "message"),
    [
        (
            RunWaitEvent(WAIT, RunDecided(run()), None),
            RunWaitEvent,
            "run",
            "deployment_run trigger's event has no 'run'",
        ),
        (RunWaitEvent(WAIT, RunDecided(run()), None), RunWaitEvent, "wait", "has no 'wait'"),
        (RunWaitEvent(WAIT, RunDecided(run()), None), RunWaitEvent, "kind", "has no 'kind'"),
        (SessionWaitEvent("sesn_1", SessionDecided(facts("end_turn"))), SessionWaitEvent, "facts", "no 'facts'"),
        (SessionWaitEvent("sesn_1", SessionDecided(facts("end_turn"))), SessionWaitEvent, "session_id", "session_id"),
        (SessionWaitEvent("sesn_1", Failed(API_ERRORS[3])), SessionWaitEvent, "error", "session trigger's event"),
        (RunAnnouncement(run()), RunAnnouncement, "deployment_run", "deployment_run_events trigger's event"),
    ],
)
def test_a_malformed_event_names_its_trigger_and_the_missing_field(
    event: Any, kind: Any, drop: str, message: str
) -> None:
    payload = encode(event)
    del payload[drop]
    with pytest.raises(errors.MalformedTriggerEventError, match=message):
        decode(payload, kind)


def test_another_triggers_event_is_refused_by_name() -> None:
    payload = encode(SessionWaitEvent("sesn_1", SessionDecided(facts("end_turn"))))
    with pytest.raises(errors.MalformedTriggerEventError, match="Expected an event of the deployment_run trigger"):
        decode(payload, RunWaitEvent)
    with pytest.raises(errors.MalformedTriggerEventError, match="unknown kind 'surprise'"):
        decode({**payload, "kind": "surprise"}, SessionWaitEvent)
    assert issubclass(errors.MalformedTriggerEventError, errors.AirflowFailException)
