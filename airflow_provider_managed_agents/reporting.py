"""Readable log lines and console links for deployments and runs.

Imported only inside ``execute`` (cron_descriptor is not free to import).
"""

from __future__ import annotations

import pendulum

from airflow_provider_managed_agents.hooks.wire import Settings
from airflow_provider_managed_agents.models.deployments import Deployment, Schedule
from airflow_provider_managed_agents.models.runs import DeploymentRun

UPCOMING_SHOWN = 3


def console_url(settings: Settings, deployment_id: str) -> str:
    """The deployment's page in the Claude Console (base URL configurable on the connection)."""
    workspace = settings.workspace_id or "default"
    return f"{settings.console_url.rstrip('/')}/workspaces/{workspace}/deployments/{deployment_id}"


def session_console_url(settings: Settings, session_id: str) -> str:
    """The session's page in the Claude Console."""
    workspace = settings.workspace_id or "default"
    return f"{settings.console_url.rstrip('/')}/workspaces/{workspace}/sessions/{session_id}"


def describe_schedule(schedule: Schedule) -> str:
    """``"At 08:00 PM, only on Friday" (0 20 * * 5, America/New_York); next: 2026-05-08 20:00 EDT, ...``"""
    try:
        from cron_descriptor import get_description

        words = f'"{get_description(schedule.expression)}" '
    except Exception:  # a describer failure must never fail the task
        words = ""
    upcoming = [
        pendulum.instance(t).in_timezone(schedule.timezone).format("YYYY-MM-DD HH:mm zz")
        for t in schedule.upcoming_runs_at[:UPCOMING_SHOWN]
    ]
    nxt = f"; next: {', '.join(upcoming)}" if upcoming else "; no upcoming fires"
    return f"{words}({schedule.expression}, {schedule.timezone}){nxt}"


def describe_deployment(deployment: Deployment) -> str:
    state = "archived" if deployment.is_archived else deployment.status
    if deployment.is_paused and deployment.paused_reason is not None:
        reason = deployment.paused_reason
        error = getattr(reason, "error", None)
        state += f" ({reason.type}{': ' + error.type if error is not None else ''})"
    agent = f"{deployment.agent.id} v{deployment.agent.version}"
    schedule = describe_schedule(deployment.schedule) if deployment.schedule else "manual runs only"
    return f"deployment {deployment.id} {deployment.name!r} [{state}] agent {agent}; schedule: {schedule}"


def describe_run(run: DeploymentRun) -> str:
    trigger = run.trigger_type
    scheduled_at = getattr(run.trigger_context, "scheduled_at", None)
    if scheduled_at is not None:
        trigger += f" for {scheduled_at.isoformat()}"
    if run.error is not None:
        return f"Run {run.id} of {run.deployment_id} ({trigger}) failed: {run.error.type}: {run.error.message}"
    return f"Run {run.id} of {run.deployment_id} ({trigger}) created session {run.session_id}"
