"""Response models: the seed examples verbatim, round trips, and forward compatibility."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import api_samples
import pytest

from airflow_provider_managed_agents.models.deployments import Deployment, ErrorPausedReason
from airflow_provider_managed_agents.models.enums import RunErrorType
from airflow_provider_managed_agents.models.events import UnknownObject
from airflow_provider_managed_agents.models.pages import Page
from airflow_provider_managed_agents.models.runs import DeploymentRun, ManualTriggerContext, ScheduleTriggerContext

SEEDS = json.loads((Path(__file__).parent / "data" / "seed_examples.json").read_text())


def seeds_of(kind: str) -> list[dict[str, Any]]:
    return [e["json"] for e in SEEDS if e["json"].get("type") == kind and "created_at" in e["json"]]


@pytest.mark.parametrize("example", seeds_of("deployment"))
def test_seed_deployments_parse_and_round_trip(example: dict[str, Any]) -> None:
    deployment = Deployment.model_validate(example)
    assert deployment.id == example["id"]
    assert isinstance(deployment.created_at, datetime) and deployment.created_at.tzinfo is not None
    again = Deployment.model_validate(json.loads(deployment.model_dump_json()))
    assert again == deployment


@pytest.mark.parametrize("example", seeds_of("deployment_run"))
def test_seed_runs_parse_and_round_trip(example: dict[str, Any]) -> None:
    run = DeploymentRun.model_validate(example)
    assert run.trigger_type == example["trigger_context"]["type"]
    if run.error is not None:
        assert run.error.known_type in set(RunErrorType)
    assert DeploymentRun.model_validate(json.loads(run.model_dump_json())) == run


def test_seed_page_parses() -> None:
    (page,) = [e["json"] for e in SEEDS if "data" in e["json"]]
    parsed = Page[Deployment].model_validate(page)
    assert len(parsed.data) == len(page["data"])


def run_json(**overrides: Any) -> dict[str, Any]:
    """A scheduled run that failed."""
    failed = {
        "agent": {"type": "agent", "id": "agent_1", "version": 3},
        "created_at": "2026-05-09T00:00:07Z",
        "session_id": None,
        "error": {"type": "vault_not_found_error", "message": "gone"},
        "trigger_context": {"type": "schedule", "scheduled_at": "2026-05-09T00:00:00Z"},
    }
    return api_samples.run_json(**{**failed, **overrides})


def test_trigger_contexts_are_discriminated() -> None:
    assert isinstance(DeploymentRun.model_validate(run_json()).trigger_context, ScheduleTriggerContext)
    manual = DeploymentRun.model_validate(run_json(trigger_context={"type": "manual"}))
    assert isinstance(manual.trigger_context, ManualTriggerContext)


def test_unknown_run_error_type_keeps_its_name_and_falls_back() -> None:
    run = DeploymentRun.model_validate(run_json(error={"type": "galaxy_brain_error", "message": "new"}))
    assert run.error is not None
    assert run.error.type == "galaxy_brain_error"
    assert run.error.known_type is RunErrorType.UNKNOWN


def test_unknown_trigger_type_and_extra_fields_survive() -> None:
    data = run_json(trigger_context={"type": "webhook", "source": "x"}, brand_new_field={"a": 1})
    run = DeploymentRun.model_validate(data)
    assert run.trigger_type == "webhook"
    dumped = json.loads(run.model_dump_json())
    assert dumped["trigger_context"] == {"type": "webhook", "source": "x"}
    assert dumped["brand_new_field"] == {"a": 1}


def deployment_json(**overrides: Any) -> dict[str, Any]:
    created = {"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
    return api_samples.deployment_json(**{**created, **overrides})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("resources", [{"type": "s3_bucket", "bucket": "b"}]),
        ("initial_events", [{"type": "user.poll", "question": "?"}]),
        ("initial_events", [{"type": "user.message", "content": [{"type": "audio", "url": "u"}]}]),
    ],
)
def test_unknown_variants_parse_and_round_trip(field: str, value: list[dict[str, Any]]) -> None:
    deployment = Deployment.model_validate(deployment_json(**{field: value}))
    assert json.loads(deployment.model_dump_json())[field] == value


def test_unknown_paused_reason_and_auto_pause() -> None:
    odd = Deployment.model_validate(deployment_json(status="paused", paused_reason={"type": "billing"}))
    assert odd.is_paused and odd.paused_reason is not None and odd.paused_reason.type == "billing"
    auto = Deployment.model_validate(
        deployment_json(status="paused", paused_reason={"type": "error", "error": {"type": "skill_not_found_error"}})
    )
    assert isinstance(auto.paused_reason, ErrorPausedReason)
    assert auto.paused_reason.error.type == "skill_not_found_error"


def test_archived_is_told_by_archived_at_not_status() -> None:
    archived = Deployment.model_validate(deployment_json(archived_at="2026-02-01T00:00:00Z"))
    assert archived.status == "active" and archived.is_archived


def test_unknown_content_block_is_kept_as_unknown_object() -> None:
    deployment = Deployment.model_validate(
        deployment_json(initial_events=[{"type": "user.message", "content": [{"type": "hologram"}]}])
    )
    block = deployment.initial_events[0].content[0]  # type: ignore[union-attr]
    assert isinstance(block, UnknownObject) and block.type == "hologram"
