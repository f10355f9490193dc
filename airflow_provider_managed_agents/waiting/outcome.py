"""Verdicts across the triggerer boundary: small, flat trigger events, re-judged on the worker.

A trigger's event carries only what decides the wait (the run as JSON, the few deployment fields
of :meth:`DeploymentState.to_event`, an error record, or the timeout), never a whole deployment.
The worker rebuilds the verdict from it with the same :class:`RunWait`, so deferrable mode
raises the same exception class with the same message as poke and reschedule modes.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_managed_agents.exceptions import (
    ManagedAgentsError,
    error_from_payload,
    error_to_payload,
)
from airflow_provider_managed_agents.waiting import clock
from airflow_provider_managed_agents.waiting.runs import LookState, RunWait, Verdict


def event_payload(verdict: Verdict, wait: RunWait) -> dict[str, Any]:
    """A JSON-safe event for a finished verdict."""
    payload: dict[str, Any] = {"status": verdict.status, "reason": verdict.reason, "wait": wait.to_dict()}
    if verdict.run is not None:
        payload["run"] = verdict.run.model_dump(mode="json")
    elif verdict.deployment is not None:
        payload["deployment"] = verdict.deployment.to_event()
    elif verdict.error is not None:
        payload["error"] = error_to_payload(verdict.error)
    return payload


def error_payload(exc: ManagedAgentsError, wait: RunWait) -> dict[str, Any] | None:
    """The event for a look that failed with ``exc`` (an API or validation error), or None when
    the error cannot cross the boundary."""
    record = error_to_payload(exc)
    if record is None:
        return None
    return {"status": "failed", "reason": str(exc), "wait": wait.to_dict(), "error": record}


def verdict_from_event(event: dict[str, Any]) -> tuple[RunWait, Verdict]:
    """The wait and its verdict, re-judged from a trigger's event."""
    from airflow_provider_managed_agents.models.deployments import DeploymentState
    from airflow_provider_managed_agents.models.runs import DeploymentRun

    wait = RunWait.from_dict(event["wait"])
    if event.get("run") is not None:
        return wait, wait.on_run(DeploymentRun.model_validate(event["run"]))
    if event.get("deployment") is not None:
        state = DeploymentState.model_validate(event["deployment"])
        verdict = wait.on_deployment(state, LookState(), clock.now())
        if verdict.done:
            return wait, verdict
    if event.get("error") is not None:
        return wait, Verdict("failed", error=error_from_payload(event["error"]), reason=event.get("reason", ""))
    if event.get("status") == "timeout":
        return wait, Verdict("timeout", reason=event["reason"])
    raise ManagedAgentsError(f"A trigger event that decides nothing: {event.get('status')}: {event.get('reason')}")
