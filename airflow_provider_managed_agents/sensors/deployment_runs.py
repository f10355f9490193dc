"""ManagedAgentsDeploymentRunSensor: gate a pipeline on a deployment run.

On the DAG-parse path: only ``airflow.sdk`` and the light compat module are imported at module
level; the hook, the models and the wait decision are imported when the sensor runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperator, BaseSensorOperator, PokeReturnValue

from airflow_provider_managed_agents.compat import default_deferrable

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.waiting.clock import Throttle
    from airflow_provider_managed_agents.waiting.runs import LookState, RunWait, Verdict

# The last look of a poking sensor happens this close to its timeout at the latest, so that it
# times out with its own message rather than by Airflow's generic check right after.
DEADLINE_MARGIN = timedelta(seconds=1)
MIN_POKE_SECONDS = 1.0
# Airflow's own deferral timeout is only a backstop behind the trigger's deadline.
DEFERRAL_SLACK = timedelta(minutes=5)


class ManagedAgentsDeploymentRunSensor(BaseSensorOperator):
    """Wait for a deployment run: a session created passes, a run error fails with its own type.

    Wait for a specific run with ``deployment_run_id`` (e.g. the run operator's XCom), or for the
    next run of a deployment with ``deployment_id``: the first run created at or after
    ``created_after`` (default: when this sensor first started, kept across reschedules and
    deferrals), optionally only ``trigger_type="schedule"`` or ``"manual"``.

    :param deployment_run_id: the run to wait for.
    :param deployment_id: the deployment whose next run to wait for.
    :param trigger_type: ``"schedule"``, ``"manual"`` or None (either).
    :param created_after: the reference time (ISO string or datetime).
    :param wait_through_retryable: keep waiting for the next run after a
        ``session_rate_limited_error`` instead of failing (each skipped run is logged).
    :param poll_interval: seconds between looks for manual runs or without a schedule. While
        waiting for a scheduled run the sensor sleeps until the next fire (plus the documented
        jitter), re-reading the deployment at least once a minute on the way.
    :param deferrable: hand the wait to the triggerer (default ``[operators] default_deferrable``).
    :param managed_agents_conn_id: the ``managed_agents`` connection.

    Success returns the run id and pushes ``session_id`` and ``deployment_run`` to XCom. A run
    error raises its typed exception; an archived deployment, or a paused one while waiting for a
    scheduled run, raises ``DeploymentArchivedError`` / ``DeploymentPausedError``; any API error
    that no retry fixes raises its typed class; ``timeout`` raises ``AirflowSensorTimeout``
    naming what was awaited. All identically in poke, reschedule and deferrable modes, and
    ``soft_fail`` / ``never_fail`` turn each of them into a skip in every mode. Transient API
    errors never fail the sensor on their own.
    """

    template_fields: Sequence[str] = (
        "deployment_run_id",
        "deployment_id",
        "trigger_type",
        "created_after",
        "managed_agents_conn_id",
    )
    ui_color = "#e8c8a8"

    def __init__(
        self,
        *,
        deployment_run_id: str | None = None,
        deployment_id: str | None = None,
        trigger_type: str | None = None,
        created_after: str | datetime | None = None,
        wait_through_retryable: bool = False,
        poll_interval: float = 60.0,
        deferrable: bool = default_deferrable(),
        managed_agents_conn_id: str = "managed_agents_default",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.deployment_run_id = deployment_run_id
        self.deployment_id = deployment_id
        self.trigger_type = trigger_type
        self.created_after = created_after
        self.wait_through_retryable = wait_through_retryable
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.managed_agents_conn_id = managed_agents_conn_id
        self._started_at: datetime | None = None

    @cached_property
    def hook(self) -> ManagedAgentsHook:
        from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

        return ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)

    @cached_property
    def _look_state(self) -> LookState:
        """Shared by the pokes of one try (poke mode), so they do not all re-read the deployment."""
        from airflow_provider_managed_agents.waiting.runs import LookState

        return LookState()

    @cached_property
    def _log_throttle(self) -> Throttle:
        from airflow_provider_managed_agents.waiting.clock import Throttle

        return Throttle()

    # --- the question ----------------------------------------------------------------------

    def _reference_time(self, context: Context) -> datetime | None:
        from airflow_provider_managed_agents.models.base import parse_timestamp

        if self.deployment_id is None:
            return None
        if self.created_after:
            return parse_timestamp(self.created_after)
        ti = context["ti"]
        first = ti.get_first_reschedule_date(context) if self.reschedule else None
        return parse_timestamp(first or ti.start_date)

    def _wait(self, context: Context) -> RunWait:
        from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
        from airflow_provider_managed_agents.waiting.runs import RunWait

        try:
            return RunWait(
                deployment_run_id=self.deployment_run_id or None,
                deployment_id=self.deployment_id or None,
                trigger_type=self.trigger_type or None,  # type: ignore[arg-type]
                created_after=self._reference_time(context),
                wait_through_retryable=self.wait_through_retryable,
                poll_interval=self.poll_interval,
            )
        except ValueError as exc:
            self._fail(ManagedAgentsValidationError("sensor arguments", [("", str(exc))]))

    def _deadline(self, context: Context) -> datetime:
        """When the wait times out: ``timeout`` after the sensor first started (across
        reschedules, from the first one)."""
        from airflow_provider_managed_agents.models.base import parse_timestamp
        from airflow_provider_managed_agents.waiting import clock

        first = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
        started = parse_timestamp(first) if first else (self._started_at or clock.now())
        return started + timedelta(seconds=self.timeout)

    # --- looking and concluding ---------------------------------------------------------------

    def _look(self, wait: RunWait, *, final: bool) -> Verdict | None:
        """One look; None when a transient API error hid the answer (look again later)."""
        from airflow_provider_managed_agents.exceptions import ManagedAgentsError
        from airflow_provider_managed_agents.hooks.wire import is_transient
        from airflow_provider_managed_agents.waiting import clock
        from airflow_provider_managed_agents.waiting.runs import look

        try:
            verdict = look(wait, self.hook, self._look_state, clock.now(), final=final)
        except ManagedAgentsError as exc:
            if not is_transient(exc):
                self._fail(exc)
            self.log.warning("Transient API error while waiting (%s); looking again later", exc)
            return None
        for run in self._look_state.new_skips(verdict):
            self.log.info("Waiting through run %s: %s", run.id, run.error.type if run.error else "")
        return verdict

    def _conclude(self, context: Context, verdict: Verdict) -> str:
        """XCom and logs of a finished wait; its run id, or the failure raised."""
        from airflow_provider_managed_agents.compat import AirflowSensorTimeout
        from airflow_provider_managed_agents.operators.reporting import describe_run

        if verdict.run is not None:
            ti = context["ti"]
            ti.xcom_push(key="deployment_run", value=verdict.run.model_dump(mode="json"))
            ti.xcom_push(key="session_id", value=verdict.run.session_id)
            self.log.info("%s", describe_run(verdict.run))
        if verdict.status == "timeout":
            self._fail(AirflowSensorTimeout(verdict.reason))
        if verdict.error is not None:
            self._fail(verdict.error)
        assert verdict.run is not None
        return verdict.run.id

    def _fail(self, error: Exception) -> NoReturn:
        """Raise the wait's failure, or skip instead under ``soft_fail`` / ``never_fail``: the
        same in every mode (Airflow itself applies them differently to poking and deferred
        sensors)."""
        from airflow_provider_managed_agents.compat import AirflowSkipException

        if self.soft_fail or self.never_fail:
            flag = "soft_fail" if self.soft_fail else "never_fail"
            raise AirflowSkipException(f"Skipped ({flag}): {error}") from error
        raise error

    def _log_progress(self, wait: RunWait, next_look: datetime, *, force: bool) -> None:
        from airflow_provider_managed_agents.waiting import clock

        if not (force or self._log_throttle.ready()):
            return
        deployment = self._look_state.deployment
        fire = wait.next_fire(deployment, clock.now()) if deployment is not None else None
        fire_text = f"; next fire {fire.isoformat()}" if fire is not None and wait.trigger_type != "manual" else ""
        self.log.info("Waiting for %s; next look at %s%s", wait.describe(), next_look.isoformat(), fire_text)

    # --- poke and reschedule modes ----------------------------------------------------------

    def poke(self, context: Context) -> bool | PokeReturnValue:
        from airflow_provider_managed_agents.waiting import clock

        wait = self._wait(context)
        deadline = self._deadline(context)
        verdict = self._look(wait, final=clock.now() >= deadline - DEADLINE_MARGIN)
        if verdict is not None and verdict.done:
            return PokeReturnValue(is_done=True, xcom_value=self._conclude(context, verdict))
        now = clock.now()
        if now >= deadline - DEADLINE_MARGIN:
            self._conclude(context, wait.timed_out(self.timeout))
        next_look = verdict.next_look_at if verdict is not None and verdict.next_look_at else None
        next_look = min(next_look or now + timedelta(seconds=self.poll_interval), deadline)
        if not self.exponential_backoff:
            # Airflow's public knob for the next sleep (or reschedule): the wait's own schedule.
            self.poke_interval = max((next_look - now).total_seconds(), MIN_POKE_SECONDS)
        self._log_progress(wait, next_look, force=False)
        return False

    # --- all modes ----------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        from airflow_provider_managed_agents.compat import AirflowSensorTimeout
        from airflow_provider_managed_agents.waiting import clock

        self._started_at = clock.now()
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout:
                # Airflow's own check fired just before ours: the same error ours would raise.
                self._conclude(context, self._wait(context).timed_out(self.timeout))
        wait = self._wait(context)
        deadline = self._deadline(context)
        verdict = self._look(wait, final=False)
        if verdict is not None and verdict.done:
            return self._conclude(context, verdict)
        next_look = min(verdict.next_look_at if verdict and verdict.next_look_at else clock.now(), deadline)
        self._log_progress(wait, next_look, force=True)
        from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger

        self.defer(
            trigger=ManagedAgentsDeploymentRunTrigger(
                wait=wait.to_dict(),
                managed_agents_conn_id=self.managed_agents_conn_id,
                deadline=deadline.isoformat(),
                timeout=self.timeout,
                # This look just happened: the trigger's first one is the next one due.
                not_before=next_look.isoformat(),
                state=self._look_state.to_dict(),
            ),
            method_name="execute_complete",
            timeout=deadline - clock.now() + DEFERRAL_SLACK,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        from airflow_provider_managed_agents.waiting.outcome import verdict_from_event

        _, verdict = verdict_from_event(event)
        return self._conclude(context, verdict)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Back from the triggerer. ``BaseSensorOperator`` would re-word every failure here
        (and apply ``soft_fail`` its own way); the wait's errors pass unchanged, and Airflow's own
        deferral timeout, a backstop behind the trigger's deadline, reads like the trigger's."""
        from airflow_provider_managed_agents.compat import TaskDeferralTimeout

        try:
            return BaseOperator.resume_execution(self, next_method, next_kwargs, context)
        except TaskDeferralTimeout:
            self._conclude(context, self._wait(context).timed_out(self.timeout))

    def on_kill(self) -> None:
        """Killed mid-wait: close the HTTP client so no connection is left open."""
        if "hook" in self.__dict__:
            self.hook.close()
