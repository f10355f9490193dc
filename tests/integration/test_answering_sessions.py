"""Answering what a session waits for, through the real run operator and session sensor over real
HTTP against the emulator, on its frozen clock (every sleep of a wait moves it): custom tools
answered by stdlib callables in the worker and deferred; a person asked through Airflow's
human-in-the-loop (its one call into Airflow, ``upsert_hitl_detail``, recorded) and the task
resumed with the response timeout's default as Airflow resumes it; an answer lost on the way
not sent twice; what a task cannot answer failing as before with nothing sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pendulum
import pytest
from fakes import EmulatorClock, FakeTI, context, finish_deferred

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.compat import TaskDeferred, human_in_the_loop
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.operators.deployments import ManagedAgentsRunDeploymentOperator
from airflow_provider_managed_agents.sensors.sessions import ManagedAgentsSessionSensor

MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "Tidy the tables"}]}
BASH = {"tool": "bash", "input": {"command": "rm -rf /data/tmp"}}
# Standard-library callables stand in for a user's: any importable dotted path does.
CAPWORDS = {"custom_tool": "title", "input": {"s": "orders table"}}
BAD_JSON = {"custom_tool": "parse", "input": {"s": "{not json"}}
TOOLS = {"title": "string.capwords", "parse": "json.loads"}
SENDS = "POST /v1/sessions/{session_id}/events"
HITL = pytest.mark.skipif(human_in_the_loop()[0] is None, reason="Airflow's human-in-the-loop needs Airflow >= 3.1")


@pytest.fixture
def hook(time: EmulatorClock) -> ManagedAgentsHook:
    return ManagedAgentsHook()


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every request written to Airflow's human-in-the-loop (the task's call into Airflow)."""
    requests: list[dict[str, Any]] = []
    if human_in_the_loop()[0] is not None:
        from airflow.sdk.execution_time import hitl

        monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **request: requests.append(request))
    return requests


def TI() -> FakeTI:
    return FakeTI(1, dag_id="d", task_id="t", run_id="r", start_date=pendulum.now("UTC"))


def deployment(hook: ManagedAgentsHook, emulator: Any, **script: Any) -> str:
    made = hook.create_deployment(name="asks", agent="agent_demo", environment_id="env_demo", initial_events=[MESSAGE])
    emulator.control("POST", f"deployments/{made.id}/session_script", {"turn_seconds": 2, **script})
    return made.id


def run_op(deployment_id: str, **kwargs: Any) -> ManagedAgentsRunDeploymentOperator:
    kwargs.setdefault("poll_interval", 1)
    return ManagedAgentsRunDeploymentOperator(
        task_id="t", deployment_id=deployment_id, wait_for_session_end=True, **kwargs
    )


def events(emulator: Any, kind: str) -> list[dict[str, Any]]:
    (session,) = emulator.state()["sessions"]
    return [e for e in session["events"] if e["type"] == kind]


def parked(task: Any, ctx: Any) -> tuple[str, dict[str, Any]]:
    """Run ``task`` until it waits for a person: how (Airflow 3.3 parks it, 3.1/3.2 defer it to
    HITLTrigger), and what it resumes with besides the answer."""
    try:
        task.execute(ctx)
    except TaskDeferred as deferred:
        assert type(deferred.trigger).__name__ == "HITLTrigger", deferred.trigger
        return deferred.method_name, dict(deferred.kwargs or {})
    except BaseException as exc:
        if type(exc).__name__ != "TaskAwaitingInput":
            raise
        return exc.method_name, dict(exc.kwargs or {})  # type: ignore[attr-defined]
    raise AssertionError("the task never asked a person")


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferred"])
def test_custom_tools_answer_in_every_mode_and_an_exception_is_an_error_result(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, deferrable: bool
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, actions=[[CAPWORDS], [BAD_JSON]], final_text="Done.")
    ti = TI()
    op = run_op(deployment_id, deferrable=deferrable, custom_tools=TOOLS)
    run_id = finish_deferred(op, context(ti)) if deferrable else op.execute(context(ti))
    assert run_id.startswith("drun_") and ti.xcom["final_message"] == "Done."
    results = events(managed_agents_emulator, "user.custom_tool_result")
    assert results[0]["content"] == [{"type": "text", "text": "Orders Table"}] and results[0]["is_error"] is False
    assert results[1]["content"][0]["text"].startswith("JSONDecodeError: ") and results[1]["is_error"] is True
    assert [(a["round"], a["tool"], a["decision"], a["by"]) for a in ti.xcom["actions"]] == [
        (1, "title", "result", "string.capwords"),
        (2, "parse", "error", "json.loads"),
    ]


@HITL
def test_a_person_is_asked_and_the_response_timeouts_default_resumes_the_task(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, asked: list[dict[str, Any]]
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, actions=[[BASH, CAPWORDS]])
    ti, op = TI(), run_op(deployment_id, approve_tools_with="hitl", custom_tools=TOOLS, approval_timeout=600)
    method, state = parked(op, context(ti))
    (request,) = asked
    assert request["ti_id"] == ti.id and request["options"] == ["Allow", "Deny"] and request["defaults"] == ["Deny"]
    assert request["multiple"] is False and set(request["params"]) == {"deny_message"}
    assert "`bash` (built-in tool)" in request["body"] and "title" not in request["body"]  # Python answered it
    assert ti.xcom["pending_actions"]["calls"][0]["tool"] == "bash" and ti.xcom["pending_actions"]["round"] == 1
    assert [e["content"][0]["text"] for e in events(managed_agents_emulator, "user.custom_tool_result")] == [
        "Orders Table"
    ]
    # Nobody answered: Airflow resumes the task with the request's default (3.3's scheduler sweep,
    # 3.1/3.2's HITLTrigger), as this payload.
    timed_out = {
        "chosen_options": ["Deny"],
        "params_input": {"deny_message": ""},
        "responded_at": datetime.now(UTC),
        "responded_by_user": None,
        "timedout": True,
    }
    run_id = op.resume_execution(method, {**state, "event": timed_out}, context(ti))
    assert run_id.startswith("drun_")
    (confirmation,) = events(managed_agents_emulator, "user.tool_confirmation")
    assert confirmation["result"] == "deny" and "deny_message" not in confirmation
    assert ti.xcom["final_message"] == "Stopped: not allowed to run bash." and ti.xcom["pending_actions"] is None
    decided = ti.xcom["actions"][-1]
    assert decided["decision"] == "deny" and decided["timed_out"] is True and decided["by"].startswith("nobody")


@HITL
def test_the_sensor_resumes_sensing_after_the_answer(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, asked: list[dict[str, Any]]
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, actions=[[BASH]], final_text="Cleaned.")
    session_id = hook.run_deployment(deployment_id).session_id
    ti = TI()
    sensor = ManagedAgentsSessionSensor(
        task_id="t", session_id=str(session_id), poll_interval=1, timeout=600, approve_tools_with="hitl"
    )
    method, state = parked(sensor, context(ti))
    allowed = {
        "chosen_options": ["Allow"],
        "params_input": {},
        "responded_at": datetime.now(UTC),
        "responded_by_user": {"id": "alice", "name": "Alice"},
    }
    assert sensor.resume_execution(method, {**state, "event": allowed}, context(ti)) == session_id
    assert ti.xcom["final_message"] == "Cleaned." and ti.xcom["actions"][0]["by"] == "Alice (alice)"


def test_an_answer_lost_on_the_way_is_not_sent_twice(hook: ManagedAgentsHook, managed_agents_emulator: Any) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, actions=[[CAPWORDS]], final_text="Done.")
    managed_agents_emulator.inject_faults(rate=1.0, kinds=["commit_then_drop"], endpoints=[SENDS], count=1)
    ti = TI()
    assert run_op(deployment_id, custom_tools=TOOLS).execute(context(ti)).startswith("drun_")
    assert len(events(managed_agents_emulator, "user.custom_tool_result")) == 1  # recorded once, read back
    assert managed_agents_emulator.request_counts()["by_endpoint"][SENDS] == 1


def test_a_session_that_has_its_answers_is_followed_without_sending(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, time: EmulatorClock
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, actions=[[CAPWORDS]], final_text="Done.")
    session_id = str(hook.run_deployment(deployment_id).session_id)
    time.sleep(5)
    (pending,) = [e["id"] for e in events(managed_agents_emulator, "agent.custom_tool_use")]
    # Answered by someone else before this task looks (the frozen clock keeps it idle until then).
    result = {"type": "user.custom_tool_result", "custom_tool_use_id": pending, "content": []}
    hook.answer_actions(session_id, [result])
    managed_agents_emulator.control("DELETE", "requests")
    ti = TI()
    sensor = ManagedAgentsSessionSensor(task_id="t", session_id=session_id, poll_interval=1, custom_tools=TOOLS)
    assert sensor.execute(context(ti)) == session_id
    assert SENDS not in managed_agents_emulator.request_counts()["by_endpoint"]


def test_what_a_task_cannot_answer_fails_as_before_and_nothing_is_sent(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, actions=[[CAPWORDS, BASH]])
    ti = TI()
    with pytest.raises(errors.SessionRequiresActionError) as failed:
        run_op(deployment_id, custom_tools=TOOLS).execute(context(ti))
    assert "tool 'bash' waits for a confirmation and approve_tools_with is not set" in str(failed.value)
    assert len(failed.value.event_ids) == 2 and ti.xcom["stop_reason"] == "requires_action"
    assert SENDS not in managed_agents_emulator.request_counts()["by_endpoint"]
    assert "actions" not in ti.xcom


def test_without_the_arguments_a_session_that_asks_fails_the_task_as_before(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = deployment(hook, managed_agents_emulator, actions=[[CAPWORDS]])
    with pytest.raises(errors.SessionRequiresActionError, match="is waiting for an action") as failed:
        run_op(deployment_id).execute(context(TI()))
    assert "cannot answer" not in str(failed.value)
