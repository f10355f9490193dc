"""The one decision shared by the sensor and the trigger: every outcome, and when to look next."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
import pytest

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.models.cron import fire_times_after
from airflow_provider_managed_agents.models.deployments import Deployment
from airflow_provider_managed_agents.models.enums import RunErrorType
from airflow_provider_managed_agents.models.pages import Page
from airflow_provider_managed_agents.models.runs import DeploymentRun
from airflow_provider_managed_agents.triggers.deployment_runs import (
    ManagedAgentsDeploymentRunTrigger,
    event_payload,
)
from airflow_provider_managed_agents.waiting import (
    DEPLOYMENT_RECHECK,
    SCHEDULE_JITTER,
    SCHEDULE_MARGIN,
    DeploymentMemo,
    RunWait,
    look_sync,
)

T0 = pendulum.datetime(2026, 5, 1, 12, 0, 0)


def make_run(
    run_id: str = "drun_1",
    *,
    created_at: pendulum.DateTime = T0,
    error: str | None = None,
    trigger: str = "manual",
) -> DeploymentRun:
    context: dict[str, Any] = {"type": trigger}
    if trigger == "schedule":
        context["scheduled_at"] = created_at.isoformat()
    return DeploymentRun.model_validate(
        {
            "id": run_id,
            "type": "deployment_run",
            "deployment_id": "depl_1",
            "agent": {"type": "agent", "id": "agent_1", "version": 1},
            "created_at": created_at.isoformat(),
            "session_id": None if error else f"sesn_{run_id}",
            "error": {"type": error, "message": f"{error} happened"} if error else None,
            "trigger_context": context,
        }
    )


def make_deployment(
    *,
    status: str = "active",
    paused_reason: dict[str, Any] | None = None,
    archived: bool = False,
    schedule: tuple[str, str] | None = ("0 * * * *", "UTC"),
    now: pendulum.DateTime = T0,
) -> Deployment:
    data: dict[str, Any] = {
        "id": "depl_1",
        "type": "deployment",
        "name": "d",
        "agent": {"type": "agent", "id": "agent_1", "version": 1},
        "environment_id": "env_1",
        "status": status,
        "paused_reason": paused_reason,
        "archived_at": now.isoformat() if archived else None,
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
    }
    if schedule:
        upcoming = [] if archived else [t.isoformat() for t in fire_times_after(*schedule, now)]
        data["schedule"] = {
            "type": "cron",
            "expression": schedule[0],
            "timezone": schedule[1],
            "upcoming_runs_at": upcoming,
        }
    return Deployment.model_validate(data)


def waiting_for(trigger_type: str | None = None, **kwargs: Any) -> RunWait:
    return RunWait(deployment_id="depl_1", created_after=T0, trigger_type=trigger_type, **kwargs)  # type: ignore[arg-type]


def test_success_returns_the_run() -> None:
    verdict = waiting_for().on_runs([make_run()])
    assert verdict is not None and verdict.status == "success"
    assert verdict.run is not None and verdict.run.session_id == "sesn_drun_1"
    assert verdict.error is None


@pytest.mark.parametrize("error_type", [t.value for t in RunErrorType])
def test_every_run_error_fails_with_its_own_class(error_type: str) -> None:
    verdict = waiting_for().on_runs([make_run(error=error_type)])
    assert verdict is not None and verdict.status == "failed"
    assert type(verdict.error) is errors.RUN_ERROR_CLASSES[RunErrorType(error_type)]
    assert isinstance(verdict.error, errors.DeploymentRunError)
    assert verdict.error.error_type == error_type


def test_unknown_error_type_falls_back_and_keeps_its_name() -> None:
    verdict = waiting_for().on_runs([make_run(error="quantum_flux_error")])
    assert verdict is not None
    assert type(verdict.error) is errors.UnknownRunError
    assert verdict.error.error_type == "quantum_flux_error"
    assert "quantum_flux_error" in str(verdict.error)


def test_nothing_yet_is_no_verdict() -> None:
    assert waiting_for().on_runs([]) is None


def test_the_oldest_run_since_the_reference_counts_first() -> None:
    runs = [
        make_run("drun_b", created_at=T0.add(minutes=2), error="vault_not_found_error"),
        make_run("drun_a", created_at=T0.add(minutes=1)),
    ]
    verdict = waiting_for().on_runs(runs)
    assert verdict is not None and verdict.run is not None and verdict.run.id == "drun_a"


def test_runs_before_the_reference_or_of_the_other_trigger_type_do_not_count() -> None:
    runs = [
        make_run("drun_old", created_at=T0.subtract(seconds=1)),
        make_run("drun_manual", created_at=T0.add(seconds=5), trigger="manual"),
    ]
    assert waiting_for("schedule").on_runs(runs) is None


def test_wait_through_retryable_skips_rate_limited_runs_only() -> None:
    limited = make_run("drun_1", created_at=T0.add(minutes=1), error="session_rate_limited_error", trigger="schedule")
    later = make_run("drun_2", created_at=T0.add(minutes=2), trigger="schedule")
    wait = waiting_for("schedule", wait_through_retryable=True)
    assert wait.on_runs([limited]) is None
    verdict = wait.on_runs([later, limited])
    assert verdict is not None and verdict.run is not None and verdict.run.id == "drun_2"
    # Without the option the rate-limited run fails the wait, and is retryable.
    failed = waiting_for("schedule").on_runs([limited])
    assert failed is not None and isinstance(failed.error, errors.SessionRateLimitedRunError)
    assert failed.error.retryable
    # A terminal error is never waited through.
    terminal = make_run("drun_3", created_at=T0.add(minutes=3), error="environment_archived_error", trigger="schedule")
    verdict = wait.on_runs([terminal])
    assert verdict is not None and isinstance(verdict.error, errors.EnvironmentArchivedRunError)


def test_archived_deployment_fails_fast_for_any_trigger_type() -> None:
    for trigger_type in (None, "schedule", "manual"):
        verdict = waiting_for(trigger_type).on_deployment(make_deployment(archived=True), T0)
        assert verdict.status == "failed"
        assert isinstance(verdict.error, errors.DeploymentArchivedError)


def test_manual_pause_fails_a_scheduled_wait_but_not_a_manual_one() -> None:
    paused = make_deployment(status="paused", paused_reason={"type": "manual"})
    verdict = waiting_for("schedule").on_deployment(paused, T0)
    assert isinstance(verdict.error, errors.DeploymentPausedError)
    assert verdict.error.paused_reason_type == "manual"
    assert "paused" in str(verdict.error)
    assert waiting_for("manual").on_deployment(paused, T0).status == "waiting"


def test_auto_pause_names_the_error_that_paused_it() -> None:
    paused = make_deployment(
        status="paused", paused_reason={"type": "error", "error": {"type": "vault_archived_error"}}
    )
    verdict = waiting_for("schedule").on_deployment(paused, T0)
    assert isinstance(verdict.error, errors.DeploymentPausedError)
    assert verdict.error.error_type == "vault_archived_error"
    assert verdict.error.run_error_class is errors.VaultArchivedRunError
    assert "vault_archived_error" in str(verdict.error)
    manual = make_deployment(status="paused", paused_reason={"type": "manual"})
    manual_error = waiting_for("schedule").on_deployment(manual, T0).error
    assert isinstance(manual_error, errors.DeploymentPausedError) and manual_error.run_error_class is None


def test_scheduled_wait_sleeps_until_the_next_fire_plus_jitter() -> None:
    now = T0.add(minutes=10)
    verdict = waiting_for("schedule", poll_interval=30).on_deployment(make_deployment(now=now), now)
    assert verdict.next_look_at == pendulum.datetime(2026, 5, 1, 13, 0, 0) + SCHEDULE_JITTER + SCHEDULE_MARGIN


def test_a_fire_inside_its_jitter_window_is_still_awaited() -> None:
    fire = pendulum.datetime(2026, 5, 1, 13, 0, 0)
    deployment = make_deployment(now=fire.subtract(minutes=1))
    now = fire.add(seconds=4)
    verdict = waiting_for("schedule").on_deployment(deployment, now)
    assert verdict.next_look_at == fire + SCHEDULE_JITTER + SCHEDULE_MARGIN


def test_manual_waits_and_unscheduled_deployments_poll() -> None:
    verdict = waiting_for("manual", poll_interval=15).on_deployment(make_deployment(), T0)
    assert verdict.next_look_at == T0.add(seconds=15)
    verdict = waiting_for("schedule", poll_interval=15).on_deployment(make_deployment(schedule=None), T0)
    assert verdict.next_look_at == T0.add(seconds=15)


def test_either_trigger_type_looks_at_the_earlier_of_poll_and_fire() -> None:
    verdict = waiting_for(None, poll_interval=15).on_deployment(make_deployment(), T0.add(minutes=10))
    assert verdict.next_look_at == T0.add(minutes=10, seconds=15)


def test_a_far_fire_is_rechecked_within_the_hour() -> None:
    weekly = make_deployment(schedule=("0 20 * * 5", "America/New_York"))
    verdict = waiting_for("schedule").on_deployment(weekly, T0)
    assert verdict.next_look_at == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("now", "expected_fire"),
    [
        # Spring forward in New York: 02:30 does not exist on 2026-03-08, so the next fire is a day later.
        (pendulum.datetime(2026, 3, 8, 6, 0), pendulum.datetime(2026, 3, 9, 6, 30)),
        # Fall back: 01:30 happens twice on 2026-11-01 (05:30Z and 06:30Z); after the first, the second.
        (pendulum.datetime(2026, 11, 1, 5, 31), pendulum.datetime(2026, 11, 1, 6, 30)),
    ],
)
def test_sleep_follows_dst_in_the_schedule_timezone(now: pendulum.DateTime, expected_fire: pendulum.DateTime) -> None:
    expression = "30 2 * * *" if now.month == 3 else "30 1 * * *"
    deployment = make_deployment(schedule=(expression, "America/New_York"), now=now)
    wait = RunWait(deployment_id="depl_1", created_after=now, trigger_type="schedule")
    assert wait._next_fire(deployment, now) == expected_fire
    verdict = wait.on_deployment(deployment, now)
    expected = min(expected_fire + SCHEDULE_JITTER + SCHEDULE_MARGIN, now + timedelta(hours=1))
    assert verdict.next_look_at == expected


def test_a_specific_run_resolves_on_the_first_look() -> None:
    wait = RunWait(deployment_run_id="drun_9")
    calls: list[tuple[str, dict[str, Any]]] = []

    def call(name: str, kwargs: dict[str, Any]) -> Any:
        calls.append((name, kwargs))
        return make_run("drun_9", error="organization_disabled_error")

    verdict = look_sync(wait, call)
    assert calls == [("get_deployment_run", {"deployment_run_id": "drun_9"})]
    assert isinstance(verdict.error, errors.OrganizationDisabledRunError)


def test_a_look_is_one_list_query_then_the_deployment_only_when_needed() -> None:
    wait = waiting_for("schedule")
    answers = iter([Page[DeploymentRun](data=[], next_page=None), make_deployment(now=T0)])
    calls: list[str] = []

    def call(name: str, kwargs: dict[str, Any]) -> Any:
        calls.append(name)
        if name == "list_deployment_runs_page":
            assert kwargs["deployment_id"] == "depl_1"
            assert kwargs["trigger_type"] == "schedule"
            assert kwargs["created_at_gte"] == T0
        return next(answers)

    verdict = look_sync(wait, call)
    assert calls == ["list_deployment_runs_page", "get_deployment"]
    assert verdict.status == "waiting"

    calls.clear()
    answers = iter([Page[DeploymentRun](data=[make_run(trigger="schedule")], next_page=None)])
    assert look_sync(wait, call).status == "success"
    assert calls == ["list_deployment_runs_page"]


def test_a_recent_read_of_the_deployment_is_reused_until_it_is_a_minute_old() -> None:
    wait = waiting_for("manual")
    memo = DeploymentMemo()
    calls: list[str] = []

    def call(name: str, kwargs: dict[str, Any]) -> Any:
        calls.append(name)
        if name == "get_deployment":
            return make_deployment(now=T0, archived=calls.count("get_deployment") > 2)  # by the 3rd read
        return Page[DeploymentRun](data=[], next_page=None)

    def look_at(seconds: float) -> str:
        return look_sync(wait, call, now=lambda: T0 + timedelta(seconds=seconds), memo=memo).status

    assert look_at(0) == "waiting" and look_at(30) == "waiting"
    assert calls == ["list_deployment_runs_page", "get_deployment", "list_deployment_runs_page"]
    assert look_at(DEPLOYMENT_RECHECK.total_seconds()) == "waiting"  # read again: still active
    assert look_at(DEPLOYMENT_RECHECK.total_seconds() * 2) == "failed"  # read again: archived
    assert calls.count("get_deployment") == 3


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RunWait()
    with pytest.raises(ValueError, match="exactly one"):
        RunWait(deployment_run_id="r", deployment_id="d", created_after=T0)
    with pytest.raises(ValueError, match="trigger_type"):
        RunWait(deployment_id="d", created_after=T0, trigger_type="cron")  # type: ignore[arg-type]


def test_trigger_serialisation_round_trips_every_argument() -> None:
    wait = RunWait(
        deployment_id="depl_1",
        trigger_type="schedule",
        created_after=T0.add(microseconds=123),
        wait_through_retryable=True,
        poll_interval=7.5,
    )
    trigger = ManagedAgentsDeploymentRunTrigger(
        wait=wait.to_dict(), managed_agents_conn_id="my_conn", not_before=T0.add(minutes=5).isoformat()
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_managed_agents.triggers.deployment_runs.ManagedAgentsDeploymentRunTrigger"
    rebuilt = ManagedAgentsDeploymentRunTrigger(**kwargs)
    assert rebuilt.wait == wait
    assert rebuilt.managed_agents_conn_id == "my_conn"
    assert rebuilt.not_before == T0.add(minutes=5).isoformat()
    assert rebuilt.serialize() == (classpath, kwargs)


def test_events_are_rejudged_identically_on_the_worker() -> None:
    wait = waiting_for("schedule")
    for verdict in (
        wait.on_runs([make_run(error="skill_not_found_error", trigger="schedule")]),
        wait.on_runs([make_run(trigger="schedule")]),
        wait.on_deployment(make_deployment(status="paused", paused_reason={"type": "manual"}), T0),
    ):
        assert verdict is not None
        payload = event_payload(verdict, wait)
        rejudged = RunWait.from_dict(payload["wait"]).on_event(payload)
        assert rejudged.status == verdict.status
        assert type(rejudged.error) is type(verdict.error)
        assert (rejudged.run.id if rejudged.run else None) == (verdict.run.id if verdict.run else None)


def test_a_deferral_that_times_out_says_what_it_waited_for() -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from airflow_provider_managed_agents.sensors.deployment_runs import ManagedAgentsDeploymentRunSensor

    sensor = ManagedAgentsDeploymentRunSensor(
        task_id="wait", deployment_id="depl_1", trigger_type="schedule", deferrable=True, timeout=60
    )
    # What the task runner passes when the triggerer gave up at the deferral's timeout.
    with pytest.raises(AirflowSensorTimeout, match="Timed out waiting for the next schedule run of deployment depl_1"):
        sensor.resume_execution("__fail__", {"error": "Trigger timeout"}, {})  # type: ignore[arg-type]
