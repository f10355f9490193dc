"""Following a session to its end: the one decision of "is this session done, and how".

:func:`judge` is pure and typed: from :class:`SessionFacts` (the session's status, outcome
evaluations and usage, and what its newest status events say) to a :class:`SessionVerdict`.
The run operator, both sensors and the session trigger all call it, in every mode; the
trigger's event carries the facts and the worker judges them again.

The rules, and the traps they avoid:

- ``running`` / ``rescheduling`` (or a status newer than this client): not done;
- ``terminated``: failed, with the newest ``session.error`` (:class:`SessionTerminatedError`);
- ``idle``: done only when the newest status event is a ``session.status_idle`` that a
  ``session.status_running`` precedes (a new session is idle before it ever ran; the idle event
  can be listed a moment before or after the status flips). Its stop reason decides:
  ``end_turn`` is success unless an outcome was defined and its newest evaluation is not
  ``satisfied`` (still evaluating: not done), or the turn ended on a ``user.interrupt`` (an
  interrupted turn also ends with ``end_turn``); every other stop reason fails with its class.

The looks cost one request per poll while the session runs (the session itself), and two more
at the end: its status events when the status says the turn may be over, its newest
``agent.message`` (:func:`final_message`) once it is done.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.waiting.loop import Plan, ReadEvents, ReadSession, aanswer, answer

if TYPE_CHECKING:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.models.session_events import SessionEvent
    from airflow_provider_managed_agents.models.sessions import Session

# Enough of the newest status events to find the newest idle and what preceded it.
STATUS_EVENTS_PAGE = 50
DEFAULT_FINAL_MESSAGE_MAX_CHARS = 100_000


@dataclass(frozen=True)
class SessionFacts:
    """What decides a session's ending, flat and JSON-safe (a trigger event carries it)."""

    session_id: str
    status: str
    outcome_evaluations: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    deployment_id: str | None = None
    # From the newest status events (newest first):
    newest_status_event: str | None = None
    idle: dict[str, Any] | None = None  # the newest session.status_idle (stop_reason, stop_details)
    ran_before_idle: bool = False
    interrupted: bool = False  # a user.interrupt after the newest status_running
    error: dict[str, Any] | None = None  # the newest session.error's error
    created_at: str | None = None  # ISO; bounds the sessions feed's list

    @classmethod
    def of(cls, session: Session, newest_first: list[SessionEvent] | None = None) -> SessionFacts:
        """Facts from the session and (when the status says the turn may be over) its newest
        status events, newest first."""
        from airflow_provider_managed_agents.models.session_events import (
            SessionErrorEvent,
            StatusIdle,
            StatusRunning,
            UserInterrupt,
        )

        events = newest_first or []
        status_types = {"session.status_running", "session.status_idle", "session.status_rescheduled"}
        status_types.add("session.status_terminated")
        newest_status = next((e for e in events if e.type in status_types), None)
        idle_at = next((i for i, e in enumerate(events) if isinstance(e, StatusIdle)), None)
        idle = events[idle_at] if idle_at is not None else None
        running_at = next((i for i, e in enumerate(events) if isinstance(e, StatusRunning)), None)
        error = next((e for e in events if isinstance(e, SessionErrorEvent)), None)
        interrupt_at = next((i for i, e in enumerate(events) if isinstance(e, UserInterrupt)), None)
        return cls(
            session_id=session.id,
            status=session.status,
            outcome_evaluations=[o.model_dump(mode="json") for o in session.outcome_evaluations],
            usage=session.usage.model_dump(mode="json", exclude_none=True),
            deployment_id=session.deployment_id,
            newest_status_event=newest_status.type if newest_status is not None else None,
            idle=idle.model_dump(mode="json", include={"id", "processed_at", "stop_reason", "stop_details"})
            if idle is not None
            else None,
            ran_before_idle=idle_at is not None and running_at is not None and running_at > idle_at,
            interrupted=interrupt_at is not None and (running_at is None or interrupt_at < running_at),
            error=error.error.model_dump(mode="json") if error is not None else None,
            created_at=session.created_at.isoformat(),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionFacts:
        return cls(**data)

    @property
    def may_be_over(self) -> bool:
        """Whether the status alone says the turn may be over (worth reading the events)."""
        return self.status in ("idle", "terminated")

    @property
    def stop_reason(self) -> str | None:
        return self.idle["stop_reason"]["type"] if self.idle else None

    @property
    def stop_details(self) -> dict[str, Any] | None:
        return self.idle.get("stop_details") if self.idle else None


@dataclass(frozen=True)
class SessionVerdict:
    """``success``, ``failed`` (``error`` says how) or ``waiting``; ``timeout`` at a deadline."""

    status: Literal["success", "failed", "waiting", "timeout"]
    facts: SessionFacts | None = None
    error: Exception | None = None
    reason: str = ""
    next_look_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status != "waiting"


def newest_evaluations(facts: SessionFacts) -> list[dict[str, Any]]:
    """The newest evaluation of each defined outcome."""
    newest: dict[str, dict[str, Any]] = {}
    for evaluation in facts.outcome_evaluations:
        known = newest.get(evaluation["outcome_id"])
        if known is None or evaluation.get("iteration", 0) >= known.get("iteration", 0):
            newest[evaluation["outcome_id"]] = evaluation
    return list(newest.values())


def judge(facts: SessionFacts) -> SessionVerdict:
    """Is this session done, and how (see the module docstring)."""
    from airflow_provider_managed_agents.models.sessions import OUTCOME_IN_PROGRESS

    common: dict[str, Any] = {
        "session_id": facts.session_id,
        "status": facts.status,
        "stop_reason": facts.stop_reason,
        "usage": facts.usage,
    }
    session = f"Session {facts.session_id}"
    error = facts.error or {}
    if facts.status == "terminated":
        why = f": {error.get('type')}: {error.get('message', '')}" if error else ""
        return _failed(
            facts,
            errors.SessionTerminatedError(
                f"{session} terminated{why}",
                error_type=error.get("type"),
                error_message=error.get("message"),
                **common,
            ),
        )
    if facts.status != "idle" or facts.idle is None or not facts.ran_before_idle:
        return SessionVerdict("waiting", facts)
    if facts.newest_status_event != "session.status_idle":
        return SessionVerdict("waiting", facts)
    stop = facts.stop_reason
    details = facts.stop_details or {}
    if stop == "end_turn":
        evaluations = newest_evaluations(facts)
        if any(e["result"] in OUTCOME_IN_PROGRESS for e in evaluations):
            return SessionVerdict("waiting", facts)
        unmet = next((e for e in evaluations if e["result"] != "satisfied"), None)
        if unmet is not None:
            explanation = unmet.get("explanation")
            return _failed(
                facts,
                errors.SessionOutcomeNotMetError(
                    f"{session} ended its turn without meeting outcome {unmet['outcome_id']}: {unmet['result']}"
                    f" at iteration {unmet.get('iteration')}" + (f" ({explanation})" if explanation else ""),
                    result=unmet["result"],
                    explanation=explanation,
                    iteration=unmet.get("iteration"),
                    outcome_id=unmet["outcome_id"],
                    **common,
                ),
            )
        if facts.interrupted and not evaluations:
            return _failed(facts, errors.SessionInterruptedError(f"{session} was interrupted", **common))
        return SessionVerdict("success", facts, reason=f"{session} ended its turn (end_turn)")
    if stop == "requires_action":
        event_ids = list(facts.idle["stop_reason"].get("event_ids") or [])
        return _failed(
            facts,
            errors.SessionRequiresActionError(
                f"{session} is waiting for an action (events {', '.join(event_ids) or 'unknown'})",
                event_ids=event_ids,
                **common,
            ),
        )
    if stop == "retries_exhausted":
        why = f": {error.get('type')}: {error.get('message', '')}" if error else ""
        return _failed(
            facts,
            errors.SessionRetriesExhaustedError(
                f"{session} gave up after repeated errors{why}",
                error_type=error.get("type"),
                error_message=error.get("message"),
                **common,
            ),
        )
    if stop == "budget_reached":
        return _failed(facts, errors.SessionBudgetReachedError(f"{session} reached its budget", **common))
    if stop == "refusal":
        category, explanation = details.get("category"), details.get("explanation")
        return _failed(
            facts,
            errors.SessionRefusedError(
                f"{session} was refused by the model ({category or 'no category'})"
                + (f": {explanation}" if explanation else ""),
                category=category,
                explanation=explanation,
                **common,
            ),
        )
    return _failed(facts, errors.UnknownSessionStopError(f"{session} stopped with {stop!r}", **common))


def _failed(facts: SessionFacts, error: errors.SessionError) -> SessionVerdict:
    return SessionVerdict("failed", facts, error=error, reason=str(error))


@dataclass(frozen=True)
class SessionWait:
    """Waiting for ``session_id`` to end, looking every ``poll_interval`` seconds."""

    session_id: str
    poll_interval: float = 30.0

    def describe(self) -> str:
        return f"session {self.session_id} to end"

    def timed_out(self, timeout: float, last: SessionVerdict | None = None) -> SessionVerdict:
        """The timeout verdict, with the session's state at the last look when known."""
        reason = f"Timed out after {timeout:g} s waiting for {self.describe()}"
        return SessionVerdict("timeout", last.facts if last is not None else None, reason=reason)

    def retry_at(self, now: datetime) -> datetime:
        """The next look: one poll interval later."""
        return now + timedelta(seconds=self.poll_interval)

    def waiting(self, facts: SessionFacts, now: datetime) -> SessionVerdict:
        return SessionVerdict("waiting", facts, next_look_at=self.retry_at(now))


def looking(wait: SessionWait, now: datetime) -> Plan[SessionVerdict]:
    """One look, as the reads it needs: the session; its newest status events only when its
    status says the turn may be over."""
    from airflow_provider_managed_agents.models.session_events import STATUS_EVENT_TYPES

    session = yield ReadSession(wait.session_id)
    facts = SessionFacts.of(session)
    if facts.may_be_over:
        filters = {"types": list(STATUS_EVENT_TYPES), "order": "desc", "limit": STATUS_EVENTS_PAGE}
        facts = SessionFacts.of(session, (yield ReadEvents(wait.session_id, filters)))
    verdict = judge(facts)
    return verdict if verdict.done else wait.waiting(facts, now)


def look(wait: SessionWait, hook: ManagedAgentsHook, now: datetime) -> SessionVerdict:
    """:func:`looking` with the blocking hook. Raises the hook's errors."""
    return answer(looking(wait, now), hook)


async def alook(wait: SessionWait, hook: ManagedAgentsHook, now: datetime) -> SessionVerdict:
    """:func:`looking` with the hook's async client (the same requests, the same verdict)."""
    return await aanswer(looking(wait, now), hook)


def final_message(hook: ManagedAgentsHook, session_id: str, max_chars: int = DEFAULT_FINAL_MESSAGE_MAX_CHARS) -> str:
    """The text of the session's newest ``agent.message`` (one request), cut at ``max_chars``."""
    from airflow_provider_managed_agents.models.session_events import AgentMessage

    page = hook.list_session_events_page(session_id, types=["agent.message"], order="desc", limit=1)
    newest = next((e for e in page.data if isinstance(e, AgentMessage)), None)
    text = newest.text() if newest is not None else ""
    return text[:max_chars]


def report(facts: SessionFacts, final_text: str | None) -> dict[str, Any]:
    """What a task publishes about a session that ended (XCom keys), on success and failure."""
    return {
        "session_id": facts.session_id,
        "session_status": facts.status,
        "stop_reason": facts.stop_reason,
        "stop_details": facts.stop_details,
        "final_message": final_text,
        "outcome": [
            {
                "outcome_id": e.get("outcome_id"),
                "description": e.get("description"),
                "result": e.get("result"),
                "iteration": e.get("iteration"),
                "explanation": e.get("explanation"),
            }
            for e in facts.outcome_evaluations
        ],
        "usage": facts.usage,
    }
