"""Test DAG: a deployment mounting a private repository, its token from an Airflow variable."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsArchiveDeploymentOperator,
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)

with DAG("private_repo", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    create = ManagedAgentsCreateDeploymentOperator(
        task_id="create",
        name="private repo review",
        agent="agent_demo",
        environment_id="env_demo",
        message="Review the open pull requests.",
        resources=[
            {
                "type": "github_repository",
                "url": "https://github.com/acme/private",
                "authorization_token": "{{ var.value.github_token }}",
                "checkout": {"type": "branch", "name": "main"},
            }
        ],
    )
    run = ManagedAgentsRunDeploymentOperator(task_id="run", deployment_id=create.output)
    archive = ManagedAgentsArchiveDeploymentOperator(task_id="archive", deployment_id=create.output)
    create >> run >> archive
