"""Test DAG: a burst of mapped run tasks on one deployment (``conf``: ``deployment_id``,
``count``), as a fan-out pipeline would start them all at once."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_provider_managed_agents.operators.deployments import ManagedAgentsRunDeploymentOperator


@dag(
    dag_id="mapped_burst",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"deployment_id": "", "count": 200},
)
def mapped_burst():
    @task
    def deployments(params=None) -> list[str]:
        return [params["deployment_id"]] * int(params["count"])

    ManagedAgentsRunDeploymentOperator.partial(task_id="run").expand(deployment_id=deployments())


mapped_burst()
