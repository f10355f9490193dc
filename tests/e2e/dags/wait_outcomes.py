"""Test DAGs: the same failed waits in poke, reschedule and deferrable modes.

``wait_outcomes_<mode>`` runs one sensor per case; every failure is recorded (class and message,
one JSON line per task) by the failure callback into the file named by the Variable
``outcomes_file``, so a test can compare the modes. Conf: ``deployment_id`` (never runs),
``failed_run_id`` (a run that failed with a run error), ``created_after``.
"""

from __future__ import annotations

import json

import pendulum
from airflow.sdk import DAG, Variable

from airflow_provider_managed_agents.sensors.deployment_runs import ManagedAgentsDeploymentRunSensor


def record(context: dict) -> None:
    exc = context.get("exception")
    line = {"mode": context["dag"].dag_id.rsplit("_", 1)[1], "task": context["ti"].task_id}
    line.update(kind=type(exc).__name__, message=str(exc))
    with open(Variable.get("outcomes_file"), "a") as out:
        out.write(json.dumps(line) + "\n")


for mode in ("poke", "reschedule", "deferrable"):
    with DAG(
        f"wait_outcomes_{mode}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        params={"deployment_id": "", "failed_run_id": "", "created_after": None},
        default_args={
            "on_failure_callback": record,
            "deferrable": mode == "deferrable",
            "mode": "reschedule" if mode == "reschedule" else "poke",
            "poll_interval": 1,
        },
    ):
        ManagedAgentsDeploymentRunSensor(task_id="run_error", deployment_run_id="{{ params.failed_run_id }}")
        ManagedAgentsDeploymentRunSensor(task_id="missing_run", deployment_run_id="drun_does_not_exist")
        ManagedAgentsDeploymentRunSensor(
            task_id="bad_argument", deployment_id="{{ params.deployment_id }}", trigger_type="cron"
        )
        ManagedAgentsDeploymentRunSensor(
            task_id="timeout",
            deployment_id="{{ params.deployment_id }}",
            trigger_type="manual",
            created_after="{{ params.created_after }}",
            timeout=4,
        )
