"""Test DAG: a run that does not wait, and the two sensors following its session to its end,
for OpenLineage: a deployment with a repository and two memory stores (one writable)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, XComArg

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)
from airflow_provider_managed_agents.sensors.deployment_runs import ManagedAgentsDeploymentRunSensor
from airflow_provider_managed_agents.sensors.sessions import ManagedAgentsSessionSensor

RESOURCES = [
    {"type": "github_repository", "url": "https://github.com/acme/warehouse", "authorization_token": "ghp_x"},
    {"type": "memory_store", "memory_store_id": "memstore_history", "access": "read_only"},
    {"type": "memory_store", "memory_store_id": "memstore_notes", "access": "read_write"},
]

with DAG("lineage_followers", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    deployment = ManagedAgentsCreateDeploymentOperator(
        task_id="create",
        name="lineage",
        agent="agent_demo",
        environment_id="env_demo",
        message="Review the load.",
        resources=RESOURCES,
    )
    run = ManagedAgentsRunDeploymentOperator(task_id="run", deployment_id=deployment.output)
    by_run = ManagedAgentsDeploymentRunSensor(
        task_id="wait_run", deployment_run_id=run.output, wait_for_session_end=True, poll_interval=1, mode="poke"
    )
    by_session = ManagedAgentsSessionSensor(
        task_id="wait_session", session_id=XComArg(run, key="session_id"), poll_interval=1, deferrable=True
    )
    run >> [by_run, by_session]
