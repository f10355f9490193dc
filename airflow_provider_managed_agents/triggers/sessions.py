"""ManagedAgentsSessionTrigger: follow a session to its end in the triggerer.

The triggerer's session waits on one connection share one sessions feed
(:mod:`~airflow_provider_managed_agents.triggers.sessions_feed`): one list of the working
sessions per poll for all of them, and a session's own look (at most 2 requests) only once it is
not working. Ends with one :class:`~airflow_provider_managed_agents.waiting.events.SessionWaitEvent`
the worker judges again with the same decision: the session's facts, an error no retry fixes, or
a timeout at its own deadline. A task that gives up on the session (its deadline, or, where Airflow has it
(3.3+), a kill while deferred) applies ``on_kill_session``; a triggerer restart never does.
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
from airflow_provider_managed_agents.waiting import clock
from airflow_provider_managed_agents.waiting.events import (
    Failed,
    SessionDecided,
    SessionWaitEvent,
    TimedOut,
    encode,
)
from airflow_provider_managed_agents.waiting.loop import Pace, afollow
from airflow_provider_managed_agents.waiting.sessions import SessionVerdict, SessionWait, alook


class ManagedAgentsSessionTrigger(BaseTrigger):
    """Wait for a session to end; fire one event when it does (or fails, or times out).

    :param session_id: the session to follow.
    :param managed_agents_conn_id: the ``managed_agents`` connection.
    :param poll_interval: seconds between looks while the session runs.
    :param deadline: ISO time at which the wait gives up.
    :param timeout: the limit in seconds, for the timeout message.
    :param limit: which limit the deadline is: the task's ``timeout`` or its ``execution_timeout``.
    :param on_kill_session: what giving up does to the session: ``interrupt``, ``archive`` or
        ``none`` (at the deadline; on a kill where Airflow >= 3.3 calls the trigger's
        ``on_kill``: older versions cannot tell a kill from a triggerer restart).
    :param not_before: ISO time of the first look (the deferring task has just looked).
    :param created_after: ISO time before which the session was not created (bounds the feed's
        list of working sessions; without it the session's first look tells).
    :param run_id: the run whose session a run task follows, handed back in the event.
    :param deployment_id: that run's deployment, handed back in the event.
    :param carry: the run and deployment ids as a trigger of provider 0.1 kept them (read only).
    """

    def __init__(
        self,
        *,
        session_id: str,
        managed_agents_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 30.0,
        deadline: str | None = None,
        timeout: float | None = None,
        limit: str = "timeout",
        on_kill_session: str = "none",
        not_before: str | None = None,
        created_after: str | None = None,
        run_id: str | None = None,
        deployment_id: str | None = None,
        carry: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        carry = carry or {}
        self.session_id = session_id
        self.managed_agents_conn_id = managed_agents_conn_id
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.timeout = timeout
        self.limit = limit
        self.on_kill_session = on_kill_session
        self.not_before = not_before
        self.created_after = created_after
        self.run_id = run_id or carry.get("run_id")
        self.deployment_id = deployment_id or carry.get("deployment_id")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "session_id": self.session_id,
                "managed_agents_conn_id": self.managed_agents_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "timeout": self.timeout,
                "limit": self.limit,
                "on_kill_session": self.on_kill_session,
                "not_before": self.not_before,
                "created_after": self.created_after,
                "run_id": self.run_id,
                "deployment_id": self.deployment_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_managed_agents.triggers.sessions_feed import sessions_feed

        hook = ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)
        wait = SessionWait(self.session_id, self.poll_interval)
        ending: SessionDecided | Failed | TimedOut
        stopped = None
        try:
            verdict = await sessions_feed(self.managed_agents_conn_id).wait_for(
                wait,
                deadline=_moment(self.deadline),
                timeout=self.timeout or 0.0,
                not_before=_moment(self.not_before) or clock.now(),
                created_after=_moment(self.created_after),
            )
        except (ManagedAgentsError, AirflowNotFoundException) as exc:  # the worker raises it as its own class
            ending = Failed(exc)
        else:
            if verdict.status == "timeout":
                ending = TimedOut(verdict.reason, verdict.facts, self.limit)
                stopped = await self._give_up(hook)
            else:
                assert verdict.facts is not None
                ending = SessionDecided(verdict.facts)
        self.log.info("Session %s: %s", self.session_id, ending.kind)
        event = SessionWaitEvent(self.session_id, ending, self.run_id, self.deployment_id, stopped)
        yield TriggerEvent(encode(event))

    async def _give_up(self, hook: ManagedAgentsHook) -> str | None:
        """At the deadline: stop the session as ``on_kill_session`` says; how, when it did."""
        if self.on_kill_session not in ("interrupt", "archive"):
            return None
        self.log.info("Giving up on session %s: sending it %s", self.session_id, self.on_kill_session)
        try:
            await hook.astop_session(self.session_id, self.on_kill_session)
        except Exception as exc:  # the task must still hear of its timeout
            self.log.warning("Could not %s session %s: %s", self.on_kill_session, self.session_id, exc)
            return None
        return self.on_kill_session

    async def on_kill(self) -> None:
        """The task was killed while deferred (Airflow >= 3.3): stop the session it started."""
        await self._give_up(ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id))


def _moment(iso: str | None) -> datetime | None:
    return parse_timestamp(iso) if iso else None


async def follow_session_alone(
    wait: SessionWait,
    hook: ManagedAgentsHook,
    deadline: datetime | None,
    timeout: float,
    not_before: datetime | None,
) -> SessionVerdict:
    """One session wait with reads of its own every poll (the sessions feed's baseline in the
    benchmarks). Raises an error no retry fixes."""
    pace: Pace[SessionVerdict] = Pace(wait, not_before or clock.now(), deadline, timeout)
    return await afollow(pace, lambda now, final: alook(wait, hook, now))
