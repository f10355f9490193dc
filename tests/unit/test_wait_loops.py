"""The sensor's poke loop and the trigger's loop, driven by a fake clock: when each looks, what
each does with transient and definite errors, how each ends (success, failure, timeout), and
that both end the same way. No wall-clock time passes; sleeps move the fake clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fakes import T0, FakeClock, FakeTI, use_clock

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.compat import AirflowSensorTimeout, AirflowSkipException
from airflow_provider_managed_agents.hooks import loop_pool as loop_pool_module
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import Secret, Settings
from airflow_provider_managed_agents.models.cron import fire_times_after
from airflow_provider_managed_agents.sensors.deployment_runs import ManagedAgentsDeploymentRunSensor
from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger


class Service:
    """A scripted API on the fake clock: a deployment (optionally scheduled, paused or archived
    from some moment) and the runs it has by then; or a status to answer with."""

    def __init__(self, fake: FakeClock, *, schedule: str | None = None) -> None:
        self.fake = fake
        self.schedule = schedule
        self.paused_at: Any = None
        self.run_at: Any = None
        self.run_error: str | None = None
        self.fail_with: list[int] = []
        self.fail_from = 0.0
        self.requests: list[tuple[float, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        now = self.fake.now()
        self.requests.append(((now - T0).total_seconds(), f"{request.method} {request.url.path}"))
        if self.fail_with and (now - T0).total_seconds() >= self.fail_from:
            status = self.fail_with.pop(0)
            kind = "not_found_error" if status == 404 else "api_error"
            return httpx.Response(status, json={"type": "error", "error": {"type": kind, "message": f"{status}"}})
        if request.url.path == "/v1/deployment_runs":
            runs = [self.run()] if self.run_at is not None and now >= self.run_at else []
            return httpx.Response(200, json={"data": runs, "next_page": None})
        return httpx.Response(200, json=self.deployment(now))

    def run(self) -> dict[str, Any]:
        assert self.run_at is not None
        return {
            "id": "drun_1",
            "type": "deployment_run",
            "deployment_id": "depl_1",
            "agent": {"type": "agent", "id": "agent_1", "version": 1},
            "created_at": self.run_at.isoformat(),
            "session_id": None if self.run_error else "sesn_1",
            "error": {"type": self.run_error, "message": "no"} if self.run_error else None,
            "trigger_context": {"type": "manual"},
        }

    def deployment(self, now: Any) -> dict[str, Any]:
        paused = self.paused_at is not None and now >= self.paused_at
        data: dict[str, Any] = {
            "id": "depl_1",
            "type": "deployment",
            "name": "d",
            "agent": {"type": "agent", "id": "agent_1", "version": 1},
            "environment_id": "env_1",
            "status": "paused" if paused else "active",
            "paused_reason": {"type": "manual"} if paused else None,
            "archived_at": None,
            "created_at": T0.isoformat(),
            "updated_at": now.isoformat(),
        }
        if self.schedule:
            upcoming = [t.isoformat() for t in fire_times_after(self.schedule, "UTC", now)]
            data["schedule"] = {
                "type": "cron",
                "expression": self.schedule,
                "timezone": "UTC",
                "upcoming_runs_at": upcoming,
            }
        return data

    def at(self, seconds: float) -> Any:
        return T0 + timedelta(seconds=seconds)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return use_clock(monkeypatch, FakeClock())


def wired(service: Service, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> ManagedAgentsDeploymentRunSensor:
    """A sensor (and any trigger it defers to) talking to ``service``, with no retry sleeps."""
    settings = Settings(api_key=Secret("sk-test"), base_url="http://api.test", max_retries=0)

    async def load(self: ManagedAgentsHook) -> Settings:
        return settings

    monkeypatch.setattr(ManagedAgentsHook, "_aload_settings", load)
    monkeypatch.setattr(
        loop_pool_module,
        "new_async_client",
        lambda s: httpx.AsyncClient(transport=httpx.MockTransport(service), **s.client_options()),
    )
    kwargs.setdefault("deployment_id", "depl_1")
    kwargs.setdefault("created_after", T0.isoformat())
    sensor = ManagedAgentsDeploymentRunSensor(task_id="gate", **kwargs)
    hook = ManagedAgentsHook()
    hook._settings = settings
    hook.__dict__["client"] = httpx.Client(transport=httpx.MockTransport(service), **settings.client_options())
    sensor.__dict__["hook"] = hook
    return sensor


def run_deferred(sensor: ManagedAgentsDeploymentRunSensor, ti: FakeTI) -> Any:
    """What Airflow does with a deferrable sensor: execute, run the trigger to its event, resume."""
    from airflow_provider_managed_agents.compat import TaskDeferred

    context: Any = {"ti": ti}
    try:
        return sensor.execute(context)
    except TaskDeferred as deferred:
        trigger = deferred.trigger
        # The task runner serialises it: a plain timedelta (pendulum's Duration is refused).
        assert type(deferred.timeout) is timedelta
    assert isinstance(trigger, ManagedAgentsDeploymentRunTrigger)
    rebuilt = ManagedAgentsDeploymentRunTrigger(**trigger.serialize()[1])  # as the triggerer does

    async def first_event() -> Any:
        return await anext(aiter(rebuilt.run()))

    event = asyncio.run(first_event())
    return sensor.resume_execution("execute_complete", {"event": event.payload}, context)


def run_rescheduled(make_sensor: Any, fake: FakeClock, ti: FakeTI) -> Any:
    """What Airflow does with a rescheduling sensor: a fresh operator for every poke, each
    started after the interval the previous one asked for, the first start remembered."""
    from airflow_provider_managed_agents.compat import AirflowRescheduleException

    while True:
        sensor = make_sensor()
        try:
            return sensor.execute({"ti": ti})
        except AirflowRescheduleException:
            ti.first_reschedule = ti.first_reschedule or T0
            fake.sleep(sensor.poke_interval)


def outcome(call: Any) -> tuple[str, str]:
    try:
        return "ok", str(call())
    except (Exception, AirflowSkipException) as exc:
        return type(exc).__name__, str(exc)


# --- poke mode -------------------------------------------------------------------------------


def test_poke_mode_looks_every_poll_interval_and_times_out_at_the_deadline(
    fake: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(fake)
    sensor = wired(service, monkeypatch, trigger_type="manual", poll_interval=10, timeout=25)
    with pytest.raises(
        AirflowSensorTimeout, match=r"Timed out after 25 s waiting for the next manual run of deployment depl_1"
    ):
        sensor.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert fake.sleeps == [10, 10, 5]  # the last sleep stops at the timeout, never past it
    looks = [t for t, request in service.requests if request == "GET /v1/deployment_runs"]
    assert looks == [0, 10, 20, 25]  # a final look at the deadline


def test_poke_mode_passes_on_the_run_and_pushes_it(fake: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    service = Service(fake)
    service.run_at = service.at(15)
    sensor = wired(service, monkeypatch, trigger_type="manual", poll_interval=10, timeout=600)
    ti = FakeTI()
    assert sensor.execute({"ti": ti}) == "drun_1"  # type: ignore[arg-type]
    assert ti.xcom["session_id"] == "sesn_1" and fake.sleeps == [10, 10]


def test_a_transient_error_is_waited_through_and_a_definite_one_fails_at_once(
    fake: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(fake)
    service.fail_with = [503, 404]
    sensor = wired(service, monkeypatch, trigger_type="manual", poll_interval=10, timeout=600)
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        sensor.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert [t for t, _ in service.requests] == [0, 10]


def test_a_daily_schedule_paused_while_waiting_fails_within_a_minute(
    fake: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(fake, schedule="0 3 * * *")
    service.paused_at = service.at(4)
    sensor = wired(service, monkeypatch, trigger_type="schedule", timeout=86_400)
    with pytest.raises(errors.DeploymentPausedError):
        sensor.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert sum(fake.sleeps) <= 61
    assert service.requests == [
        (0, "GET /v1/deployment_runs"),
        (0, "GET /v1/deployments/depl_1"),
        (60, "GET /v1/deployments/depl_1"),
    ]


# --- deferrable mode ---------------------------------------------------------------------------


def test_the_trigger_makes_the_same_looks_and_the_worker_the_same_verdict(
    fake: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(fake, schedule="0 3 * * *")
    service.paused_at = service.at(4)
    sensor = wired(service, monkeypatch, trigger_type="schedule", deferrable=True, timeout=86_400)
    with pytest.raises(errors.DeploymentPausedError, match="paused"):
        run_deferred(sensor, FakeTI())
    assert service.requests == [
        (0, "GET /v1/deployment_runs"),
        (0, "GET /v1/deployments/depl_1"),
        (60, "GET /v1/deployments/depl_1"),
    ]


def test_a_deferred_wait_ends_at_its_own_deadline(fake: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """``airflow dags test`` never applies a deferral timeout: the trigger's own deadline does."""
    service = Service(fake)
    sensor = wired(service, monkeypatch, trigger_type="manual", deferrable=True, poll_interval=10, timeout=25)
    with pytest.raises(AirflowSensorTimeout, match="Timed out after 25 s waiting for the next manual run"):
        run_deferred(sensor, FakeTI())
    looks = [t for t, request in service.requests if request == "GET /v1/deployment_runs"]
    assert looks == [0, 10, 20, 25]


def test_a_deferred_wait_passes_on_the_run(fake: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    service = Service(fake)
    service.run_at = service.at(15)
    sensor = wired(service, monkeypatch, trigger_type="manual", deferrable=True, poll_interval=10, timeout=600)
    ti = FakeTI()
    assert run_deferred(sensor, ti) == "drun_1"
    assert ti.xcom["deployment_run"]["id"] == "drun_1"


def test_a_definite_api_error_in_the_trigger_reaches_the_task_as_its_own_class(
    fake: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = Service(fake)
    service.fail_with, service.fail_from = [503, 404], 5.0  # after the sensor's own look
    sensor = wired(service, monkeypatch, trigger_type="manual", deferrable=True, poll_interval=10, timeout=600)
    with pytest.raises(errors.ManagedAgentsNotFoundError, match="404"):
        run_deferred(sensor, FakeTI())
    assert [t for t, _ in service.requests] == [0, 0, 10, 20]  # the 503 was waited through


# --- every mode ends the same way ----------------------------------------------------------------


MODES = ("poke", "reschedule", "deferrable")


@pytest.mark.parametrize("flag", ["none", "soft_fail", "never_fail"])
def test_every_mode_ends_with_the_same_class_and_message(
    fake: FakeClock, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    """One table of outcomes through poke, reschedule and deferrable modes, compared."""
    cases: dict[str, Any] = {
        "success": lambda s: setattr(s, "run_at", s.at(15)),
        "run error": lambda s: (setattr(s, "run_at", s.at(15)), setattr(s, "run_error", "vault_not_found_error")),
        "retryable run error": lambda s: (
            setattr(s, "run_at", s.at(15)),
            setattr(s, "run_error", "session_rate_limited_error"),
        ),
        "paused": lambda s: setattr(s, "paused_at", s.at(4)),
        "api error": lambda s: (setattr(s, "fail_with", [404]), setattr(s, "fail_from", 12)),
        "validation error": lambda s: None,
        "timeout": lambda s: None,
    }
    table: dict[str, list[tuple[str, str]]] = {}
    for name, arrange in cases.items():
        results = []
        for mode in MODES:
            fake.t, fake.sleeps = T0, []
            service = Service(fake, schedule="0 3 * * *")
            arrange(service)
            kwargs: dict[str, Any] = {
                "trigger_type": "schedule" if name == "paused" else ("cron" if name == "validation error" else None),
                "deferrable": mode == "deferrable",
                "mode": "reschedule" if mode == "reschedule" else "poke",
                "poll_interval": 10,
                "timeout": 30,
            }
            if flag != "none":
                kwargs[flag] = True
            ti = FakeTI()
            if mode == "deferrable":
                sensor = wired(service, monkeypatch, **kwargs)
                results.append(outcome(lambda sensor=sensor, ti=ti: run_deferred(sensor, ti)))
            elif mode == "reschedule":
                make = lambda service=service, kwargs=kwargs: wired(service, monkeypatch, **kwargs)  # noqa: E731
                results.append(outcome(lambda make=make, ti=ti: run_rescheduled(make, fake, ti)))
            else:
                sensor = wired(service, monkeypatch, **kwargs)
                results.append(outcome(lambda sensor=sensor, ti=ti: sensor.execute({"ti": ti})))
        table[name] = results
    for name, results in table.items():
        assert results[0] == results[1] == results[2], (name, results)
    expected = {
        "success": "ok",
        "run error": "VaultNotFoundRunError",
        "retryable run error": "SessionRateLimitedRunError",
        "paused": "DeploymentPausedError",
        "api error": "ManagedAgentsNotFoundError",
        "validation error": "ManagedAgentsValidationError",
        "timeout": "AirflowSensorTimeout",
    }
    for name, (kind, message) in ((n, r[0]) for n, r in table.items()):
        if flag == "none" or name == "success":
            assert kind == expected[name], (name, message)
        else:
            assert kind == "AirflowSkipException" and message.startswith(f"Skipped ({flag}): "), (name, message)
