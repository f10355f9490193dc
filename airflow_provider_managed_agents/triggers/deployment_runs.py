"""ManagedAgentsDeploymentRunTrigger: the deferrable half of the deployment-run sensor.

Runs in the triggerer's event loop. A wait for the next run of a deployment registers with the
loop's runs feed (:mod:`~airflow_provider_managed_agents.triggers.runs_feed`): every deferred wait
on a connection shares one runs query per poll, and each is judged by the same decision as a
poking sensor (:mod:`airflow_provider_managed_agents.waiting.runs`). A wait for a run id makes
its own looks, through the same look loop as every wait
(:mod:`airflow_provider_managed_agents.waiting.loop`). Either ends with one
:class:`~airflow_provider_managed_agents.waiting.events.RunWaitEvent` the worker judges again:
success, a failure (run error, unrunnable deployment, API or validation error) or a timeout at
its own deadline, so a deferred wait ends even where Airflow does not apply the deferral timeout
(``airflow dags test``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_managed_agents.compat import AirflowNotFoundException
from airflow_provider_managed_agents.exceptions import ManagedAgentsError
from airflow_provider_managed_agents.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.models.base import parse_timestamp
from airflow_provider_managed_agents.triggers.runs_feed import runs_feed
from airflow_provider_managed_agents.waiting import clock
from airflow_provider_managed_agents.waiting.events import RunWaitEvent, encode
from airflow_provider_managed_agents.waiting.loop import Pace, afollow
from airflow_provider_managed_agents.waiting.runs import LookState, RunWait, Verdict, alook


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
        managed_agents_conn_id: str = DEFAULT_CONN_ID,
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
        try:
            if self.wait.deployment_id is not None:
                # Every deferred wait on this connection shares one runs query per poll.
                verdict = await runs_feed(self.managed_agents_conn_id).wait_for(
                    self.wait, deadline=deadline, timeout=self.timeout or 0, not_before=not_before, state=state
                )
            else:
                hook = ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)
                verdict = await follow_alone(self.wait, hook, state, deadline, self.timeout or 0, not_before)
        except (ManagedAgentsError, AirflowNotFoundException) as exc:  # the worker raises it as its own class
            verdict = Verdict("failed", error=exc, reason=str(exc))
        self.log.info("Resolved: %s", verdict.reason)
        yield TriggerEvent(encode(RunWaitEvent.of(verdict, self.wait, deadline)))


async def follow_alone(
    wait: RunWait,
    hook: ManagedAgentsHook,
    state: LookState,
    deadline: datetime | None,
    timeout: float,
    not_before: datetime | None,
) -> Verdict:
    """One wait with queries of its own (a run id, which resolves on its first look; the runs
    feed's baseline in the benchmarks). Raises an error no retry fixes."""
    pace: Pace[Verdict] = Pace(wait, not_before or clock.now(), deadline, timeout)
    return await afollow(pace, lambda now, final: alook(wait, hook, state, now, final=final))
