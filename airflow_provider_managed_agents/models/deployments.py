"""The deployment object as the API returns it: agent reference, schedule, paused reason, budget.

Lenient by design (Postel): every shape the API documents parses, unknown enum values keep
their string, and request-side limits live in :mod:`~airflow_provider_managed_agents.models.params`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag

from airflow_provider_managed_agents.models.base import ApiModel, Timestamp, tag_or_fallback
from airflow_provider_managed_agents.models.events import InitialEvent
from airflow_provider_managed_agents.models.resources import Resource


def _null_as_empty(value: Any) -> Any:
    return [] if value is None else value


def _null_as_empty_mapping(value: Any) -> Any:
    return {} if value is None else value


class AgentReference(ApiModel):
    """An agent pinned to a version (always concrete in responses)."""

    type: Literal["agent"] = "agent"
    id: str
    version: int | None = None


class Schedule(ApiModel):
    """A schedule as returned, with the service's view of its past and next fires."""

    type: str = "cron"
    expression: str
    timezone: str
    last_run_at: Timestamp | None = None
    upcoming_runs_at: Annotated[list[Timestamp], BeforeValidator(_null_as_empty)] = Field(default_factory=list)


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
    """An amount in integer minor units of ``currency`` (``"2500"`` USD = $25.00)."""

    amount: str
    currency: str = "USD"


class Budget(ApiModel):
    """A spending limit per session (``max_list_cost``)."""

    type: str = "limit"
    max_list_cost: Money


class _Lifecycle:
    """Whether a deployment can still fire, read from its status fields."""

    status: str
    archived_at: Any

    @property
    def is_archived(self) -> bool:
        # The status enum has no "archived": an archived deployment is told by archived_at.
        return self.archived_at is not None

    @property
    def is_paused(self) -> bool:
        return self.status == "paused"


class Deployment(_Lifecycle, ApiModel):
    """A deployment: an agent bound to an environment, initial events, resources and an optional schedule."""

    id: str
    # Any string: a type this client does not know yet is kept, as the SDK keeps it.
    type: str = "deployment"
    name: str
    description: str | None = None
    agent: AgentReference
    environment_id: str
    initial_events: list[InitialEvent] = Field(default_factory=list)
    metadata: Annotated[dict[str, str], BeforeValidator(_null_as_empty_mapping)] = Field(default_factory=dict)
    resources: list[Resource] = Field(default_factory=list)
    vault_ids: list[str] = Field(default_factory=list)
    schedule: Schedule | None = None
    status: str = "active"
    paused_reason: PausedReason | None = None
    budget: Budget | None = None
    archived_at: Timestamp | None = None
    created_at: Timestamp
    updated_at: Timestamp


class DeploymentState(_Lifecycle, ApiModel):
    """The few fields of a deployment a wait decides on: whether it can still fire, and when.

    What a trigger event carries instead of the whole deployment (whose initial events may hold
    rubrics of 262,144 characters each): ``to_event()`` keeps id, status, paused reason and
    archive time; ``upcoming_runs_at`` (at most 5 times) serves the schedule-aware sleep.
    """

    id: str
    status: str = "active"
    paused_reason: PausedReason | None = None
    archived_at: Timestamp | None = None
    scheduled: bool = False
    expression: str | None = None
    timezone: str | None = None
    upcoming_runs_at: list[Timestamp] = Field(default_factory=list)

    @classmethod
    def of(cls, deployment: Deployment) -> DeploymentState:
        schedule = deployment.schedule
        return cls(
            id=deployment.id,
            status=deployment.status,
            paused_reason=deployment.paused_reason,
            archived_at=deployment.archived_at,
            scheduled=schedule is not None,
            expression=schedule.expression if schedule is not None else None,
            timezone=schedule.timezone if schedule is not None else None,
            upcoming_runs_at=list(schedule.upcoming_runs_at) if schedule is not None else [],
        )

    def with_fires(self, fires: Iterable[datetime]) -> DeploymentState:
        """This state with ``fires`` among its fires (a fire listed twice counts once)."""
        merged = sorted({t.timestamp(): t for t in [*self.upcoming_runs_at, *fires]}.items())
        return self.model_copy(update={"upcoming_runs_at": [t for _, t in merged]})

    def to_event(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include={"id", "status", "paused_reason", "archived_at"})
