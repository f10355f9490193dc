"""System-test DAGs: a run task whose session asks a person (the deployment id comes with the DAG
run's conf; the system test tells the emulator what the session asks). ``approve_in_the_ui``
waits for an answer as long as it takes; ``approval_times_out`` gets none, and after
``approval_timeout`` the scheduler applies the request's default (deny)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_managed_agents.operators.deployments import ManagedAgentsRunDeploymentOperator

for dag_id, approval_timeout in (("approve_in_the_ui", None), ("approval_times_out", timedelta(seconds=20))):
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
        ManagedAgentsRunDeploymentOperator(
            task_id="clean_up",
            deployment_id="{{ dag_run.conf['deployment_id'] }}",
            wait_for_session_end=True,
            deferrable=True,
            poll_interval=2,
            timeout=600,
            approve_tools_with="hitl",
            approval_timeout=approval_timeout,
        )
