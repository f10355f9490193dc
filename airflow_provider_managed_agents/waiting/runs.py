"""Waiting for a deployment run: the one decision shared by the sensor, the trigger and the feed.

A :class:`RunWait` is the question (a run id, or the next run of a deployment created at or
after ``created_after``, optionally of one trigger type). Its judging methods are pure:

- :meth:`RunWait.on_run` / :meth:`RunWait.on_runs`: the verdict when a run answers, else None;
- :meth:`RunWait.on_deployment`: no run yet, so fail fast when no awaited run can come, or say
  when to look next (schedule-aware: just after the next listed fire plus its jitter).

:func:`look` and :func:`alook` are the looks themselves, as typed hook calls: the runs query
when it is due, the deployment when its last read is a minute old. The verdict never depends
on what a waiter remembers between looks (:class:`LookState` only saves requests): it is always
re-derived from ``created_after``, so a run that fires during a reschedule, a deferral or a
triggerer restart is found exactly once.

A scheduled fire stays a reason to read the runs until a runs read made after the fire plus the
largest jitter has covered it (:func:`with_pending_fires`), whatever later deployment reads
list: the service stops listing a fire once its time has passed, while its run may still be
coming.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_managed_agents.exceptions import (
    DeploymentRunError,
    exception_for_run,
    exception_for_unrunnable,
)
from airflow_provider_managed_agents.waiting.loop import Plan, ReadDeployment, ReadRun, ReadRuns, aanswer, answer

if TYPE_CHECKING:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.models.deployments import DeploymentState
    from airflow_provider_managed_agents.models.runs import DeploymentRun

# Scheduled fires start up to 10 s after the listed time (documented jitter), plus a margin for
# the run record to be written.
SCHEDULE_JITTER = timedelta(seconds=10)
SCHEDULE_MARGIN = timedelta(seconds=2)
# However far the next fire, the deployment is read again this often, so that a pause or an
# archive fails the wait within about a minute. A runs look due within the slack after a
# recheck takes its place: a per-minute schedule still costs three requests per fire.
DEPLOYMENT_RECHECK = timedelta(seconds=60)
RECHECK_SLACK = timedelta(seconds=30)
# The biggest page the endpoint allows: a wait whose reference time is recent reads its runs
# in one request; more pages only when over a thousand runs piled up since then.
RUNS_PAGE_SIZE = 1000

TriggerTypeFilter = Literal["schedule", "manual"] | None

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """The outcome of a look.

    ``run`` is set when a run decided it; ``deployment`` when the deployment's state did (it
    cannot fire); ``error`` is the exception to raise on failure; ``next_look_at`` is set while
    waiting; ``skipped`` lists runs waited through (``wait_through_retryable``).
    """

    status: Literal["success", "failed", "waiting", "timeout"]
    run: DeploymentRun | None = None
    error: Exception | None = None
    next_look_at: datetime | None = None
    reason: str = ""
    deployment: DeploymentState | None = None
    skipped: tuple[DeploymentRun, ...] = ()

    @property
    def done(self) -> bool:
        return self.status != "waiting"


@dataclass
class LookState:
    """What one waiter remembers between its looks: when it last read the runs and the
    deployment. Only saves requests; the verdict never depends on it."""

    deployment: DeploymentState | None = None
    deployment_read_at: datetime | None = None
    runs_read_at: datetime | None = None
    skips_logged: set[str] = field(default_factory=set)

    def recent_deployment(self, now: datetime) -> DeploymentState | None:
        if self.deployment_read_at is None or now - self.deployment_read_at >= DEPLOYMENT_RECHECK:
            return None
        return self.deployment

    def remember_deployment(self, deployment: DeploymentState, now: datetime) -> DeploymentState:
        self.deployment = with_pending_fires(deployment, self.deployment, self.runs_read_at, now)
        self.deployment_read_at = now
        return self.deployment

    def to_dict(self) -> dict[str, Any]:
        """What a deferring sensor hands its trigger, so the trigger carries on its looks."""
        return {
            "deployment": self.deployment.model_dump(mode="json") if self.deployment is not None else None,
            "deployment_read_at": self.deployment_read_at.isoformat() if self.deployment_read_at else None,
            "runs_read_at": self.runs_read_at.isoformat() if self.runs_read_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LookState:
        from airflow_provider_managed_agents.models.base import parse_timestamp
        from airflow_provider_managed_agents.models.deployments import DeploymentState

        data = data or {}
        deployment = data.get("deployment")
        return cls(
            deployment=DeploymentState.model_validate(deployment) if deployment else None,
            deployment_read_at=parse_timestamp(data["deployment_read_at"]) if data.get("deployment_read_at") else None,
            runs_read_at=parse_timestamp(data["runs_read_at"]) if data.get("runs_read_at") else None,
        )

    def log_new_skips(self, verdict: Verdict) -> None:
        """Say once which runs this wait waits through (``wait_through_retryable``)."""
        for run in verdict.skipped:
            if run.id not in self.skips_logged:
                self.skips_logged.add(run.id)
                log.info("Waiting through run %s: %s", run.id, run.error.type if run.error else "")


def with_pending_fires(
    fresh: DeploymentState, previous: DeploymentState | None, covered_until: datetime | None, now: datetime
) -> DeploymentState:
    """``fresh`` listing every fire whose run a runs read has yet to look for: the fires the
    service lists, the fire of the last jitter window by its cron (the service lists only fires to
    come), and every fire an earlier read listed that no runs read made after fire + jitter has
    covered (``covered_until``: the last runs read)."""
    if not fresh.scheduled:
        return fresh
    window = SCHEDULE_JITTER + SCHEDULE_MARGIN
    pending: list[datetime] = []
    if previous is not None:
        since = covered_until or now
        pending += [t for t in previous.upcoming_runs_at if t <= now and t + window > since]
    if fresh.expression and fresh.timezone:
        from airflow_provider_managed_agents.models.cron import fire_times_between

        pending += fire_times_between(fresh.expression, fresh.timezone, now - window, now)
    return fresh.with_fires(pending)


@dataclass(frozen=True)
class RunWait:
    """The question a sensor or trigger asks: which run, and how to treat what it finds."""

    deployment_run_id: str | None = None
    deployment_id: str | None = None
    trigger_type: TriggerTypeFilter = None
    created_after: datetime | None = None
    wait_through_retryable: bool = False
    poll_interval: float = 60.0

    def __post_init__(self) -> None:
        if (self.deployment_run_id is None) == (self.deployment_id is None):
            raise ValueError("give exactly one of deployment_run_id and deployment_id")
        if self.deployment_id is not None and self.created_after is None:
            raise ValueError("waiting for the next run of a deployment needs created_after")
        if self.trigger_type not in (None, "schedule", "manual"):
            raise ValueError(f"trigger_type must be 'schedule', 'manual' or None, not {self.trigger_type!r}")
        if self.poll_interval <= 0:
            raise ValueError("poll_interval must be positive")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_after"] = self.created_after.isoformat() if self.created_after else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunWait:
        from airflow_provider_managed_agents.models.base import parse_timestamp

        values = dict(data)
        if values.get("created_after"):
            values["created_after"] = parse_timestamp(values["created_after"])
        return cls(**values)

    def describe(self) -> str:
        """What is awaited, for logs and timeout messages."""
        if self.deployment_run_id:
            return f"deployment run {self.deployment_run_id}"
        kind = f"{self.trigger_type} " if self.trigger_type else ""
        since = self.created_after.isoformat() if self.created_after else "now"
        return f"the next {kind}run of deployment {self.deployment_id} (created at or after {since})"

    # --- what to ask --------------------------------------------------------------------------

    def runs_filters(self) -> dict[str, Any]:
        """The list query of a look: this deployment's runs since the reference time."""
        filters: dict[str, Any] = {
            "deployment_id": self.deployment_id,
            "created_at_gte": self.created_after,
            "limit": RUNS_PAGE_SIZE,
        }
        if self.trigger_type:
            filters["trigger_type"] = self.trigger_type
        return filters

    def runs_due(self, state: LookState, now: datetime) -> bool:
        """Whether this look must query the runs (otherwise it only re-checks the deployment)."""
        if state.runs_read_at is None or state.deployment is None:
            return True
        return now >= self.next_runs_look(state.deployment, state.runs_read_at)

    # --- what the runs say --------------------------------------------------------------------

    def on_run(self, run: DeploymentRun) -> Verdict:
        """The verdict on one run: success when it created a session, else its typed error."""
        error = exception_for_run(run)
        if error is None:
            return Verdict("success", run=run, reason=f"run {run.id} created session {run.session_id}")
        return Verdict("failed", run=run, error=error, reason=str(error))

    def on_runs(self, runs: list[DeploymentRun]) -> Verdict | None:
        """The verdict from the runs created since the reference time, oldest counting first;
        a waiting verdict (listing what it waited through) when none of them answers yet."""
        skipped: list[DeploymentRun] = []
        for run in sorted(runs, key=lambda r: (r.created_at, r.id)):
            if self.created_after is not None and run.created_at < self.created_after:
                continue
            if self.trigger_type and run.trigger_type != self.trigger_type:
                continue
            verdict = self.on_run(run)
            if self._waits_through(verdict.error):
                skipped.append(run)
                continue
            return dataclasses.replace(verdict, skipped=tuple(skipped))
        return Verdict("waiting", skipped=tuple(skipped)) if skipped else None

    def _waits_through(self, error: Exception | None) -> bool:
        return self.wait_through_retryable and isinstance(error, DeploymentRunError) and error.retryable

    # --- what the deployment says -------------------------------------------------------------

    def on_deployment(self, deployment: DeploymentState, state: LookState, now: datetime) -> Verdict:
        """No run yet: fail fast when no awaited run can come, else say when to look next."""
        unrunnable = exception_for_unrunnable(deployment)
        # Manual runs are still allowed while paused, so only a scheduled wait fails on pause.
        if unrunnable is not None and (deployment.is_archived or self.trigger_type == "schedule"):
            return Verdict("failed", error=unrunnable, reason=str(unrunnable), deployment=deployment)
        return Verdict("waiting", next_look_at=self.next_look_at(deployment, state, now))

    def next_look_at(self, deployment: DeploymentState, state: LookState, now: datetime) -> datetime:
        """The next runs look, unless the deployment's re-read is due well before it."""
        runs_at = self.next_runs_look(deployment, state.runs_read_at or now)
        read_at = state.deployment_read_at or now
        recheck_at = read_at + DEPLOYMENT_RECHECK
        return runs_at if runs_at <= recheck_at + RECHECK_SLACK else recheck_at

    def next_runs_look(self, deployment: DeploymentState, runs_read_at: datetime) -> datetime:
        """When the runs are worth asking for again: just after the next scheduled fire (plus
        jitter) when waiting for a scheduled run; every ``poll_interval`` for manual runs or
        without a schedule; the earlier of the two when waiting for either kind."""
        by_poll = runs_read_at + timedelta(seconds=self.poll_interval)
        fire = self._next_fire(deployment, runs_read_at)
        if fire is None or self.trigger_type == "manual":
            return by_poll
        by_fire = fire + SCHEDULE_JITTER + SCHEDULE_MARGIN
        return by_fire if self.trigger_type == "schedule" else min(by_fire, by_poll)

    def next_fire(self, deployment: DeploymentState, now: datetime) -> datetime | None:
        """The next listed fire that may still produce an awaited run (for logs)."""
        return self._next_fire(deployment, now)

    @staticmethod
    def _next_fire(deployment: DeploymentState, after: datetime) -> datetime | None:
        if not deployment.scheduled or deployment.is_paused or deployment.is_archived:
            return None
        # A fire listed in the last few seconds may still be inside its jitter window.
        pending = [t for t in deployment.upcoming_runs_at if t + SCHEDULE_JITTER + SCHEDULE_MARGIN > after]
        return min(pending) if pending else None

    # --- after the deadline -------------------------------------------------------------------

    def timed_out(self, timeout: float, last: Verdict | None = None) -> Verdict:
        return Verdict("timeout", reason=f"Timed out after {timeout:g} s waiting for {self.describe()}")

    def retry_at(self, now: datetime) -> datetime:
        """The next look after a transient error: one poll interval later."""
        return now + timedelta(seconds=self.poll_interval)


def looking(wait: RunWait, state: LookState, now: datetime, *, final: bool = False) -> Plan[Verdict]:
    """One look, as the reads it needs: the runs when due, the deployment when its last read is
    a minute old (both, fresh, on the ``final`` look at the deadline)."""
    from airflow_provider_managed_agents.models.deployments import DeploymentState

    if wait.deployment_run_id is not None:
        return wait.on_run((yield ReadRun(wait.deployment_run_id)))
    assert wait.deployment_id is not None
    skipped: tuple[DeploymentRun, ...] = ()
    if final or wait.runs_due(state, now):
        verdict = wait.on_runs((yield ReadRuns(wait.runs_filters())))
        state.runs_read_at = now
        if verdict is not None:
            state.log_new_skips(verdict)
            if verdict.done:
                return verdict
            skipped = verdict.skipped
    deployment = None if final else state.recent_deployment(now)
    if deployment is None:
        read = DeploymentState.of((yield ReadDeployment(wait.deployment_id)))
        deployment = state.remember_deployment(read, now)
    return _with_skips(wait.on_deployment(deployment, state, now), skipped)


def look(wait: RunWait, hook: ManagedAgentsHook, state: LookState, now: datetime, *, final: bool = False) -> Verdict:
    """:func:`looking` with the blocking hook. Raises the hook's errors."""
    return answer(looking(wait, state, now, final=final), hook)


async def alook(
    wait: RunWait, hook: ManagedAgentsHook, state: LookState, now: datetime, *, final: bool = False
) -> Verdict:
    """:func:`looking` with the hook's async client (the same requests, the same verdict)."""
    return await aanswer(looking(wait, state, now, final=final), hook)


def _with_skips(verdict: Verdict, skipped: tuple[DeploymentRun, ...]) -> Verdict:
    return dataclasses.replace(verdict, skipped=skipped) if skipped else verdict
