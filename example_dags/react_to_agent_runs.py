"""Event-driven pipelines around an agent, both ways round.

- ``react_to_agent_runs`` is scheduled on a deployment's scheduled runs: each time the agent's
  nightly (here: scheduled) run starts its session, or fails to, the triggerer's watcher
  announces it and this DAG runs once for it, printing the session id or the error. No sensor
  holds a worker slot; every watcher and deferred wait on a connection shares one runs read.
- ``run_agent_and_announce`` runs a deployment by hand with a ``managed-agents://`` outlet: the
  run operator attaches the deployment, run and session ids to the asset event, and
  ``after_agent_run``, scheduled on that asset, starts with them.

The watched deployment's id is needed when the DAG file is parsed (an asset is defined there):
set ``MANAGED_AGENTS_WATCHED_DEPLOYMENT_ID`` for the dag-processor and triggerer. Watchers run in
the triggerer, for unpaused DAGs only.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Asset, dag, task

from airflow_provider_managed_agents.assets import deployment_runs_asset, run_details, triggering_events
from airflow_provider_managed_agents.operators.deployments import ManagedAgentsRunDeploymentOperator

WATCHED_DEPLOYMENT_ID = os.environ.get("MANAGED_AGENTS_WATCHED_DEPLOYMENT_ID", "depl_set_me")
AGENT_RUNS = deployment_runs_asset(WATCHED_DEPLOYMENT_ID, trigger_type="schedule", poll_interval=30)
AGENT_RUN_DONE = Asset(name="agent_run_done", uri="managed-agents://examples/agent-run-done")
START = pendulum.datetime(2026, 1, 1, tz="UTC")


@dag(dag_id="react_to_agent_runs", schedule=[AGENT_RUNS], start_date=START, catchup=False, tags=["managed-agents"])
def react_to_agent_runs():
    @task
    def report(**context) -> list[dict]:
        reported = []
        for event in triggering_events(context, AGENT_RUNS):
            run = run_details(event)
            if run["session_id"]:
                print(f"Run {run['deployment_run_id']} started session {run['session_id']}")
            else:
                print(f"Run {run['deployment_run_id']} failed: {run['error_type']}")
            reported.append({key: run[key] for key in ("deployment_run_id", "session_id", "error_type")})
        return reported

    report()


@dag(dag_id="run_agent_and_announce", schedule=None, start_date=START, catchup=False, tags=["managed-agents"])
def run_agent_and_announce():
    ManagedAgentsRunDeploymentOperator(
        task_id="run_agent",
        deployment_id="{{ params.deployment_id }}",
        params={"deployment_id": WATCHED_DEPLOYMENT_ID},
        outlets=[AGENT_RUN_DONE],
    )


@dag(dag_id="after_agent_run", schedule=[AGENT_RUN_DONE], start_date=START, catchup=False, tags=["managed-agents"])
def after_agent_run():
    @task
    def use_the_session(**context) -> list[str]:
        sessions = [run_details(e)["session_id"] for e in triggering_events(context, AGENT_RUN_DONE)]
        print(f"The agent ran: sessions {sessions}")
        return sessions

    use_the_session()


react_to_agent_runs()
run_agent_and_announce()
after_agent_run()
