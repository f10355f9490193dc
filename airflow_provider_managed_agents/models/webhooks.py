"""Webhook deliveries: the thin event envelope the API signs and sends.

``{"type": "event", "id": "wevt_...", "created_at": ..., "data": {"type": "deployment_run.succeeded",
"id": "drun_...", "organization_id": ..., "workspace_id": ...}}``: the event says what changed
and which object; the receiver reads the object for its state. ``id`` is the event's identity
for idempotency (a redelivery carries the same one). Unknown event types and extra fields parse.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from airflow_provider_managed_agents.models.base import ApiModel, Timestamp

RUN_EVENT_TYPES = frozenset({"deployment_run.started", "deployment_run.succeeded", "deployment_run.failed"})
# The session events after which a session may have ended (its turn, or for good): the receiver
# reads the session and judges it; an outcome evaluation ending can be the last word too.
SESSION_ENDING_EVENT_TYPES = frozenset(
    {"session.status_idled", "session.status_terminated", "session.outcome_evaluation_ended"}
)


class WebhookEventData(ApiModel):
    """What the event is about: its ``type`` (e.g. ``deployment_run.succeeded``) and the object's id."""

    type: str = Field(min_length=1, max_length=200)
    id: str = Field(min_length=1, max_length=200)
    organization_id: str | None = None
    workspace_id: str | None = None


class HandedOverRun(ApiModel):
    """A run a watcher with ``delivery="both"`` found and hands to the receiver: only its id
    (the receiver reads the run itself; what a request says about it is never announced)."""

    type: Literal["deployment_run"]
    id: str = Field(min_length=1, max_length=200)
    deployment_id: str | None = None


class WebhookEvent(ApiModel):
    """One delivery's body."""

    type: Literal["event"]
    id: str = Field(min_length=1, max_length=200)
    created_at: Timestamp
    data: WebhookEventData

    @property
    def about_a_run(self) -> bool:
        return self.data.type in RUN_EVENT_TYPES

    @property
    def about_a_session_ending(self) -> bool:
        return self.data.type in SESSION_ENDING_EVENT_TYPES
