"""The one decision of "is this session done, and how": every ending, and the traps."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.models.session_events import SessionEventPage
from airflow_provider_managed_agents.models.sessions import Session
from airflow_provider_managed_agents.waiting.sessions import SessionFacts, judge, report

NOW = "2026-05-01T12:00:00Z"


def session(status: str = "idle", outcomes: list[dict[str, Any]] | None = None) -> Session:
    return Session.model_validate(
        {
            "id": "sesn_1",
            "type": "session",
            "status": status,
            "outcome_evaluations": outcomes or [],
            "usage": {"input_tokens": 10, "output_tokens": 5, "list_cost": {"amount": "44", "currency": "USD"}},
            "created_at": NOW,
            "updated_at": NOW,
        }
    )


def events(*newest_first: dict[str, Any]) -> list[Any]:
    """Events, newest first, as the desc status-events read returns them."""
    data = [{"id": f"sevt_{i}", "processed_at": NOW, **e} for i, e in enumerate(newest_first)]
    return list(SessionEventPage.model_validate({"data": data}).data)


def idle(stop: str, **extra: Any) -> dict[str, Any]:
    details = extra.pop("stop_details", None)
    event: dict[str, Any] = {"type": "session.status_idle", "stop_reason": {"type": stop, **extra}}
    if details:
        event["stop_details"] = details
    return event


RUNNING = {"type": "session.status_running"}


def outcome(result: str, iteration: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "type": "outcome_evaluation",
        "outcome_id": "outc_1",
        "description": "d",
        "iteration": iteration,
        "result": result,
        **extra,
    }


def verdict_of(status: str = "idle", newest_first: list[Any] | None = None, outcomes: Any = None) -> Any:
    return judge(SessionFacts.of(session(status, outcomes), newest_first))


def test_end_turn_after_running_is_success() -> None:
    verdict = verdict_of(newest_first=events(idle("end_turn"), RUNNING))
    assert verdict.status == "success" and verdict.error is None


@pytest.mark.parametrize("status", ["running", "rescheduling", "brand_new_status"])
def test_a_working_or_unknown_status_is_not_done(status: str) -> None:
    assert verdict_of(status, events(idle("end_turn"), RUNNING)).status == "waiting"


def test_trap_a_fresh_session_is_idle_before_it_ever_ran() -> None:
    assert verdict_of("idle", []).status == "waiting"
    assert verdict_of("idle", events({"type": "user.message", "content": []})).status == "waiting"


def test_trap_the_idle_event_can_come_before_the_status_flips() -> None:
    """The newest event says idle but the session still says running: not done yet."""
    assert verdict_of("running", events(idle("end_turn"), RUNNING)).status == "waiting"


def test_trap_an_old_idle_then_a_new_turn_is_not_done() -> None:
    """Status idle, but the newest status event is a running one (the idle event of the new
    turn not listed yet): not done."""
    assert verdict_of("idle", events(RUNNING, idle("end_turn"), RUNNING)).status == "waiting"


def test_trap_an_interrupted_turn_also_ends_with_end_turn() -> None:
    interrupted = events(idle("end_turn"), {"type": "user.interrupt"}, RUNNING)
    assert isinstance(verdict_of(newest_first=interrupted).error, errors.SessionInterruptedError)
    # An interrupt before the turn that then ended normally does not count.
    earlier = events(idle("end_turn"), RUNNING, {"type": "user.interrupt"})
    assert verdict_of(newest_first=earlier).status == "success"


def test_an_interrupted_outcome_fails_with_its_result() -> None:
    interrupted = events(idle("end_turn"), {"type": "user.interrupt"}, RUNNING)
    verdict = verdict_of(newest_first=interrupted, outcomes=[outcome("interrupted", 1, explanation="stopped")])
    assert isinstance(verdict.error, errors.SessionOutcomeNotMetError)
    assert (verdict.error.result, verdict.error.iteration, verdict.error.explanation) == ("interrupted", 1, "stopped")


@pytest.mark.parametrize("result", ["failed", "max_iterations_reached", "interrupted"])
def test_end_turn_with_an_unmet_outcome_fails(result: str) -> None:
    verdict = verdict_of(newest_first=events(idle("end_turn"), RUNNING), outcomes=[outcome(result, 2, explanation="x")])
    assert isinstance(verdict.error, errors.SessionOutcomeNotMetError) and verdict.error.result == result
    assert verdict.error.outcome_id == "outc_1" and verdict.error.iteration == 2


def test_end_turn_with_every_outcome_satisfied_is_success() -> None:
    satisfied = [outcome("satisfied", 1), {**outcome("satisfied"), "outcome_id": "outc_2"}]
    assert verdict_of(newest_first=events(idle("end_turn"), RUNNING), outcomes=satisfied).status == "success"


@pytest.mark.parametrize("result", ["pending", "running", "evaluating"])
def test_end_turn_while_an_outcome_is_still_evaluated_is_not_done(result: str) -> None:
    assert verdict_of(newest_first=events(idle("end_turn"), RUNNING), outcomes=[outcome(result)]).status == "waiting"


def test_requires_action_names_the_events() -> None:
    verdict = verdict_of(newest_first=events(idle("requires_action", event_ids=["sevt_9"]), RUNNING))
    assert isinstance(verdict.error, errors.SessionRequiresActionError) and verdict.error.event_ids == ["sevt_9"]


def test_retries_exhausted_carries_the_newest_session_error() -> None:
    error = {"type": "model_overloaded_error", "message": "overloaded", "retry_status": {"type": "exhausted"}}
    older = {**error, "type": "model_rate_limited_error", "retry_status": {"type": "retrying"}}
    newest_first = events(
        idle("retries_exhausted"),
        {"type": "session.error", "error": error},
        {"type": "session.error", "error": older},
        RUNNING,
    )
    verdict = verdict_of(newest_first=newest_first)
    assert isinstance(verdict.error, errors.SessionRetriesExhaustedError)
    assert (verdict.error.error_type, verdict.error.error_message) == ("model_overloaded_error", "overloaded")


def test_budget_reached() -> None:
    verdict = verdict_of(newest_first=events(idle("budget_reached"), RUNNING))
    assert isinstance(verdict.error, errors.SessionBudgetReachedError)
    assert verdict.error.usage["list_cost"] == {"amount": "44", "currency": "USD"}


def test_refusal_carries_category_and_explanation() -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "exploit code"}
    verdict = verdict_of(newest_first=events(idle("refusal", stop_details=details), RUNNING))
    assert isinstance(verdict.error, errors.SessionRefusedError)
    assert (verdict.error.category, verdict.error.explanation) == ("cyber", "exploit code")


def test_terminated_fails_with_the_newest_session_error() -> None:
    error = {"type": "billing_error", "message": "no credit", "retry_status": {"type": "terminal"}}
    verdict = verdict_of(
        "terminated", events({"type": "session.status_terminated"}, {"type": "session.error", "error": error})
    )
    assert isinstance(verdict.error, errors.SessionTerminatedError) and verdict.error.error_type == "billing_error"
    bare = verdict_of("terminated", [])
    assert isinstance(bare.error, errors.SessionTerminatedError) and bare.error.error_type is None


def test_an_unknown_stop_reason_keeps_its_type() -> None:
    verdict = verdict_of(newest_first=events(idle("galaxy_brain_stop", detail=1), RUNNING))
    assert isinstance(verdict.error, errors.UnknownSessionStopError)
    assert verdict.error.stop_reason == "galaxy_brain_stop" and "galaxy_brain_stop" in str(verdict.error)


def test_unknown_event_types_parse_and_keep_their_fields() -> None:
    (event,) = events({"type": "agent.hologram", "beam": {"x": 1}})
    assert event.type == "agent.hologram" and event.model_dump()["beam"] == {"x": 1}


def test_every_session_error_is_final_for_airflow() -> None:
    from airflow_provider_managed_agents.compat import AirflowFailException

    for cls in (
        errors.SessionRequiresActionError,
        errors.SessionRetriesExhaustedError,
        errors.SessionBudgetReachedError,
        errors.SessionRefusedError,
        errors.SessionTerminatedError,
        errors.SessionOutcomeNotMetError,
        errors.SessionInterruptedError,
        errors.UnknownSessionStopError,
    ):
        assert issubclass(cls, errors.SessionError) and issubclass(cls, AirflowFailException)


def test_the_report_holds_every_xcom_key() -> None:
    verdict = verdict_of(
        newest_first=events(idle("end_turn"), RUNNING), outcomes=[outcome("satisfied", explanation="ok")]
    )
    assert verdict.facts is not None
    published = report(verdict.facts, "Three anomalies.")
    assert published == {
        "session_id": "sesn_1",
        "session_status": "idle",
        "stop_reason": "end_turn",
        "stop_details": None,
        "final_message": "Three anomalies.",
        "outcome": [
            {"outcome_id": "outc_1", "description": "d", "result": "satisfied", "iteration": 0, "explanation": "ok"}
        ],
        "usage": {"input_tokens": 10, "output_tokens": 5, "list_cost": {"amount": "44", "currency": "USD"}},
    }
