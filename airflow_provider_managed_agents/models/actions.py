"""Answers to what a session waits for: a tool confirmation, a custom tool's result.

An idle session whose stop reason is ``requires_action`` names the events it is blocked on
(``stop_reason.event_ids``): ``agent.tool_use`` and ``agent.mcp_tool_use`` events held for a
confirmation, ``agent.custom_tool_use`` events waiting for a result. They are answered with events
sent to ``POST /v1/sessions/{id}/events``; these are their request shapes, checked before anything
is sent (a ``deny_message`` only with ``deny``, as the API documents; ids non-empty). The emulator
validates the answers it receives with these same classes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from airflow_provider_managed_agents.models.events import TextBlock
from airflow_provider_managed_agents.models.params import NonBlank, RequestParams

# Not stated by the API; a generous bound so that one answer cannot be an accident of megabytes.
ANSWERS_MAX = 100


class ToolConfirmationParam(RequestParams):
    """``user.tool_confirmation``: ``allow`` or ``deny`` one pending ``agent.tool_use`` /
    ``agent.mcp_tool_use`` (``tool_use_id``); ``deny_message`` tells the agent why (deny only)."""

    type: Literal["user.tool_confirmation"] = "user.tool_confirmation"
    tool_use_id: NonBlank
    result: Literal["allow", "deny"]
    deny_message: str | None = None

    @model_validator(mode="after")
    def _deny_message_only_with_deny(self) -> ToolConfirmationParam:
        if self.deny_message is not None and self.result != "deny":
            raise ValueError("deny_message is only allowed when result is deny")
        return self


class CustomToolResultParam(RequestParams):
    """``user.custom_tool_result``: what a custom tool returned for one pending
    ``agent.custom_tool_use`` (``custom_tool_use_id``); ``is_error`` when it failed."""

    type: Literal["user.custom_tool_result"] = "user.custom_tool_result"
    custom_tool_use_id: NonBlank
    content: list[TextBlock] = Field(default_factory=list)
    is_error: bool | None = None


Answer = Annotated[
    Annotated[ToolConfirmationParam, Tag("user.tool_confirmation")]
    | Annotated[CustomToolResultParam, Tag("user.custom_tool_result")],
    Discriminator("type"),
]


class AnswersParams(RequestParams):
    """The body of one send: at least one answer."""

    events: list[Answer] = Field(min_length=1, max_length=ANSWERS_MAX)

    def to_wire(self) -> dict[str, Any]:
        """The JSON body: every answer with its ``type``, unset optional fields omitted."""
        return {"events": [event.model_dump(mode="json", exclude_none=True) for event in self.events]}

    @property
    def answered_ids(self) -> list[str]:
        """The ids of the events these answers are for, in order."""
        return [answer_target(event) for event in self.events]


def answer_target(event: ToolConfirmationParam | CustomToolResultParam) -> str:
    """The id of the pending event an answer is for."""
    if isinstance(event, ToolConfirmationParam):
        return event.tool_use_id
    return event.custom_tool_use_id
