"""Deployment runs: one append-only record per attempt to start a deployment.

Exactly one of ``session_id`` and ``error`` is set. Run errors are typed by ``error.type``;
an error type this client does not know keeps its original string and is treated as the
documented fallback, ``unknown_error``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Tag

from airflow_provider_managed_agents.models.base import ApiModel, Timestamp, tag_or_fallback
from airflow_provider_managed_agents.models.deployments import AgentReference
from airflow_provider_managed_agents.models.enums import RunErrorType

# A failed scheduled fire auto-pauses the deployment unless the error is one of these two.
NON_PAUSING_RUN_ERRORS = frozenset({RunErrorType.SESSION_RATE_LIMITED, RunErrorType.SESSION_CREATION_REJECTED})


class RunError(ApiModel):
    """Why a run did not create a session: its ``type`` (see :class:`RunErrorType`) and message."""

    type: str
    message: str = ""

    @property
    def known_type(self) -> RunErrorType:
        return RunErrorType.resolve(self.type)


class ScheduleTriggerContext(ApiModel):
    """The run was started by the deployment's schedule, for ``scheduled_at``."""

    type: Literal["schedule"] = "schedule"
    scheduled_at: Timestamp


class ManualTriggerContext(ApiModel):
    """The run was started by the run endpoint."""

    type: Literal["manual"] = "manual"


class UnknownTriggerContext(ApiModel):
    """A trigger type newer than this client; keeps its ``type``."""

    type: str


TriggerContext = Annotated[
    Annotated[ScheduleTriggerContext, Tag("schedule")]
    | Annotated[ManualTriggerContext, Tag("manual")]
    | Annotated[UnknownTriggerContext, Tag("unknown")],
    Discriminator(tag_or_fallback({"schedule", "manual"}, "unknown")),
]


class DeploymentRun(ApiModel):
    """One attempt to start a deployment: exactly one of ``session_id`` and ``error`` is set."""

    id: str
    type: Literal["deployment_run"] = "deployment_run"
    deployment_id: str
    agent: AgentReference
    created_at: Timestamp
    session_id: str | None = None
    error: RunError | None = None
    trigger_context: TriggerContext

    @property
    def trigger_type(self) -> str:
        return self.trigger_context.type


class RunSend(BaseModel):
    """A manual run request whose answer may be lost: what tells the run it made from any other
    (the API has no idempotency key for runs).

    Taken by :meth:`~airflow_provider_managed_agents.hooks.managed_agents.ManagedAgentsHook.run_deployment`
    just before it sends: the run it makes is a manual run of ``deployment_id`` created in
    ``[sent_from, sent_until]`` and not among ``before``, the manual runs recorded by then. A
    run task keeps it in its journal, so that a retry finds that run too. JSON round-trips it.
    """

    model_config = ConfigDict(frozen=True)

    deployment_id: str
    sent_from: Timestamp
    sent_until: Timestamp
    before: tuple[str, ...] = ()

    def ended_at(self, moment: datetime, allowance: timedelta) -> RunSend:
        """This send, known to have ended (its call gave up) at ``moment``."""
        return self.model_copy(update={"sent_until": min(self.sent_until, moment + allowance)})
