"""An agent that asks before it acts: a person approves its risky tool calls in Airflow, and
Python answers its custom tools.

The deployment asks the agent to clean up the warehouse's scratch tables. Its agent is
configured to ask before running a shell command (an ``always_ask`` permission policy on
``bash``) and has a custom tool, ``row_count``. ``clean_up`` runs the deployment and follows the
session in the triggerer; whenever the agent stops to ask:

- a ``row_count`` call is answered by ``warehouse_tools.row_count`` (a function beside this file;
  an exception would be sent to the agent as an error result);
- a tool call held for a confirmation becomes a request in Airflow's **Required Actions** (also
  on the task's page): the agent, the session, each call and its input, **Allow** or **Deny**,
  and a deny message for the agent. The task waits without a worker slot (``awaiting_input`` on
  Airflow 3.3, deferred on 3.1 and 3.2); after four hours without an answer, it is denied.

Then the session goes on, as many rounds as the agent asks; ``report`` prints who decided what
(XCom ``actions``) and the agent's final message. A task ended while the request waits (marked
failed, say) interrupts the session.

Needs Airflow >= 3.1 and, on 3.1 and 3.2, ``apache-airflow-providers-standard`` (Airflow's
human-in-the-loop): on older Airflow this file defines no DAG. Against the emulator (``make
demo``) the session is told to ask (``scripts/demo.py``) and the demo answers as the person.
Against the real API, set the Variable ``managed_agents_approval_agent_id`` to an agent whose
``bash`` asks (``always_ask``) and which declares the custom tool ``row_count`` (input ``table``).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import XComArg, dag, task

from airflow_provider_managed_agents.compat import human_in_the_loop
from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsArchiveDeploymentOperator,
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)

AGENT_ID = "{{ var.value.get('managed_agents_approval_agent_id', 'agent_demo') }}"
ENVIRONMENT_ID = "{{ var.value.get('managed_agents_environment_id', 'env_demo') }}"


@dag(
    dag_id="agent_with_approval",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["managed-agents", "example"],
)
def agent_with_approval():
    cleaner = ManagedAgentsCreateDeploymentOperator(
        task_id="ensure_cleaner",
        name="Warehouse cleaner ({{ run_id }})",
        agent=AGENT_ID,
        environment_id=ENVIRONMENT_ID,
        message="Drop the warehouse's empty scratch tables; count each table's rows first.",
    )
    clean_up = ManagedAgentsRunDeploymentOperator(
        task_id="clean_up",
        deployment_id=cleaner.output,
        wait_for_session_end=True,
        deferrable=True,
        poll_interval=5,
        timeout=3600,
        approve_tools_with="hitl",  # a person answers through Airflow's Required Actions
        approval_timeout=timedelta(hours=4),  # then approval_default: deny
        custom_tools={"row_count": "warehouse_tools.row_count"},
    )

    @task
    def report(actions: list[dict], final_message: str) -> list[dict]:
        for action in actions or []:
            print(
                f"round {action['round']}: {action['tool']} {action['input']} -> {action['decision']} by {action['by']}"
            )
        print(f"The agent's last word:\n{final_message}")
        return actions

    archive = ManagedAgentsArchiveDeploymentOperator(task_id="archive", deployment_id=cleaner.output)
    reported = report(XComArg(clean_up, key="actions"), XComArg(clean_up, key="final_message"))
    cleaner >> clean_up >> reported >> archive
    archive.as_teardown(setups=cleaner)


if human_in_the_loop()[0] is not None:  # Airflow >= 3.1 (see the docstring)
    agent_with_approval()
