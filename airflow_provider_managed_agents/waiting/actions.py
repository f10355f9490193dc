"""When a session waits on actions: what is pending, how a person sees it, and the answers.

An idle session whose stop reason is ``requires_action`` names the events it is blocked on. Each
is one :class:`PendingCall`: a built-in or MCP tool call held for a confirmation (its
``evaluated_permission`` is ``ask``), or a custom tool waiting for its result. This module is the
pure part of answering them (no Airflow, no I/O; the Airflow side is
:mod:`airflow_provider_managed_agents.answering`):

- :func:`sort_out`: which calls a task can answer, and the first reason it cannot;
- :func:`request_text`: the request a person reads (the agent, the session, each call and its
  input: readable JSON, values under secret-looking keys masked, long inputs cut);
- :func:`decision_of`: the person's answer as Airflow's human-in-the-loop resumes a task with it
  (the options chosen, the deny message, who answered and when, or the response timeout's
  default), checked;
- :func:`confirmations`, :func:`tool_result`: the answer events;
- :func:`record`: one entry of the ``actions`` XCom.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_managed_agents.models.actions import CustomToolResultParam, ToolConfirmationParam
    from airflow_provider_managed_agents.models.session_events import ActionCall

ALLOW, DENY = "Allow", "Deny"
OPTIONS = [ALLOW, DENY]
DENY_MESSAGE_PARAM = "deny_message"
# How much a person is shown, and how much is kept per call in XCom.
INPUT_SHOWN_MAX_CHARS = 2_000
CALLS_SHOWN_MAX = 20
INPUT_SUMMARY_MAX_CHARS = 300
DENY_MESSAGE_MAX_CHARS = 4_000
TOOL_RESULT_MAX_CHARS = 100_000
MASK = "***"
# Keys whose values are never shown, whatever the agent put there.
SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[-_]?key|auth|credential|private[-_]?key|access[-_]?key|cookie|session[-_]?key",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PendingCall:
    """One event a session waits on: ``kind`` ``tool_use``, ``mcp_tool_use`` or
    ``custom_tool_use``; ``permission`` the tool call's ``evaluated_permission``."""

    event_id: str
    kind: str
    name: str
    input: dict[str, Any]
    mcp_server_name: str | None = None
    permission: str | None = None

    @classmethod
    def of(cls, event: ActionCall) -> PendingCall:
        return cls(
            event_id=event.id,
            kind=event.type.removeprefix("agent."),
            name=event.name,
            input=dict(event.input),
            mcp_server_name=getattr(event, "mcp_server_name", None),
            permission=getattr(event, "evaluated_permission", None),
        )

    @property
    def tool(self) -> str:
        """The tool as a person reads it: an MCP tool with its server."""
        return f"{self.mcp_server_name}/{self.name}" if self.mcp_server_name else self.name

    @property
    def is_custom(self) -> bool:
        return self.kind == "custom_tool_use"

    @property
    def awaits_confirmation(self) -> bool:
        """A tool call held for a person's yes or no (not one waiting for a client to run it)."""
        return not self.is_custom and self.permission in (None, "ask")

    def summary(self) -> dict[str, Any]:
        """What XCom and the resumed task keep of it: the id, the tool, the input cut short."""
        return {"tool_use_id": self.event_id, "kind": self.kind, "tool": self.tool, "input": summarize(self.input)}


@dataclass(frozen=True)
class Sorted:
    """The pending calls a task answers: ``custom`` by its callables, ``confirm`` by a person;
    ``cannot``: why it cannot answer them all (then it answers none)."""

    custom: list[PendingCall]
    confirm: list[PendingCall]
    cannot: str | None = None


def sort_out(calls: Iterable[PendingCall], custom_tools: Mapping[str, str], ask_a_person: bool) -> Sorted:
    """Which of ``calls`` this task answers, or the first reason it cannot answer them all."""
    custom: list[PendingCall] = []
    confirm: list[PendingCall] = []
    for call in calls:
        if call.is_custom:
            if call.name not in custom_tools:
                return Sorted([], [], f"custom tool {call.name!r} has no callable in custom_tools")
            custom.append(call)
        elif not call.awaits_confirmation:
            return Sorted([], [], f"tool {call.tool!r} ({call.permission}) waits for a result this task cannot give")
        elif not ask_a_person:
            return Sorted([], [], f"tool {call.tool!r} waits for a confirmation and approve_tools_with is not set")
        else:
            confirm.append(call)
    return Sorted(custom, confirm)


# --- showing it to a person ----------------------------------------------------------------------


def masked(value: Any) -> Any:
    """``value`` with the values of secret-looking keys replaced, at any depth."""
    if isinstance(value, Mapping):
        return {k: MASK if isinstance(k, str) and SECRET_KEY.search(k) else masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


def cut(text: str, max_chars: int) -> str:
    """``text`` cut at ``max_chars``, saying how much was left out."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… ({len(text) - max_chars} more characters)"


def summarize(tool_input: Mapping[str, Any], max_chars: int = INPUT_SUMMARY_MAX_CHARS) -> str:
    """A tool's input on one line, masked and cut."""
    return cut(json.dumps(masked(tool_input), sort_keys=True, default=str, ensure_ascii=False), max_chars)


def shown(tool_input: Mapping[str, Any], max_chars: int = INPUT_SHOWN_MAX_CHARS) -> str:
    """A tool's input as a person reads it: indented JSON, masked and cut."""
    return cut(json.dumps(masked(tool_input), indent=2, sort_keys=True, default=str, ensure_ascii=False), max_chars)


def request_text(
    agent: Mapping[str, Any], session_id: str, session_url: str | None, calls: list[PendingCall], default: str
) -> tuple[str, str]:
    """The subject and Markdown body of the request a person answers.

    Airflow writes a task's request once per try and shows that first text for every later
    round (only the answer is cleared), so the subject names no round and the body says where
    the calls of a later round are.
    """
    name = agent.get("name") or agent.get("id") or "The agent"
    subject = f"{name} asks to use tools in session {session_id}"
    version = f", version {agent['version']}" if agent.get("version") is not None else ""
    where = f"[{session_id}]({session_url})" if session_url else f"`{session_id}`"
    lines = [
        f"**Agent:** {name} (`{agent.get('id', '?')}`{version})  ",
        f"**Session:** {where}",
        "",
        f"The agent waits for your answer to {len(calls)} tool call{'s' if len(calls) != 1 else ''}. "
        f"**{ALLOW}** lets it run {'them all' if len(calls) != 1 else 'it'}; **{DENY}** refuses "
        f"{'them all' if len(calls) != 1 else 'it'} and sends your deny message, if any, to the agent. "
        f"Without an answer in time, the default applies: **{default}**.",
        "",
    ]
    for i, call in enumerate(calls[:CALLS_SHOWN_MAX], 1):
        where_from = f"MCP server `{call.mcp_server_name}`" if call.mcp_server_name else "built-in tool"
        lines += [f"{i}. `{call.name}` ({where_from}), input:", "", "```json", shown(call.input), "```", ""]
    if len(calls) > CALLS_SHOWN_MAX:
        lines.append(f"… and {len(calls) - CALLS_SHOWN_MAX} more: see the task's log and its XCom `pending_actions`.")
        lines.append("")
    lines.append(
        "*If the agent asks again while this task runs, Airflow shows this first request again: the calls of "
        "each later round are in the task's log and its XCom `pending_actions`.*"
    )
    return subject, "\n".join(lines)


# --- the answer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """A person's answer (or the response timeout's default) to one round of confirmations."""

    result: str  # "allow" or "deny"
    deny_message: str | None
    by: str  # who answered, as the log and XCom say it
    at: str  # ISO time of the answer
    timed_out: bool = False


def decision_of(event: Mapping[str, Any], default: str) -> Decision:
    """The decision in the event Airflow resumes a human-in-the-loop wait with; a
    ``ValueError`` naming what is wrong when it holds no usable answer."""
    if "error" in event:
        raise ValueError(
            f"Airflow's human-in-the-loop wait ended without an answer ({event.get('error_type')}): {event['error']}"
        )
    chosen = list(event.get("chosen_options") or [])
    if len(chosen) != 1 or chosen[0] not in OPTIONS:
        raise ValueError(f"the answer must be exactly one of {OPTIONS}, not {chosen}")
    result = chosen[0].lower()
    message = (event.get("params_input") or {}).get(DENY_MESSAGE_PARAM)
    if message is not None and not isinstance(message, str):
        raise ValueError(f"{DENY_MESSAGE_PARAM} must be text")
    deny_message = (
        cut(message.strip(), DENY_MESSAGE_MAX_CHARS) if result == "deny" and message and message.strip() else None
    )
    user = event.get("responded_by_user")
    timed_out = bool(event.get("timedout")) or user is None
    if user is None or timed_out:
        by = f"nobody: the response timeout applied the default ({default.lower()})"
    else:
        name, user_id = user.get("name"), user.get("id")
        by = f"{name} ({user_id})" if name and user_id and name != user_id else str(name or user_id)
    when = event.get("responded_at")
    at = when.isoformat() if isinstance(when, datetime) else str(when) if when is not None else ""
    return Decision(result, deny_message, by, at, timed_out)


def confirmations(calls: Iterable[PendingCall], decision: Decision) -> list[ToolConfirmationParam]:
    """One ``user.tool_confirmation`` per call, all with the decision."""
    from airflow_provider_managed_agents.models.actions import ToolConfirmationParam

    return [
        ToolConfirmationParam(tool_use_id=call.event_id, result=decision.result, deny_message=decision.deny_message)
        for call in calls
    ]


def tool_result(call: PendingCall, value: Any = None, error: BaseException | None = None) -> CustomToolResultParam:
    """The ``user.custom_tool_result`` of a custom tool's callable: its return value as text
    (a string as it is, anything else as JSON), or the exception, as an error result."""
    from airflow_provider_managed_agents.models.actions import CustomToolResultParam
    from airflow_provider_managed_agents.models.events import TextBlock

    if error is not None:
        text, is_error = f"{type(error).__name__}: {error}", True
    else:
        text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
        is_error = False
    return CustomToolResultParam(
        custom_tool_use_id=call.event_id,
        content=[TextBlock(text=cut(text, TOOL_RESULT_MAX_CHARS))],
        is_error=is_error,
    )


def record(
    call: PendingCall | Mapping[str, Any], decision: str, by: str, at: str, round_number: int, **extra: Any
) -> dict[str, Any]:
    """One entry of the ``actions`` XCom: the round, the call (id, tool, input summary), the
    decision (``allow``, ``deny``, ``result``, ``error``), who made it and when."""
    summary = call.summary() if isinstance(call, PendingCall) else dict(call)
    return {"round": round_number, **summary, "decision": decision, "by": by, "at": at, **extra}
