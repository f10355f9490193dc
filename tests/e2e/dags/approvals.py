"""Test DAGs: a session that asks, answered by a person through Airflow's human-in-the-loop and by
custom tools' callables (``agent_tools``).

``approvals_<mode>``: a deployment, the emulator told how its session asks (``set_script`` takes
the script from the run's conf, standing in for an agent whose tools are ``always_ask``), and a
run operator that follows the session and answers it; in the worker or deferred.
``approvals_timeout``: nobody answers within ``approval_timeout``: the default (deny) applies.
``approvals_sensor``: the same session followed by a deferrable ``ManagedAgentsSessionSensor``.
``custom_tools_only``: nothing for a person, custom tools answered by Python (any Airflow 3).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pendulum
from airflow.sdk import DAG, Variable, task

from airflow_provider_managed_agents.compat import human_in_the_loop
from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)
from airflow_provider_managed_agents.sensors.sessions import ManagedAgentsSessionSensor

TOOLS = {"row_count": "agent_tools.row_count", "broken": "agent_tools.broken"}
START = pendulum.datetime(2026, 1, 1, tz="UTC")


@task
def set_script(deployment_id: str, dag_run: Any = None) -> None:
    url = f"{Variable.get('emulator_url')}/_emulator/deployments/{deployment_id}/session_script"
    script = {"turn_seconds": 1.0, **dag_run.conf["script"]}
    httpx.post(url, json=script, timeout=10).raise_for_status()


def deployment() -> ManagedAgentsCreateDeploymentOperator:
    return ManagedAgentsCreateDeploymentOperator(
        task_id="create", name="asks first", agent="agent_demo", environment_id="env_demo", message="Tidy the tables."
    )


if human_in_the_loop()[0] is not None:
    for mode in ("worker", "deferred"):
        with DAG(f"approvals_{mode}", schedule=None, start_date=START):
            create = deployment()
            run = ManagedAgentsRunDeploymentOperator(
                task_id="run",
                deployment_id=create.output,
                wait_for_session_end=True,
                deferrable=mode == "deferred",
                poll_interval=1,
                timeout=300,
                approve_tools_with="hitl",
                custom_tools=TOOLS,
            )
            create >> set_script(create.output) >> run

    with DAG("approvals_timeout", schedule=None, start_date=START):
        create = deployment()
        run = ManagedAgentsRunDeploymentOperator(
            task_id="run",
            deployment_id=create.output,
            wait_for_session_end=True,
            deferrable=True,
            poll_interval=1,
            approve_tools_with="hitl",
            approval_timeout=timedelta(seconds=5),  # then the default: deny
        )
        create >> set_script(create.output) >> run

    with DAG("approvals_sensor", schedule=None, start_date=START):
        create = deployment()
        start = ManagedAgentsRunDeploymentOperator(task_id="start", deployment_id=create.output)
        sense = ManagedAgentsSessionSensor(
            task_id="sense",
            session_id="{{ ti.xcom_pull(task_ids='start', key='session_id') }}",
            deferrable=True,
            poll_interval=1,
            timeout=300,
            approve_tools_with="hitl",
            on_kill_session="interrupt",
        )
        create >> set_script(create.output) >> start >> sense

with DAG("custom_tools_only", schedule=None, start_date=START):
    create = deployment()
    run = ManagedAgentsRunDeploymentOperator(
        task_id="run", deployment_id=create.output, wait_for_session_end=True, poll_interval=1, custom_tools=TOOLS
    )
    create >> set_script(create.output) >> run
