"""ManagedAgentsSessionTrigger: follow a session to its end in the triggerer.

One request per ``poll_interval`` while the session runs; its status events only when the
status says the turn may be over. Ends with one small event the worker re-judges with the same
decision (:func:`~airflow_provider_managed_agents.waiting.sessions.judge`): the session's facts,
an API or validation error, or a timeout at its own deadline. Where Airflow has it (3.3+), a
task killed while deferred stops the session (``on_kill_session``); a triggerer restart never
does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_managed_agents.exceptions import ManagedAgentsError, error_to_payload
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import is_transient
from airflow_provider_managed_agents.models.base import parse_timestamp
from airflow_provider_managed_agents.waiting import clock
from airflow_provider_managed_agents.waiting.sessions import SessionVerdict, SessionWait, alook

ON_KILL_CHOICES = ("interrupt", "archive", "none")


def session_event(verdict: SessionVerdict, session_id: str, carry: dict[str, Any] | None) -> dict[str, Any]:
    """A finished session wait as a small, flat event."""
    payload: dict[str, Any] = {"status": verdict.status, "reason": verdict.reason, "session_id": session_id}
    payload["carry"] = carry or {}
    if verdict.facts is not None:
        payload["facts"] = verdict.facts.to_dict()
    return payload


class ManagedAgentsSessionTrigger(BaseTrigger):
    """Wait for a session to end; fire one event when it does (or fails, or times out).

    :param session_id: the session to follow.
    :param managed_agents_conn_id: the ``managed_agents`` connection.
    :param poll_interval: seconds between looks while the session runs.
    :param deadline: ISO time at which the wait times out.
    :param timeout: the waiting task's timeout in seconds, for the timeout message.
    :param on_kill_session: what a killed task does to the session: ``interrupt``,
        ``archive`` or ``none`` (Airflow >= 3.3 calls the trigger's ``on_kill``; older
        versions cannot tell a kill from a triggerer restart, so nothing is done there).
    :param not_before: ISO time of the first look (the deferring task has just looked).
    :param carry: what the deferring task needs back (e.g. its run id), returned in the event:
        ``airflow dags test`` hands a task only the event, not its deferral's ``kwargs``.
    """

    def __init__(
        self,
        *,
        session_id: str,
        managed_agents_conn_id: str = "managed_agents_default",
        poll_interval: float = 30.0,
        deadline: str | None = None,
        timeout: float | None = None,
        on_kill_session: str = "none",
        not_before: str | None = None,
        carry: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.session_id = session_id
        self.managed_agents_conn_id = managed_agents_conn_id
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.timeout = timeout
        self.on_kill_session = on_kill_session
        self.not_before = not_before
        self.carry = carry or {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "session_id": self.session_id,
                "managed_agents_conn_id": self.managed_agents_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "timeout": self.timeout,
                "on_kill_session": self.on_kill_session,
                "not_before": self.not_before,
                "carry": self.carry,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)
        wait = SessionWait(self.session_id, self.poll_interval)
        deadline = parse_timestamp(self.deadline) if self.deadline else None
        next_look = parse_timestamp(self.not_before) if self.not_before else clock.now()
        progress = clock.Throttle()
        last = None
        while True:
            await clock.asleep_until(min(next_look, deadline) if deadline else next_look)
            now = clock.now()
            try:
                verdict = await alook(wait, hook, now)
            except ManagedAgentsError as exc:
                if not is_transient(exc):
                    record = error_to_payload(exc)
                    if record is None:
                        raise
                    yield TriggerEvent(
                        {"status": "failed", "reason": str(exc), "session_id": self.session_id, "error": record}
                    )
                    return
                self.log.warning("Transient API error while following the session (%s); looking again later", exc)
                verdict = None
            if verdict is not None and verdict.done:
                self.log.info("Session %s ended: %s", self.session_id, verdict.reason or verdict.status)
                yield TriggerEvent(session_event(verdict, self.session_id, self.carry))
                return
            last = verdict.facts if verdict is not None else last
            if deadline is not None and now >= deadline:
                yield TriggerEvent(session_event(wait.timed_out(self.timeout or 0, last), self.session_id, self.carry))
                return
            next_look = now + timedelta(seconds=self.poll_interval)
            if progress.ready():
                status = verdict.facts.status if verdict is not None and verdict.facts else "unknown"
                self.log.info(
                    "Waiting for %s (now %s); next look at %s", wait.describe(), status, next_look.isoformat()
                )

    async def on_kill(self) -> None:
        """The task was killed while deferred (Airflow >= 3.3): stop the session it started."""
        if self.on_kill_session not in ("interrupt", "archive"):
            return
        hook = ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)
        self.log.info("Task killed: %s session %s", self.on_kill_session, self.session_id)
        await hook.astop_session(self.session_id, self.on_kill_session)
