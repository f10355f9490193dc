"""The one decision shared by the sensor and the trigger: every outcome, and when to look next."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pendulum
import pytest

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import Secret, Settings
from airflow_provider_managed_agents.models.cron import fire_times_after
from airflow_provider_managed_agents.models.deployments import Deployment, DeploymentState
from airflow_provider_managed_agents.models.enums import RunErrorType
from airflow_provider_managed_agents.models.runs import DeploymentRun
from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger
from airflow_provider_managed_agents.waiting.runs import (
    DEPLOYMENT_RECHECK,
    SCHEDULE_JITTER,
    SCHEDULE_MARGIN,
    LookState,
    RunWait,
    look,
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


def state_of(**kwargs: Any) -> DeploymentState:
    return DeploymentState.of(make_deployment(**kwargs))


def judge(wait: RunWait, deployment: DeploymentState, now: pendulum.DateTime) -> Any:
    """A look that has just read the runs and the deployment at ``now``."""
    return wait.on_deployment(deployment, LookState(deployment, now, now), now)


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
    waiting = wait.on_runs([limited])
    assert waiting is not None and waiting.status == "waiting" and [r.id for r in waiting.skipped] == ["drun_1"]
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
        verdict = judge(waiting_for(trigger_type), state_of(archived=True), T0)
        assert verdict.status == "failed"
        assert isinstance(verdict.error, errors.DeploymentArchivedError)


def test_manual_pause_fails_a_scheduled_wait_but_not_a_manual_one() -> None:
    paused = state_of(status="paused", paused_reason={"type": "manual"})
    verdict = judge(waiting_for("schedule"), paused, T0)
    assert isinstance(verdict.error, errors.DeploymentPausedError)
    assert verdict.error.paused_reason_type == "manual"
    assert "paused" in str(verdict.error)
    assert judge(waiting_for("manual"), paused, T0).status == "waiting"


def test_auto_pause_names_the_error_that_paused_it() -> None:
    paused = state_of(status="paused", paused_reason={"type": "error", "error": {"type": "vault_archived_error"}})
    verdict = judge(waiting_for("schedule"), paused, T0)
    assert isinstance(verdict.error, errors.DeploymentPausedError)
    assert verdict.error.error_type == "vault_archived_error"
    assert verdict.error.run_error_class is errors.VaultArchivedRunError
    assert "vault_archived_error" in str(verdict.error)
    manual = state_of(status="paused", paused_reason={"type": "manual"})
    manual_error = judge(waiting_for("schedule"), manual, T0).error
    assert isinstance(manual_error, errors.DeploymentPausedError) and manual_error.run_error_class is None


def test_scheduled_wait_looks_just_after_the_next_fire_plus_jitter() -> None:
    now = T0.add(minutes=59, seconds=30)
    verdict = judge(waiting_for("schedule", poll_interval=30), state_of(now=now), now)
    assert verdict.next_look_at == pendulum.datetime(2026, 5, 1, 13, 0, 0) + SCHEDULE_JITTER + SCHEDULE_MARGIN


def test_a_fire_inside_its_jitter_window_is_still_awaited() -> None:
    fire = pendulum.datetime(2026, 5, 1, 13, 0, 0)
    deployment = state_of(now=fire.subtract(minutes=1))
    now = fire.add(seconds=4)
    verdict = judge(waiting_for("schedule"), deployment, now)
    assert verdict.next_look_at == fire + SCHEDULE_JITTER + SCHEDULE_MARGIN


def test_manual_waits_and_unscheduled_deployments_poll() -> None:
    verdict = judge(waiting_for("manual", poll_interval=15), state_of(), T0)
    assert verdict.next_look_at == T0.add(seconds=15)
    verdict = judge(waiting_for("schedule", poll_interval=15), state_of(schedule=None), T0)
    assert verdict.next_look_at == T0.add(seconds=15)


def test_either_trigger_type_looks_at_the_earlier_of_poll_and_fire() -> None:
    verdict = judge(waiting_for(None, poll_interval=15), state_of(), T0.add(minutes=10))
    assert verdict.next_look_at == T0.add(minutes=10, seconds=15)


def test_a_far_fire_still_rereads_the_deployment_every_minute() -> None:
    weekly = state_of(schedule=("0 20 * * 5", "America/New_York"))
    verdict = judge(waiting_for("schedule"), weekly, T0)
    assert verdict.next_look_at == T0 + DEPLOYMENT_RECHECK


def test_a_fire_just_past_the_recheck_is_one_look_not_two() -> None:
    """A per-minute schedule costs three requests per fire: the recheck folds into the runs look."""
    now = pendulum.datetime(2026, 5, 1, 12, 0, 15)
    per_minute = state_of(schedule=("* * * * *", "UTC"), now=now)
    verdict = judge(waiting_for("schedule"), per_minute, now)
    assert verdict.next_look_at == pendulum.datetime(2026, 5, 1, 12, 1, 0) + SCHEDULE_JITTER + SCHEDULE_MARGIN


@pytest.mark.parametrize(
    ("now", "expected_fire"),
    [
        # Spring forward in New York: 02:30 does not exist on 2026-03-08, so the next fire is a day later.
        (pendulum.datetime(2026, 3, 8, 6, 0), pendulum.datetime(2026, 3, 9, 6, 30)),
        # Fall back: 01:30 happens twice on 2026-11-01 (05:30Z and 06:30Z); after the first, the second.
        (pendulum.datetime(2026, 11, 1, 5, 31), pendulum.datetime(2026, 11, 1, 6, 30)),
    ],
)
def test_the_next_fire_follows_dst_in_the_schedule_timezone(
    now: pendulum.DateTime, expected_fire: pendulum.DateTime
) -> None:
    expression = "30 2 * * *" if now.month == 3 else "30 1 * * *"
    deployment = state_of(schedule=(expression, "America/New_York"), now=now)
    wait = RunWait(deployment_id="depl_1", created_after=now, trigger_type="schedule")
    assert wait.next_fire(deployment, now) == expected_fire
    assert wait.next_runs_look(deployment, now) == expected_fire + SCHEDULE_JITTER + SCHEDULE_MARGIN


# --- looks: the requests they make ---------------------------------------------------------


class Api:
    """Answers the looks' requests from a script and records them."""

    def __init__(self, runs: list[list[DeploymentRun]] | None = None, deployments: list[Deployment] | None = None):
        self.runs = runs or [[]]
        self.deployments = deployments or [make_deployment()]
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if request.url.path == "/v1/deployment_runs":
            data = self.runs.pop(0) if len(self.runs) > 1 else self.runs[0]
            return httpx.Response(200, json={"data": [r.model_dump(mode="json") for r in data], "next_page": None})
        if request.url.path.startswith("/v1/deployment_runs/"):
            return httpx.Response(
                200,
                json=make_run(request.url.path.rsplit("/", 1)[1], error="organization_disabled_error").model_dump(
                    mode="json"
                ),
            )
        deployment = self.deployments.pop(0) if len(self.deployments) > 1 else self.deployments[0]
        return httpx.Response(200, json=deployment.model_dump(mode="json"))


def hook_for(api: Api) -> ManagedAgentsHook:
    hook = ManagedAgentsHook()
    hook._settings = Settings(api_key=Secret("sk-test"), base_url="http://api.test")
    hook.__dict__["client"] = httpx.Client(transport=httpx.MockTransport(api), **hook._settings.client_options())
    return hook


def test_a_specific_run_resolves_on_the_first_look() -> None:
    api = Api()
    verdict = look(RunWait(deployment_run_id="drun_9"), hook_for(api), LookState(), T0)
    assert api.requests == ["GET /v1/deployment_runs/drun_9"]
    assert isinstance(verdict.error, errors.OrganizationDisabledRunError)


def test_a_look_is_one_list_query_then_the_deployment_only_when_needed() -> None:
    api = Api(runs=[[], [make_run(trigger="schedule")]])
    hook, state, wait = hook_for(api), LookState(), waiting_for("schedule")
    assert look(wait, hook, state, T0).status == "waiting"
    assert api.requests == ["GET /v1/deployment_runs", "GET /v1/deployments/depl_1"]
    api.requests.clear()
    assert look(wait, hook, state, T0, final=True).status == "success"
    assert api.requests == ["GET /v1/deployment_runs"]


def test_between_fires_a_look_only_rereads_the_deployment() -> None:
    """Waiting toward a far fire: the runs are not asked for again before the fire; the
    deployment is, once a minute, and a pause found so fails the wait."""
    paused = make_deployment(status="paused", paused_reason={"type": "manual"})
    api = Api(deployments=[make_deployment(), make_deployment(), paused])
    hook, state, wait = hook_for(api), LookState(), waiting_for("schedule")
    start = T0 + SCHEDULE_JITTER + SCHEDULE_MARGIN  # past the 12:00 fire's jitter window
    first = look(wait, hook, state, start)
    assert first.next_look_at == start + DEPLOYMENT_RECHECK
    second = look(wait, hook, state, start + DEPLOYMENT_RECHECK)
    assert second.status == "waiting" and second.next_look_at == start + 2 * DEPLOYMENT_RECHECK
    third = look(wait, hook, state, start + 2 * DEPLOYMENT_RECHECK)
    assert isinstance(third.error, errors.DeploymentPausedError)
    assert api.requests == [
        "GET /v1/deployment_runs",
        "GET /v1/deployments/depl_1",
        "GET /v1/deployments/depl_1",
        "GET /v1/deployments/depl_1",
    ]


def test_a_recent_read_of_the_deployment_is_reused_until_it_is_a_minute_old() -> None:
    api = Api(deployments=[make_deployment(), make_deployment(), make_deployment(archived=True)])
    hook, state, wait = hook_for(api), LookState(), waiting_for("manual", poll_interval=30)
    statuses = [look(wait, hook, state, T0 + timedelta(seconds=s)).status for s in (0, 30, 60, 120)]
    assert statuses == ["waiting", "waiting", "waiting", "failed"]
    assert api.requests.count("GET /v1/deployments/depl_1") == 3
    assert api.requests.count("GET /v1/deployment_runs") == 4


def test_a_waited_through_run_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    limited = make_run("drun_1", created_at=T0.add(seconds=1), error="session_rate_limited_error")
    api = Api(runs=[[limited]])
    hook, state = hook_for(api), LookState()
    wait = waiting_for("manual", wait_through_retryable=True, poll_interval=5)
    with caplog.at_level("INFO", logger="airflow_provider_managed_agents.waiting.runs"):
        first = look(wait, hook, state, T0.add(seconds=5))
        again = look(wait, hook, state, T0.add(seconds=10))
    assert first.status == "waiting" and [r.id for r in first.skipped] == ["drun_1"]
    assert [r.id for r in again.skipped] == ["drun_1"]
    said = [r.getMessage() for r in caplog.records if "Waiting through run" in r.getMessage()]
    assert said == ["Waiting through run drun_1: session_rate_limited_error"]


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
        wait=wait.to_dict(),
        managed_agents_conn_id="my_conn",
        deadline=T0.add(hours=1).isoformat(),
        timeout=3600,
        not_before=T0.add(minutes=5).isoformat(),
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_managed_agents.triggers.deployment_runs.ManagedAgentsDeploymentRunTrigger"
    rebuilt = ManagedAgentsDeploymentRunTrigger(**kwargs)
    assert rebuilt.wait == wait
    assert rebuilt.managed_agents_conn_id == "my_conn"
    assert rebuilt.not_before == T0.add(minutes=5).isoformat()
    assert rebuilt.serialize() == (classpath, kwargs)
