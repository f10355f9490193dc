"""ManagedAgentsDeploymentRunTrigger: the deferrable half of the deployment-run sensor.

Runs in the triggerer's event loop. A wait for the next run of a deployment registers with the
loop's runs feed (:mod:`~airflow_provider_managed_agents.triggers.runs_feed`): every deferred wait
on a connection shares one runs query per poll, and each is judged by the same decision as a
poking sensor (:mod:`airflow_provider_managed_agents.waiting.runs`). A wait for a run id makes
its own looks. Either ends with one small event the worker re-judges: success, a failure (run
error, unrunnable deployment, API or validation error) or a timeout at its own deadline, so a
deferred wait ends even where Airflow does not apply the deferral timeout (``airflow dags test``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_managed_agents.exceptions import ManagedAgentsError
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import is_transient
from airflow_provider_managed_agents.models.base import parse_timestamp
from airflow_provider_managed_agents.triggers.runs_feed import runs_feed
from airflow_provider_managed_agents.waiting import clock
from airflow_provider_managed_agents.waiting.outcome import error_payload, event_payload
from airflow_provider_managed_agents.waiting.runs import LookState, RunWait, Verdict, alook

log = logging.getLogger(__name__)


class ManagedAgentsDeploymentRunTrigger(BaseTrigger):
    """Wait for a deployment run; fire one event when the wait is decided.

    :param wait: the question, as :meth:`RunWait.to_dict`.
    :param managed_agents_conn_id: the ``managed_agents`` connection.
    :param deadline: ISO time at which the wait times out (the sensor's ``timeout``).
    :param timeout: the sensor's timeout in seconds, for the timeout message.
    :param not_before: ISO time of the first look (the deferring sensor has just looked and
        knows when to look next), so deferring costs no extra request.
    :param state: the deferring sensor's :class:`LookState` (what it read when), so that the
        trigger's looks carry on exactly where the sensor's stopped.

    Transient API errors are retried by the hook; when its retries run out the trigger looks
    again one ``poll_interval`` later rather than failing.
    """

    def __init__(
        self,
        *,
        wait: dict[str, Any],
        managed_agents_conn_id: str = "managed_agents_default",
        deadline: str | None = None,
        timeout: float | None = None,
        not_before: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.wait = RunWait.from_dict(wait)
        self.managed_agents_conn_id = managed_agents_conn_id
        self.deadline = deadline
        self.timeout = timeout
        self.not_before = not_before
        self.state = state

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "wait": self.wait.to_dict(),
                "managed_agents_conn_id": self.managed_agents_conn_id,
                "deadline": self.deadline,
                "timeout": self.timeout,
                "not_before": self.not_before,
                "state": self.state,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = parse_timestamp(self.deadline) if self.deadline else None
        not_before = parse_timestamp(self.not_before) if self.not_before else None
        state = LookState.from_dict(self.state)
        if self.wait.deployment_id is not None:
            # Every deferred wait on this connection shares one runs query per poll.
            verdict = await runs_feed(self.managed_agents_conn_id).wait_for(
                self.wait, deadline=deadline, timeout=self.timeout or 0, not_before=not_before, state=state
            )
        else:
            hook = ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)
            outcome = await follow_alone(self.wait, hook, state, deadline, self.timeout or 0, not_before)
            if isinstance(outcome, dict):
                yield TriggerEvent(outcome)
                return
            verdict = outcome
        self.log.info("Resolved: %s", verdict.reason)
        yield TriggerEvent({**event_payload(verdict, self.wait), "deadline": self.deadline})


async def follow_alone(
    wait: RunWait,
    hook: ManagedAgentsHook,
    state: LookState,
    deadline: datetime | None,
    timeout: float,
    not_before: datetime | None,
) -> Verdict | dict[str, Any]:
    """One wait with queries of its own (a run id, which resolves on its first look; the runs
    feed's baseline in the benchmarks): the verdict, or the event of an error that decided it."""
    progress = clock.Throttle()
    next_look = not_before or clock.now()
    while True:
        await clock.asleep_until(min(next_look, deadline) if deadline else next_look)
        now = clock.now()
        final = deadline is not None and now >= deadline
        verdict: Verdict | None = None
        try:
            verdict = await alook(wait, hook, state, now, final=final)
        except ManagedAgentsError as exc:
            if not is_transient(exc):
                payload = error_payload(exc, wait)
                if payload is None:
                    raise
                return payload
            log.warning("Transient API error while waiting (%s); looking again later", exc)
        if verdict is not None:
            for run in state.new_skips(verdict):
                log.info("Waiting through run %s: %s", run.id, run.error.type if run.error else "")
            if verdict.done:
                return verdict
        if final:
            return wait.timed_out(timeout)
        if verdict is not None and verdict.next_look_at is not None:
            next_look = verdict.next_look_at
        else:
            next_look = clock.now() + timedelta(seconds=wait.poll_interval)
        if progress.ready():
            log.info("Waiting for %s; next look at %s", wait.describe(), next_look.isoformat())
