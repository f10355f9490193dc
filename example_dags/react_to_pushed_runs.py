"""Event-driven DAGs fed by the API's webhooks: push, not poll.

- ``react_to_pushed_runs`` is scheduled on a deployment's scheduled runs exactly as
  ``react_to_agent_runs`` is, but with ``delivery="webhook"``: no watcher polls the API; the
  webhook receiver on Airflow's api-server announces each run when the API's
  ``deployment_run.*`` webhook arrives (well under a second after the run), once, however often
  and in whatever order the deliveries come. The asset, its events and ``run_details`` are the
  same as the polled ones'.
- ``after_pushed_sessions_end`` is scheduled on the deployment's session endings
  (``deployment_sessions_ended_asset``): each time one of its sessions ends, the DAG runs once
  with the session's id, status, stop reason and usage.

Set up the receiver first (README: "Webhooks: push, not poll"): the package's plugin is loaded
by the api-server; a ``managed_agents_webhook_default`` connection holds the endpoint's signing
secret; the endpoint ``<[api] base_url>/managed-agents/webhooks/events`` is registered in the
Console for ``deployment_run.*`` and ``session.*`` events. The deployment's id is needed when the
file is parsed: set ``MANAGED_AGENTS_PUSHED_DEPLOYMENT_ID`` for the dag-processor.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task

from airflow_provider_managed_agents.assets import (
    deployment_runs_asset,
    deployment_sessions_ended_asset,
    run_details,
    triggering_events,
)

PUSHED_DEPLOYMENT_ID = os.environ.get("MANAGED_AGENTS_PUSHED_DEPLOYMENT_ID", "depl_set_me")
PUSHED_RUNS = deployment_runs_asset(PUSHED_DEPLOYMENT_ID, trigger_type="schedule", delivery="webhook")
SESSIONS_ENDED = deployment_sessions_ended_asset(PUSHED_DEPLOYMENT_ID)
START = pendulum.datetime(2026, 1, 1, tz="UTC")


@dag(dag_id="react_to_pushed_runs", schedule=[PUSHED_RUNS], start_date=START, catchup=False, tags=["managed-agents"])
def react_to_pushed_runs():
    @task
    def report(**context) -> list[dict]:
        reported = []
        for event in triggering_events(context, PUSHED_RUNS):
            run = run_details(event)
            if run["session_id"]:
                print(f"Run {run['deployment_run_id']} started session {run['session_id']}")
            else:
                print(f"Run {run['deployment_run_id']} failed: {run['error_type']}")
            reported.append({key: run[key] for key in ("deployment_run_id", "session_id", "error_type")})
        return reported

    report()


@dag(
    dag_id="after_pushed_sessions_end",
    schedule=[SESSIONS_ENDED],
    start_date=START,
    catchup=False,
    tags=["managed-agents"],
)
def after_pushed_sessions_end():
    @task
    def review(**context) -> list[dict]:
        ended = []
        for event in triggering_events(context, SESSIONS_ENDED):
            session = run_details(event)
            how = session["stop_reason"] or session["session_status"]
            verdict = "succeeded" if session["succeeded"] else f"failed ({session['error_type']})"
            print(f"Session {session['session_id']} ended ({how}): {verdict}")
            ended.append({key: session[key] for key in ("session_id", "stop_reason", "succeeded")})
        return ended

    review()


react_to_pushed_runs()
after_pushed_sessions_end()
