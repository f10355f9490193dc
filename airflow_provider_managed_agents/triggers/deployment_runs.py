"""ManagedAgentsDeploymentRunTrigger: the deferrable half of the deployment-run sensor.

Runs in the triggerer's event loop and uses the hook's async client (one shared connection pool
per loop and connection). It asks the same question and reaches the same verdict as the sensor,
through :class:`~airflow_provider_managed_agents.waiting.RunWait`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pendulum
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import is_transient
from airflow_provider_managed_agents.models.base import parse_timestamp
from airflow_provider_managed_agents.waiting import DeploymentMemo, RunWait, Verdict, look_async


def event_payload(verdict: Verdict, wait: RunWait) -> dict[str, Any]:
    """A JSON-safe event: the run (or the deployment that cannot fire) to re-judge on the worker."""
    payload: dict[str, Any] = {"status": verdict.status, "reason": verdict.reason, "wait": wait.to_dict()}
    if verdict.run is not None:
        payload["run"] = verdict.run.model_dump(mode="json")
    if verdict.deployment is not None:
        payload["deployment"] = verdict.deployment.model_dump(mode="json")
    return payload


class ManagedAgentsDeploymentRunTrigger(BaseTrigger):
    """Wait for a deployment run; fire one event when it resolves.

    :param wait: the question, as :meth:`RunWait.to_dict` (deployment_run_id or deployment_id,
        trigger_type, created_after, wait_through_retryable, poll_interval).
    :param managed_agents_conn_id: the ``managed_agents`` connection.
    :param not_before: ISO time of the first look (the deferring sensor has just looked and knows
        when to look next), so deferring costs no extra request.

    Transient API errors are retried by the hook; when retries run out the trigger waits one
    ``poll_interval`` and looks again rather than failing.
    """

    def __init__(
        self,
        *,
        wait: dict[str, Any],
        managed_agents_conn_id: str = "managed_agents_default",
        not_before: str | None = None,
    ) -> None:
        super().__init__()
        self.wait = RunWait.from_dict(wait)
        self.managed_agents_conn_id = managed_agents_conn_id
        self.not_before = not_before

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "wait": self.wait.to_dict(),
                "managed_agents_conn_id": self.managed_agents_conn_id,
                "not_before": self.not_before,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)

        async def call(name: str, kwargs: dict[str, Any]) -> Any:
            return await getattr(hook, f"a{name}")(**kwargs)

        if self.not_before:
            await _sleep_until(parse_timestamp(self.not_before))
        memo = DeploymentMemo()
        while True:
            try:
                verdict = await look_async(self.wait, call, memo=memo)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.log.warning("Transient API error while waiting (%s); looking again later", exc)
                await asyncio.sleep(self.wait.poll_interval)
                continue
            if verdict.done:
                self.log.info("Resolved: %s", verdict.reason)
                yield TriggerEvent(event_payload(verdict, self.wait))
                return
            assert verdict.next_look_at is not None
            self.log.debug("Nothing yet; next look at %s", verdict.next_look_at.isoformat())
            await _sleep_until(verdict.next_look_at)


async def _sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max((moment - pendulum.now("UTC")).total_seconds(), 0.0))
