"""Following a session to its end, from a task: what the run operator and both sensors share.

The decision is :mod:`airflow_provider_managed_agents.waiting.sessions`; this is the Airflow
side of it, once: looking from the worker (transient errors waited through), handing the wait
to :class:`~airflow_provider_managed_agents.triggers.sessions.ManagedAgentsSessionTrigger`,
publishing what the session did (XCom on success and on failure), the Console link, and
stopping the session when a task that started it is killed.

XCom keys: ``session_id``, ``session_status``, ``stop_reason``, ``stop_details``,
``final_message`` (the newest ``agent.message``'s text, cut at ``final_message_max_chars``),
``outcome`` (every evaluation: id, description, result, iteration, explanation) and ``usage``
(as the API gives it; ``list_cost.amount`` is a string of cents).

On the DAG-parse path only through its light module-level imports.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.triggers.sessions import ManagedAgentsSessionTrigger
    from airflow_provider_managed_agents.waiting.sessions import SessionVerdict, SessionWait

ON_KILL_SESSION = ("interrupt", "archive", "none")


class ManagedAgentsSessionLink(BaseOperatorLink):
    """Opens the session the task followed (or started) in the Claude Console."""

    name = "Managed Agents session"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return str(getattr(operator, "session_url", None) or "")


class SessionFollower:
    """Mixed into a task that follows a session; it provides ``hook``, ``log``,
    ``managed_agents_conn_id``, ``poll_interval``, ``final_message_max_chars`` and
    ``on_kill_session``, and calls these."""

    if TYPE_CHECKING:

        @property
        def hook(self) -> ManagedAgentsHook: ...

    log: Any
    managed_agents_conn_id: str
    poll_interval: float
    final_message_max_chars: int
    on_kill_session: str
    session_url: str | None = None
    _following: str | None = None

    @staticmethod
    def _check_on_kill(value: str) -> str:
        if value not in ON_KILL_SESSION:
            raise ValueError(f"on_kill_session must be one of {', '.join(ON_KILL_SESSION)}, not {value!r}")
        return value

    def _session_wait(self, session_id: str) -> SessionWait:
        from airflow_provider_managed_agents.waiting.sessions import SessionWait

        return SessionWait(session_id, self.poll_interval)

    def _look_at_session(self, wait: SessionWait) -> SessionVerdict | None:
        """One look from the worker; None when a transient API error hid the answer. Other
        errors are raised."""
        from airflow_provider_managed_agents.exceptions import ManagedAgentsError
        from airflow_provider_managed_agents.hooks.wire import is_transient
        from airflow_provider_managed_agents.waiting import clock
        from airflow_provider_managed_agents.waiting.sessions import look

        try:
            return look(wait, self.hook, clock.now())
        except ManagedAgentsError as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Transient API error while following the session (%s); looking again later", exc)
            return None

    def _follow_here(
        self, session_id: str, deadline: datetime, timeout: float, *, just_started: bool = False
    ) -> SessionVerdict:
        """Follow the session from this worker until it ends or ``deadline`` passes. A session
        this task ``just_started`` is first looked at one ``poll_interval`` later (it is idle
        until it starts running, and no turn is over within a second)."""
        from airflow_provider_managed_agents.waiting import clock

        wait = self._session_wait(session_id)
        self._following = session_id
        last = None
        try:
            if just_started:
                clock.sleep(min(self.poll_interval, max((deadline - clock.now()).total_seconds(), 0.0)))
            while True:
                verdict = self._look_at_session(wait)
                if verdict is not None and verdict.done:
                    return verdict
                last = verdict.facts if verdict is not None else last
                now = clock.now()
                if now >= deadline:
                    return wait.timed_out(timeout, last)
                next_look = min(now + timedelta(seconds=self.poll_interval), deadline)
                self.log.debug("Waiting for %s; next look at %s", wait.describe(), next_look.isoformat())
                clock.sleep((next_look - now).total_seconds())
        finally:
            self._following = None

    def _session_trigger(
        self,
        session_id: str,
        deadline: datetime,
        timeout: float,
        *,
        stop_on_kill: bool,
        carry: dict[str, Any],
        just_started: bool = False,
    ) -> ManagedAgentsSessionTrigger:
        from airflow_provider_managed_agents.compat import triggers_hear_kills
        from airflow_provider_managed_agents.triggers.sessions import ManagedAgentsSessionTrigger
        from airflow_provider_managed_agents.waiting import clock

        self.log.info(
            "Deferring: waiting for session %s to end, a look every %g s, until %s",
            session_id,
            self.poll_interval,
            deadline.isoformat(),
        )
        if stop_on_kill and self.on_kill_session != "none" and not triggers_hear_kills():
            self.log.warning(
                "on_kill_session=%r holds only until this task defers: this Airflow does not tell a trigger "
                "its task was killed (Airflow >= 3.3 does), so a kill while deferred leaves session %s running",
                self.on_kill_session,
                session_id,
            )
        return ManagedAgentsSessionTrigger(
            session_id=session_id,
            managed_agents_conn_id=self.managed_agents_conn_id,
            poll_interval=self.poll_interval,
            deadline=deadline.isoformat(),
            timeout=timeout,
            on_kill_session=self.on_kill_session if stop_on_kill else "none",
            not_before=(clock.now() + timedelta(seconds=self.poll_interval if just_started else 0)).isoformat(),
            carry=carry,
        )

    def _publish_session(self, context: Context, verdict: SessionVerdict) -> Exception | None:
        """XCom, link and log of a session wait that ended; the error to raise when it failed."""
        from airflow_provider_managed_agents.compat import AirflowSensorTimeout
        from airflow_provider_managed_agents.operators.reporting import session_console_url
        from airflow_provider_managed_agents.waiting.sessions import final_message, report

        facts = verdict.facts
        if facts is not None:
            self.session_url = session_console_url(self.hook.settings, facts.session_id)
            text = final_message(self.hook, facts.session_id, self.final_message_max_chars)
            ti = context["ti"]
            for key, value in report(facts, text).items():
                ti.xcom_push(key=key, value=value)
            self.log.info(
                "Session %s: %s (stop reason %s); usage %s",
                facts.session_id,
                verdict.status,
                facts.stop_reason,
                facts.usage,
            )
        if verdict.status == "timeout":
            return AirflowSensorTimeout(verdict.reason)
        return verdict.error

    def _stop_followed_session(self) -> None:
        """Killed while following a session this task started: stop it as configured."""
        session_id = self._following
        if session_id is None or self.on_kill_session == "none":
            return
        self.log.info("Task killed: %s session %s", self.on_kill_session, session_id)
        try:
            self.hook.stop_session(session_id, self.on_kill_session)
        except Exception as exc:  # a kill must never be blocked by the API
            self.log.warning("Could not %s session %s: %s", self.on_kill_session, session_id, exc)
