"""Response bodies as the API sends them, for the unit tests: one deployment and one run, each
test file overriding only the fields its assertions rely on."""

from __future__ import annotations

from typing import Any

NOW = "2026-05-01T12:00:00Z"


def deployment_json(**overrides: Any) -> dict[str, Any]:
    data = {
        "id": "depl_1",
        "type": "deployment",
        "name": "n",
        "description": None,
        "agent": {"type": "agent", "id": "agent_1", "version": 1},
        "environment_id": "env_1",
        "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
        "metadata": {},
        "resources": [],
        "vault_ids": [],
        "schedule": None,
        "status": "active",
        "paused_reason": None,
        "archived_at": None,
        "created_at": NOW,
        "updated_at": NOW,
    }
    data.update(overrides)
    return data


def run_json(**overrides: Any) -> dict[str, Any]:
    """A manual run that created its session, unless overridden."""
    data = {
        "id": "drun_1",
        "type": "deployment_run",
        "deployment_id": "depl_1",
        "agent": {"type": "agent", "id": "agent_1", "version": 1},
        "created_at": NOW,
        "session_id": "sesn_1",
        "error": None,
        "trigger_context": {"type": "manual"},
    }
    data.update(overrides)
    return data
