"""Trigger an agent after an upstream data task, and hand its session downstream.

``extract`` stands for any data task; the run starts only when it succeeded, its session id
goes to ``publish_session``, and a typed run error takes the ``handle_run_failure`` branch
while ``publish_session`` is skipped (upstream failed). A rate-limited run is retried by Airflow;
a terminal error (archived, not found, disabled, rejected) fails at once.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import XComArg, dag, task

try:  # Airflow >= 3.1
    from airflow.sdk import TriggerRule
except ImportError:  # Airflow 3.0
    from airflow.utils.trigger_rule import TriggerRule  # type: ignore[no-redef]

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsArchiveDeploymentOperator,
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)

AGENT_ID = "{{ var.value.get('managed_agents_agent_id', 'agent_demo') }}"
ENVIRONMENT_ID = "{{ var.value.get('managed_agents_environment_id', 'env_demo') }}"


@dag(
    dag_id="data_pipeline_trigger",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["managed-agents", "example"],
)
def data_pipeline_trigger():
    @task
    def extract() -> dict[str, int]:
        # Stands for the real upstream work: load, transform, validate.
        return {"rows": 1200, "rejected": 3}

    deployment = ManagedAgentsCreateDeploymentOperator(
        task_id="ensure_deployment",
        name="Data quality review ({{ run_id }})",
        agent=AGENT_ID,
        environment_id=ENVIRONMENT_ID,
        message="Review today's load: {{ ti.xcom_pull(task_ids='extract') }}",
    )
    run = ManagedAgentsRunDeploymentOperator(
        task_id="run_agent", deployment_id=deployment.output, retries=2, retry_delay=pendulum.duration(seconds=5)
    )

    @task
    def publish_session(session_id: str) -> str:
        print(f"Agent session for today's load: {session_id}")
        return session_id

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def handle_run_failure(**context) -> str:
        run = context["ti"].xcom_pull(task_ids="run_agent", key="deployment_run") or {}
        error = (run.get("error") or {}).get("type", "unknown")
        print(f"The agent could not start: {error}")
        return error

    cleanup = ManagedAgentsArchiveDeploymentOperator(task_id="archive", deployment_id=deployment.output)

    extracted = extract()
    extracted >> deployment >> run
    run >> [publish_session(XComArg(run, key="session_id")), handle_run_failure()] >> cleanup
    cleanup.as_teardown(setups=deployment)


data_pipeline_trigger()
