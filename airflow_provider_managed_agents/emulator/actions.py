"""Sessions that wait for answers: tool calls held for a confirmation, custom tools' results.

A session script's ``actions`` is a list of rounds, each a list of calls the agent makes in that
round::

    {"actions": [
        [{"tool": "bash", "input": {"command": "rm -rf /tmp/old"}},
         {"tool": "create_issue", "mcp_server": "github", "input": {"title": "..."}}],
        [{"custom_tool": "row_count", "input": {"table": "orders"}}],
    ],
     "when_denied": {"final_text": "I left the tables as they were.", "outcome_result": "failed"}}

In each round the session runs, records the calls (``agent.tool_use`` / ``agent.mcp_tool_use`` with
``evaluated_permission: "ask"`` and an ``always_ask`` evaluation, ``agent.custom_tool_use``) and
goes idle with ``requires_action`` naming them in ``stop_reason.event_ids``. Pending are the ids the
newest ``session.status_idle`` names that no answer has answered yet. Answers
(``user.tool_confirmation`` for tool calls, ``user.custom_tool_result`` for custom tools) are
checked with the provider's request models, then against what is pending, all before any is
recorded: an answer to an event that is not pending (unknown, already answered, or of the other
kind) is refused with a 400 ``invalid_request_error`` naming the id, as is a ``deny_message`` with
``allow`` (the API documents both rules, not the error's wording). Answering some re-emits
``session.status_idle`` with the rest (as the API documents); answering the last makes the
session run again at once: the allowed calls' results (``agent.tool_result`` /
``agent.mcp_tool_result``), then the next round, or the final turn. A denied call changes that
ending: ``when_denied`` (``final_text``, ``outcome_result``, ``ending``) when the script gives
one, else the final message says what was denied and why. ``user.interrupt`` while calls are
pending ends the turn (``end_turn``): nothing is pending afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_managed_agents.emulator.problems import bad_request
from airflow_provider_managed_agents.models.base import format_timestamp

if TYPE_CHECKING:
    from airflow_provider_managed_agents.emulator.sessions import SessionScript, _Step

# The sessions' own way of taking a step (Sessions.apply_step: it also tells the webhooks).
ApplyStep = Callable[[dict[str, Any], "_Step"], None]
ANSWER_TYPES = ("user.tool_confirmation", "user.custom_tool_result")
CONFIRMED_KINDS = ("agent.tool_use", "agent.mcp_tool_use")
WHEN_DENIED_FIELDS = ("final_text", "outcome_result", "ending")


def check_script(actions: Any, when_denied: Any) -> None:
    """Refuse a script whose rounds or ``when_denied`` are malformed, naming the field."""
    if not isinstance(actions, list) or not all(isinstance(r, list) and r for r in actions):
        raise ValueError("actions must be a list of rounds, each a non-empty list of calls")
    for i, round_calls in enumerate(actions):
        for j, call in enumerate(round_calls):
            where = f"actions[{i}][{j}]"
            if not isinstance(call, dict) or ("tool" in call) == ("custom_tool" in call):
                raise ValueError(f"{where} must have exactly one of 'tool' or 'custom_tool'")
            unknown = set(call) - {"tool", "custom_tool", "mcp_server", "input"}
            if unknown:
                raise ValueError(f"{where} has unknown fields {sorted(unknown)}")
            if "custom_tool" in call and "mcp_server" in call:
                raise ValueError(f"{where}: a custom tool has no mcp_server")
            if not isinstance(call.get("input", {}), dict):
                raise ValueError(f"{where}.input must be an object")
    if when_denied is not None and (not isinstance(when_denied, dict) or set(when_denied) - set(WHEN_DENIED_FIELDS)):
        raise ValueError(f"when_denied takes only {list(WHEN_DENIED_FIELDS)}")


# --- playing a round --------------------------------------------------------------------------


def round_steps(session: dict[str, Any], script: SessionScript, start: datetime, round_index: int) -> list[_Step]:
    """Round ``round_index``: the session runs, makes its calls and waits for their answers."""
    from airflow_provider_managed_agents.emulator.sessions import _event_id, _Step, _stop

    turn = script.turn_seconds
    t = script.start_delay if round_index == 0 else 0.0

    def at(seconds: float) -> str:
        return format_timestamp(start + timedelta(seconds=seconds))

    steps = [_Step(at(t), event={"type": "session.status_running", "id": _event_id()}, status="running")]
    steps += _model_request(script, at(t + 0.35 * turn), at(t + 0.5 * turn))
    ids = []
    for call in script.actions[round_index]:
        event: dict[str, Any] = {"id": _event_id(), "input": dict(call.get("input", {}))}
        if "custom_tool" in call:
            event.update(type="agent.custom_tool_use", name=call["custom_tool"])
        else:
            event.update(type="agent.tool_use", name=call["tool"])
            if "mcp_server" in call:
                event.update(type="agent.mcp_tool_use", mcp_server_name=call["mcp_server"])
            event.update(evaluated_permission="ask", evaluation={"type": "always_ask"})
        ids.append(event["id"])
        steps.append(_Step(at(t + 0.6 * turn), event=event))
    steps.append(_Step(at(t + turn - 0.01), event={"type": "session.usage", "id": _event_id(), "usage": {}}))
    idle = {"type": "session.status_idle", "id": _event_id(), **_stop("requires_action", event_ids=ids)}
    steps.append(_Step(at(t + turn), event=idle, status="idle"))
    session["_round"] = round_index
    return steps


def _model_request(script: SessionScript, started: str, ended: str) -> list[_Step]:
    from airflow_provider_managed_agents.emulator.sessions import _event_id, _Step

    start_id = _event_id()
    usage = {"input_tokens": script.input_tokens, "output_tokens": script.output_tokens}
    span_usage = {**usage, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    return [
        _Step(started, event={"type": "span.model_request_start", "id": start_id}),
        _Step(
            ended,
            event={
                "type": "span.model_request_end",
                "id": _event_id(),
                "model_request_start_id": start_id,
                "model_usage": span_usage,
            },
            usage=usage,
        ),
    ]


# --- what is pending, and the answers -----------------------------------------------------------


def pending(session: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The calls the session waits on, by event id: those the newest ``session.status_idle``
    names (when it is ``requires_action`` and nothing ran since) that no answer answered."""
    events = session["_events"]
    newest_status = next(
        (e for e in reversed(events) if e["type"] in ("session.status_idle", "session.status_running")), None
    )
    if session["status"] != "idle" or newest_status is None or newest_status["type"] != "session.status_idle":
        return {}
    stop = newest_status.get("stop_reason") or {}
    if stop.get("type") != "requires_action":
        return {}
    answered = {e.get("tool_use_id") or e.get("custom_tool_use_id") for e in events if e["type"] in ANSWER_TYPES}
    by_id = {e["id"]: e for e in events if "id" in e}
    return {i: by_id.get(i, {"id": i, "type": "unknown"}) for i in stop.get("event_ids", []) if i not in answered}


def answer(
    session: dict[str, Any], answers: list[dict[str, Any]], now: datetime, apply: ApplyStep
) -> list[dict[str, Any]]:
    """Record ``answers`` (all checked first) and move the session on; the recorded events.
    ``apply`` is the sessions' own step (it announces what changes to the webhooks)."""
    from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
    from airflow_provider_managed_agents.models.actions import AnswersParams, answer_target
    from airflow_provider_managed_agents.models.params import validate_params

    try:
        params = validate_params(AnswersParams, {"events": answers}, "events")
    except ManagedAgentsValidationError as exc:
        raise bad_request(str(exc)) from None
    waiting = pending(session)
    seen: set[str] = set()
    for event in params.events:
        target = answer_target(event)
        call = waiting.get(target)
        confirming = event.type == "user.tool_confirmation"
        field = "tool_use_id" if confirming else "custom_tool_use_id"
        kinds = CONFIRMED_KINDS if confirming else ("agent.custom_tool_use",)
        if call is None or call["type"] not in kinds or target in seen:
            waits_for = "a confirmation" if confirming else "a custom tool result"
            raise bad_request(f"events: {field} {target!r}: the session is not waiting for {waits_for} with this id")
        seen.add(target)
    from airflow_provider_managed_agents.emulator.sessions import _event_id, _Step, _stop

    stamp = format_timestamp(now)
    recorded = []
    for event in params.events:
        entry = {**event.model_dump(mode="json", exclude_none=True), "id": _event_id(), "processed_at": stamp}
        session["_events"].append(entry)
        recorded.append(entry)
    rest = [i for i in waiting if i not in seen]
    if rest:  # fewer than all answered: the session says again what it still waits for
        idle = {"type": "session.status_idle", "id": _event_id(), **_stop("requires_action", event_ids=rest)}
        apply(session, _Step(stamp, event=idle, status="idle"))
    else:
        session["_steps"] = [asdict(s) for s in _continue(session, now)]
    return recorded


def _continue(session: dict[str, Any], now: datetime) -> list[_Step]:
    """Every call answered: the session runs on, into its next round or its final turn."""
    from airflow_provider_managed_agents.emulator.sessions import SessionScript, _event_id, _plan, _Step

    script = SessionScript(**session["_script"])
    done_round = session.get("_round", 0)
    calls = {e["id"]: e for e in session["_events"] if e["type"] in (*CONFIRMED_KINDS, "agent.custom_tool_use")}
    answers = [e for e in session["_events"] if e["type"] in ANSWER_TYPES]
    start = now  # at once: the answers' stamp, listed after them
    results = []
    for answered in answers:
        call = calls.get(answered.get("tool_use_id", ""))
        if call is None or answered["result"] != "allow" or answered["id"] in session.get("_resulted", []):
            continue
        result_of = "mcp_tool_use_id" if call["type"] == "agent.mcp_tool_use" else "tool_use_id"
        result_type = "agent.mcp_tool_result" if call["type"] == "agent.mcp_tool_use" else "agent.tool_result"
        ran = f"{call['name']} ran with {call['input']}"
        event = {"type": result_type, "id": _event_id(), result_of: call["id"], "content": [_text(ran)]}
        results.append(_Step(format_timestamp(start + timedelta(seconds=0.1)), event=event))
        session.setdefault("_resulted", []).append(answered["id"])
    if done_round + 1 < len(script.actions):
        steps = round_steps(session, script, start, done_round + 1)
    else:
        denied = [a for a in answers if a["type"] == "user.tool_confirmation" and a["result"] == "deny"]
        # A plain requires_action ending, once answered, ends its turn.
        stop = "end_turn" if script.ending == "requires_action" else script.ending
        ending = replace(script, start_delay=0.0, actions=[], when_denied=None, ending=stop)
        text = script.final_text
        if denied:
            changes = dict(script.when_denied or {})
            text = changes.pop("final_text", None) or _denied_text(denied, calls)
            ending = replace(ending, **changes)
        if text is None:
            from airflow_provider_managed_agents.emulator.sessions import _first_text

            asked = _first_text(session["_events"])
            text = f"Done: {asked}" if asked else "Done."
        steps = _plan(session, ending, start, text)
    return sorted([*results, *steps], key=lambda s: s.at)


def _denied_text(denied: list[dict[str, Any]], calls: dict[str, dict[str, Any]]) -> str:
    parts = []
    for answered in denied:
        name = calls.get(answered["tool_use_id"], {}).get("name", answered["tool_use_id"])
        why = answered.get("deny_message")
        parts.append(f"{name} ({why})" if why else name)
    return f"Stopped: not allowed to run {', '.join(parts)}."


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def interrupt_pending(session: dict[str, Any], now: datetime, apply: ApplyStep) -> None:
    """``user.interrupt`` while calls are pending ends the turn: nothing is pending after."""
    from airflow_provider_managed_agents.emulator.sessions import _event_id, _Step, _stop

    if pending(session):
        stamp = format_timestamp(now)
        idle = {"type": "session.status_idle", "id": _event_id(), **_stop("end_turn")}
        apply(session, _Step(stamp, event=idle, status="idle"))
