"""Following a session to its end from a task: what the run operator and both sensors share.

The decision is :mod:`airflow_provider_managed_agents.waiting.sessions` and the loop
:mod:`airflow_provider_managed_agents.waiting.loop`; this is the Airflow side of it, once:
following on the worker, handing the wait to
:class:`~airflow_provider_managed_agents.triggers.sessions.ManagedAgentsSessionTrigger`, reading
its event back, publishing what the session did (XCom on success and on failure), and stopping
the session when the task gives up on it.

Giving up: a task that stops waiting before the session ended (its ``timeout``, Airflow's
``execution_timeout``, a kill) applies ``on_kill_session`` to the session (``interrupt``,
``archive`` or ``none``): an agent left running after Airflow gave up on it costs money. The run
operator, which started the session, interrupts by default; a sensor, which only watched it,
leaves it alone unless told otherwise.

XCom keys: ``session_id``, ``session_url``, ``session_status``, ``stop_reason``,
``stop_details``, ``final_message`` (the newest ``agent.message``'s text, cut at
``final_message_max_chars``), ``outcome`` (every evaluation: id, description, result, iteration,
explanation) and ``usage`` (as the API gives it; ``list_cost.amount`` is a string of cents).

On the DAG-parse path only through its light module-level imports.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_managed_agents.answering import ActionAnswerer

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.triggers.sessions import ManagedAgentsSessionTrigger
    from airflow_provider_managed_agents.waiting.events import SessionWaitEvent
    from airflow_provider_managed_agents.waiting.sessions import SessionVerdict

ON_KILL_SESSION = ("interrupt", "archive", "none")


@dataclass(frozen=True)
class TimeLimit:
    """When a wait gives up, and which of the task's limits that is (``timeout``, the wait's
    own, or Airflow's ``execution_timeout``, for a task that started the session)."""

    deadline: datetime
    seconds: float
    which: str = "timeout"

    @classmethod
    def nearest(cls, timeout: float, execution_timeout: timedelta | None, started: datetime | None) -> TimeLimit:
        """The nearer of ``timeout`` from now and ``execution_timeout`` from the try's start."""
        from airflow_provider_managed_agents.waiting import clock

        now = clock.now()
        limit = cls(now + timedelta(seconds=timeout), timeout)
        if execution_timeout is not None:
            end = (started or now) + execution_timeout
            if end < limit.deadline:
                limit = cls(end, execution_timeout.total_seconds(), "execution_timeout")
        return limit


class SessionFollower(ActionAnswerer):
    """Mixed into a task that follows a session; it provides ``hook``, ``log``,
    ``managed_agents_conn_id``, ``poll_interval``, ``final_message_max_chars`` and
    ``on_kill_session``, and calls these. A session waiting on actions is answered when the
    task was told how (:mod:`~airflow_provider_managed_agents.answering`); the task then
    provides ``_follow_on``."""

    if TYPE_CHECKING:

        @property
        def hook(self) -> ManagedAgentsHook: ...

        # From OpenLineageReporter (lineage.py), which every task mixing this in also is.
        def _note_lineage(self, **notes: Any) -> None: ...

        def _note_error(self, error: BaseException | None) -> None: ...

    log: Any
    managed_agents_conn_id: str
    poll_interval: float
    final_message_max_chars: int
    on_kill_session: str
    # The session this task stops when it gives up (None when it would leave it alone), kept
    # until the session's end is published: an execution_timeout unwinds the follow before
    # Airflow calls on_kill.
    _stoppable: str | None = None
    # The session a timed-out wait left running (on_kill_session="none", or the stop failed).
    session_left_running: str | None = None

    @staticmethod
    def _check_on_kill(value: str) -> str:
        if value not in ON_KILL_SESSION:
            raise ValueError(f"on_kill_session must be one of {', '.join(ON_KILL_SESSION)}, not {value!r}")
        return value

    def _session_wait(self, session_id: str) -> Any:
        from airflow_provider_managed_agents.waiting.sessions import SessionWait

        return SessionWait(session_id, self.poll_interval)

    def _watch_session(self, session_id: str) -> None:
        self._stoppable = session_id if self.on_kill_session != "none" else None

    # --- on the worker ---------------------------------------------------------------------

    def _session_pace(self, session_id: str, limit: TimeLimit, first_look: datetime) -> Any:
        from airflow_provider_managed_agents.waiting.loop import Pace

        return Pace(self._session_wait(session_id), first_look, limit.deadline, limit.seconds)

    def _look_at_session(self, session_id: str) -> Any:
        """The blocking look, for the loop."""
        from airflow_provider_managed_agents.waiting.sessions import look

        wait = self._session_wait(session_id)
        return lambda now, final: look(wait, self.hook, now)

    def _follow_here(self, session_id: str, limit: TimeLimit, first_look: datetime) -> SessionVerdict:
        """Follow the session from this worker until it ends or the limit passes (first look at
        ``first_look``: a session this task just started is idle until it starts running)."""
        from airflow_provider_managed_agents.waiting.loop import follow

        self._watch_session(session_id)
        return follow(self._session_pace(session_id, limit, first_look), self._look_at_session(session_id))

    def _follow_answering_here(
        self, context: Context, session_id: str, limit: TimeLimit, first_look: datetime, carry: dict[str, Any]
    ) -> SessionVerdict:
        """Follow the session here until it ends, answering what it waits for as often as it
        asks (custom tools here; asking a person parks the task)."""
        from airflow_provider_managed_agents.waiting import clock

        while True:
            verdict = self._follow_here(session_id, limit, first_look)
            answered = self._answered(context, verdict, carry)
            if answered is not None:
                return answered
            first_look = min(clock.now() + timedelta(seconds=self.poll_interval), limit.deadline)

    def _answered(self, context: Context, verdict: SessionVerdict, carry: dict[str, Any]) -> SessionVerdict | None:
        """None when the session waited on actions and has its answers now (follow it again);
        else the verdict to publish (with why this task could not answer, when it could not)."""
        if not self._answering(verdict):
            return verdict
        cannot = self._answer(context, verdict, carry)
        if cannot is None:
            return None
        return replace(verdict, error=cannot, reason=str(cannot))

    def _session_trigger(
        self,
        session_id: str,
        limit: TimeLimit,
        first_look: datetime,
        *,
        run_id: str | None = None,
        deployment_id: str | None = None,
        created_after: datetime | None = None,
    ) -> ManagedAgentsSessionTrigger:
        from airflow_provider_managed_agents.compat import triggers_hear_kills
        from airflow_provider_managed_agents.triggers.sessions import ManagedAgentsSessionTrigger

        self.log.info(
            "Deferring: waiting for session %s to end, a look every %g s, until %s (%s)",
            session_id,
            self.poll_interval,
            limit.deadline.isoformat(),
            limit.which,
        )
        if self.on_kill_session != "none" and not triggers_hear_kills():
            self.log.warning(
                "on_kill_session=%r holds only at the deadline while deferred: this Airflow does not tell a trigger "
                "its task was killed (Airflow >= 3.3 does), so a kill while deferred leaves session %s running",
                self.on_kill_session,
                session_id,
            )
        return ManagedAgentsSessionTrigger(
            session_id=session_id,
            managed_agents_conn_id=self.managed_agents_conn_id,
            poll_interval=self.poll_interval,
            deadline=limit.deadline.isoformat(),
            timeout=limit.seconds,
            limit=limit.which,
            on_kill_session=self.on_kill_session,
            not_before=first_look.isoformat(),
            created_after=created_after.isoformat() if created_after is not None else None,
            run_id=run_id,
            deployment_id=deployment_id,
        )

    def _session_resumed(self, context: Context, event: dict[str, Any]) -> tuple[SessionWaitEvent, Any]:
        """Back from the session trigger: its event read, judged again and published; the
        event, and the error to raise when the wait failed."""
        from airflow_provider_managed_agents.waiting.events import SessionWaitEvent, decode

        ended = decode(event, SessionWaitEvent)
        self._note_lineage(deployment_id=ended.deployment_id, deployment_run_id=ended.run_id)
        self._watch_session(ended.session_id)
        carry = {"session_id": ended.session_id, "run_id": ended.run_id, "deployment_id": ended.deployment_id}
        verdict = self._answered(context, ended.verdict(), carry)
        if verdict is None:  # answered: follow it again (a deferred task defers again)
            self._follow_on(context, carry)
            raise AssertionError("unreachable: a deferred follow defers again")
        error = self._publish_session(context, ended.session_id, verdict, limit=ended.limit, stopped=ended.stopped)
        return ended, error

    # --- the end ---------------------------------------------------------------------------

    def _publish_session(
        self,
        context: Context,
        session_id: str,
        verdict: SessionVerdict,
        *,
        limit: str = "timeout",
        stopped: str | None = None,
    ) -> BaseException | None:
        """XCom, log and give-up of a session wait that ended; the error to raise when it failed.
        ``limit``: which limit a timeout verdict reached; ``stopped``: the trigger already
        applied ``on_kill_session`` at its deadline."""
        from airflow_provider_managed_agents.waiting.sessions import final_message, report

        self._publish_session_url(context, session_id)
        facts = verdict.facts
        if facts is not None and verdict.status in ("success", "failed"):
            self._note_lineage(session_end=facts.to_dict())
        if facts is not None:
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
        if verdict.status != "timeout":
            self._stoppable = None
            self._note_error(verdict.error)
            return verdict.error
        if stopped is not None:
            self.log.info("Gave up on session %s at the deadline: it was sent %s", session_id, stopped)
            self._stoppable = None
        elif not self._give_up_on_session():
            self.session_left_running = session_id
        error = _timeout_error(verdict, limit)
        self._note_error(error)
        return error

    def _publish_session_url(self, context: Context, session_id: str) -> None:
        """The session's Console page, for the session link."""
        from airflow_provider_managed_agents.links import SESSION_URL_KEY
        from airflow_provider_managed_agents.reporting import session_console_url

        self._note_lineage(session_id=session_id)
        context["ti"].xcom_push(key=SESSION_URL_KEY, value=session_console_url(self.hook.settings, session_id))

    def _give_up_on_session(self) -> bool:
        """This task stops waiting before the session ended: stop it as ``on_kill_session``
        says, if this task is to. Whether it was stopped."""
        session_id, self._stoppable = self._stoppable, None
        if session_id is None:
            return False
        self.log.info("Giving up on session %s: sending it %s", session_id, self.on_kill_session)
        try:
            self.hook.stop_session(session_id, self.on_kill_session)
        except Exception as exc:  # giving up must never be blocked by the API
            self.log.warning("Could not %s session %s: %s", self.on_kill_session, session_id, exc)
            return False
        return True


def _timeout_error(verdict: SessionVerdict, limit: str) -> BaseException:
    """Airflow's own class for the limit reached: a sensor timeout fails the task for good, an
    execution timeout lets its retries apply (as Airflow does on the worker)."""
    from airflow_provider_managed_agents.compat import AirflowSensorTimeout, AirflowTaskTimeout

    if limit == "execution_timeout":
        return AirflowTaskTimeout(verdict.reason)
    return AirflowSensorTimeout(verdict.reason)
