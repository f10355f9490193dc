"""Following a run's session to its end, through the real run operator, both sensors and the
session trigger, over real HTTP against the emulator. Time is the emulator's frozen clock: every
sleep of the wait moves it, so a session's whole script plays out without wall-clock waits."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from airflow.sdk.bases import sensor as base_sensor_module

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.compat import AirflowSensorTimeout, TaskDeferred
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.operators.deployments import ManagedAgentsRunDeploymentOperator
from airflow_provider_managed_agents.sensors.deployment_runs import ManagedAgentsDeploymentRunSensor
from airflow_provider_managed_agents.sensors.sessions import ManagedAgentsSessionSensor
from airflow_provider_managed_agents.waiting import clock

MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "Check the load"}]}
OUTCOME = {"type": "user.define_outcome", "description": "a verdict", "rubric": {"type": "text", "content": "r"}}


class EmulatorTime:
    """The provider's clock is the emulator's frozen one; every sleep moves both."""

    def __init__(self, emulator: Any):
        self.emulator = emulator
        emulator.freeze_clock(True)
        self.t = pendulum.parse(emulator.state()["now"])
        self.slept: list[float] = []

    def now(self) -> Any:
        return self.t

    def sleep(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.slept.append(seconds)
        self.emulator.advance_clock(seconds)
        self.t = self.t + timedelta(seconds=seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    # BaseSensorOperator's poke loop reads ``time.monotonic`` and sleeps with ``time.sleep``.
    def monotonic(self) -> float:
        return self.t.timestamp()

    def utcnow(self) -> Any:
        return self.t


class TI:
    dag_id, task_id, run_id, map_index = "d", "t", "r", -1

    def __init__(self, try_number: int = 1) -> None:
        self.try_number = try_number
        self.start_date = pendulum.now("UTC")
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


class Store:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


@pytest.fixture
def time(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> EmulatorTime:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    fake = EmulatorTime(managed_agents_emulator)
    monkeypatch.setattr(clock, "now", fake.now)
    monkeypatch.setattr(clock, "sleep", fake.sleep)
    monkeypatch.setattr(clock, "asleep", fake.asleep)
    monkeypatch.setattr(base_sensor_module, "time", fake)
    monkeypatch.setattr(base_sensor_module, "timezone", fake)
    return fake


@pytest.fixture
def hook(time: EmulatorTime) -> ManagedAgentsHook:
    return ManagedAgentsHook()


def deployment(hook: ManagedAgentsHook, emulator: Any, *, outcome: bool = False, **script: Any) -> str:
    events = [MESSAGE, OUTCOME] if outcome else [MESSAGE]
    made = hook.create_deployment(
        name="pipeline step", agent="agent_demo", environment_id="env_demo", initial_events=events
    )
    if script:
        emulator.control("POST", f"deployments/{made.id}/session_script", script)
    return made.id


def context(ti: TI, store: Store | None = None) -> Any:
    return {"ti": ti, "task_state_store": store or Store()}


def finish_deferred(task: Any, ctx: Any) -> Any:
    """Run a deferring task as Airflow does: execute; while it defers, its trigger (rebuilt from
    its serialised form) to the first event, then resume."""
    step = lambda: task.execute(ctx)  # noqa: E731
    while True:
        try:
            return step()
        except TaskDeferred as deferred:
            trigger, method, kwargs = deferred.trigger, deferred.method_name, deferred.kwargs or {}
            assert type(deferred.timeout) is timedelta  # the task runner refuses pendulum's Duration
        rebuilt = type(trigger)(**trigger.serialize()[1])
        event = asyncio.run(anext(aiter(rebuilt.run())))
        step = lambda method=method, kwargs=kwargs, event=event: task.resume_execution(  # noqa: E731
            method, {**kwargs, "event": event.payload}, ctx
        )


def run_op(deployment_id: str, **kwargs: Any) -> ManagedAgentsRunDeploymentOperator:
    kwargs.setdefault("poll_interval", 2)
    return ManagedAgentsRunDeploymentOperator(
        task_id="run", deployment_id=deployment_id, wait_for_session_end=True, **kwargs
    )


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_the_run_operator_gates_on_the_agents_finished_work(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorTime, deferrable: bool
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, outcome=True, final_text="Load is clean.", iterations=2)
    managed_agents_emulator.control("DELETE", "requests")
    ti = TI()
    op = run_op(deployment_id, deferrable=deferrable)
    run_id = finish_deferred(op, context(ti)) if deferrable else op.execute(context(ti))
    assert run_id.startswith("drun_")
    assert ti.xcom["session_status"] == "idle" and ti.xcom["stop_reason"] == "end_turn"
    assert ti.xcom["final_message"] == "Load is clean."
    assert [(o["result"], o["iteration"]) for o in ti.xcom["outcome"]] == [("satisfied", 1)]
    assert ti.xcom["usage"]["input_tokens"] == 2400 and ti.xcom["usage"]["list_cost"]["amount"].isdigit()
    assert op.session_url and ti.xcom["session_id"] in op.session_url
    counts = managed_agents_emulator.request_counts()["by_endpoint"]
    looks = counts["GET /v1/sessions/{session_id}"]
    # One request per look while it runs, the status events when it may be over, the final text.
    assert counts["GET /v1/sessions/{session_id}/events"] == 2
    assert looks <= sum(time.slept) / 2 + 2


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ({"ending": "requires_action"}, errors.SessionRequiresActionError),
        ({"ending": "retries_exhausted"}, errors.SessionRetriesExhaustedError),
        ({"ending": "budget_reached"}, errors.SessionBudgetReachedError),
        ({"ending": "refusal"}, errors.SessionRefusedError),
        ({"ending": "terminated"}, errors.SessionTerminatedError),
        ({"ending": "new_kind_of_stop"}, errors.UnknownSessionStopError),
        ({"outcome_result": "failed"}, errors.SessionOutcomeNotMetError),
    ],
)
@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_each_ending_fails_the_run_operator_with_its_class_and_publishes_the_session(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, script: dict[str, Any], expected: Any, deferrable: bool
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, outcome="outcome_result" in script, **script)
    ti = TI()
    op = run_op(deployment_id, deferrable=deferrable)
    with pytest.raises(expected) as caught:
        finish_deferred(op, context(ti)) if deferrable else op.execute(context(ti))
    assert caught.value.session_id == ti.xcom["session_id"]
    assert ti.xcom["session_status"] in ("idle", "terminated") and "usage" in ti.xcom  # published on failure too


def test_the_run_operator_times_out_at_its_own_deadline(hook: ManagedAgentsHook, managed_agents_emulator: Any) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, turn_seconds=600)
    ti = TI()
    with pytest.raises(AirflowSensorTimeout, match="Timed out after 30 s waiting for session sesn_"):
        run_op(deployment_id, timeout=30).execute(context(ti))
    assert ti.xcom["session_status"] == "running"  # what it was doing when the wait gave up


def test_a_killed_task_interrupts_the_session_it_started(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, turn_seconds=600)
    op = run_op(deployment_id)

    class Killed(BaseException):
        pass

    def killed_while_waiting(seconds: float) -> None:
        time.sleep(seconds)
        if len(time.slept) == 2:
            op.on_kill()  # what the worker does on SIGTERM
            raise Killed

    monkeypatch.setattr(clock, "sleep", killed_while_waiting)
    ti = TI()
    with pytest.raises(Killed):
        op.execute(context(ti))
    events = [e.type for e in hook.list_session_events(ti.xcom["session_id"])]
    assert "user.interrupt" in events and hook.get_session(ti.xcom["session_id"]).status == "idle"


def test_a_retry_reattaches_to_the_session_it_was_following(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, turn_seconds=20)
    store = Store()

    class WorkerDied(BaseException):
        pass

    def dies(seconds: float) -> None:
        raise WorkerDied

    monkeypatch.setattr(clock, "sleep", dies)
    first = TI(1)
    with pytest.raises(WorkerDied):
        run_op(deployment_id, on_kill_session="none").execute(context(first, store))
    monkeypatch.setattr(clock, "sleep", time.sleep)
    second = TI(2)
    assert run_op(deployment_id).execute(context(second, store)) == first.xcom["deployment_run"]["id"]
    assert second.xcom["stop_reason"] == "end_turn"
    runs = [r for r in managed_agents_emulator.state()["runs"] if r["deployment_id"] == deployment_id]
    assert len(runs) == 1 and store.values == {}


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_a_scheduled_fire_gated_to_the_end_of_its_session(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorTime, mode: str
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, final_text="Nightly review done.")
    hook.update_deployment(deployment_id, schedule={"type": "cron", "expression": "*/5 * * * *", "timezone": "UTC"})
    sensor = ManagedAgentsDeploymentRunSensor(
        task_id="gate",
        deployment_id=deployment_id,
        trigger_type="schedule",
        created_after=time.now().isoformat(),
        wait_for_session_end=True,
        poll_interval=2,
        deferrable=mode == "deferrable",
        timeout=3600,
    )
    ti = TI()
    result = finish_deferred(sensor, context(ti)) if mode == "deferrable" else sensor.execute(context(ti))
    assert result == ti.xcom["deployment_run"]["id"]
    assert ti.xcom["deployment_run"]["trigger_context"]["type"] == "schedule"
    assert ti.xcom["final_message"] == "Nightly review done." and ti.xcom["stop_reason"] == "end_turn"


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_the_session_sensor_waits_for_a_session_from_anywhere(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, mode: str
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, ending="budget_reached")
    session_id = hook.run_deployment(deployment_id).session_id
    sensor = ManagedAgentsSessionSensor(
        task_id="gate", session_id=session_id, poll_interval=2, deferrable=mode == "deferrable", timeout=600
    )
    ti = TI()
    with pytest.raises(errors.SessionBudgetReachedError):
        finish_deferred(sensor, context(ti)) if mode == "deferrable" else sensor.execute(context(ti))
    assert ti.xcom["stop_reason"] == "budget_reached"
    # A sensor waits on work it did not start: killing it does nothing remote by default.
    sensor.on_kill()
    assert "user.interrupt" not in [e.type for e in hook.list_session_events(session_id)]
