"""Two more DAGs watching the deployment of react_to_agent_runs.py, every run and the failed ones,
polling every 5 s: the three watchers share the runs reads of their connection (make
test-system counts them)."""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import dag, task

from airflow_provider_managed_agents.assets import deployment_runs_asset, run_details

WATCHED = os.environ.get("MANAGED_AGENTS_WATCHED_DEPLOYMENT_ID", "depl_set_me")
EVERY_RUN = deployment_runs_asset(WATCHED, poll_interval=5)
FAILED_RUNS = deployment_runs_asset(WATCHED, has_error=True, poll_interval=5)
START = pendulum.datetime(2026, 1, 1, tz="UTC")


def watching(dag_id: str, asset: Any) -> None:
    """A DAG scheduled on ``asset`` whose ``record`` task returns the run ids it was started for."""

    @dag(dag_id=dag_id, schedule=[asset], start_date=START, catchup=False)
    def watcher():
        @task
        def record(**context) -> list[str]:
            return [run_details(e)["deployment_run_id"] for e in context["triggering_asset_events"][asset]]

        record()

    watcher()


watching("watch_every_run", EVERY_RUN)
watching("watch_failed_runs", FAILED_RUNS)
