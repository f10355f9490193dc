"""Session events, a discriminated union on ``type`` with a fallback: the event types and stop
reasons this client does not know yet parse, keeping their type string and every field.

Only the events a wait reads are modelled in detail (status changes, errors, the agent's
messages, usage spans, outcome spans, interrupts, the tool calls a session may wait on and their
answers); the API has many more (tool results, threads, workflows), which arrive as
:class:`UnknownSessionEvent` with their fields intact.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from airflow_provider_managed_agents.models.base import ApiModel, Timestamp, tag_or_fallback
from airflow_provider_managed_agents.models.events import ContentBlock, TextBlock, UnknownObject
from airflow_provider_managed_agents.models.pages import Page
from airflow_provider_managed_agents.models.sessions import SessionUsage


class _Event(ApiModel):
    id: str
    processed_at: Timestamp | None = None


# --- stop reasons --------------------------------------------------------------------------


class EndTurn(ApiModel):
    """The agent finished its turn (also after an interrupt)."""

    type: Literal["end_turn"] = "end_turn"


class RequiresAction(ApiModel):
    """Blocked on a tool confirmation or a custom tool's result (``event_ids``)."""

    type: Literal["requires_action"] = "requires_action"
    event_ids: list[str] = Field(default_factory=list)


class RetriesExhausted(ApiModel):
    """The turn ended after repeated errors."""

    type: Literal["retries_exhausted"] = "retries_exhausted"


class BudgetReached(ApiModel):
    """The session's spend cap was hit."""

    type: Literal["budget_reached"] = "budget_reached"


class Refusal(ApiModel):
    """The model refused; ``stop_details`` of the idle event says why."""

    type: Literal["refusal"] = "refusal"


STOP_REASONS = ("end_turn", "requires_action", "retries_exhausted", "budget_reached", "refusal")

StopReason = Annotated[
    Annotated[EndTurn, Tag("end_turn")]
    | Annotated[RequiresAction, Tag("requires_action")]
    | Annotated[RetriesExhausted, Tag("retries_exhausted")]
    | Annotated[BudgetReached, Tag("budget_reached")]
    | Annotated[Refusal, Tag("refusal")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback(set(STOP_REASONS), "unknown")),
]


class StopDetails(ApiModel):
    """Why the model refused: ``category`` (cyber, bio, ...) and ``explanation``."""

    type: str = "refusal"
    category: str | None = None
    explanation: str | None = None


# --- status events -------------------------------------------------------------------------


class StatusRunning(_Event):
    type: Literal["session.status_running"] = "session.status_running"


class StatusIdle(_Event):
    """The turn is over; ``stop_reason`` says why."""

    type: Literal["session.status_idle"] = "session.status_idle"
    stop_reason: StopReason
    stop_details: StopDetails | None = None


class StatusRescheduled(_Event):
    type: Literal["session.status_rescheduled"] = "session.status_rescheduled"


class StatusTerminated(_Event):
    type: Literal["session.status_terminated"] = "session.status_terminated"


class RetryStatus(ApiModel):
    """``retrying`` (wait), ``exhausted`` (the turn ends) or ``terminal`` (the session ends)."""

    type: str


class SessionErrorDetail(ApiModel):
    """A session error: one of the API's error types (kept as a string) and its message."""

    type: str
    message: str = ""
    retry_status: RetryStatus | None = None


class SessionErrorEvent(_Event):
    type: Literal["session.error"] = "session.error"
    error: SessionErrorDetail


class SessionDeleted(_Event):
    type: Literal["session.deleted"] = "session.deleted"


class SessionUsageEvent(_Event):
    type: Literal["session.usage"] = "session.usage"
    usage: SessionUsage = Field(default_factory=SessionUsage)


# --- what the agent and the user said -------------------------------------------------------


class AgentMessage(_Event):
    """What the agent said: text blocks (or redacted ones)."""

    type: Literal["agent.message"] = "agent.message"
    content: list[ContentBlock] = Field(default_factory=list)

    def text(self) -> str:
        return "\n\n".join(block.text for block in self.content if isinstance(block, TextBlock))


class UserMessage(_Event):
    type: Literal["user.message"] = "user.message"
    content: list[ContentBlock] = Field(default_factory=list)


class UserInterrupt(_Event):
    type: Literal["user.interrupt"] = "user.interrupt"


class UserDefineOutcome(_Event):
    type: Literal["user.define_outcome"] = "user.define_outcome"
    outcome_id: str | None = None
    description: str = ""
    max_iterations: int | None = None


# --- spans -----------------------------------------------------------------------------------


class SpanModelUsage(ApiModel):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class ModelRequestStart(_Event):
    type: Literal["span.model_request_start"] = "span.model_request_start"


class ModelRequestEnd(_Event):
    type: Literal["span.model_request_end"] = "span.model_request_end"
    model_request_start_id: str | None = None
    model_usage: SpanModelUsage | None = None


class OutcomeEvaluationStart(_Event):
    type: Literal["span.outcome_evaluation_start"] = "span.outcome_evaluation_start"
    outcome_id: str | None = None
    iteration: int = 0


class OutcomeEvaluationEnd(_Event):
    """``result`` ``needs_revision`` between iterations, or the final result."""

    type: Literal["span.outcome_evaluation_end"] = "span.outcome_evaluation_end"
    outcome_id: str | None = None
    iteration: int = 0
    result: str = ""
    explanation: str | None = None


# --- tool calls a session may wait on, and their answers ------------------------------------


class AgentToolUse(_Event):
    """The agent calls a built-in tool; ``evaluated_permission`` ``ask``: it waits for a
    ``user.tool_confirmation`` (when ``stop_reason.event_ids`` names it)."""

    type: Literal["agent.tool_use"] = "agent.tool_use"
    name: str = ""
    input: dict[str, Any] = Field(default_factory=dict)
    evaluated_permission: str | None = None


class AgentMcpToolUse(_Event):
    """The agent calls a tool of an MCP server; confirmed like :class:`AgentToolUse`."""

    type: Literal["agent.mcp_tool_use"] = "agent.mcp_tool_use"
    name: str = ""
    mcp_server_name: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    evaluated_permission: str | None = None


class AgentCustomToolUse(_Event):
    """The agent calls a custom tool: it waits for a ``user.custom_tool_result``."""

    type: Literal["agent.custom_tool_use"] = "agent.custom_tool_use"
    name: str = ""
    input: dict[str, Any] = Field(default_factory=dict)


class UserToolConfirmation(_Event):
    """An answer to a tool call: ``allow`` or ``deny`` (with an optional ``deny_message``)."""

    type: Literal["user.tool_confirmation"] = "user.tool_confirmation"
    tool_use_id: str
    result: str
    deny_message: str | None = None


class UserCustomToolResult(_Event):
    """What a custom tool returned (``is_error`` when it failed)."""

    type: Literal["user.custom_tool_result"] = "user.custom_tool_result"
    custom_tool_use_id: str
    content: list[ContentBlock] = Field(default_factory=list)
    is_error: bool | None = None


class UnknownSessionEvent(ApiModel):
    """An event this client does not model: its ``type`` and fields are kept."""

    type: str
    id: str | None = None
    processed_at: Timestamp | None = None


_EVENTS: dict[str, Any] = {
    cls.model_fields["type"].default: cls
    for cls in (
        StatusRunning,
        StatusIdle,
        StatusRescheduled,
        StatusTerminated,
        SessionErrorEvent,
        SessionDeleted,
        SessionUsageEvent,
        AgentMessage,
        UserMessage,
        UserInterrupt,
        UserDefineOutcome,
        ModelRequestStart,
        ModelRequestEnd,
        OutcomeEvaluationStart,
        OutcomeEvaluationEnd,
        AgentToolUse,
        AgentMcpToolUse,
        AgentCustomToolUse,
        UserToolConfirmation,
        UserCustomToolResult,
    )
}

SessionEvent = Annotated[
    Annotated[StatusRunning, Tag("session.status_running")]
    | Annotated[StatusIdle, Tag("session.status_idle")]
    | Annotated[StatusRescheduled, Tag("session.status_rescheduled")]
    | Annotated[StatusTerminated, Tag("session.status_terminated")]
    | Annotated[SessionErrorEvent, Tag("session.error")]
    | Annotated[SessionDeleted, Tag("session.deleted")]
    | Annotated[SessionUsageEvent, Tag("session.usage")]
    | Annotated[AgentMessage, Tag("agent.message")]
    | Annotated[UserMessage, Tag("user.message")]
    | Annotated[UserInterrupt, Tag("user.interrupt")]
    | Annotated[UserDefineOutcome, Tag("user.define_outcome")]
    | Annotated[ModelRequestStart, Tag("span.model_request_start")]
    | Annotated[ModelRequestEnd, Tag("span.model_request_end")]
    | Annotated[OutcomeEvaluationStart, Tag("span.outcome_evaluation_start")]
    | Annotated[OutcomeEvaluationEnd, Tag("span.outcome_evaluation_end")]
    | Annotated[AgentToolUse, Tag("agent.tool_use")]
    | Annotated[AgentMcpToolUse, Tag("agent.mcp_tool_use")]
    | Annotated[AgentCustomToolUse, Tag("agent.custom_tool_use")]
    | Annotated[UserToolConfirmation, Tag("user.tool_confirmation")]
    | Annotated[UserCustomToolResult, Tag("user.custom_tool_result")]
    | Annotated[UnknownSessionEvent, Tag("unknown")],
    Discriminator(tag_or_fallback(set(_EVENTS), "unknown")),
]
"""Any session event; the known ones as their classes, the rest as :class:`UnknownSessionEvent`."""

# What decides whether a turn is over, and how: read when the status says it may be.
STATUS_EVENT_TYPES = (
    "session.status_running",
    "session.status_idle",
    "session.status_rescheduled",
    "session.status_terminated",
    "session.error",
    "user.interrupt",
)

SessionEventPage = Page[SessionEvent]


class SentEvents(ApiModel):
    """What ``POST /v1/sessions/{id}/events`` answers: the events as recorded."""

    data: list[SessionEvent] = Field(default_factory=list)


# A requires_action stop names events of these kinds; the answers to them are these.
ActionCall = AgentToolUse | AgentMcpToolUse | AgentCustomToolUse
ActionAnswer = UserToolConfirmation | UserCustomToolResult
ACTION_EVENT_TYPES = (
    "agent.tool_use",
    "agent.mcp_tool_use",
    "agent.custom_tool_use",
    "user.tool_confirmation",
    "user.custom_tool_result",
)
