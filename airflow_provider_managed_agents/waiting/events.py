"""Every event a trigger of this provider yields, as a typed record: one encoder, one decoder.

A trigger event crosses a process boundary (triggerer -> metadata database -> worker, or an
asset event's ``extra``), so it is small and flat, and read back here, never indexed by hand:

- :class:`RunWaitEvent` (``ManagedAgentsDeploymentRunTrigger``): the wait and how it ended;
- :class:`SessionWaitEvent` (``ManagedAgentsSessionTrigger``): the session, the run that made
  it (when a run task follows it) and how the wait ended;
- :class:`RunAnnouncement` (``ManagedAgentsDeploymentRunEventTrigger``): a new run, the payload
  of an asset event.

A wait ends in one of five ways (:data:`Ending`): the run that decides it, the deployment state
that does (it cannot fire), the session's facts, an error no retry fixes (:class:`Failed`,
rebuilt as the same exception class with the same message), or the timeout. The worker judges
runs, deployment states and session facts again with the same pure decisions as every other
mode, so every mode raises the same error.

:func:`encode` and :func:`decode` are the only way in and out; a payload that lacks a field
raises :class:`~airflow_provider_managed_agents.exceptions.MalformedTriggerEventError` naming
the trigger and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from airflow_provider_managed_agents import exceptions as errors

if TYPE_CHECKING:
    from airflow_provider_managed_agents.models.deployments import DeploymentState
    from airflow_provider_managed_agents.models.runs import DeploymentRun
    from airflow_provider_managed_agents.waiting.runs import RunWait, Verdict
    from airflow_provider_managed_agents.waiting.sessions import SessionFacts, SessionVerdict


# --- how a wait ended ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunDecided:
    """A run answered the wait (it created a session, or failed with its typed error)."""

    run: DeploymentRun
    kind: ClassVar[str] = "run"


@dataclass(frozen=True)
class DeploymentDecided:
    """The deployment cannot fire (archived, or paused while a scheduled run is awaited)."""

    deployment: DeploymentState
    kind: ClassVar[str] = "deployment"


@dataclass(frozen=True)
class SessionDecided:
    """The session's turn is over: its facts, judged again by the worker."""

    facts: SessionFacts
    kind: ClassVar[str] = "session"


@dataclass(frozen=True)
class Failed:
    """An error no retry fixes ended the wait (an API error, bad arguments, no connection)."""

    error: Exception
    kind: ClassVar[str] = "error"


@dataclass(frozen=True)
class TimedOut:
    """The wait reached its deadline; for a session, its facts at the last look. ``limit``:
    the task's ``timeout`` or its ``execution_timeout``."""

    reason: str
    facts: SessionFacts | None = None
    limit: str = "timeout"
    kind: ClassVar[str] = "timeout"


Ending = RunDecided | DeploymentDecided | SessionDecided | Failed | TimedOut


# --- the events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunWaitEvent:
    """How a deferred deployment-run wait ended, and its deadline (a session follow after it
    keeps the same one)."""

    wait: RunWait
    ending: RunDecided | DeploymentDecided | Failed | TimedOut
    deadline: datetime | None = None
    trigger: ClassVar[str] = "deployment_run"

    @classmethod
    def of(cls, verdict: Verdict, wait: RunWait, deadline: datetime | None) -> RunWaitEvent:
        """The event of a finished verdict."""
        ending: RunDecided | DeploymentDecided | Failed | TimedOut
        if verdict.status == "timeout":
            ending = TimedOut(verdict.reason)
        elif verdict.run is not None:
            ending = RunDecided(verdict.run)
        elif verdict.deployment is not None:
            ending = DeploymentDecided(verdict.deployment)
        else:
            assert verdict.error is not None, "a finished run verdict without a run, deployment or error"
            ending = Failed(verdict.error)
        return cls(wait, ending, deadline)

    def verdict(self) -> Verdict:
        """The verdict, judged again on the worker with the same decision as every mode."""
        from airflow_provider_managed_agents.waiting.runs import LookState, Verdict

        ending = self.ending
        if isinstance(ending, RunDecided):
            return self.wait.on_run(ending.run)
        if isinstance(ending, DeploymentDecided):
            from airflow_provider_managed_agents.waiting import clock

            judged = self.wait.on_deployment(ending.deployment, LookState(), clock.now())
            if judged.done:
                return judged
            raise errors.MalformedTriggerEventError(
                f"The {self.trigger} trigger ended on deployment {ending.deployment.id}, which can still fire"
            )
        if isinstance(ending, Failed):
            return Verdict("failed", error=ending.error, reason=str(ending.error))
        return Verdict("timeout", reason=ending.reason)


@dataclass(frozen=True)
class SessionWaitEvent:
    """How a deferred session wait ended. ``run_id`` / ``deployment_id``: the run whose session
    a run task followed; ``stopped``: how the trigger stopped the session when the task that
    started it gave up at its deadline (``interrupt`` or ``archive``)."""

    session_id: str
    ending: SessionDecided | Failed | TimedOut
    run_id: str | None = None
    deployment_id: str | None = None
    stopped: str | None = None
    trigger: ClassVar[str] = "session"

    @property
    def limit(self) -> str:
        """Which of the task's limits a timeout reached (``timeout`` otherwise)."""
        return self.ending.limit if isinstance(self.ending, TimedOut) else "timeout"

    def verdict(self) -> SessionVerdict:
        """The verdict, judged again on the worker with the same decision as every mode."""
        from airflow_provider_managed_agents.waiting.sessions import SessionVerdict, judge

        ending = self.ending
        if isinstance(ending, SessionDecided):
            judged = judge(ending.facts)
            if judged.done:
                return judged
            raise errors.MalformedTriggerEventError(
                f"The {self.trigger} trigger ended on session {self.session_id}, whose turn is not over"
            )
        if isinstance(ending, Failed):
            return SessionVerdict("failed", error=ending.error, reason=str(ending.error))
        return SessionVerdict("timeout", ending.facts, reason=ending.reason)


@dataclass(frozen=True)
class RunAnnouncement:
    """A new run of a watched deployment: the payload of its asset event (``extra["payload"]``).

    Flat for DAG authors: ``deployment_id``, ``deployment_run_id``, ``session_id``,
    ``error_type``, ``trigger_type`` and ``created_at`` at the top, the whole run under
    ``deployment_run``."""

    run: DeploymentRun
    trigger: ClassVar[str] = "deployment_run_events"


TriggerEventRecord = RunWaitEvent | SessionWaitEvent | RunAnnouncement
EventT = TypeVar("EventT", RunWaitEvent, SessionWaitEvent, RunAnnouncement)


# --- encoding -----------------------------------------------------------------------------------


def encode(event: TriggerEventRecord) -> dict[str, Any]:
    """The JSON-safe payload of a trigger event."""
    if isinstance(event, RunAnnouncement):
        run = event.run
        return {
            "trigger": event.trigger,
            "deployment_id": run.deployment_id,
            "deployment_run_id": run.id,
            "session_id": run.session_id,
            "error_type": run.error.type if run.error is not None else None,
            "trigger_type": run.trigger_type,
            "created_at": run.created_at.isoformat(),
            "deployment_run": run.model_dump(mode="json"),
        }
    payload: dict[str, Any] = {"trigger": event.trigger}
    if isinstance(event, RunWaitEvent):
        payload["wait"] = event.wait.to_dict()
        payload["deadline"] = event.deadline.isoformat() if event.deadline is not None else None
    else:
        payload.update(
            session_id=event.session_id, run_id=event.run_id, deployment_id=event.deployment_id, stopped=event.stopped
        )
    payload.update(_encode_ending(event.ending))
    return payload


def _encode_ending(ending: Ending) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": ending.kind}
    if isinstance(ending, RunDecided):
        data["run"] = ending.run.model_dump(mode="json")
        data["reason"] = f"run {ending.run.id} answered"
    elif isinstance(ending, DeploymentDecided):
        data["deployment"] = ending.deployment.to_event()
        data["reason"] = f"deployment {ending.deployment.id} cannot fire"
    elif isinstance(ending, SessionDecided):
        data["facts"] = ending.facts.to_dict()
        data["reason"] = f"session {ending.facts.session_id} is {ending.facts.status}"
    elif isinstance(ending, Failed):
        data["error"] = encode_error(ending.error)
        data["reason"] = str(ending.error)
    else:
        data["reason"] = ending.reason
        data["facts"] = ending.facts.to_dict() if ending.facts is not None else None
        data["limit"] = ending.limit
    return data


def encode_error(exc: Exception) -> dict[str, Any]:
    """A JSON-safe record of an error that ended a wait, from which :func:`decode_error`
    rebuilds the same class with the same message (our messages never hold a secret)."""
    if isinstance(exc, errors.ManagedAgentsAPIError):
        return {
            "type": "api",
            "message": exc.message,
            "status": exc.status,
            "error_type": exc.error_type,
            "request_id": exc.request_id,
            "details": exc.details,
            "method": exc.method,
            "path": exc.path,
        }
    if isinstance(exc, errors.ManagedAgentsValidationError):
        return {"type": "validation", "what": exc.what, "problems": [list(p) for p in exc.problems]}
    if isinstance(exc, errors.ManagedAgentsResponseError):
        return {"type": "response", "message": str(exc), "request_id": exc.request_id, "field": exc.field}
    from airflow_provider_managed_agents.compat import AirflowNotFoundException

    if isinstance(exc, AirflowNotFoundException):
        return {"type": "connection", "message": str(exc)}
    return {"type": "other", "class": type(exc).__name__, "message": str(exc)}


def decode_error(data: Mapping[str, Any], trigger: str = "this") -> Exception:
    """The exception :func:`encode_error` recorded."""
    kind = _need(data, "type", trigger)
    if kind == "api":
        status = int(_need(data, "status", trigger))
        return errors.api_error_class(status)(
            str(_need(data, "message", trigger)),
            status=status,
            error_type=data.get("error_type"),
            request_id=data.get("request_id"),
            details=data.get("details"),
            method=data.get("method"),
            path=data.get("path"),
        )
    if kind == "validation":
        problems = [(str(p), str(m)) for p, m in _need(data, "problems", trigger)]
        return errors.ManagedAgentsValidationError(str(_need(data, "what", trigger)), problems)
    if kind == "response":
        return errors.ManagedAgentsResponseError(
            str(_need(data, "message", trigger)), request_id=data.get("request_id"), field=data.get("field")
        )
    if kind == "connection":
        from airflow_provider_managed_agents.compat import AirflowNotFoundException

        return AirflowNotFoundException(str(_need(data, "message", trigger)))
    message = str(_need(data, "message", trigger))
    cls = data.get("class")
    return errors.ManagedAgentsError(message if cls == errors.ManagedAgentsError.__name__ else f"{cls}: {message}")


# --- decoding -----------------------------------------------------------------------------------


def decode(payload: Mapping[str, Any], expected: type[EventT]) -> EventT:
    """The event ``payload`` encodes, which must be of the ``expected`` kind."""
    trigger = expected.trigger
    if not isinstance(payload, Mapping):
        raise errors.MalformedTriggerEventError(f"The {trigger} trigger's event is not a mapping")
    found = payload.get("trigger")
    if found != trigger:
        raise errors.MalformedTriggerEventError(
            f"Expected an event of the {trigger} trigger, got one of {found!r}: an event from another provider "
            "version or another trigger"
        )
    if expected is RunAnnouncement:
        return _decode_announcement(payload)  # type: ignore[return-value]
    ending = _decode_ending(payload, trigger)
    if expected is RunWaitEvent:
        from airflow_provider_managed_agents.models.base import parse_timestamp
        from airflow_provider_managed_agents.waiting.runs import RunWait

        if isinstance(ending, SessionDecided):
            raise errors.MalformedTriggerEventError(f"The {trigger} trigger's event ends on a session")
        deadline = payload.get("deadline")
        wait = RunWait.from_dict(_need(payload, "wait", trigger))
        return RunWaitEvent(wait, ending, parse_timestamp(deadline) if deadline else None)  # type: ignore[return-value]
    if isinstance(ending, RunDecided | DeploymentDecided):
        raise errors.MalformedTriggerEventError(f"The {trigger} trigger's event ends on a {ending.kind}")
    return SessionWaitEvent(  # type: ignore[return-value]
        str(_need(payload, "session_id", trigger)),
        ending,
        run_id=payload.get("run_id"),
        deployment_id=payload.get("deployment_id"),
        stopped=payload.get("stopped"),
    )


def _decode_ending(payload: Mapping[str, Any], trigger: str) -> Ending:
    from airflow_provider_managed_agents.waiting.sessions import SessionFacts

    kind: Literal["run", "deployment", "session", "error", "timeout"] = _need(payload, "kind", trigger)
    if kind == "run":
        from airflow_provider_managed_agents.models.runs import DeploymentRun

        return RunDecided(DeploymentRun.model_validate(_need(payload, "run", trigger)))
    if kind == "deployment":
        from airflow_provider_managed_agents.models.deployments import DeploymentState

        return DeploymentDecided(DeploymentState.model_validate(_need(payload, "deployment", trigger)))
    if kind == "session":
        return SessionDecided(SessionFacts.from_dict(_need(payload, "facts", trigger)))
    if kind == "error":
        return Failed(decode_error(_need(payload, "error", trigger), trigger))
    if kind == "timeout":
        facts = payload.get("facts")
        return TimedOut(
            str(_need(payload, "reason", trigger)),
            SessionFacts.from_dict(facts) if facts else None,
            str(payload.get("limit") or "timeout"),
        )
    raise errors.MalformedTriggerEventError(f"The {trigger} trigger's event has an unknown kind {kind!r}")


def _decode_announcement(payload: Mapping[str, Any]) -> RunAnnouncement:
    from airflow_provider_managed_agents.models.runs import DeploymentRun

    return RunAnnouncement(DeploymentRun.model_validate(_need(payload, "deployment_run", RunAnnouncement.trigger)))


def _need(payload: Mapping[str, Any], key: str, trigger: str) -> Any:
    if key not in payload or payload[key] is None:
        raise errors.MalformedTriggerEventError(f"The {trigger} trigger's event has no {key!r}")
    return payload[key]
