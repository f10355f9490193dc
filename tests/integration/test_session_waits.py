"""Following a run's session to its end, through the real run operator, both sensors and the
session trigger, over real HTTP against the emulator. Time is the emulator's frozen clock: every
sleep of the wait moves it, so a session's whole script plays out without wall-clock waits."""

from __future__ import annotations

import asyncio
from typing import Any

import pendulum
import pytest
from fakes import EmulatorClock, FakeTI, TaskStateStore, context, finish_deferred

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowTaskTimeout,
    TaskDeferred,
)
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.operators.deployments import ManagedAgentsRunDeploymentOperator
from airflow_provider_managed_agents.sensors.deployment_runs import ManagedAgentsDeploymentRunSensor
from airflow_provider_managed_agents.sensors.sessions import ManagedAgentsSessionSensor
from airflow_provider_managed_agents.waiting import clock

MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "Check the load"}]}
OUTCOME = {"type": "user.define_outcome", "description": "a verdict", "rubric": {"type": "text", "content": "r"}}


def TI(try_number: int = 1) -> FakeTI:
    return FakeTI(try_number, dag_id="d", task_id="t", run_id="r", start_date=pendulum.now("UTC"))


@pytest.fixture
def hook(time: EmulatorClock) -> ManagedAgentsHook:
    return ManagedAgentsHook()


def deployment(hook: ManagedAgentsHook, emulator: Any, *, outcome: bool = False, **script: Any) -> str:
    events = [MESSAGE, OUTCOME] if outcome else [MESSAGE]
    made = hook.create_deployment(
        name="pipeline step", agent="agent_demo", environment_id="env_demo", initial_events=events
    )
    if script:
        emulator.control("POST", f"deployments/{made.id}/session_script", script)
    return made.id


def run_op(deployment_id: str, **kwargs: Any) -> ManagedAgentsRunDeploymentOperator:
    kwargs.setdefault("poll_interval", 2)
    return ManagedAgentsRunDeploymentOperator(
        task_id="run", deployment_id=deployment_id, wait_for_session_end=True, **kwargs
    )


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_the_run_operator_gates_on_the_agents_finished_work(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock, deferrable: bool
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
    assert ti.xcom["session_url"].endswith(f"/sessions/{ti.xcom['session_id']}")
    counts = managed_agents_emulator.request_counts()["by_endpoint"]
    looks = counts["GET /v1/sessions/{session_id}"]
    # One request per look while it runs, the status events when it may be over, the final text.
    assert counts["GET /v1/sessions/{session_id}/events"] == 2
    assert looks <= sum(time.sleeps) / 2 + 2


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


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_the_run_operator_gives_up_at_its_own_deadline_and_interrupts_its_session(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock, deferrable: bool
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, turn_seconds=600)
    ti, store = TI(), TaskStateStore()
    op = run_op(deployment_id, timeout=30, deferrable=deferrable)
    with pytest.raises(AirflowSensorTimeout, match="Timed out after 30 s waiting for session sesn_"):
        finish_deferred(op, context(ti, store))
    assert ti.xcom["session_status"] == "running"  # what it was doing when the wait gave up
    events = [e.type for e in hook.list_session_events(ti.xcom["session_id"])]
    assert "user.interrupt" in events and hook.get_session(ti.xcom["session_id"]).status == "idle"
    assert store.values == {}  # stopped: a retry starts a new run rather than adopt a stopped one


def test_a_task_that_leaves_its_session_running_on_timeout_lets_a_retry_reattach(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, turn_seconds=60)
    store = TaskStateStore()
    first = TI(1)
    with pytest.raises(AirflowSensorTimeout):
        run_op(deployment_id, timeout=20, on_kill_session="none").execute(context(first, store))
    assert "user.interrupt" not in [e.type for e in hook.list_session_events(first.xcom["session_id"])]
    second = TI(2)
    assert run_op(deployment_id, timeout=600).execute(context(second, store)) == first.xcom["deployment_run"]["id"]
    assert second.xcom["stop_reason"] == "end_turn"


def test_out_of_execution_timeout_on_the_worker_the_task_interrupts_its_session(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What Airflow's task runner does at execution_timeout: AirflowTaskTimeout unwinds the
    follow (raised in its sleep by the alarm), then the runner calls on_kill."""
    deployment_id = deployment(hook, managed_agents_emulator, turn_seconds=600)
    op = run_op(deployment_id)

    def alarm_while_waiting(seconds: float) -> None:
        time.sleep(seconds)
        if len(time.sleeps) == 3:
            raise AirflowTaskTimeout()

    monkeypatch.setattr(clock, "sleep", alarm_while_waiting)
    ti, store = TI(), TaskStateStore()
    with pytest.raises(AirflowTaskTimeout):
        try:
            op.execute(context(ti, store))
        except AirflowTaskTimeout:
            op.on_kill()  # as the task runner does
            raise
    events = [e.type for e in hook.list_session_events(ti.xcom["session_id"])]
    assert "user.interrupt" in events and hook.get_session(ti.xcom["session_id"]).status == "idle"
    assert store.values == {}


@pytest.mark.parametrize("task", ["run operator", "run sensor", "session sensor"])
def test_a_session_that_vanishes_while_deferred_fails_the_task_with_the_apis_typed_error(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock, task: str
) -> None:
    """A deleted session or a revoked key while the trigger waits: the task fails with the
    API's own class (no retry can fix a 404), never a KeyError of a half-read event."""
    deployment_id = deployment(hook, managed_agents_emulator, turn_seconds=600)
    waiting: Any
    if task == "run operator":
        waiting = run_op(deployment_id, deferrable=True)
    else:
        run = hook.run_deployment(deployment_id)
        assert run.session_id is not None
        time.sleep(5)  # running now
        if task == "run sensor":
            waiting = ManagedAgentsDeploymentRunSensor(
                task_id="gate", deployment_run_id=run.id, wait_for_session_end=True, deferrable=True, timeout=600
            )
        else:
            waiting = ManagedAgentsSessionSensor(
                task_id="gate", session_id=run.session_id, deferrable=True, timeout=600
            )
    ctx = context(TI())
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute(ctx)
    managed_agents_emulator.reset()
    trigger = deferred.value.trigger
    event = asyncio.run(anext(aiter(type(trigger)(**trigger.serialize()[1]).run())))
    with pytest.raises(errors.ManagedAgentsNotFoundError, match="404 not_found_error") as caught:
        waiting.resume_execution(deferred.value.method_name, {"event": event.payload}, ctx)
    assert isinstance(caught.value, AirflowFailException)


def test_a_killed_task_interrupts_the_session_it_started(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, turn_seconds=600)
    op = run_op(deployment_id)

    class Killed(BaseException):
        pass

    def killed_while_waiting(seconds: float) -> None:
        time.sleep(seconds)
        if len(time.sleeps) == 2:
            op.on_kill()  # what the worker does on SIGTERM
            raise Killed

    monkeypatch.setattr(clock, "sleep", killed_while_waiting)
    ti = TI()
    with pytest.raises(Killed):
        op.execute(context(ti))
    events = [e.type for e in hook.list_session_events(ti.xcom["session_id"])]
    assert "user.interrupt" in events and hook.get_session(ti.xcom["session_id"]).status == "idle"


def test_a_retry_reattaches_to_the_session_it_was_following(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, turn_seconds=20)
    store = TaskStateStore()

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
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock, mode: str
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
