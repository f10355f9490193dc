"""Pydantic models of the Managed Agents Deployments API.

Submodules are imported on first attribute access, so that importing a light submodule
(``models.enums``) does not build every pydantic model.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AgentReference": "deployments",
    "Budget": "deployments",
    "Deployment": "deployments",
    "ErrorPausedReason": "deployments",
    "ManualPausedReason": "deployments",
    "Schedule": "deployments",
    "ScheduleSpec": "deployments",
    "DeploymentRun": "runs",
    "RunError": "runs",
    "ScheduleTriggerContext": "runs",
    "ManualTriggerContext": "runs",
    "RunErrorType": "enums",
    "TriggerType": "enums",
    "DeploymentStatus": "enums",
    "UserMessageEvent": "events",
    "DefineOutcomeEvent": "events",
    "SystemMessageEvent": "events",
    "TextBlock": "events",
    "GitHubRepositoryResource": "resources",
    "FileResource": "resources",
    "MemoryStoreResource": "resources",
    "CreateDeploymentParams": "params",
    "UpdateDeploymentParams": "params",
    "DeploymentListFilters": "params",
    "DeploymentRunListFilters": "params",
    "Page": "pages",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
