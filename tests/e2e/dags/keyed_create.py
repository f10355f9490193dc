"""Test DAG: a create with an explicit idempotency key, run twice for the same date, makes one
deployment (the second run adopts it)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_managed_agents.operators.deployments import ManagedAgentsCreateDeploymentOperator

with DAG("keyed_create", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    ManagedAgentsCreateDeploymentOperator(
        task_id="create",
        name="nightly {{ ds }}",
        agent="agent_demo",
        environment_id="env_demo",
        message="Review {{ ds }}.",
        idempotency_key="nightly-{{ ds }}",
    )
