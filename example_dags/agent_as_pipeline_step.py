"""An agent as a pipeline step: the downstream task gets the agent's finished work, not just a
started session.

``extract`` stands for the upstream data work. The deployment asks the agent to review it and
defines an outcome (a rubric the agent's work is evaluated against, revised up to three times).
``review_load`` runs the deployment and waits, in the triggerer, for the session to end: it
succeeds only when the agent's turn ended normally and the outcome was ``satisfied``; any other
ending (the outcome not met, a refusal, the budget reached...) fails it with its own exception
class. ``publish_review`` then uses the agent's final message, the outcome's verdict and what it
cost, all from XCom. A teardown archives the deployment.

Runs unchanged against the local emulator (``make demo``) or the real API: the connection is
``managed_agents_default`` and the ids come from Airflow variables with the emulator's defaults.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import XComArg, dag, task

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsArchiveDeploymentOperator,
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)

AGENT_ID = "{{ var.value.get('managed_agents_agent_id', 'agent_demo') }}"
ENVIRONMENT_ID = "{{ var.value.get('managed_agents_environment_id', 'env_demo') }}"
RUBRIC = """A good review:
- states whether today's load can be published (yes or no, first line);
- names every rejected row count and why it matters;
- stays under 200 words."""


@dag(
    dag_id="agent_as_pipeline_step",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["managed-agents", "example"],
)
def agent_as_pipeline_step():
    @task
    def extract() -> dict[str, int]:
        # Stands for the real upstream work: load, transform, validate.
        return {"rows": 1200, "rejected": 3}

    reviewer = ManagedAgentsCreateDeploymentOperator(
        task_id="ensure_reviewer",
        name="Load reviewer ({{ run_id }})",
        agent=AGENT_ID,
        environment_id=ENVIRONMENT_ID,
        initial_events=[
            {
                "type": "user.message",
                "content": [{"type": "text", "text": "Review today's load: {{ ti.xcom_pull(task_ids='extract') }}"}],
            },
            {
                "type": "user.define_outcome",
                "description": "A publish / do-not-publish review of today's load",
                "rubric": {"type": "text", "content": RUBRIC},
                "max_iterations": 3,
            },
        ],
    )
    review = ManagedAgentsRunDeploymentOperator(
        task_id="review_load",
        deployment_id=reviewer.output,
        wait_for_session_end=True,
        deferrable=True,
        poll_interval=5,
        timeout=1800,
    )

    @task
    def publish_review(final_message: str, outcome: list[dict], usage: dict) -> dict:
        verdict = outcome[0]["result"] if outcome else "no outcome"
        cost = int((usage.get("list_cost") or {}).get("amount", "0")) / 100
        print(
            f"Outcome: {verdict} after {outcome[0]['iteration'] + 1 if outcome else 0} iteration(s); cost ${cost:.2f}"
        )
        print(f"The agent's review:\n{final_message}")
        return {"verdict": verdict, "review": final_message, "cost_usd": cost}

    archive = ManagedAgentsArchiveDeploymentOperator(task_id="archive", deployment_id=reviewer.output)

    published = publish_review(
        XComArg(review, key="final_message"), XComArg(review, key="outcome"), XComArg(review, key="usage")
    )
    extract() >> reviewer >> review >> published >> archive
    archive.as_teardown(setups=reviewer)


agent_as_pipeline_step()
