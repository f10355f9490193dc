"""Test DAGs: the seams between a run task, its trigger and Airflow, each a DAG the issue found
broken.

- ``seam_links``: a deferred run that follows its session, and a run that does not wait; the
  extra links Airflow stores for each must be the URLs the tasks recorded.
- ``seam_give_up_<how>``: a run task that gives up on the session it started (its own
  ``timeout``, in the worker or deferred; Airflow's ``execution_timeout`` in the worker) must
  interrupt it.
- ``seam_vanished``: a deferred run whose session disappears while the trigger waits (the test
  resets the emulator) must fail with the API's typed error, not a ``KeyError``.

Each DAG takes its deployment from a ``create`` task and scripts how long its session runs.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pendulum
from airflow.sdk import DAG, Variable, task

from airflow_provider_managed_agents.operators.deployments import ManagedAgentsCreateDeploymentOperator
from airflow_provider_managed_agents.operators.runs import ManagedAgentsRunDeploymentOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")


@task
def set_script(deployment_id: str, turn_seconds: float) -> None:
    url = f"{Variable.get('emulator_url')}/_emulator/deployments/{deployment_id}/session_script"
    httpx.post(url, json={"turn_seconds": turn_seconds, "start_delay": 0.0}, timeout=10).raise_for_status()


def deployment(name: str, turn_seconds: float) -> tuple[ManagedAgentsCreateDeploymentOperator, object]:
    create = ManagedAgentsCreateDeploymentOperator(
        task_id=f"create_{name}", name=name, agent="agent_demo", environment_id="env_demo", message=f"case {name}"
    )
    scripted = set_script.override(task_id=f"script_{name}")(create.output, turn_seconds)
    create >> scripted
    return create, scripted


with DAG("seam_links", schedule=None, start_date=START):
    create, scripted = deployment("links", 2)
    followed = ManagedAgentsRunDeploymentOperator(
        task_id="followed",
        deployment_id=create.output,
        wait_for_session_end=True,
        deferrable=True,
        poll_interval=1,
        timeout=120,
    )
    started = ManagedAgentsRunDeploymentOperator(task_id="started", deployment_id=create.output)
    scripted >> followed >> started

GIVE_UP = {
    "timeout_worker": {"timeout": 15, "deferrable": False},
    "timeout_deferred": {"timeout": 15, "deferrable": True},
    "execution_timeout_worker": {"execution_timeout": timedelta(seconds=10), "deferrable": False},
}
for how, arguments in GIVE_UP.items():
    with DAG(f"seam_give_up_{how}", schedule=None, start_date=START):
        create, scripted = deployment(how, 90)
        scripted >> ManagedAgentsRunDeploymentOperator(
            task_id="run",
            deployment_id=create.output,
            wait_for_session_end=True,
            poll_interval=2,
            retries=0,
            **arguments,  # type: ignore[arg-type]
        )

with DAG("seam_vanished", schedule=None, start_date=START):
    create, scripted = deployment("vanished", 600)
    # The first look comes a poll after the run: time for the test to make the session vanish.
    scripted >> ManagedAgentsRunDeploymentOperator(
        task_id="run",
        deployment_id=create.output,
        wait_for_session_end=True,
        deferrable=True,
        poll_interval=20,
        timeout=180,
        retries=0,
    )
