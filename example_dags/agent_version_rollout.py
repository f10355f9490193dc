"""Environment provisioning: when a new agent version ships, move a deployment onto it.

Provisions a deployment, pins its agent to the version given in the DAG run's params, replaces
its vaults, and proves the change with a manual run gated by the sensor; a teardown archives it.
In production, point ``pin_new_agent_version`` at a long-lived deployment id instead.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsArchiveDeploymentOperator,
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
    ManagedAgentsUpdateDeploymentOperator,
)
from airflow_provider_managed_agents.sensors.deployment_runs import ManagedAgentsDeploymentRunSensor

AGENT_ID = "{{ var.value.get('managed_agents_agent_id', 'agent_demo') }}"
ENVIRONMENT_ID = "{{ var.value.get('managed_agents_environment_id', 'env_demo') }}"


@dag(
    dag_id="agent_version_rollout",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "agent_version": Param(1, type="integer", minimum=1),
        "vault_ids": Param([], type="array"),
    },
    tags=["managed-agents", "example"],
)
def agent_version_rollout():
    provision = ManagedAgentsCreateDeploymentOperator(
        task_id="provision_deployment",
        name="Support triage ({{ run_id }})",
        agent=AGENT_ID,
        environment_id=ENVIRONMENT_ID,
        message="Triage the overnight support queue.",
        schedule={"type": "cron", "expression": "0 7 * * 1-5", "timezone": "UTC"},
    )
    roll_out = ManagedAgentsUpdateDeploymentOperator(
        task_id="pin_new_agent_version",
        deployment_id=provision.output,
        agent={"type": "agent", "id": AGENT_ID, "version": "{{ params.agent_version }}"},
        vault_ids="{{ params.vault_ids }}",
        metadata={"rolled_out_by": "{{ dag.dag_id }}", "rolled_out_at": "{{ ts }}"},
    )
    smoke_run = ManagedAgentsRunDeploymentOperator(task_id="smoke_run", deployment_id=provision.output)
    smoke_gate = ManagedAgentsDeploymentRunSensor(
        task_id="wait_for_smoke_run", deployment_run_id=smoke_run.output, poll_interval=5, timeout=300
    )
    archive = ManagedAgentsArchiveDeploymentOperator(task_id="archive", deployment_id=provision.output)
    provision >> roll_out >> smoke_run >> smoke_gate >> archive
    archive.as_teardown(setups=provision)


agent_version_rollout()
