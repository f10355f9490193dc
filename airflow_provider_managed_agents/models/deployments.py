"""The deployment object and its parts: agent reference, schedule, paused reason, budget."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, field_validator

from airflow_provider_managed_agents.models.base import ApiModel, Timestamp, tag_or_fallback
from airflow_provider_managed_agents.models.cron import parse_cron, zone
from airflow_provider_managed_agents.models.events import InitialEvent
from airflow_provider_managed_agents.models.resources import Resource


class AgentReference(ApiModel):
    """An agent pinned to a version. In requests the version may be omitted (latest)."""

    type: Literal["agent"] = "agent"
    id: str = Field(min_length=1)
    version: int | None = Field(default=None, ge=1)


class ScheduleSpec(ApiModel):
    """A cron schedule as written in requests; validated exactly as the API does."""

    type: Literal["cron"] = "cron"
    expression: str
    timezone: str

    @field_validator("expression")
    @classmethod
    def _valid_cron(cls, expression: str) -> str:
        parse_cron(expression)
        return expression

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, timezone: str) -> str:
        zone(timezone)
        return timezone


class Schedule(ApiModel):
    """A schedule as returned, with the service's view of its past and next fires.

    Not validated as strictly as :class:`ScheduleSpec`: a response is the service's truth.
    """

    type: str = "cron"
    expression: str
    timezone: str
    last_run_at: Timestamp | None = None
    upcoming_runs_at: list[Timestamp] = Field(default_factory=list)


class ManualPausedReason(ApiModel):
    """Paused by a person (the pause endpoint)."""

    type: Literal["manual"] = "manual"


class PausedReasonError(ApiModel):
    """The error that auto-paused a deployment: a run error type, without a message."""

    type: str


class ErrorPausedReason(ApiModel):
    """Auto-paused by the service after a scheduled run failed with ``error.type``."""

    type: Literal["error"] = "error"
    error: PausedReasonError


class UnknownPausedReason(ApiModel):
    """A paused reason newer than this client; keeps its ``type``."""

    type: str


PausedReason = Annotated[
    Annotated[ManualPausedReason, Tag("manual")]
    | Annotated[ErrorPausedReason, Tag("error")]
    | Annotated[UnknownPausedReason, Tag("unknown")],
    Discriminator(tag_or_fallback({"manual", "error"}, "unknown")),
]


class Money(ApiModel):
    """An amount in integer minor units of ``currency``."""

    amount: str = Field(pattern=r"^(0|[1-9][0-9]*)$", description="integer minor units")
    currency: Literal["USD"] = "USD"


class Budget(ApiModel):
    """A spending limit per run (``max_list_cost``)."""

    type: Literal["limit"] = "limit"
    max_list_cost: Money


class Deployment(ApiModel):
    """A deployment: an agent bound to an environment, initial events, resources and an optional schedule."""

    id: str
    type: Literal["deployment"] = "deployment"
    name: str
    description: str | None = None
    agent: AgentReference
    environment_id: str
    initial_events: list[InitialEvent] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)
    resources: list[Resource] = Field(default_factory=list)
    vault_ids: list[str] = Field(default_factory=list)
    schedule: Schedule | None = None
    status: str = "active"
    paused_reason: PausedReason | None = None
    budget: Budget | None = None
    archived_at: Timestamp | None = None
    created_at: Timestamp
    updated_at: Timestamp

    @property
    def is_archived(self) -> bool:
        # The status enum has no "archived": an archived deployment is told by archived_at.
        return self.archived_at is not None

    @property
    def is_paused(self) -> bool:
        return self.status == "paused"
