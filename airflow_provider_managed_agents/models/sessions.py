"""The session a deployment run creates, as the API returns it: status, outcome evaluations,
usage and stats. Lenient, as every response model: unknown statuses and results keep their
string, new fields are kept.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from airflow_provider_managed_agents.models.base import ApiModel, Timestamp
from airflow_provider_managed_agents.models.deployments import Budget, Money
from airflow_provider_managed_agents.models.pages import Page
from airflow_provider_managed_agents.models.resources import Resource

# An outcome evaluation still under way; any other result is final (satisfied,
# max_iterations_reached, failed, interrupted, or one newer than this client).
OUTCOME_IN_PROGRESS = frozenset({"pending", "running", "evaluating"})


class SessionAgent(ApiModel):
    """The agent snapshot a session runs (only what this client reads is declared)."""

    type: str = "agent"
    id: str
    version: int | None = None
    name: str | None = None


class OutcomeEvaluation(ApiModel):
    """One ``user.define_outcome``'s evaluation: ``result`` moves pending -> running ->
    evaluating and ends satisfied, max_iterations_reached, failed or interrupted."""

    type: str = "outcome_evaluation"
    outcome_id: str
    description: str = ""
    iteration: int = 0
    result: str
    explanation: str | None = None
    completed_at: Timestamp | None = None


class SessionUsage(ApiModel):
    """Tokens, tool use, list cost (minor units, as a string) and active time, as given."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: dict[str, Any] | None = None
    server_tool_use: dict[str, Any] | None = None
    list_cost: Money | None = None
    active_seconds: float | None = None


class SessionStats(ApiModel):
    """Active and wall time; ``duration_seconds`` is frozen when the session terminates."""

    active_seconds: float | None = None
    duration_seconds: float | None = None


class Session(ApiModel):
    """A session: ``status`` is idle (also when new), running, rescheduling or terminated."""

    id: str
    type: Literal["session"] = "session"
    status: str
    agent: SessionAgent | None = None
    environment_id: str | None = None
    deployment_id: str | None = None
    title: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    outcome_evaluations: list[OutcomeEvaluation] = Field(default_factory=list)
    resources: list[Resource] = Field(default_factory=list)
    vault_ids: list[str] = Field(default_factory=list)
    usage: SessionUsage = Field(default_factory=SessionUsage)
    stats: SessionStats = Field(default_factory=SessionStats)
    budget: Budget | None = None
    archived_at: Timestamp | None = None
    created_at: Timestamp
    updated_at: Timestamp | None = None


class SessionPage(Page[Session]):
    """A page of sessions; the list can be walked both ways."""

    prev_page: str | None = None
