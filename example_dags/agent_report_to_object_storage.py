"""The agent's work as pipeline data: the agent writes a report file in its session, a task
delivers the session's files to object storage, and the next task reads the report from there.

``write_report`` runs the deployment and waits for the agent to finish; the agent writes
``report.md`` under ``/mnt/session/outputs/``. ``deliver_report`` streams the session's markdown
files to ``REPORTS`` (any ``ObjectStoragePath`` URL: ``file://`` here, ``s3://aws_default@bucket/...``
in production) and returns their paths; a re-run of the DAG for the same day finds the files
already there (same id, same size) and downloads none. ``read_report`` reads the report from
object storage, as any downstream task would. A teardown archives the deployment.

With the OpenLineage provider installed, the lineage reads: ``write_report`` wrote the file
``files/<id>`` (namespace: the API), ``deliver_report`` read it and wrote ``<folder>/report.md``.

Against the local emulator, the session's script plays the agent and must write the file:
``POST /_emulator/sessions/default_script {"files": [{"filename": "report.md", "content": "..."}]}``
(``make demo`` does it). The folder comes from the Variable ``managed_agents_reports_url``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsArchiveDeploymentOperator,
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)
from airflow_provider_managed_agents.operators.session_files import ManagedAgentsSessionFilesOperator

AGENT_ID = "{{ var.value.get('managed_agents_agent_id', 'agent_demo') }}"
ENVIRONMENT_ID = "{{ var.value.get('managed_agents_environment_id', 'env_demo') }}"
REPORTS = "{{ var.value.get('managed_agents_reports_url', 'file:///tmp/managed-agents-reports') }}/{{ ds }}/"


@dag(
    dag_id="agent_report_to_object_storage",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["managed-agents", "example"],
)
def agent_report_to_object_storage():
    reporter = ManagedAgentsCreateDeploymentOperator(
        task_id="create_reporter",
        name="Load report ({{ run_id }})",
        agent=AGENT_ID,
        environment_id=ENVIRONMENT_ID,
        message=(
            "Review today's warehouse load and write your report to /mnt/session/outputs/report.md "
            "(markdown; first line: 'Publish: yes' or 'Publish: no')."
        ),
    )
    write_report = ManagedAgentsRunDeploymentOperator(
        task_id="write_report",
        deployment_id=reporter.output,
        wait_for_session_end=True,
        deferrable=True,
        poll_interval=5,
        timeout=1800,
    )
    # session_id defaults to the upstream run task's `session_id` XCom.
    deliver = ManagedAgentsSessionFilesOperator(task_id="deliver_report", destination=REPORTS, filename_pattern="*.md")

    @task
    def read_report(paths: list[str]) -> dict:
        from airflow.sdk import ObjectStoragePath

        report = ObjectStoragePath(next(p for p in paths if p.endswith("/report.md")))
        text = report.read_text()
        verdict = text.splitlines()[0] if text else ""
        print(f"Read {report}: {verdict}")
        return {"path": str(report), "verdict": verdict, "size": len(text.encode())}

    archive = ManagedAgentsArchiveDeploymentOperator(task_id="archive", deployment_id=reporter.output)
    write_report >> deliver
    read_report(deliver.output) >> archive
    archive.as_teardown(setups=reporter)


agent_report_to_object_storage()
