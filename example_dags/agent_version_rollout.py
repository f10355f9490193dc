"""Roll a new agent version out to a deployment, behind a smoke run, with a rollback.

The deployment is made once (its ``idempotency_key`` adopts it on later runs); the rollout pins it
to the agent version given in the DAG run's params (default: the agent's latest), makes a manual
smoke run and follows its session to the end. A smoke that fails (a run error, a session that
ends badly, the timeout) puts the deployment back on the exact pin it had and fails the task with
the smoke's own error; ``report`` then says which pin is live.

Trigger it with ``{"agent_version": 2}`` after publishing a version (the emulator: ``POST
/_emulator/agents/agent_demo/versions``); to see the rollback, script the next session to fail
first (``POST /_emulator/sessions/next_script {"ending": "refusal"}``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_managed_agents.operators.deployments import ManagedAgentsCreateDeploymentOperator
from airflow_provider_managed_agents.operators.rollout import ManagedAgentsRolloutDeploymentOperator

AGENT_ID = "{{ var.value.get('managed_agents_agent_id', 'agent_demo') }}"
ENVIRONMENT_ID = "{{ var.value.get('managed_agents_environment_id', 'env_demo') }}"


@dag(
    dag_id="agent_version_rollout",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,
    params={"agent_version": Param(None, type=["null", "integer"], minimum=1)},
    tags=["managed-agents", "example"],
)
def agent_version_rollout():
    deployment = ManagedAgentsCreateDeploymentOperator(
        task_id="support_triage",
        name="Support triage",
        idempotency_key="support-triage",
        agent={"type": "agent", "id": AGENT_ID, "version": 1},
        environment_id=ENVIRONMENT_ID,
        message="Triage the overnight support queue.",
        schedule={"type": "cron", "expression": "0 7 * * 1-5", "timezone": "UTC"},
    )
    rollout = ManagedAgentsRolloutDeploymentOperator(
        task_id="roll_out",
        deployment_id=deployment.output,
        agent={"type": "agent", "id": AGENT_ID, "version": "{{ params.agent_version }}"},
        poll_interval=5,
        timeout=600,
    )

    @task
    def report(ti=None) -> str:
        """Which pin is live. A teardown: it runs whatever the rollout did, and the DAG run still
        fails when the rollout failed."""
        rolled_back_to = ti.xcom_pull(task_ids="roll_out", key="rolled_back_to")
        if rolled_back_to:
            return f"smoke failed: still on version {rolled_back_to['version']}"
        pin = ti.xcom_pull(task_ids="roll_out", key="agent_pin")
        return f"live on version {pin['version']}" if pin else "nothing rolled out"

    rollout >> report().as_teardown()


agent_version_rollout()
