"""Test DAG: a retry must not adopt another task's run.

``create >> smoke (a run) >> update (new instructions) >> rate_limit_next >> real (retries=1)``:
``real``'s first try is answered with ``session_rate_limited_error``; its retry must start a new
run with the new instructions, not adopt ``smoke``'s. ``rate_limit_next`` stands for a busy
organisation (it asks the emulator to rate-limit the next run of the deployment).
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pendulum
from airflow.sdk import DAG, Variable, task

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
    ManagedAgentsUpdateDeploymentOperator,
)

with DAG("retry_adoption", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    create = ManagedAgentsCreateDeploymentOperator(
        task_id="create", name="retry adoption", agent="agent_demo", environment_id="env_demo", message="smoke"
    )
    smoke = ManagedAgentsRunDeploymentOperator(task_id="smoke", deployment_id=create.output)
    update = ManagedAgentsUpdateDeploymentOperator(task_id="update", deployment_id=create.output, message="real work")

    @task
    def rate_limit_next(deployment_id: str) -> None:
        url = f"{Variable.get('emulator_url')}/_emulator/deployments/{deployment_id}/next_run_error"
        httpx.post(url, json={"type": "session_rate_limited_error"}, timeout=10).raise_for_status()

    real = ManagedAgentsRunDeploymentOperator(
        task_id="real", deployment_id=create.output, retries=1, retry_delay=timedelta(seconds=0)
    )
    create >> smoke >> update >> rate_limit_next(create.output) >> real
