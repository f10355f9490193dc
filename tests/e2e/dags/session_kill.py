"""Test DAG: a run task following a long session in the worker, for a test to kill."""

from __future__ import annotations

import httpx
import pendulum
from airflow.sdk import DAG, Variable, task

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)


@task
def slow_session(deployment_id: str) -> None:
    url = f"{Variable.get('emulator_url')}/_emulator/deployments/{deployment_id}/session_script"
    httpx.post(url, json={"turn_seconds": 3600}, timeout=10).raise_for_status()


with DAG("session_kill", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    create = ManagedAgentsCreateDeploymentOperator(
        task_id="create", name="long job", agent="agent_demo", environment_id="env_demo", message="Take your time."
    )
    run = ManagedAgentsRunDeploymentOperator(
        task_id="run", deployment_id=create.output, wait_for_session_end=True, deferrable=False, poll_interval=1
    )
    create >> slow_session(create.output) >> run
