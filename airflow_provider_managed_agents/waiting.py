"""What it means to wait for a deployment run: the one decision shared by sensor and trigger.

The sensor (poke and reschedule modes) and the trigger (deferrable mode) do the I/O; everything
they conclude from what they read comes from :class:`RunWait`:

1. ``runs_filters()`` - the single list query of a look (or ``deployment_run_id`` for a get);
2. ``on_runs(runs)`` - a verdict when a run answers the question, else None;
3. ``on_deployment(deployment, now)`` - only when no run answered: fail fast if the deployment
   cannot fire, else when to look next (schedule-aware). The deployment read may be up to
   ``DEPLOYMENT_RECHECK`` old when the caller keeps a :class:`DeploymentMemo`.

It holds no state between looks: the answer is always re-derived from the reference time
``created_after``, so a run that fires during a reschedule, a deferral or a triggerer restart
is found exactly once, and a waited-through retryable error is skipped the same way each time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pendulum

from airflow_provider_managed_agents.exceptions import (
    DeploymentRunError,
    ManagedAgentsError,
    exception_for_run,
    exception_for_unrunnable,
)

if TYPE_CHECKING:
    from airflow_provider_managed_agents.models.deployments import Deployment
    from airflow_provider_managed_agents.models.runs import DeploymentRun

# Scheduled fires start up to 10 s after the listed time (documented jitter), plus a margin for
# the run record to be written.
SCHEDULE_JITTER = timedelta(seconds=10)
SCHEDULE_MARGIN = timedelta(seconds=2)
# Even a far-off fire is re-checked this often, so a pause or archive is noticed in time.
MAX_SCHEDULE_SLEEP = timedelta(hours=1)
# A deployment's state changes rarely: a read this recent still answers "can it fire, and when?",
# so a wait polling every few seconds does not read it again on every look.
DEPLOYMENT_RECHECK = timedelta(seconds=60)
# The biggest page the endpoint allows: one request answers, however many runs piled up.
RUNS_PAGE_SIZE = 1000

TriggerTypeFilter = Literal["schedule", "manual"] | None
Step = tuple[str, dict[str, Any]]


def _utc_now() -> datetime:
    return pendulum.now("UTC")


@dataclass(frozen=True)
class Verdict:
    """The outcome of a look.

    ``run`` is set when a run decided it; ``deployment`` when the deployment's state did (it cannot
    fire); ``error`` is the exception to raise on failure; ``next_look_at`` is set while waiting.
    """

    status: Literal["success", "failed", "waiting"]
    run: DeploymentRun | None = None
    error: ManagedAgentsError | None = None
    next_look_at: datetime | None = None
    reason: str = ""
    deployment: Deployment | None = None

    @property
    def done(self) -> bool:
        return self.status != "waiting"


@dataclass
class DeploymentMemo:
    """The last read of the deployment, kept by whoever drives the looks (a trigger's loop, a
    poking sensor) so that looks closer together than ``DEPLOYMENT_RECHECK`` share it."""

    deployment: Deployment | None = None
    read_at: datetime | None = None

    def recent(self, now: datetime) -> Deployment | None:
        if self.read_at is None or now - self.read_at >= DEPLOYMENT_RECHECK:
            return None
        return self.deployment

    def remember(self, deployment: Deployment, now: datetime) -> None:
        self.deployment, self.read_at = deployment, now


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

    # --- 1. what to ask --------------------------------------------------------------------

    def runs_filters(self) -> dict[str, Any]:
        """The one list query of a look: this deployment's runs since the reference time."""
        filters: dict[str, Any] = {
            "deployment_id": self.deployment_id,
            "created_at_gte": self.created_after,
            "limit": RUNS_PAGE_SIZE,
        }
        if self.trigger_type:
            filters["trigger_type"] = self.trigger_type
        return filters

    def look(
        self, now: Callable[[], datetime] = _utc_now, memo: DeploymentMemo | None = None
    ) -> Generator[Step, Any, Verdict]:
        """One look, as the hook calls to make: yields ``(method name, kwargs)`` and receives each
        call's result. :func:`look_sync` and :func:`look_async` drive it, so the sensor and the
        trigger make exactly the same requests and conclude exactly the same thing. With a
        ``memo``, a recent read of the deployment is reused instead of read again."""
        if self.deployment_run_id is not None:
            run = yield ("get_deployment_run", {"deployment_run_id": self.deployment_run_id})
            return self.on_run(run)
        filters = self.runs_filters()
        runs: list[DeploymentRun] = []
        while True:
            page = yield ("list_deployment_runs_page", filters)
            runs.extend(page.data)
            if not page.next_page:
                break
            filters = {**filters, "page": page.next_page}
        verdict = self.on_runs(runs)
        if verdict is not None:
            return verdict
        assert self.deployment_id is not None
        deployment = memo.recent(now()) if memo is not None else None
        if deployment is None:
            deployment = yield ("get_deployment", {"deployment_id": self.deployment_id})
            if memo is not None:
                memo.remember(deployment, now())
        return self.on_deployment(deployment, now())

    # --- 2. what the runs say --------------------------------------------------------------

    def on_run(self, run: DeploymentRun) -> Verdict:
        """The verdict on one run: success when it created a session, else its typed error."""
        error = exception_for_run(run)
        if error is None:
            return Verdict("success", run=run, reason=f"run {run.id} created session {run.session_id}")
        return Verdict("failed", run=run, error=error, reason=str(error))

    def on_runs(self, runs: list[DeploymentRun]) -> Verdict | None:
        """The verdict from the runs created since the reference time, oldest counting first;
        None when none of them answers yet."""
        for run in sorted(runs, key=lambda r: (r.created_at, r.id)):
            if self.created_after is not None and run.created_at < self.created_after:
                continue
            if self.trigger_type and run.trigger_type != self.trigger_type:
                continue
            verdict = self.on_run(run)
            if self._waits_through(verdict.error):
                continue
            return verdict
        return None

    def _waits_through(self, error: ManagedAgentsError | None) -> bool:
        return self.wait_through_retryable and isinstance(error, DeploymentRunError) and error.retryable

    def on_event(self, payload: dict[str, Any]) -> Verdict:
        """Re-judge a trigger's event on the worker, from the objects it carries."""
        from airflow_provider_managed_agents.models.deployments import Deployment
        from airflow_provider_managed_agents.models.runs import DeploymentRun

        if payload.get("run") is not None:
            return self.on_run(DeploymentRun.model_validate(payload["run"]))
        if payload.get("deployment") is not None:
            return self.on_deployment(Deployment.model_validate(payload["deployment"]), pendulum.now("UTC"))
        raise ValueError(f"trigger event carries neither a run nor a deployment: {payload.get('reason')}")

    # --- 3. what the deployment says -------------------------------------------------------

    def on_deployment(self, deployment: Deployment, now: datetime) -> Verdict:
        """No run yet: fail fast when no awaited run can come, else say when to look next."""
        unrunnable = exception_for_unrunnable(deployment)
        # Manual runs are still allowed while paused, so only a scheduled wait fails on pause.
        if unrunnable is not None and (deployment.is_archived or self.trigger_type == "schedule"):
            return Verdict("failed", error=unrunnable, reason=str(unrunnable), deployment=deployment)
        return Verdict("waiting", next_look_at=self.next_look_at(deployment, now))

    def next_look_at(self, deployment: Deployment | None, now: datetime) -> datetime:
        """When to look again: just after the next scheduled fire (plus jitter) when waiting for
        a scheduled run; every ``poll_interval`` for manual runs or without a schedule."""
        by_poll = now + timedelta(seconds=self.poll_interval)
        fire = self._next_fire(deployment, now)
        if fire is None or self.trigger_type == "manual":
            return by_poll
        by_fire = min(fire + SCHEDULE_JITTER + SCHEDULE_MARGIN, now + MAX_SCHEDULE_SLEEP)
        # Waiting for either kind: a manual run may come before the next fire.
        return by_fire if self.trigger_type == "schedule" else min(by_fire, by_poll)

    @staticmethod
    def _next_fire(deployment: Deployment | None, now: datetime) -> datetime | None:
        if deployment is None or deployment.schedule is None or deployment.is_paused:
            return None
        # A fire listed in the last few seconds may still be inside its jitter window.
        pending = [t for t in deployment.schedule.upcoming_runs_at if t + SCHEDULE_JITTER + SCHEDULE_MARGIN > now]
        return min(pending) if pending else None


def look_sync(
    wait: RunWait,
    call: Callable[[str, dict[str, Any]], Any],
    now: Callable[[], datetime] = _utc_now,
    memo: DeploymentMemo | None = None,
) -> Verdict:
    """Drive :meth:`RunWait.look` with a blocking ``call(method name, kwargs)``."""
    steps = wait.look(now, memo)
    result: Any = None
    try:
        while True:
            name, kwargs = steps.send(result)
            result = call(name, kwargs)
    except StopIteration as done:
        return done.value


async def look_async(
    wait: RunWait,
    call: Callable[[str, dict[str, Any]], Awaitable[Any]],
    now: Callable[[], datetime] = _utc_now,
    memo: DeploymentMemo | None = None,
) -> Verdict:
    """Drive :meth:`RunWait.look` with an awaitable ``call(method name, kwargs)``."""
    steps = wait.look(now, memo)
    result: Any = None
    try:
        while True:
            name, kwargs = steps.send(result)
            result = await call(name, kwargs)
    except StopIteration as done:
        return done.value
