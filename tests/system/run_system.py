"""`make test-system`: the provider in a real Airflow 3, the way a user meets it.

Starts, in a temporary AIRFLOW_HOME on 127.0.0.1: the emulator, then Airflow's api-server,
scheduler, dag-processor and triggerer (LocalExecutor, SQLite). Through the REST API it unpauses
and triggers the example DAGs and a sensor DAG, and asserts every task's final state, that the
deferrable sensor really deferred to the triggerer, and what the operators put in XCom. With
``--ui`` it then drives headless Chromium (Debian's, through Playwright): log in, create a Managed
Agents connection in the form, press Test, open a finished run and follow the extra link;
screenshots go to tests/system/artifacts/. Everything it starts is stopped, bounded in time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BIN = Path(sys.executable).parent
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
DEADLINE_SECONDS = 600
PASSWORD = "system-test-password"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}" + (f": {last}" if last else ""))


@contextmanager
def airflow_services(home: Path, env: dict[str, str]) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for service in SERVICES:
            log = (home / f"{service}.log").open("wb")
            processes[service] = subprocess.Popen(
                [str(BIN / "airflow"), service],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for name, process in processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                print(f"  {name} needed SIGKILL")


class Api:
    def __init__(self, base: str):
        self.base = base
        token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30)
        token.raise_for_status()
        self.client = httpx.Client(
            base_url=f"{base}/api/v2", timeout=30, headers={"authorization": f"Bearer {token.json()['access_token']}"}
        )

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        response = self.client.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        data = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in data["task_instances"]}

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        data = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        return data["value"]


def wait_for_run(
    api: Api, dag_id: str, run_id: str, timeout: float, seen: Callable[[dict[str, str]], None] = lambda states: None
) -> str:
    def finished() -> str | None:
        seen(api.task_states(dag_id, run_id))
        state = api.run_state(dag_id, run_id)
        return state if state in ("success", "failed") else None

    return str(wait_for(f"{dag_id} {run_id}", finished, timeout, every=0.5))


def check(condition: bool, message: str, failures: list[str]) -> None:
    print(f"  {'ok ' if condition else 'FAIL'} {message}")
    if not condition:
        failures.append(message)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ui", action="store_true", help="also drive the web UI in headless Chromium")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from airflow_provider_managed_agents.emulator.server import start_emulator_process

    started = time.monotonic()
    failures: list[str] = []
    home = Path(tempfile.mkdtemp(prefix="managed-agents-system-"))
    dags = home / "dags"
    shutil.copytree(REPO / "example_dags", dags)
    shutil.copy(REPO / "tests" / "e2e" / "dags" / "wait_for_run.py", dags / "wait_for_run.py")
    port = free_port()
    emulator = start_emulator_process(api_key="system-test-key")
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT": json.dumps(
            {**json.loads(emulator.connection_json()), "extra": {"console_url": f"{emulator.base_url}/console"}}
        ),
        "AIRFLOW_VAR_MANAGED_AGENTS_AGENT_ID": "agent_demo",
        "AIRFLOW_VAR_MANAGED_AGENTS_ENVIRONMENT_ID": "env_demo",
    }
    print(f"AIRFLOW_HOME {home}; api-server on 127.0.0.1:{port}; emulator {emulator.base_url}")
    try:
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
        with airflow_services(home, env) as processes:
            base = f"http://127.0.0.1:{port}"
            wait_for(
                "the api-server", lambda: httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200, 180
            )
            api = Api(base)
            wait_for(
                "the example DAGs to be parsed",
                lambda: (
                    {"deployment_lifecycle", "wait_for_run_deferrable", "agent_as_pipeline_step"}
                    <= {d["dag_id"] for d in api.get("/dags", limit=100)["dags"]}
                ),
                180,
            )
            print("Airflow is up:", ", ".join(f"{name} pid {p.pid}" for name, p in processes.items()))

            # 1. The lifecycle example, scheduled by the real scheduler, run by LocalExecutor workers.
            run_id = api.trigger("deployment_lifecycle")
            state = wait_for_run(api, "deployment_lifecycle", run_id, 300)
            states = api.task_states("deployment_lifecycle", run_id)
            check(state == "success", f"deployment_lifecycle finished {state}: {states}", failures)
            check(set(states.values()) == {"success"}, "every task succeeded", failures)
            deployment_id = api.xcom("deployment_lifecycle", run_id, "create_deployment")
            session_id = api.xcom("deployment_lifecycle", run_id, "wait_for_session", "session_id")
            check(str(deployment_id).startswith("depl_"), f"create pushed the deployment id {deployment_id}", failures)
            check(str(session_id).startswith("sesn_"), f"the sensor pushed the session id {session_id}", failures)
            link = api.xcom("deployment_lifecycle", run_id, "create_deployment", "_link_ManagedAgentsDeploymentLink")
            check(
                link == f"{emulator.base_url}/console/workspaces/default/deployments/{deployment_id}",
                f"extra link stored: {link}",
                failures,
            )

            # 2. A sensor that must really wait: it defers to the triggerer until a run appears.
            from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

            os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
            hook = ManagedAgentsHook()
            deployment = hook.create_deployment(
                {
                    "agent": "agent_demo",
                    "environment_id": "env_demo",
                    "name": "system",
                    "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
                }
            )
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            sensor_run = api.trigger(
                "wait_for_run_deferrable",
                {"deployment_id": deployment.id, "trigger_type": "manual", "created_after": since},
            )
            wait_for(
                "the sensor to defer",
                lambda: api.task_states("wait_for_run_deferrable", sensor_run).get("gate") == "deferred",
                180,
                every=0.5,
            )
            with sqlite3.connect(home / "airflow.db") as db:
                triggers = db.execute("select classpath from trigger").fetchall()
            check(
                any("ManagedAgentsDeploymentRunTrigger" in c for (c,) in triggers),
                f"the trigger is registered with the triggerer ({len(triggers)} trigger row(s))",
                failures,
            )
            run = hook.run_deployment(deployment.id)
            state = wait_for_run(api, "wait_for_run_deferrable", sensor_run, 180)
            check(state == "success", f"wait_for_run_deferrable finished {state}", failures)
            check(
                api.xcom("wait_for_run_deferrable", sensor_run, "gate", "session_id") == run.session_id,
                "the triggerer's event carried the run's session",
                failures,
            )

            # 3. An agent as a pipeline step: the run's session followed to its end in the triggerer.
            step_run = api.trigger("agent_as_pipeline_step")
            wait_for(
                "the run task to defer to the session trigger",
                lambda: api.task_states("agent_as_pipeline_step", step_run).get("review_load") == "deferred",
                180,
                every=0.5,
            )
            with sqlite3.connect(home / "airflow.db") as db:
                triggers = db.execute("select classpath from trigger").fetchall()
            check(
                any("ManagedAgentsSessionTrigger" in c for (c,) in triggers),
                "the session trigger runs in the triggerer",
                failures,
            )
            state = wait_for_run(api, "agent_as_pipeline_step", step_run, 300)
            check(state == "success", f"agent_as_pipeline_step finished {state}", failures)
            review = api.xcom("agent_as_pipeline_step", step_run, "publish_review")
            check(
                review.get("verdict") == "satisfied" and str(review.get("review", "")).startswith("Done:"),
                f"the downstream task got the agent's finished work: {review}",
                failures,
            )

            if args.ui:
                from ui_check import check_ui  # type: ignore[import-not-found]

                check_ui(
                    base,
                    "admin",
                    PASSWORD,
                    emulator,
                    "deployment_lifecycle",
                    run_id,
                    str(deployment_id),
                    ARTIFACTS,
                    failures,
                    check,
                )
    finally:
        emulator.stop()
    leftovers = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True).stdout.split()
    check(not leftovers, f"no process left behind ({leftovers})", failures)
    print(f"\nsystem test: {len(failures)} failure(s) in {time.monotonic() - started:.0f}s")
    if not failures:
        shutil.rmtree(home, ignore_errors=True)
    else:
        print(f"logs kept in {home}")
    return 1 if failures else 0


if __name__ == "__main__":
    signal.alarm(DEADLINE_SECONDS)  # bounded in time, whatever hangs
    sys.exit(main())
