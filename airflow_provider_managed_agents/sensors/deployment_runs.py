"""ManagedAgentsDeploymentRunSensor: gate a pipeline on a deployment run.

On the DAG-parse path: only ``airflow.sdk`` is imported at module level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.waiting import DeploymentMemo, RunWait, Verdict


class ManagedAgentsDeploymentRunSensor(BaseSensorOperator):
    """Wait for a deployment run: a session created passes, a run error fails with its own type.

    Wait for a specific run with ``deployment_run_id`` (e.g. the run operator's XCom), or for the
    next run of a deployment with ``deployment_id``: the first run created at or after
    ``created_after`` (default: when this sensor first started, kept across reschedules and
    deferrals), optionally only ``trigger_type="schedule"`` or ``"manual"``.

    :param wait_through_retryable: keep waiting for the next run after a
        ``session_rate_limited_error`` instead of failing.
    :param poll_interval: seconds between looks for manual runs or without a schedule. While
        waiting for a scheduled run the sensor sleeps until the next fire (plus the documented
        jitter) instead, read from ``schedule.upcoming_runs_at``.
    :param deferrable: hand the wait to the triggerer (default ``[operators] default_deferrable``).
    :param managed_agents_conn_id: the ``managed_agents`` connection.

    Success returns the run id and pushes ``session_id`` and ``deployment_run`` to XCom. A run
    error raises its typed exception; an archived deployment, or a paused one while waiting for a
    scheduled run, raises ``DeploymentArchivedError`` / ``DeploymentPausedError`` at once.
    Transient API errors never fail the sensor on their own.
    """

    template_fields: Sequence[str] = ("deployment_run_id", "deployment_id", "trigger_type", "created_after")
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
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
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
        self._next_look_in: float | None = None

    @cached_property
    def hook(self) -> ManagedAgentsHook:
        from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

        return ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)

    @cached_property
    def _deployment_memo(self) -> DeploymentMemo:
        """Shared by the pokes of one try (poke mode), so they do not all re-read the deployment."""
        from airflow_provider_managed_agents.waiting import DeploymentMemo

        return DeploymentMemo()

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
        from airflow_provider_managed_agents.waiting import RunWait

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
            raise ManagedAgentsValidationError("sensor arguments", [("", str(exc))]) from None

    # --- looking ---------------------------------------------------------------------------

    def _look(self, wait: RunWait) -> Verdict | None:
        """One look; None when a transient API error hid the answer (look again later)."""
        from airflow_provider_managed_agents.hooks.wire import is_transient
        from airflow_provider_managed_agents.waiting import look_sync

        try:
            return look_sync(wait, lambda name, kwargs: getattr(self.hook, name)(**kwargs), memo=self._deployment_memo)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self.log.warning("Transient API error while waiting (%s); looking again later", exc)
            return None

    def _finish(self, context: Context, verdict: Verdict) -> str:
        from airflow_provider_managed_agents.operators.reporting import describe_run

        if verdict.run is not None:
            ti = context["ti"]
            ti.xcom_push(key="deployment_run", value=verdict.run.model_dump(mode="json"))
            ti.xcom_push(key="session_id", value=verdict.run.session_id)
            self.log.info("%s", describe_run(verdict.run))
        if verdict.error is not None:
            raise verdict.error
        assert verdict.run is not None
        return verdict.run.id

    def poke(self, context: Context) -> bool | PokeReturnValue:
        import pendulum

        verdict = self._look(self._wait(context))
        if verdict is not None and verdict.done:
            return PokeReturnValue(is_done=True, xcom_value=self._finish(context, verdict))
        next_look_at = verdict.next_look_at if verdict is not None else None
        if next_look_at is None:
            self._next_look_in = self.poll_interval
        else:
            self._next_look_in = max((next_look_at - pendulum.now("UTC")).total_seconds(), 1.0)
            self.log.info("No run yet; next look at %s", next_look_at.isoformat())
        return False

    def _get_next_poke_interval(
        self, started_at: datetime | float, run_duration: Callable[[], float], poke_count: int
    ) -> float:
        # Schedule-aware: sleep until the moment the awaited run can exist, not a fixed interval,
        # and never past the sensor's timeout.
        if self._next_look_in is None or self.exponential_backoff:
            return super()._get_next_poke_interval(started_at, run_duration, poke_count)
        return max(min(self._next_look_in, self.timeout - run_duration() + 1), 1.0)

    # --- modes -----------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        from airflow.sdk.exceptions import AirflowSensorTimeout

        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:
                raise AirflowSensorTimeout(f"Timed out waiting for {self._describe_target()}: {exc}") from None
        wait = self._wait(context)
        verdict = self._look(wait)
        if verdict is not None and verdict.done:
            return self._finish(context, verdict)
        from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger

        self.defer(
            trigger=ManagedAgentsDeploymentRunTrigger(
                wait=wait.to_dict(),
                managed_agents_conn_id=self.managed_agents_conn_id,
                # This look just happened: the trigger's first one is the next one due.
                not_before=verdict.next_look_at.isoformat() if verdict and verdict.next_look_at else None,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Back from the triggerer; a deferral that ran out of ``timeout`` says what it waited for."""
        from airflow.sdk.exceptions import AirflowSensorTimeout

        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(f"Timed out waiting for {self._describe_target()}: {exc}") from None

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        from airflow_provider_managed_agents.waiting import RunWait

        return self._finish(context, RunWait.from_dict(event["wait"]).on_event(event))

    def on_kill(self) -> None:
        """Killed mid-wait: close the HTTP client so no connection is left open."""
        if "hook" in self.__dict__:
            self.hook.close()

    def _describe_target(self) -> str:
        if self.deployment_run_id:
            return f"deployment run {self.deployment_run_id}"
        kind = f"{self.trigger_type} " if self.trigger_type else ""
        return f"the next {kind}run of deployment {self.deployment_id}"
