"""Answering what a session waits for, without a server: the arguments checked when the DAG is
parsed (on this Airflow: supported from 3.1, a clear error below), the request a person reads
(masked, cut), a person's answer as Airflow resumes a task with it (also the response timeout's
default), which calls a task can answer, and the answer events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_managed_agents import answering, compat
from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.models.session_events import AgentCustomToolUse, AgentMcpToolUse, AgentToolUse
from airflow_provider_managed_agents.operators.deployments import ManagedAgentsRunDeploymentOperator
from airflow_provider_managed_agents.sensors.sessions import ManagedAgentsSessionSensor
from airflow_provider_managed_agents.waiting import actions

BASH = actions.PendingCall(
    "sevt_1", "tool_use", "bash", {"command": "ls", "env": {"DB_PASSWORD": "s3cret"}}, None, "ask"
)
ISSUE = actions.PendingCall("sevt_2", "mcp_tool_use", "create_issue", {"title": "x"}, "github", "ask")
ROWS = actions.PendingCall("sevt_3", "custom_tool_use", "row_count", {"table": "orders"})
WHEN = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def run_operator(**kwargs: Any) -> ManagedAgentsRunDeploymentOperator:
    return ManagedAgentsRunDeploymentOperator(
        task_id="run", deployment_id="depl_1", wait_for_session_end=True, **kwargs
    )


# --- this Airflow: supported from 3.1, refused below when the DAG is parsed ---------------------


def test_on_this_airflow_approving_with_hitl_is_accepted_or_refused_naming_what_is_missing() -> None:
    """The matrix runs this on every cell: the line that says which Airflow versions support it."""
    mode, missing = compat.human_in_the_loop()
    if mode is None:
        with pytest.raises(errors.ManagedAgentsValidationError) as refused:
            run_operator(approve_tools_with="hitl")
        assert "approve_tools_with" in str(refused.value) and "Airflow" in str(refused.value)
        assert missing in str(refused.value)
    else:
        assert run_operator(approve_tools_with="hitl").approve_tools_with == "hitl"
        expected = (
            "awaiting_input" if hasattr(__import__("airflow.sdk").sdk.exceptions, "TaskAwaitingInput") else "trigger"
        )
        assert mode == expected
    assert run_operator(custom_tools={"row_count": "pkg.tools.row_count"}).answers_actions  # any Airflow 3


def test_below_airflow_3_1_the_option_is_refused_when_the_dag_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    why = "Airflow's human-in-the-loop needs Airflow >= 3.1 (this is Airflow 3.0.6)"
    monkeypatch.setattr(compat, "human_in_the_loop", lambda: (None, why))
    for make in (run_operator, lambda **kw: ManagedAgentsSessionSensor(task_id="s", session_id="sesn_1", **kw)):
        with pytest.raises(errors.ManagedAgentsValidationError, match=r"approve_tools_with: .*needs Airflow >= 3\.1"):
            make(approve_tools_with="hitl")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"approve_tools_with": "slack"}, "approve_tools_with: must be one of ['hitl']"),
        ({"approve_tools_with": "hitl", "approval_timeout": 0}, "approval_timeout: must be positive"),
        ({"approve_tools_with": "hitl", "approval_timeout": "1h"}, "approval_timeout: must be a timedelta or seconds"),
        ({"approval_timeout": 60}, "approval_timeout: applies only with approve_tools_with"),
        ({"approval_default": "maybe"}, "approval_default: must be one of ['deny', 'allow']"),
        ({"custom_tools": {"rows": "row_count"}}, "custom_tools['rows']: must be the dotted path"),
        ({"custom_tools": {"rows": print}}, "custom_tools['rows']: must be the dotted path"),
        ({"custom_tools": ["rows"]}, "custom_tools: must map custom tool names"),
    ],
)
def test_bad_answering_arguments_are_refused_naming_the_argument(
    kwargs: dict[str, Any], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compat, "human_in_the_loop", lambda: ("awaiting_input", ""))
    with pytest.raises(errors.ManagedAgentsValidationError) as refused:
        run_operator(**kwargs)
    assert named in str(refused.value)


def test_answering_needs_a_followed_session_and_no_reschedule_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "human_in_the_loop", lambda: ("awaiting_input", ""))
    with pytest.raises(errors.ManagedAgentsValidationError, match="needs wait_for_session_end=True"):
        ManagedAgentsRunDeploymentOperator(task_id="r", deployment_id="d", approve_tools_with="hitl")
    with pytest.raises(errors.ManagedAgentsValidationError, match="needs mode='poke' or deferrable=True"):
        ManagedAgentsSessionSensor(task_id="s", session_id="x", mode="reschedule", custom_tools={"a": "m.f"})


def test_the_defaults_fail_as_before_and_a_timeout_is_a_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "human_in_the_loop", lambda: ("awaiting_input", ""))
    assert not run_operator().answers_actions
    timed = run_operator(approve_tools_with="hitl", approval_timeout=90, approval_default="allow")
    assert timed.approval_timeout == timedelta(seconds=90) and timed.approval_default == "allow"


# --- which calls a task answers -----------------------------------------------------------------


def test_a_task_answers_all_the_calls_or_none() -> None:
    everything = actions.sort_out([BASH, ISSUE, ROWS], {"row_count": "m.f"}, ask_a_person=True)
    assert everything.custom == [ROWS] and everything.confirm == [BASH, ISSUE] and everything.cannot is None
    no_callable = actions.sort_out([BASH, ROWS], {}, ask_a_person=True)
    assert no_callable.cannot == "custom tool 'row_count' has no callable in custom_tools" and not no_callable.confirm
    nobody = actions.sort_out([ROWS, ISSUE], {"row_count": "m.f"}, ask_a_person=False)
    assert nobody.cannot == "tool 'github/create_issue' waits for a confirmation and approve_tools_with is not set"
    self_hosted = actions.PendingCall("sevt_4", "tool_use", "bash", {}, None, "allow")
    assert "waits for a result this task cannot give" in str(actions.sort_out([self_hosted], {}, True).cannot)


def test_pending_calls_read_every_kind_of_event() -> None:
    stamp = "2026-05-01T00:00:00Z"
    read = [
        actions.PendingCall.of(AgentToolUse(id="a", name="bash", input={"c": 1}, evaluated_permission="ask")),
        actions.PendingCall.of(AgentMcpToolUse(id="b", name="create_issue", mcp_server_name="github", input={})),
        actions.PendingCall.of(AgentCustomToolUse(id="c", name="row_count", input={"t": "x"}, processed_at=stamp)),
    ]
    assert [(c.kind, c.tool, c.awaits_confirmation) for c in read] == [
        ("tool_use", "bash", True),
        ("mcp_tool_use", "github/create_issue", True),
        ("custom_tool_use", "row_count", False),
    ]


# --- what a person reads ------------------------------------------------------------------------


def test_the_request_names_the_agent_the_session_and_each_call_masked_and_cut() -> None:
    agent = {"id": "agent_1", "name": "Cleaner", "version": 3}
    big = actions.PendingCall("sevt_9", "tool_use", "write", {"a_token": "abc", "text": "x" * 5_000}, None, "ask")
    subject, body = actions.request_text(agent, "sesn_1", "https://console/s/sesn_1", [BASH, ISSUE, big], "Deny")
    assert subject == "Cleaner asks to use tools in session sesn_1"
    assert "**Agent:** Cleaner (`agent_1`, version 3)" in body and "[sesn_1](https://console/s/sesn_1)" in body
    assert "3 tool calls" in body and "the default applies: **Deny**" in body
    assert "1. `bash` (built-in tool)" in body and "2. `create_issue` (MCP server `github`)" in body
    assert "s3cret" not in body and '"DB_PASSWORD": "***"' in body and '"a_token": "***"' in body
    assert "more characters)" in body and len(body) < 6_000
    assert "later round are in the task's log and its XCom `pending_actions`" in body


def test_many_calls_are_listed_up_to_a_bound() -> None:
    calls = [actions.PendingCall(f"sevt_{i}", "tool_use", f"t{i}", {}, None, "ask") for i in range(25)]
    _, body = actions.request_text({"id": "a"}, "s", None, calls, "Deny")
    assert "20. `t19`" in body and "`t20`" not in body and "… and 5 more" in body


def test_a_summary_is_one_masked_line_cut_short() -> None:
    assert actions.summarize({"b": 1, "apiKey": "k", "nested": [{"secret": 1}]}) == (
        '{"apiKey": "***", "b": 1, "nested": [{"secret": "***"}]}'
    )
    assert actions.summarize({"x": "y" * 1_000}).endswith("more characters)")


# --- a person's answer --------------------------------------------------------------------------


def test_an_answer_as_airflow_resumes_a_task_with_it() -> None:
    event = {
        "chosen_options": ["Deny"],
        "params_input": {"deny_message": "  use staging  "},
        "responded_at": WHEN,
        "responded_by_user": {"id": "alice", "name": "Alice"},
        "timedout": False,
    }
    decision = actions.decision_of(event, "Deny")
    assert decision == actions.Decision("deny", "use staging", "Alice (alice)", WHEN.isoformat(), False)
    allowed = actions.decision_of({**event, "chosen_options": ["Allow"]}, "Deny")
    assert allowed.result == "allow" and allowed.deny_message is None  # a message only goes with deny


def test_the_response_timeouts_default_is_an_answer_by_nobody() -> None:
    # Airflow 3.3's scheduler sweep and 3.1/3.2's HITLTrigger both resume so.
    event = {"chosen_options": ["Deny"], "params_input": {"deny_message": ""}, "responded_at": WHEN}
    decision = actions.decision_of({**event, "responded_by_user": None, "timedout": True}, "Deny")
    assert decision.result == "deny" and decision.timed_out and decision.deny_message is None
    assert decision.by == "nobody: the response timeout applied the default (deny)"


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({"chosen_options": ["Maybe"]}, "exactly one of ['Allow', 'Deny']"),  # 3.1/3.2 do not check options
        ({"chosen_options": ["Allow", "Deny"]}, "exactly one of"),
        ({"chosen_options": ["Deny"], "params_input": {"deny_message": 3}}, "deny_message must be text"),
        ({"error": "The timeout has passed", "error_type": "timeout"}, "ended without an answer (timeout)"),
    ],
)
def test_an_unusable_answer_is_refused_naming_what_is_wrong(event: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        actions.decision_of(event, "Deny")


def test_the_answer_events() -> None:
    decision = actions.Decision("deny", "no", "alice", WHEN.isoformat())
    sent = actions.confirmations([BASH, ISSUE], decision)
    assert [c.model_dump(exclude_none=True) for c in sent] == [
        {"type": "user.tool_confirmation", "tool_use_id": i, "result": "deny", "deny_message": "no"}
        for i in ("sevt_1", "sevt_2")
    ]
    assert actions.tool_result(ROWS, {"rows": 3}).model_dump(exclude_none=True) == {
        "type": "user.custom_tool_result",
        "custom_tool_use_id": "sevt_3",
        "content": [{"type": "text", "text": '{"rows": 3}'}],
        "is_error": False,
    }
    failed = actions.tool_result(ROWS, error=LookupError("no table"))
    assert failed.is_error and failed.content[0].text == "LookupError: no table"


def test_a_callable_is_imported_by_its_dotted_path() -> None:
    assert answering.import_callable("json.dumps")({"a": 1}) == '{"a": 1}'
    with pytest.raises(TypeError, match="not callable"):
        answering.import_callable("string.ascii_letters")
