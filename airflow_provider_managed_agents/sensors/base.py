"""What the provider's sensors share: one failure policy in every mode, the deadline, the way
back from the triggerer, and following a session to its end.

On the DAG-parse path: only ``airflow.sdk`` and light modules at module level.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from airflow.sdk import BaseOperator, BaseSensorOperator, PokeReturnValue

from airflow_provider_managed_agents.compat import default_deferrable
from airflow_provider_managed_agents.following import SessionFollower, TimeLimit
from airflow_provider_managed_agents.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_managed_agents.lineage import OpenLineageReporter
from airflow_provider_managed_agents.links import record_links_unknown
from airflow_provider_managed_agents.waiting import clock

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.waiting.loop import Judged, Pace
    from airflow_provider_managed_agents.waiting.sessions import SessionVerdict

VerdictT = TypeVar("VerdictT", bound="Judged")

# The last look of a poking sensor happens this close to its timeout at the latest, so that it
# times out with its own message rather than by Airflow's generic check right after.
DEADLINE_MARGIN = timedelta(seconds=1)
MIN_POKE_SECONDS = 1.0


class ManagedAgentsSensorBase(SessionFollower, OpenLineageReporter, BaseSensorOperator):
    """The plumbing of the provider's sensors (not used directly).

    :param poll_interval: seconds between looks.
    :param deferrable: hand the wait to the triggerer (default ``[operators] default_deferrable``).
    :param final_message_max_chars: how much of a session's final message goes to XCom.
    :param on_kill_session: what giving up on a followed session (timeout, kill) does to it:
        ``none`` (default: a sensor waits on work it did not start), ``interrupt`` or ``archive``.
    :param managed_agents_conn_id: the ``managed_agents`` connection.
    """

    ui_color = "#e8c8a8"

    def __init__(
        self,
        *,
        poll_interval: float = 60.0,
        deferrable: bool = default_deferrable(),
        final_message_max_chars: int = 100_000,
        on_kill_session: str = "none",
        managed_agents_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.final_message_max_chars = final_message_max_chars
        self.on_kill_session = self._check_on_kill(on_kill_session)
        self.managed_agents_conn_id = managed_agents_conn_id
        self._started_at: datetime | None = None

    @cached_property
    def hook(self) -> ManagedAgentsHook:
        from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

        return ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)

    # --- the one failure policy -----------------------------------------------------------------

    def _fail(self, error: BaseException) -> NoReturn:
        """Raise the wait's failure, or skip instead under ``soft_fail`` / ``never_fail``: the
        same in every mode (Airflow itself applies them differently to poking and deferred
        sensors)."""
        from airflow_provider_managed_agents.compat import AirflowSkipException

        self._note_error(error)
        if self.soft_fail or self.never_fail:
            flag = "soft_fail" if self.soft_fail else "never_fail"
            raise AirflowSkipException(f"Skipped ({flag}): {error}") from error
        raise error

    def _timed_out(self, context: Context) -> NoReturn:
        """The timeout, worded for what this sensor waits for."""
        raise NotImplementedError

    def _deadline(self, context: Context) -> datetime:
        """When the wait times out: ``timeout`` after the sensor first started (across
        reschedules, from the first one)."""
        from airflow_provider_managed_agents.models.base import parse_timestamp

        first = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
        started = parse_timestamp(first) if first else (self._started_at or clock.now())
        return started + timedelta(seconds=self.timeout)

    def _poke_pace(self, watch: Any, deadline: datetime) -> Pace[Any]:
        """A poke's pace: one look now; a look within a margin of the deadline is the last."""
        from airflow_provider_managed_agents.waiting.loop import Pace

        return Pace(
            watch, clock.now(), deadline, self.timeout, final_margin=DEADLINE_MARGIN, throttle=self._log_throttle
        )

    @cached_property
    def _log_throttle(self) -> clock.Throttle:
        """One "still waiting" line a minute across the pokes of a try."""
        return clock.Throttle()

    def _look_once(self, pace: Pace[VerdictT], look: Callable[[datetime, bool], VerdictT]) -> VerdictT | None:
        """One look through the shared loop's step: the wait's end, or None (the next poke set
        to the pace's next look). An error no retry fixes fails the sensor by the one policy."""
        from airflow_provider_managed_agents.waiting.loop import step

        try:
            ended = step(pace, look)
        except Exception as exc:
            self._fail(exc)
        if ended is None:
            self._next_poke(pace.due())
        return ended

    def _next_poke(self, next_look: datetime) -> None:
        """Airflow's public knob for the next sleep (or reschedule): the wait's own schedule."""
        if not self.exponential_backoff:
            self.poke_interval = max((next_look - clock.now()).total_seconds(), MIN_POKE_SECONDS)

    def _run_modes(self, context: Context) -> Any:
        """Poke and reschedule modes run Airflow's loop; a timeout Airflow's own check finds
        just before ours is worded as ours."""
        from airflow_provider_managed_agents.compat import AirflowSensorTimeout

        self._started_at = clock.now()
        try:
            return BaseSensorOperator.execute(self, context)
        except AirflowSensorTimeout:
            self._timed_out(context)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Back from the triggerer. ``BaseSensorOperator`` would re-word every failure here
        (and apply ``soft_fail`` its own way); the wait's errors pass unchanged, and Airflow's own
        deferral timeout, a backstop behind the trigger's deadline, reads like the trigger's."""
        from airflow_provider_managed_agents.compat import TaskDeferralTimeout

        try:
            return BaseOperator.resume_execution(self, next_method, next_kwargs, context)
        except TaskDeferralTimeout:
            self._timed_out(context)

    # --- following a session ------------------------------------------------------------------

    def _poke_session(self, context: Context, session_id: str, deadline: datetime, run_id: str | None) -> Any:
        """One poke at a session: ``PokeReturnValue`` (the run id, else the session id) once it
        ended well, False while it runs; its failure (or the timeout) raised."""
        self._watch_session(session_id)  # for on_kill, until the session's end is published
        pace = self._poke_pace(self._session_wait(session_id), deadline)
        looked = self._look_once(pace, self._look_at_session(session_id))
        if looked is None:
            return False
        verdict = self._answered(context, looked, {"session_id": session_id, "run_id": run_id})
        if verdict is None:  # it has its answers: poke on
            return False
        self._conclude_session(context, session_id, verdict)
        return PokeReturnValue(is_done=True, xcom_value=run_id or session_id)

    def _follow_session_now(self, context: Context, session_id: str, deadline: datetime, run_id: str | None) -> Any:
        """Deferrable: look at the session once here, then hand it to the triggerer."""
        self._watch_session(session_id)
        pace = self._poke_pace(self._session_wait(session_id), deadline)
        looked = self._look_once(pace, self._look_at_session(session_id))
        verdict = self._answered(context, looked, {"session_id": session_id, "run_id": run_id}) if looked else None
        if verdict is not None:
            self._conclude_session(context, session_id, verdict)
            return run_id or session_id
        self._publish_session_url(context, session_id)
        self.defer(
            trigger=self._session_trigger(
                session_id, TimeLimit(deadline, self.timeout), pace.due(), run_id=run_id, created_after=_created(pace)
            ),
            method_name="session_complete",
            timeout=clock.deferral_timeout(deadline),
        )

    def _follow_on(self, context: Context, carry: dict[str, Any]) -> Any:
        """After an answer: sense the session again, ``timeout`` counted afresh (the time a person
        took is not the session's): deferred (first look a poll later), or by poking."""
        self._started_at = clock.now()
        if not self.deferrable:
            return self._run_modes(context)
        session_id, deadline = carry["session_id"], self._deadline(context)
        self._publish_session_url(context, session_id)
        first_look = min(clock.now() + timedelta(seconds=self.poll_interval), deadline)
        self.defer(
            trigger=self._session_trigger(
                session_id, TimeLimit(deadline, self.timeout), first_look, run_id=carry.get("run_id")
            ),
            method_name="session_complete",
            timeout=clock.deferral_timeout(deadline),
        )

    def session_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Back from the session trigger; returns the run id (run sensor) or the session id."""
        ended, error = self._session_resumed(context, event)
        if error is not None:
            self._fail(error)
        return ended.run_id or ended.session_id

    def _conclude_session(self, context: Context, session_id: str, verdict: SessionVerdict) -> None:
        error = self._publish_session(context, session_id, verdict)
        if error is not None:
            self._fail(error)

    def pre_execute(self, context: Context) -> None:
        """Before each start (and resumption): the links' URLs are not known yet."""
        record_links_unknown(context, self.operator_extra_links)

    def on_kill(self) -> None:
        """Killed mid-wait: stop the followed session if asked to, and close the HTTP client."""
        self._give_up_on_session()
        if "hook" in self.__dict__:
            self.hook.close()


def _created(pace: Any) -> datetime | None:
    """When the session the pace's last look saw was created (bounds the triggerer's list)."""
    from airflow_provider_managed_agents.models.base import parse_timestamp

    facts = pace.last.facts if pace.last is not None else None
    return parse_timestamp(facts.created_at) if facts is not None and facts.created_at else None
