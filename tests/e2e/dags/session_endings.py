"""Test DAGs: every ending of a followed session, in the worker and deferred.

``session_endings_<mode>`` has one branch per ending: a deployment, the emulator told how its
session ends (``set_script``, standing in for the real agent's behaviour), and a run operator that
waits for the session's end. Every failure is recorded (task, class, message) by the failure
callback into the file named by the Variable ``outcomes_file``; ``after_<ending>`` receives the
final message, outcome and usage of the successful branches.
"""

from __future__ import annotations

import json

import httpx
import pendulum
from airflow.sdk import DAG, Variable, XComArg, task

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)

OUTCOME = {
    "type": "user.define_outcome",
    "description": "a review",
    "rubric": {"type": "text", "content": "Says yes or no."},
    "max_iterations": 3,
}
ENDINGS = {
    "success": ({"final_text": "All clear."}, True),
    "requires_action": ({"ending": "requires_action"}, False),
    "retries_exhausted": ({"ending": "retries_exhausted"}, False),
    "budget_reached": ({"ending": "budget_reached"}, False),
    "refusal": ({"ending": "refusal"}, False),
    "terminated": ({"ending": "terminated"}, False),
    "outcome_failed": ({"outcome_result": "failed", "iterations": 2}, True),
}


def record(context: dict) -> None:
    exc = context.get("exception")
    line = {"mode": context["dag"].dag_id.rsplit("_", 1)[1], "task": context["ti"].task_id}
    line.update(kind=type(exc).__name__, message=str(exc))
    with open(Variable.get("outcomes_file"), "a") as out:
        out.write(json.dumps(line) + "\n")


@task
def set_script(deployment_id: str, script: dict) -> None:
    url = f"{Variable.get('emulator_url')}/_emulator/deployments/{deployment_id}/session_script"
    httpx.post(url, json={**script, "turn_seconds": 1.0}, timeout=10).raise_for_status()


@task
def after(final_message: str, outcome: list, usage: dict) -> dict:
    return {"final_message": final_message, "outcome": outcome, "usage": usage}


for mode in ("worker", "deferred"):
    with DAG(f"session_endings_{mode}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        for ending, (script, with_outcome) in ENDINGS.items():
            message = {"type": "user.message", "content": [{"type": "text", "text": f"case {ending}"}]}
            create = ManagedAgentsCreateDeploymentOperator(
                task_id=f"create_{ending}",
                name=f"ending {ending}",
                agent="agent_demo",
                environment_id="env_demo",
                initial_events=[message, OUTCOME] if with_outcome else [message],
            )
            run = ManagedAgentsRunDeploymentOperator(
                task_id=f"run_{ending}",
                deployment_id=create.output,
                wait_for_session_end=True,
                deferrable=mode == "deferred",
                poll_interval=1,
                timeout=120,
                on_failure_callback=record,
            )
            create >> set_script.override(task_id=f"script_{ending}")(create.output, script) >> run
            after.override(task_id=f"after_{ending}")(
                XComArg(run, key="final_message"), XComArg(run, key="outcome"), XComArg(run, key="usage")
            )
