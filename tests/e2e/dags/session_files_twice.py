"""Test DAG: a session writes files (the test scripts them), one files task delivers them, a
second one, to the same destination, finds them there and downloads none; a third delivers only
the markdown, with its session id given explicitly. The destination comes from a Variable."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, XComArg

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)
from airflow_provider_managed_agents.operators.session_files import ManagedAgentsSessionFilesOperator

DESTINATION = "{{ var.value.session_files_url }}/{{ run_id | replace(':', '_') | replace('+', '_') }}/"

with DAG("session_files_twice", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    deployment = ManagedAgentsCreateDeploymentOperator(
        task_id="create", name="files", agent="agent_demo", environment_id="env_demo", message="Write the files."
    )
    run = ManagedAgentsRunDeploymentOperator(
        task_id="run", deployment_id=deployment.output, wait_for_session_end=True, poll_interval=1
    )
    first = ManagedAgentsSessionFilesOperator(task_id="deliver", destination=DESTINATION)
    again = ManagedAgentsSessionFilesOperator(task_id="deliver_again", destination=DESTINATION)
    markdown = ManagedAgentsSessionFilesOperator(
        task_id="deliver_markdown",
        session_id=XComArg(run, key="session_id"),
        destination=DESTINATION + "md/",
        filename_pattern="*.md",
    )
    run >> first >> again >> markdown
