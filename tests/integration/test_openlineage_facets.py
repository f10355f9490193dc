"""OpenLineage facets of the provider's tasks, built against the emulator as the listener builds
them: the session facet (valid for its shipped JSON schema), the resources as input datasets
named by OpenLineage's rules, the files the session wrote and the memory stores it could write as
outputs, no request at start, a deadline on the reads at the end, and nothing imported on the
DAG-parse path. (`tests/e2e/test_openlineage.py` runs DAGs with the listener itself.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.openlineage")

from openlineage.client.serde import Serde

from airflow_provider_managed_agents import openlineage as ol
from airflow_provider_managed_agents.exceptions import SessionRefusedError
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)
from airflow_provider_managed_agents.operators.session_files import ManagedAgentsSessionFilesOperator
from airflow_provider_managed_agents.sensors.sessions import ManagedAgentsSessionSensor
from airflow_provider_managed_agents.waiting.sessions import SessionWait, look

PACKAGE = Path(ol.__file__).resolve().parent
RESOURCES = [
    {
        "type": "github_repository",
        "url": "https://github.com/acme/warehouse.git",
        "authorization_token": "ghp_secret_never_in_lineage",
        "checkout": {"type": "branch", "name": "main"},
    },
    {"type": "file", "file_id": "file_schema", "mount_path": "/workspace/schema.sql"},
    {"type": "memory_store", "memory_store_id": "memstore_history", "access": "read_only"},
    {"type": "memory_store", "memory_store_id": "memstore_notes", "access": "read_write"},
]
MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "Review the load"}]}
OUTCOME = {
    "type": "user.define_outcome",
    "description": "a review",
    "rubric": {"type": "text", "content": "Says yes or no."},
}


def ended_run(hook: ManagedAgentsHook, emulator: Any, **script: Any) -> tuple[Any, Any, Any]:
    """A deployment with every kind of resource, run, its session played to its end: the
    deployment, the run and the session's verdict as a follow sees it."""
    deployment = hook.create_deployment(
        name="lineage",
        agent="agent_demo",
        environment_id="env_demo",
        initial_events=[MESSAGE, OUTCOME],
        resources=RESOURCES,
    )
    emulator.control("POST", f"deployments/{deployment.id}/session_script", script)
    run = hook.run_deployment(deployment.id)
    emulator.advance_clock(10)
    verdict = look(SessionWait(str(run.session_id)), hook, time_now())
    assert verdict.done
    return deployment, run, verdict


def time_now() -> Any:
    import pendulum

    return pendulum.now("UTC")


def as_ran(task: Any, run: Any, verdict: Any) -> Any:
    """The notes a run task takes while it runs (operators/runs.py, following.py)."""
    task._note_lineage(
        run=run.model_dump(mode="json"),
        deployment_id=run.deployment_id,
        deployment_run_id=run.id,
        session_id=run.session_id,
        session_end=verdict.facts.to_dict(),
    )
    task._note_error(verdict.error)
    return task


def names(datasets: list[Any]) -> set[tuple[str, str]]:
    return {(d.namespace, d.name) for d in datasets}


def schema_errors(facet: Any) -> list[str]:
    """The facet, serialized as the listener sends it, checked against the shipped schema (the
    OpenLineage base it extends resolved to its two required fields, offline)."""
    import jsonschema
    from referencing import Registry, Resource

    schema = json.loads((PACKAGE / ol.SCHEMA_FILE).read_text())
    base = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://openlineage.io/spec/2-0-2/OpenLineage.json",
        "$defs": {
            "RunFacet": {
                "type": "object",
                "properties": {"_producer": {"type": "string"}, "_schemaURL": {"type": "string"}},
                "required": ["_producer", "_schemaURL"],
            }
        },
    }
    registry = Registry().with_resource(base["$id"], Resource.from_contents(base))
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    document = {ol.FACET_KEY: json.loads(Serde.to_json(facet))}
    return [error.message for error in validator.iter_errors(document)]


def test_a_run_task_describes_the_session_and_what_it_read_and_wrote(hook: ManagedAgentsHook, emulator: Any) -> None:
    files = [{"filename": "report.md", "content": "Publish: yes\n"}, {"filename": "rows.csv", "size": 2048}]
    deployment, run, verdict = ended_run(hook, emulator, files=files)
    task = as_ran(ManagedAgentsRunDeploymentOperator(task_id="review", deployment_id=deployment.id), run, verdict)
    lineage = task.get_openlineage_facets_on_complete(None)

    api = emulator.base_url
    assert names(lineage.inputs) == {
        ("https://github.com", "acme/warehouse"),
        (api, "files/file_schema"),
        (api, "memory_stores/memstore_history"),
        (api, "memory_stores/memstore_notes"),
    }
    written = {f.filename: f for f in hook.list_files(scope_id=run.session_id)}
    assert names(lineage.outputs) == {(api, "memory_stores/memstore_notes")} | {
        (api, f"files/{f.id}") for f in written.values()
    }
    report = next(d for d in lineage.outputs if d.name == f"files/{written['report.md'].id}")
    assert report.outputFacets["outputStatistics"].size == written["report.md"].size_bytes
    assert "report.md" in report.facets["documentation"].description

    facet = lineage.run_facets[ol.FACET_KEY]
    assert (facet.deploymentId, facet.deploymentRunId, facet.sessionId) == (deployment.id, run.id, run.session_id)
    assert (facet.agentId, facet.agentVersion, facet.environmentId) == ("agent_demo", 1, "env_demo")
    assert (facet.sessionStatus, facet.stopReason, facet.outcomeResult) == ("idle", "end_turn", "satisfied")
    assert facet.usage["input_tokens"] == verdict.facts.usage["input_tokens"] and "list_cost" not in facet.usage
    assert facet.listCost == verdict.facts.usage["list_cost"]
    assert facet.sessionUrl.endswith(f"/sessions/{run.session_id}") and facet.error is None
    assert facet._schemaURL == ol.SCHEMA_URL
    assert schema_errors(facet) == []
    external = lineage.run_facets["externalQuery"]
    assert (external.externalQueryId, external.source) == (run.session_id, facet.sessionUrl)
    tags = {t.key: t.value for t in lineage.job_facets["tags"].tags}
    assert tags == {
        "deployment_id": deployment.id,
        "agent_id": "agent_demo",
        "agent_version": "1",
        "environment_id": "env_demo",
    }
    assert "ghp_secret" not in Serde.to_json(lineage.run_facets[ol.FACET_KEY]) + repr(lineage.inputs)


def test_a_failed_session_carries_its_typed_error(hook: ManagedAgentsHook, emulator: Any) -> None:
    deployment, run, verdict = ended_run(hook, emulator, ending="refusal")
    assert isinstance(verdict.error, SessionRefusedError)
    task = as_ran(ManagedAgentsRunDeploymentOperator(task_id="review", deployment_id=deployment.id), run, verdict)
    facet = task.get_openlineage_facets_on_failure(None).run_facets[ol.FACET_KEY]
    assert facet.error["exception"] == "SessionRefusedError" and facet.error["type"] == "refusal"
    assert "refused by the model" in facet.error["message"]
    assert facet.stopReason == "refusal" and schema_errors(facet) == []


def test_start_sends_nothing_and_knows_the_ids_its_arguments_name(hook: ManagedAgentsHook, emulator: Any) -> None:
    deployment, run, _ = ended_run(hook, emulator)
    before = emulator.request_counts()["total"]
    facet = ManagedAgentsRunDeploymentOperator(
        task_id="r", deployment_id=deployment.id
    ).get_openlineage_facets_on_start()
    assert facet.run_facets[ol.FACET_KEY].deploymentId == deployment.id and facet.inputs == []
    sensor = ManagedAgentsSessionSensor(task_id="s", session_id=str(run.session_id))
    assert sensor.get_openlineage_facets_on_start().run_facets["externalQuery"].externalQueryId == run.session_id
    create = ManagedAgentsCreateDeploymentOperator(task_id="c", name="n", agent="a", environment_id="e", message="m")
    assert create.get_openlineage_facets_on_start().run_facets == {}  # no id before it ran
    assert emulator.request_counts()["total"] == before


def test_a_deployment_task_needs_no_request(hook: ManagedAgentsHook, emulator: Any) -> None:
    deployment, _, _ = ended_run(hook, emulator)
    task = ManagedAgentsCreateDeploymentOperator(task_id="c", name="n", agent="a", environment_id="e", message="m")
    task._note_lineage(deployment_id=deployment.id, deployment=deployment.model_dump(mode="json"))
    before = emulator.request_counts()["total"]
    lineage = task.get_openlineage_facets_on_complete(None)
    assert emulator.request_counts()["total"] == before
    facet = lineage.run_facets[ol.FACET_KEY]
    assert (facet.deploymentId, facet.agentId, facet.environmentId) == (deployment.id, "agent_demo", "env_demo")
    assert ("https://github.com", "acme/warehouse") in names(lineage.inputs)


def test_a_files_task_reads_the_session_files_and_writes_objects(
    hook: ManagedAgentsHook, emulator: Any, tmp_path: Path
) -> None:
    task = ManagedAgentsSessionFilesOperator(task_id="deliver", session_id="sesn_1", destination=f"file://{tmp_path}/")
    delivered = [
        {"path": f"file://{tmp_path}/report.md", "file_id": "file_9", "filename": "report.md", "size_bytes": 12}
    ]
    task._note_lineage(session_id="sesn_1", delivered=delivered, destination=f"file://{tmp_path}")
    lineage = task.get_openlineage_facets_on_complete(None)
    assert names(lineage.inputs) == {(emulator.base_url, "files/file_9")}
    assert names(lineage.outputs) == {("file", f"{tmp_path}/report.md")}
    assert lineage.outputs[0].outputFacets["outputStatistics"].size == 12
    assert lineage.run_facets[ol.FACET_KEY].sessionId == "sesn_1"


def test_reads_at_the_end_end_before_the_listener_kills_them_and_keep_the_ids(
    hook: ManagedAgentsHook, emulator: Any
) -> None:
    deployment, run, verdict = ended_run(hook, emulator)
    # The session read hangs for 11 s: the listener would kill this child after 10 s.
    emulator.inject_faults(kinds=["latency"], latency_ms=11_000, endpoints=["GET /v1/sessions/{session_id}"])
    task = as_ran(ManagedAgentsRunDeploymentOperator(task_id="r", deployment_id=deployment.id), run, verdict)
    started = time.monotonic()
    lineage = task.get_openlineage_facets_on_complete(None)
    assert time.monotonic() - started < 10  # [openlineage] execution_timeout's default
    facet = lineage.run_facets[ol.FACET_KEY]
    assert (facet.deploymentId, facet.sessionId, facet.stopReason) == (deployment.id, run.session_id, "end_turn")
    assert lineage.inputs == [] and lineage.outputs == []  # what the reads would have added
    assert task.hook.bounded(timeout=ol.READ_TIMEOUT_SECONDS).settings.max_retries == 0


def test_a_connection_that_cannot_be_reached_leaves_the_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT",
        json.dumps({"conn_type": "managed_agents", "host": "http://127.0.0.1:9", "password": "k"}),
    )
    task = ManagedAgentsRunDeploymentOperator(task_id="r", deployment_id="depl_1")
    task._note_lineage(deployment_id="depl_1", session_id="sesn_1", deployment_run_id="drun_1")
    facet = task.get_openlineage_facets_on_complete(None).run_facets[ol.FACET_KEY]
    assert (facet.deploymentId, facet.sessionId, facet.deploymentRunId) == ("depl_1", "sesn_1", "drun_1")


def test_without_the_openlineage_packages_the_methods_return_none() -> None:
    # A fresh interpreter in which the OpenLineage client cannot be imported, as on an Airflow
    # without the provider (the matrix cells).
    code = (
        "import sys\n"
        "sys.modules['openlineage'] = None\n"
        "from airflow_provider_managed_agents.operators.deployments import ManagedAgentsRunDeploymentOperator\n"
        "task = ManagedAgentsRunDeploymentOperator(task_id='r', deployment_id='depl_1')\n"
        "print([task.get_openlineage_facets_on_start(), task.get_openlineage_facets_on_complete(None),"
        " task.get_openlineage_facets_on_failure(None)])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[None, None, None]"


def test_the_schema_url_names_the_shipped_schema() -> None:
    schema = json.loads((PACKAGE / ol.SCHEMA_FILE).read_text())
    assert f"{schema['$id']}#/$defs/ManagedAgentsSessionRunFacet" == ol.SCHEMA_URL
    assert schema["$id"].endswith(f"/v{ol.__version__}/airflow_provider_managed_agents/{ol.SCHEMA_FILE}")
    assert set(schema["properties"]) == {ol.FACET_KEY}


def test_the_dag_parse_path_imports_nothing_of_openlineage() -> None:
    modules = ["operators.deployments", "operators.session_files", "sensors.deployment_runs", "sensors.sessions"]
    ours = "airflow_provider_managed_agents"
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module('{ours}.' + name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith(('openlineage', '{ours}.openlineage'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]"
