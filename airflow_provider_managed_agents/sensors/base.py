"""What the provider's sensors share: one failure policy in every mode, the deadline, the way
back from the triggerer, and following a session to its end.

On the DAG-parse path: only ``airflow.sdk`` and light modules at module level.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator, BaseSensorOperator, PokeReturnValue

from airflow_provider_managed_agents.compat import default_deferrable
from airflow_provider_managed_agents.operators.following import SessionFollower

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.waiting.clock import Throttle
    from airflow_provider_managed_agents.waiting.sessions import SessionVerdict

# The last look of a poking sensor happens this close to its timeout at the latest, so that it
# times out with its own message rather than by Airflow's generic check right after.
DEADLINE_MARGIN = timedelta(seconds=1)
MIN_POKE_SECONDS = 1.0
# Airflow's own deferral timeout is only a backstop behind the trigger's deadline.
DEFERRAL_SLACK = timedelta(minutes=5)


def deferral_timeout(deadline: datetime) -> timedelta:
    """Airflow's deferral timeout behind a deadline: a plain ``timedelta`` (the task runner's
    serialiser refuses pendulum's ``Duration``, which datetime arithmetic on pendulum gives)."""
    from airflow_provider_managed_agents.waiting import clock

    return timedelta(seconds=(deadline - clock.now()).total_seconds()) + DEFERRAL_SLACK


class ManagedAgentsSensorBase(SessionFollower, BaseSensorOperator):
    """The plumbing of the provider's sensors (not used directly).

    :param poll_interval: seconds between looks.
    :param deferrable: hand the wait to the triggerer (default ``[operators] default_deferrable``).
    :param final_message_max_chars: how much of a session's final message goes to XCom.
    :param on_kill_session: what a kill does to the followed session: ``none`` (default: a sensor
        waits on work it did not start), ``interrupt`` or ``archive``.
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
        managed_agents_conn_id: str = "managed_agents_default",
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

    @cached_property
    def _log_throttle(self) -> Throttle:
        from airflow_provider_managed_agents.waiting.clock import Throttle

        return Throttle()

    # --- the one failure policy -----------------------------------------------------------------

    def _fail(self, error: Exception) -> NoReturn:
        """Raise the wait's failure, or skip instead under ``soft_fail`` / ``never_fail``: the
        same in every mode (Airflow itself applies them differently to poking and deferred
        sensors)."""
        from airflow_provider_managed_agents.compat import AirflowSkipException

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
        from airflow_provider_managed_agents.waiting import clock

        first = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
        started = parse_timestamp(first) if first else (self._started_at or clock.now())
        return started + timedelta(seconds=self.timeout)

    def _next_poke(self, next_look: datetime, deadline: datetime) -> None:
        """Airflow's public knob for the next sleep (or reschedule): the wait's own schedule,
        never past the deadline."""
        from airflow_provider_managed_agents.waiting import clock

        if not self.exponential_backoff:
            self.poke_interval = max((min(next_look, deadline) - clock.now()).total_seconds(), MIN_POKE_SECONDS)

    def _run_modes(self, context: Context) -> Any:
        """Poke and reschedule modes run Airflow's loop; a timeout Airflow's own check finds
        just before ours is worded as ours."""
        from airflow_provider_managed_agents.compat import AirflowSensorTimeout
        from airflow_provider_managed_agents.waiting import clock

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

    def _poke_session(self, context: Context, session_id: str, deadline: datetime, result: Any) -> Any:
        """One poke at a session: ``PokeReturnValue(result)`` once it ended well, False while it
        runs; its failure (or the timeout) raised."""
        from airflow_provider_managed_agents.exceptions import ManagedAgentsError
        from airflow_provider_managed_agents.waiting import clock

        wait = self._session_wait(session_id)
        self._following = session_id  # for on_kill, until the session's end is published
        try:
            verdict = self._look_at_session(wait)
        except ManagedAgentsError as exc:
            self._fail(exc)
        if verdict is not None and verdict.done:
            self._following = None
            self._conclude_session(context, verdict)
            return PokeReturnValue(is_done=True, xcom_value=result)
        now = clock.now()
        if now >= deadline - DEADLINE_MARGIN:
            self._conclude_session(context, wait.timed_out(self.timeout, verdict.facts if verdict else None))
        self._next_poke(now + timedelta(seconds=self.poll_interval), deadline)
        if self._log_throttle.ready():
            status = verdict.facts.status if verdict is not None and verdict.facts else "unknown"
            self.log.info("Waiting for %s (now %s)", wait.describe(), status)
        return False

    def _follow_session_now(self, context: Context, session_id: str, deadline: datetime, result: Any) -> Any:
        """Deferrable: look at the session once here, then hand it to the triggerer."""
        from airflow_provider_managed_agents.exceptions import ManagedAgentsError

        try:
            verdict = self._look_at_session(self._session_wait(session_id))
        except ManagedAgentsError as exc:
            self._fail(exc)
        if verdict is not None and verdict.done:
            self._conclude_session(context, verdict)
            return result

        stop = self.on_kill_session != "none"
        self.defer(
            trigger=self._session_trigger(
                session_id, deadline, self.timeout, stop_on_kill=stop, carry={"result": result}
            ),
            method_name="session_complete",
            timeout=deferral_timeout(deadline),
        )

    def session_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Back from the session trigger."""
        from airflow_provider_managed_agents.waiting.sessions import verdict_from_event

        self._conclude_session(context, verdict_from_event(event))
        return event.get("carry", {}).get("result")

    def _conclude_session(self, context: Context, verdict: SessionVerdict) -> None:
        error = self._publish_session(context, verdict)
        if error is not None:
            self._fail(error)

    def on_kill(self) -> None:
        """Killed mid-wait: stop the followed session if asked to, and close the HTTP client."""
        self._stop_followed_session()
        if "hook" in self.__dict__:
            self.hook.close()
