"""ManagedAgentsDeploymentRunSensor: gate a pipeline on a deployment run, or on the end of the
session it created.

On the DAG-parse path: only ``airflow.sdk`` and the light compat module are imported at module
level; the hook, the models and the wait decision are imported when the sensor runs.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperatorLink, PokeReturnValue

from airflow_provider_managed_agents.links import ManagedAgentsSessionLink
from airflow_provider_managed_agents.sensors.base import ManagedAgentsSensorBase

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.waiting.loop import Pace
    from airflow_provider_managed_agents.waiting.runs import LookState, RunWait, Verdict


class ManagedAgentsDeploymentRunSensor(ManagedAgentsSensorBase):
    """Wait for a deployment run: a session created passes, a run error fails with its own type;
    with ``wait_for_session_end``, go on until that session has finished its work.

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
    :param wait_for_session_end: once the run created its session, follow the session to its
        end: success only when the agent's turn ended with ``end_turn`` (and any defined outcome
        is ``satisfied``); every other ending raises its ``SessionError`` class.
    :param poll_interval: seconds between looks for manual runs or without a schedule (and at a
        running session). While waiting for a scheduled run the sensor looks just after the next
        fire (plus the documented jitter), re-reading the deployment at least once a minute.
    :param deferrable: hand the wait to the triggerer (default ``[operators] default_deferrable``).
    :param final_message_max_chars: with ``wait_for_session_end``, how much of the agent's final
        message goes to XCom.
    :param on_kill_session: with ``wait_for_session_end``, what giving up on the session (its
        timeout, a kill) does to it: ``none`` (default), ``interrupt`` or ``archive``.
    :param managed_agents_conn_id: the ``managed_agents`` connection.

    Success returns the run id and pushes ``session_id`` and ``deployment_run`` to XCom (and what
    the session did, with ``wait_for_session_end``). A run error raises its typed exception; an
    archived deployment, or a paused one while waiting for a scheduled run, raises
    ``DeploymentArchivedError`` / ``DeploymentPausedError``; any API error that no retry fixes
    raises its typed class; ``timeout`` raises ``AirflowSensorTimeout`` naming what was awaited.
    All identically in poke, reschedule and deferrable modes, and ``soft_fail`` / ``never_fail``
    turn each of them into a skip in every mode. Transient API errors never fail the sensor.
    """

    template_fields: Sequence[str] = (
        "deployment_run_id",
        "deployment_id",
        "trigger_type",
        "created_after",
        "managed_agents_conn_id",
    )
    operator_extra_links: Collection[BaseOperatorLink] = (ManagedAgentsSessionLink(),)

    def __init__(
        self,
        *,
        deployment_run_id: str | None = None,
        deployment_id: str | None = None,
        trigger_type: str | None = None,
        created_after: str | datetime | None = None,
        wait_through_retryable: bool = False,
        wait_for_session_end: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment_run_id = deployment_run_id
        self.deployment_id = deployment_id
        self.trigger_type = trigger_type
        self.created_after = created_after
        self.wait_through_retryable = wait_through_retryable
        self.wait_for_session_end = wait_for_session_end
        self._run_found: Verdict | None = None

    @cached_property
    def _look_state(self) -> LookState:
        """Shared by the pokes of one try (poke mode), so they do not all re-read the deployment."""
        from airflow_provider_managed_agents.waiting.runs import LookState

        return LookState()

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

    def _timed_out(self, context: Context) -> NoReturn:
        self._conclude_run(context, self._wait(context).timed_out(self.timeout))
        raise AssertionError("unreachable: a timeout always raises")

    # --- looking and concluding ---------------------------------------------------------------

    def _look_for_run(self, wait: RunWait, pace: Pace[Verdict]) -> Verdict | None:
        """One look at the runs (and the deployment when due): the wait's end, or None."""
        from airflow_provider_managed_agents.waiting.runs import look

        return self._look_once(pace, lambda now, final: look(wait, self.hook, self._look_state, now, final=final))

    def _conclude_run(self, context: Context, verdict: Verdict) -> str:
        """XCom and logs of a finished run wait; its run id, or the failure raised."""
        from airflow_provider_managed_agents.compat import AirflowSensorTimeout
        from airflow_provider_managed_agents.reporting import describe_run

        if verdict.run is not None:
            run = verdict.run
            self._note_lineage(
                run=run.model_dump(mode="json"),
                deployment_id=run.deployment_id,
                deployment_run_id=run.id,
                session_id=run.session_id,
            )
            ti = context["ti"]
            ti.xcom_push(key="deployment_run", value=verdict.run.model_dump(mode="json"))
            ti.xcom_push(key="session_id", value=verdict.run.session_id)
            self.log.info("%s", describe_run(verdict.run))
            if verdict.run.session_id is not None:
                self._publish_session_url(context, verdict.run.session_id)
        if verdict.status == "timeout":
            self._fail(AirflowSensorTimeout(verdict.reason))
        if verdict.error is not None:
            self._fail(verdict.error)
        assert verdict.run is not None
        return verdict.run.id

    def _log_deferring(self, wait: RunWait, next_look: datetime) -> None:
        from airflow_provider_managed_agents.waiting import clock

        deployment = self._look_state.deployment
        fire = wait.next_fire(deployment, clock.now()) if deployment is not None else None
        fire_text = f"; next fire {fire.isoformat()}" if fire is not None and wait.trigger_type != "manual" else ""
        self.log.info("Deferring: waiting for %s; next look at %s%s", wait.describe(), next_look.isoformat(), fire_text)

    # --- poke and reschedule modes ----------------------------------------------------------

    def poke(self, context: Context) -> bool | PokeReturnValue:
        deadline = self._deadline(context)
        run_found = self._run_found  # poke mode keeps it between pokes; reschedule finds it again
        if run_found is None:
            wait = self._wait(context)
            verdict = self._look_for_run(wait, self._poke_pace(wait, deadline))
            if verdict is None:
                return False
            run_id = self._conclude_run(context, verdict)
            if not self.wait_for_session_end:
                return PokeReturnValue(is_done=True, xcom_value=run_id)
            self._run_found = run_found = verdict
        assert run_found.run is not None and run_found.run.session_id is not None
        return self._poke_session(context, run_found.run.session_id, deadline, run_found.run.id)

    # --- all modes ----------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        from airflow_provider_managed_agents.waiting import clock

        if not self.deferrable:
            return self._run_modes(context)
        self._started_at = clock.now()
        wait = self._wait(context)
        deadline = self._deadline(context)
        pace = self._poke_pace(wait, deadline)
        verdict = self._look_for_run(wait, pace)
        if verdict is not None:
            return self._after_run(context, verdict, deadline)
        from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger

        first = min(pace.next_look, deadline)
        self._log_deferring(wait, first)
        self.defer(
            trigger=ManagedAgentsDeploymentRunTrigger(
                wait=wait.to_dict(),
                managed_agents_conn_id=self.managed_agents_conn_id,
                deadline=deadline.isoformat(),
                timeout=self.timeout,
                # This look just happened: the trigger's first one is the next one due.
                not_before=first.isoformat(),
                state=self._look_state.to_dict(),
            ),
            method_name="execute_complete",
            timeout=clock.deferral_timeout(deadline),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from airflow_provider_managed_agents.waiting import clock
        from airflow_provider_managed_agents.waiting.events import RunWaitEvent, decode

        ended = decode(event, RunWaitEvent)
        deadline = ended.deadline or clock.now() + timedelta(seconds=self.timeout)
        return self._after_run(context, ended.verdict(), deadline)

    def _after_run(self, context: Context, verdict: Verdict, deadline: datetime) -> Any:
        """Deferrable: the run wait ended; conclude it, or go on to its session's end."""
        run_id = self._conclude_run(context, verdict)
        if not self.wait_for_session_end:
            return run_id
        assert verdict.run is not None and verdict.run.session_id is not None
        return self._follow_session_now(context, verdict.run.session_id, deadline, run_id)
