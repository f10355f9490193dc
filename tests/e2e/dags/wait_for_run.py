"""Test DAGs: the deployment-run sensor in each mode, waiting for the run a test asks for.

``wait_for_run_<mode>`` with conf ``deployment_id``, ``trigger_type`` and ``created_after``; a
downstream task receives the session id, so a failing sensor leaves it ``upstream_failed``.
``gate_on_session_<mode>`` waits for the deployment's next run (a test fires its schedule) and
then for that run's session's end; the downstream task receives the agent's final message.
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

    with DAG(
        f"gate_on_session_{mode}",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        render_template_as_native_obj=True,
        params={"deployment_id": "", "created_after": None},
    ):
        gate = ManagedAgentsDeploymentRunSensor(
            task_id="gate",
            deployment_id="{{ params.deployment_id }}",
            created_after="{{ params.created_after }}",
            wait_for_session_end=True,
            deferrable=mode == "deferrable",
            mode="reschedule" if mode == "reschedule" else "poke",
            poll_interval=1,
            timeout=150,
        )

        @task
        def use_the_work(final_message: str) -> str:
            return final_message

        use_the_work(XComArg(gate, key="final_message"))
