"""Sessions that wait for answers, in the emulator over real HTTP: tool calls held for a
confirmation and custom tools, in one or several rounds; what is pending, the refusals of answers
to anything else (the official SDK reads them as its own 400 error), partial answers, the ending
a denial leads to, an interrupt while waiting; every session and event, and every answer the
emulator records, validated strictly with the SDK's models."""

from __future__ import annotations

from typing import Any

import pendulum
import pytest
from test_emulator_sessions import MESSAGE, OUTCOME, assert_sdk_accepts, play, raw, started  # type: ignore[import-not-found]

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.waiting.sessions import SessionWait, final_message, look

BASH = {"tool": "bash", "input": {"command": "rm -rf /data/tmp"}}
ISSUE = {"tool": "create_issue", "mcp_server": "github", "input": {"title": "Stale tables"}}
ROWS = {"custom_tool": "row_count", "input": {"table": "orders"}}


def waiting_on(hook: ManagedAgentsHook, session_id: str) -> list[str]:
    """The event ids the session's turn ended waiting on (the verdict's own error says them)."""
    verdict = look(SessionWait(session_id), hook, pendulum.now("UTC"))
    assert isinstance(verdict.error, errors.SessionRequiresActionError), verdict.reason
    return verdict.error.event_ids


def confirm(event_id: str, result: str = "allow", **extra: Any) -> dict[str, Any]:
    return {"type": "user.tool_confirmation", "tool_use_id": event_id, "result": result, **extra}


def custom_result(event_id: str, text: str) -> dict[str, Any]:
    return {
        "type": "user.custom_tool_result",
        "custom_tool_use_id": event_id,
        "content": [{"type": "text", "text": text}],
    }


def sdk_client(emulator: Any) -> Any:
    anthropic = pytest.importorskip("anthropic")
    httpx2 = pytest.importorskip("httpx2")
    return anthropic.Anthropic(
        api_key=emulator.api_key, base_url=emulator.base_url, http_client=httpx2.Client(), max_retries=0
    )


def test_every_round_and_answer_validates_strictly_with_the_sdk(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = started(hook, emulator, actions=[[BASH, ISSUE, ROWS], [BASH]], outcome=True)
    play(emulator)
    first = waiting_on(hook, session_id)
    calls, answers = hook.find_action_events(session_id, first)
    assert [(calls[i].type, calls[i].name) for i in first] == [
        ("agent.tool_use", "bash"),
        ("agent.mcp_tool_use", "create_issue"),
        ("agent.custom_tool_use", "row_count"),
    ]
    assert calls[first[1]].mcp_server_name == "github" and calls[first[0]].evaluated_permission == "ask"  # type: ignore[union-attr]
    assert calls[first[0]].input == {"command": "rm -rf /data/tmp"} and answers == {}
    sent = sdk_client(emulator).beta.sessions.events.send(
        session_id,
        events=[confirm(first[0]), confirm(first[1], "deny", deny_message="not now"), custom_result(first[2], "42")],
    )
    assert [e.type for e in sent.data] == ["user.tool_confirmation"] * 2 + ["user.custom_tool_result"]
    play(emulator)
    second = waiting_on(hook, session_id)
    hook.answer_actions(session_id, [confirm(second[0])])
    play(emulator)
    assert assert_sdk_accepts(emulator, session_id) > 20
    kinds = [e.type for e in hook.list_session_events(session_id)]
    assert kinds.count("agent.tool_result") == 2 and "agent.mcp_tool_result" not in kinds  # the denied call never ran
    _, answers = hook.find_action_events(session_id, first)
    assert answers[first[1]].deny_message == "not now"  # type: ignore[union-attr]


def test_answers_to_anything_not_pending_are_refused_as_the_sdk_reads_a_400(
    hook: ManagedAgentsHook, emulator: Any
) -> None:
    anthropic = pytest.importorskip("anthropic")
    session_id = started(hook, emulator, actions=[[BASH, ROWS]])
    client = sdk_client(emulator)
    with pytest.raises(anthropic.BadRequestError) as early:  # nothing pending while it has not asked yet
        client.beta.sessions.events.send(session_id, events=[confirm("sevt_000000000001")])
    assert early.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    play(emulator)
    bash, rows = waiting_on(hook, session_id)
    refusals = [
        ([confirm("sevt_unknown")], "tool_use_id 'sevt_unknown'"),
        ([confirm(rows)], f"tool_use_id {rows!r}"),  # a custom tool takes a result, not a confirmation
        ([custom_result(bash, "x")], f"custom_tool_use_id {bash!r}"),
        ([confirm(bash), confirm(bash, "deny")], f"tool_use_id {bash!r}"),  # twice in one send
        ([confirm(bash, "allow", deny_message="why")], "deny_message is only allowed when result is deny"),
    ]
    for events, named in refusals:
        with pytest.raises(anthropic.BadRequestError) as refused:
            client.beta.sessions.events.send(session_id, events=events)
        assert named in refused.value.message, refused.value.message
    assert waiting_on(hook, session_id) == [bash, rows]  # a refused send records nothing
    hook.answer_actions(session_id, [confirm(bash)])
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="not waiting"):
        hook.answer_actions(session_id, [confirm(bash)])  # answered already


def test_a_partial_answer_reemits_the_rest_and_the_last_one_resumes_the_session(
    hook: ManagedAgentsHook, emulator: Any
) -> None:
    session_id = started(hook, emulator, actions=[[BASH, ROWS]], final_text="Cleaned up.")
    play(emulator)
    bash, rows = waiting_on(hook, session_id)
    hook.answer_actions(session_id, [custom_result(rows, "1200 rows")])
    assert waiting_on(hook, session_id) == [bash]  # the session says again what it still waits for
    hook.answer_actions(session_id, [confirm(bash)])
    assert hook.get_session(session_id).status == "running"  # at once
    assert look(SessionWait(session_id), hook, pendulum.now("UTC")).status == "waiting"
    play(emulator)
    assert look(SessionWait(session_id), hook, pendulum.now("UTC")).status == "success"
    assert final_message(hook, session_id) == "Cleaned up."


@pytest.mark.parametrize("decision", ["allow", "deny"])
def test_the_ending_follows_from_the_answers(hook: ManagedAgentsHook, emulator: Any, decision: str) -> None:
    denied = {"final_text": "I left the data as it was.", "outcome_result": "failed"}
    session_id = started(hook, emulator, outcome=True, actions=[[BASH]], when_denied=denied, final_text="Removed.")
    play(emulator)
    (bash,) = waiting_on(hook, session_id)
    hook.answer_actions(session_id, [confirm(bash, decision)])
    play(emulator)
    verdict = look(SessionWait(session_id), hook, pendulum.now("UTC"))
    if decision == "allow":
        assert verdict.status == "success" and final_message(hook, session_id) == "Removed."
    else:
        assert isinstance(verdict.error, errors.SessionOutcomeNotMetError) and verdict.error.result == "failed"
        assert final_message(hook, session_id) == "I left the data as it was."


def test_without_when_denied_the_final_message_says_what_was_denied_and_why(
    hook: ManagedAgentsHook, emulator: Any
) -> None:
    session_id = started(hook, emulator, actions=[[BASH]])
    play(emulator)
    (bash,) = waiting_on(hook, session_id)
    hook.answer_actions(session_id, [confirm(bash, "deny", deny_message="use the staging copy")])
    play(emulator)
    assert final_message(hook, session_id) == "Stopped: not allowed to run bash (use the staging copy)."


def test_the_plain_requires_action_ending_resumes_once_answered(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = started(hook, emulator, ending="requires_action")
    play(emulator)
    (pending,) = waiting_on(hook, session_id)
    hook.answer_actions(session_id, [confirm(pending)])
    play(emulator)
    assert look(SessionWait(session_id), hook, pendulum.now("UTC")).status == "success"


def test_an_interrupt_while_waiting_ends_the_turn_and_nothing_is_pending(
    hook: ManagedAgentsHook, emulator: Any
) -> None:
    session_id = started(hook, emulator, actions=[[BASH]])
    play(emulator)
    (bash,) = waiting_on(hook, session_id)
    hook.interrupt_session(session_id)
    verdict = look(SessionWait(session_id), hook, pendulum.now("UTC"))
    assert isinstance(verdict.error, errors.SessionInterruptedError), verdict.reason
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="not waiting"):
        hook.answer_actions(session_id, [confirm(bash)])
    assert_sdk_accepts(emulator, session_id)


@pytest.mark.parametrize(
    ("script", "named"),
    [
        ({"actions": [[]]}, "non-empty list of calls"),
        ({"actions": [[{"tool": "a", "custom_tool": "b"}]]}, "exactly one of 'tool' or 'custom_tool'"),
        ({"actions": [[{"tool": "a", "inputs": {}}]]}, "unknown fields ['inputs']"),
        ({"actions": [[{"custom_tool": "a", "mcp_server": "m"}]]}, "a custom tool has no mcp_server"),
        ({"actions": [[BASH]], "when_denied": {"text": "x"}}, "when_denied takes only"),
    ],
)
def test_a_malformed_actions_script_is_refused_naming_the_field(
    emulator: Any, script: dict[str, Any], named: str
) -> None:
    response = raw(emulator, "POST", "/_emulator/sessions/next_script", json=script)
    assert response.status_code == 400 and named in response.text, response.text


def test_the_event_list_filters_by_the_action_types(hook: ManagedAgentsHook, emulator: Any) -> None:
    deployment = hook.create_deployment(
        name="s", agent="agent_demo", environment_id="env_demo", initial_events=[MESSAGE, OUTCOME]
    )
    emulator.control("POST", f"deployments/{deployment.id}/session_script", {"actions": [[ROWS]]})
    session_id = hook.run_deployment(deployment.id).session_id
    assert session_id is not None
    play(emulator)
    page = hook.list_session_events_page(session_id, types=["agent.custom_tool_use"], order="desc", limit=5)
    assert [e.type for e in page.data] == ["agent.custom_tool_use"]
