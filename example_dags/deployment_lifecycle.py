"""A deployment's whole life: create it on a schedule, run it now, gate on the run, pause,
unpause, and archive it in a teardown that runs even when something upstream failed.

Runs unchanged against the local emulator or the real API: the connection is
``managed_agents_default`` and the ids come from Airflow variables (or ``AIRFLOW_VAR_*``
environment variables) with the emulator's defaults.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import XComArg, dag, task

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsArchiveDeploymentOperator,
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsPauseDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
    ManagedAgentsUnpauseDeploymentOperator,
)
from airflow_provider_managed_agents.sensors.deployment_runs import ManagedAgentsDeploymentRunSensor

AGENT_ID = "{{ var.value.get('managed_agents_agent_id', 'agent_demo') }}"
ENVIRONMENT_ID = "{{ var.value.get('managed_agents_environment_id', 'env_demo') }}"


@dag(
    dag_id="deployment_lifecycle",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["managed-agents", "example"],
)
def deployment_lifecycle():
    create = ManagedAgentsCreateDeploymentOperator(
        task_id="create_deployment",
        name="Weekly compliance scan ({{ run_id }})",
        agent=AGENT_ID,
        environment_id=ENVIRONMENT_ID,
        message="Run the weekly compliance scan and file a report.",
        schedule={"type": "cron", "expression": "0 20 * * 5", "timezone": "America/New_York"},
        metadata={"team": "data-platform"},
    )
    run_now = ManagedAgentsRunDeploymentOperator(task_id="run_now", deployment_id=create.output)
    gate = ManagedAgentsDeploymentRunSensor(
        task_id="wait_for_session",
        deployment_run_id=run_now.output,
        deferrable=True,
        poll_interval=5,
        timeout=300,
    )

    @task
    def report(session_id: str | None) -> str:
        print(f"The agent is working in session {session_id}")
        return str(session_id)

    pause = ManagedAgentsPauseDeploymentOperator(task_id="pause", deployment_id=create.output)
    unpause = ManagedAgentsUnpauseDeploymentOperator(task_id="unpause", deployment_id=create.output)
    archive = ManagedAgentsArchiveDeploymentOperator(task_id="archive", deployment_id=create.output)

    session = report(XComArg(gate, key="session_id"))
    create >> run_now >> gate >> session >> pause >> unpause >> archive
    archive.as_teardown(setups=create)


deployment_lifecycle()
