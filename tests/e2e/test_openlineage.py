"""OpenLineage from real DAG runs: `airflow dags test` with the OpenLineage provider's listener
and its file transport, against the emulator. The events are read back from the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.openlineage")

from airflow_provider_managed_agents.openlineage import FACET_KEY, INTEGRATION, SCHEMA_URL

pytestmark = pytest.mark.timeout(400)
NAMESPACE = "e2e-lineage"


def with_lineage(
    run_dag: Any, tmp_path: Path, dag_id: str, env: dict[str, str] | None = None, test_dags: bool = False
) -> tuple[Any, list]:
    """Run ``dag_id`` with OpenLineage on (file transport); the result and every event."""
    events = tmp_path / "events.jsonl"
    transport = {"type": "file", "log_file_path": str(events), "append": True}
    lineage_env = {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": NAMESPACE,
    }
    result = run_dag(dag_id, env={**lineage_env, **(env or {})}, test_dags=test_dags)
    return result, [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []


def of(events: list[dict[str, Any]], job: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["job"]["name"] == job and e["eventType"] == kind]


def test_a_run_emits_start_and_complete_with_ids_usage_and_outcome(
    run_dag: Any, managed_agents_emulator: Any, tmp_path: Path
) -> None:
    result, events = with_lineage(run_dag, tmp_path, "agent_as_pipeline_step")
    assert result.state == "success", result
    task = "agent_as_pipeline_step.review_load"
    starts, (complete,) = of(events, task, "START"), of(events, task, "COMPLETE")
    deployment_id = result.xcom[("ensure_reviewer", "return_value")]
    run_id, session_id = result.xcom[("review_load", "return_value")], result.xcom[("review_load", "session_id")]
    usage = result.xcom[("review_load", "usage")]

    # START (again when the deferred task resumes) knows the deployment it is about to run.
    assert starts and all(s["run"]["facets"][FACET_KEY]["deploymentId"] == deployment_id for s in starts)
    facet = complete["run"]["facets"][FACET_KEY]
    assert facet["_schemaURL"] == SCHEMA_URL
    assert (facet["deploymentId"], facet["deploymentRunId"], facet["sessionId"]) == (deployment_id, run_id, session_id)
    assert (facet["agentId"], facet["environmentId"], facet["triggerType"]) == ("agent_demo", "env_demo", "manual")
    assert (facet["stopReason"], facet["outcomeResult"]) == ("end_turn", "satisfied")
    assert facet["outcomes"][0]["result"] == "satisfied"
    assert facet["usage"]["input_tokens"] == usage["input_tokens"] > 0
    assert facet["listCost"] == usage["list_cost"]
    assert complete["run"]["facets"]["externalQuery"]["externalQueryId"] == session_id
    assert facet["sessionUrl"] == result.xcom[("review_load", "session_url")]

    # The session as its own job: integration and tags Airflow's adapter leaves alone there.
    session_job = f"{task}.agent_session"
    (session_start,), (session_end,) = of(events, session_job, "START"), of(events, session_job, "COMPLETE")
    assert session_start["run"]["runId"] == session_end["run"]["runId"]
    job_type = session_end["job"]["facets"]["jobType"]
    assert (job_type["integration"], job_type["jobType"]) == (INTEGRATION, "AGENT_SESSION")
    tags = {t["key"]: t["value"] for t in session_end["job"]["facets"]["tags"]["tags"]}
    assert tags == {
        "deployment_id": deployment_id,
        "agent_id": "agent_demo",
        "agent_version": "1",
        "environment_id": "env_demo",
    }
    parent = session_end["run"]["facets"]["parent"]
    assert (parent["job"]["namespace"], parent["job"]["name"]) == (NAMESPACE, task)
    assert parent["run"]["runId"] == complete["run"]["runId"]

    # The deployment tasks: the create knows the agent and environment it bound.
    (created,) = of(events, "agent_as_pipeline_step.ensure_reviewer", "COMPLETE")
    made = created["run"]["facets"][FACET_KEY]
    assert (made["deploymentId"], made["agentId"], made["environmentId"]) == (deployment_id, "agent_demo", "env_demo")
    (archived,) = of(events, "agent_as_pipeline_step.archive", "COMPLETE")
    assert archived["run"]["facets"][FACET_KEY]["deploymentId"] == deployment_id


def test_a_failing_session_fails_with_its_typed_error(
    run_dag: Any, managed_agents_emulator: Any, tmp_path: Path
) -> None:
    managed_agents_emulator.control("POST", "sessions/next_script", {"ending": "refusal"})
    result, events = with_lineage(run_dag, tmp_path, "agent_as_pipeline_step")
    assert result.task_states["review_load"] == "failed", result
    task = "agent_as_pipeline_step.review_load"
    (failed,) = of(events, task, "FAIL")
    assert of(events, task, "COMPLETE") == []
    facet = failed["run"]["facets"][FACET_KEY]
    assert facet["error"]["exception"] == "SessionRefusedError" and facet["error"]["type"] == "refusal"
    assert facet["sessionId"] == result.xcom[("review_load", "session_id")] and facet["stopReason"] == "refusal"
    assert "refused" in failed["run"]["facets"]["errorMessage"]["message"]  # Airflow's own, beside ours
    (session_failed,) = of(events, f"{task}.agent_session", "FAIL")
    assert session_failed["run"]["facets"][FACET_KEY]["error"]["exception"] == "SessionRefusedError"
    assert "refused" in session_failed["run"]["facets"]["errorMessage"]["message"]


def test_the_report_a_session_wrote_is_lineage_from_the_run_to_object_storage(
    run_dag: Any, managed_agents_emulator: Any, tmp_path: Path
) -> None:
    report = {"filename": "report.md", "content": "Publish: yes\n"}
    managed_agents_emulator.control("POST", "sessions/default_script", {"files": [report]})
    reports = tmp_path / "reports"
    result, events = with_lineage(
        run_dag,
        tmp_path,
        "agent_report_to_object_storage",
        env={"AIRFLOW_VAR_MANAGED_AGENTS_REPORTS_URL": f"file://{reports}"},
    )
    assert result.state == "success", result
    (file,) = result.xcom[("deliver_report", "files")]
    api = managed_agents_emulator.base_url
    (wrote,) = of(events, "agent_report_to_object_storage.write_report", "COMPLETE")
    assert [(o["namespace"], o["name"]) for o in wrote["outputs"]] == [(api, f"files/{file['file_id']}")]
    assert wrote["outputs"][0]["outputFacets"]["outputStatistics"]["size"] == len(report["content"])
    (delivered,) = of(events, "agent_report_to_object_storage.deliver_report", "COMPLETE")
    assert [(i["namespace"], i["name"]) for i in delivered["inputs"]] == [(api, f"files/{file['file_id']}")]
    assert [(o["namespace"], o["name"]) for o in delivered["outputs"]] == [
        ("file", file["path"].removeprefix("file://"))
    ]


def test_a_run_without_waiting_and_both_sensors(run_dag: Any, managed_agents_emulator: Any, tmp_path: Path) -> None:
    managed_agents_emulator.control("POST", "sessions/default_script", {"turn_seconds": 0.5})
    result, events = with_lineage(run_dag, tmp_path, "lineage_followers", test_dags=True)
    assert result.state == "success", result
    api = managed_agents_emulator.base_url
    run_id, session_id = result.xcom[("run", "return_value")], result.xcom[("run", "session_id")]
    read = {("https://github.com", "acme/warehouse"), (api, "memory_stores/memstore_history")}
    read.add((api, "memory_stores/memstore_notes"))

    (ran,) = of(events, "lineage_followers.run", "COMPLETE")
    facet = ran["run"]["facets"][FACET_KEY]
    assert (facet["deploymentRunId"], facet["sessionId"], facet["triggerType"]) == (run_id, session_id, "manual")
    assert "stopReason" not in facet and "usage" not in facet  # it did not wait for the end
    assert {(i["namespace"], i["name"]) for i in ran["inputs"]} == read
    assert [(o["namespace"], o["name"]) for o in ran["outputs"]] == [(api, "memory_stores/memstore_notes")]
    assert of(events, "lineage_followers.run.agent_session", "COMPLETE") == []

    session_runs = set()
    for sensor in ("wait_run", "wait_session"):
        (done,) = of(events, f"lineage_followers.{sensor}", "COMPLETE")
        facet = done["run"]["facets"][FACET_KEY]
        assert (facet["sessionId"], facet["stopReason"], facet["sessionStatus"]) == (session_id, "end_turn", "idle")
        assert facet["usage"]["output_tokens"] > 0 and facet["listCost"]["currency"] == "USD"
        assert {(i["namespace"], i["name"]) for i in done["inputs"]} == read
        (child,) = of(events, f"lineage_followers.{sensor}.agent_session", "COMPLETE")
        assert child["run"]["facets"]["parent"]["run"]["runId"] == done["run"]["runId"]
        session_runs.add(child["run"]["runId"])
    assert len(session_runs) == 2  # one child run per task that followed the session
    (by_run,) = of(events, "lineage_followers.wait_run", "COMPLETE")
    assert by_run["run"]["facets"][FACET_KEY]["deploymentRunId"] == run_id
