"""Test DAGs: the deployment-run sensor in each mode, waiting for the run a test asks for.

``wait_for_run_<mode>`` with conf ``deployment_id``, ``trigger_type`` and ``created_after``; a
downstream task receives the session id, so a failing sensor leaves it ``upstream_failed``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, XComArg, task

from airflow_provider_managed_agents.sensors.deployment_runs import ManagedAgentsDeploymentRunSensor

for mode in ("deferrable", "poke", "reschedule"):
    with DAG(
        f"wait_for_run_{mode}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        render_template_as_native_obj=True,
        params={"deployment_id": "", "trigger_type": None, "created_after": None},
    ):
        gate = ManagedAgentsDeploymentRunSensor(
            task_id="gate",
            deployment_id="{{ params.deployment_id }}",
            trigger_type="{{ params.trigger_type }}",
            created_after="{{ params.created_after }}",
            deferrable=mode == "deferrable",
            mode="reschedule" if mode == "reschedule" else "poke",
            poll_interval=1,
            timeout=150,
        )

        @task
        def after_gate(session_id: str) -> str:
            return session_id

        after_gate(XComArg(gate, key="session_id"))
