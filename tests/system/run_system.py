"""`make test-system`: the provider in a real Airflow 3, the way a user meets it.

Starts, in a temporary AIRFLOW_HOME on 127.0.0.1: the emulator, then Airflow's api-server,
scheduler, dag-processor and triggerer (LocalExecutor, SQLite). Through the REST API it unpauses
and triggers the example DAGs and a sensor DAG, and asserts every task's final state, that the
deferrable sensor really deferred to the triggerer, and what the operators put in XCom; a session
that asks is answered by a person through the REST API, or by the scheduler's response timeout
(``hitl_check.py``, with a screenshot of the request in the UI with ``--ui``). Two DAGs
scheduled on a per-minute deployment's runs (asset watchers) must start once per fire, through a
``kill -9`` of the triggerer and its restart, sharing one runs read per poll. A DAG fed by webhooks
(no watcher) starts once per fire through a ``kill -9`` of the api-server while the emulator
delivers, and 100 forged deliveries start nothing (``webhooks_check.py``). With
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
DEADLINE_SECONDS = 1200
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


def print_failed_task_logs(api: Api, home: Path, dag_id: str, run_id: str) -> None:
    """A failed DAG run's failed tasks, the tail of each try's log: what CI shows to explain a FAIL."""
    for task_id, state in api.task_states(dag_id, run_id).items():
        if state not in ("failed", "upstream_failed", "up_for_retry"):
            continue
        for log in sorted((home / "logs").glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/**/*.log")):
            lines = log.read_text(errors="replace").splitlines()
            print(f"  --- {task_id} ({state}): {log.relative_to(home)}, last 40 lines")
            for line in lines[-40:]:
                print(f"    {line}")


def deferred_to(api: Api, home: Path, dag_id: str, run_id: str, task_id: str) -> list[str]:
    """Wait until the task is deferred; the class paths of the triggers registered then."""
    wait_for(
        f"{dag_id}.{task_id} to defer",
        lambda: api.task_states(dag_id, run_id).get(task_id) == "deferred",
        180,
        every=0.5,
    )
    with sqlite3.connect(home / "airflow.db") as db:
        return [classpath for (classpath,) in db.execute("select classpath from trigger")]


def defer_exit_seen(home: Path, dag_id: str, task_id: str, run_id: str) -> bool:
    """Whether the scheduler has processed the executor's "success" of a task's exit on deferral.

    Airflow fails a deferred task whose trigger fires before that event is processed ("finished
    with state success, but the task instance's state attribute is queued": apache/airflow#66374,
    #72716, open for queued and running tasks in 3.3.2). Real triggers wait minutes; the system
    test's fire within seconds, so it lets the scheduler catch up first.
    """
    key = f"TaskInstanceKey(dag_id='{dag_id}', task_id='{task_id}', run_id='{run_id}'"
    log = (home / "scheduler.log").read_text(errors="replace")
    return any("Received executor event with state success" in line and key in line for line in log.splitlines())


def check(condition: bool, message: str, failures: list[str]) -> None:
    print(f"  {'ok ' if condition else 'FAIL'} {message}")
    if not condition:
        failures.append(message)


WATCHING_DAGS = {"react_to_agent_runs": "report", "watch_every_run": "record", "watch_failed_runs": "record"}
WATERMARK_KEY = "managed_agents_watermark"


def announced_by_dags(api: Api) -> dict[str, list[str]]:
    """The run ids each watching DAG's finished runs reported (one list entry per announcement)."""
    found: dict[str, list[str]] = {}
    for dag_id, task_id in WATCHING_DAGS.items():
        ids: list[str] = []
        for run in api.get(f"/dags/{dag_id}/dagRuns", limit=100)["dag_runs"]:
            if run["state"] != "success":
                continue
            value = api.xcom(dag_id, run["dag_run_id"], task_id)
            ids += [v["deployment_run_id"] if isinstance(v, dict) else v for v in value]
        found[dag_id] = ids
    return found


def watermarks(home: Path) -> dict[str, dict[str, Any]]:
    """The watchers' watermarks in Airflow's asset state store, by asset name."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "select a.name, s.value from asset_state_store s join asset a on a.id = s.asset_id where s.key = ?",
            (WATERMARK_KEY,),
        ).fetchall()
    return {name: json.loads(value) for name, value in rows}


def scheduled_runs(emulator: Any, deployment_id: str) -> list[dict[str, Any]]:
    runs = [r for r in emulator.state()["runs"] if r["deployment_id"] == deployment_id]
    return sorted(runs, key=lambda r: (r["created_at"], r["id"]))


def event_driven(
    api: Api,
    home: Path,
    env: dict[str, str],
    processes: dict[str, subprocess.Popen[bytes]],
    emulator: Any,
    deployment_id: str,
    failures: list[str],
) -> None:
    """Three DAGs on one per-minute deployment's runs: every run, scheduled runs, failed runs."""
    answering = {"react_to_agent_runs", "watch_every_run"}  # the failed-runs DAG only sees the failed fire

    def reported(run_id: str, dags: set[str] = answering) -> bool:
        found = announced_by_dags(api)
        return all(run_id in found[dag_id] for dag_id in dags)

    def recorded(run: dict[str, Any]) -> bool:
        """Saved in every watcher's watermark: announced, or examined and filtered out (at or
        behind the newest run the watcher passed)."""
        marks = watermarks(home)
        created = pendulum_ts(run["created_at"])

        def passed(mark: dict[str, Any]) -> bool:
            newest = mark.get("newest") or {}
            return run["id"] in mark.get("announced", {}) or (
                bool(newest) and pendulum_ts(newest["created_at"]) >= created
            )

        return len(marks) == len(WATCHING_DAGS) and all(passed(m) for m in marks.values())

    def fire_after(moment: float, *, other_than: str = "") -> dict[str, Any] | None:
        later = [r for r in scheduled_runs(emulator, deployment_id) if pendulum_ts(r["created_at"]) > moment]
        return next((r for r in later if r["id"] != other_than), None)

    first = wait_for(
        "a fire announced to the watching DAGs",
        lambda: next((r for r in scheduled_runs(emulator, deployment_id) if reported(r["id"])), None),
        200,
        every=2,
    )
    wait_for("the watchers to save that announcement", lambda: recorded(first), 60, every=1)
    killed_at = time.time()
    os.killpg(processes["triggerer"].pid, signal.SIGKILL)
    processes["triggerer"].wait(timeout=30)
    print(f"  triggerer killed (-9) after fire {first['id']} was announced and saved")
    missed = wait_for("a fire while no triggerer runs", lambda: fire_after(killed_at), 90, every=1)
    # The next fire fails (a typed error that does not auto-pause): the failed-runs DAG's one run.
    emulator.control("POST", f"deployments/{deployment_id}/next_run_error", {"type": "session_rate_limited_error"})
    log = (home / "triggerer-restarted.log").open("wb")
    processes["triggerer"] = subprocess.Popen(
        [str(BIN / "airflow"), "triggerer"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    print(f"  fire {missed['id']} came while it was down; triggerer restarted (pid {processes['triggerer'].pid})")
    wait_for("the fire made while down to be announced after the restart", lambda: reported(missed["id"]), 150, every=2)
    failed = wait_for("the failing fire", lambda: fire_after(killed_at, other_than=missed["id"]), 90, every=1)
    check(failed.get("error") is not None, f"fire {failed['id']} failed: {failed.get('error')}", failures)
    wait_for(
        "the failed fire announced (to all three DAGs) and saved",
        lambda: reported(failed["id"], set(WATCHING_DAGS)) and recorded(failed),
        120,
        every=2,
    )

    runs = scheduled_runs(emulator, deployment_id)
    ids = [r["id"] for r in runs]
    expected_all = ids[ids.index(first["id"]) : ids.index(failed["id"]) + 1]
    expected = {
        "react_to_agent_runs": expected_all,
        "watch_every_run": expected_all,
        "watch_failed_runs": [r["id"] for r in runs if r["id"] in expected_all and r.get("error")],
    }
    for dag_id, announced in announced_by_dags(api).items():
        window = [i for i in announced if i in expected_all]
        check(
            sorted(window) == sorted(expected[dag_id]),
            f"{dag_id}: {len(expected[dag_id])} matching fire(s) from {first['id']} to {failed['id']} started it "
            f"once each (announced {len(window)}; kill -9 of the triggerer between)",
            failures,
        )
        check(len(announced) == len(set(announced)), f"{dag_id}: no run announced twice", failures)

    # Three watchers (different filters, two paces) on one connection: one runs read per poll.
    emulator.control("DELETE", "requests")
    window_started = time.monotonic()
    time.sleep(30)
    seconds = time.monotonic() - window_started
    reads = emulator.request_counts()["by_endpoint"].get("GET /v1/deployment_runs", 0)
    per_poll = reads / (seconds / 5)
    check(
        per_poll <= 1.3,
        f"three watching DAGs cost {reads} runs reads in {seconds:.0f} s ({per_poll:.2f} per 5 s poll, not 2+)",
        failures,
    )


def pendulum_ts(value: str) -> float:
    import pendulum

    return float(pendulum.parse(value).timestamp())  # type: ignore[union-attr]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ui", action="store_true", help="also drive the web UI in headless Chromium")
    parser.add_argument(
        "--step-repeats", type=int, default=1, help="runs of agent_as_pipeline_step at once (a stress knob)"
    )
    parser.add_argument("--until", choices=["sessions", "events", "all"], default="all", help="stop after a step")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from airflow_provider_managed_agents.emulator.server import start_emulator_process

    started = time.monotonic()
    failures: list[str] = []
    home = Path(tempfile.mkdtemp(prefix="managed-agents-system-"))
    dags = home / "dags"
    shutil.copytree(REPO / "example_dags", dags)
    shutil.copy(REPO / "tests" / "e2e" / "dags" / "wait_for_run.py", dags / "wait_for_run.py")
    shutil.copy(REPO / "tests" / "system" / "dags" / "watch_more_runs.py", dags / "watch_more_runs.py")
    port = free_port()
    emulator = start_emulator_process(api_key="system-test-key")
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

    os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
    hook = ManagedAgentsHook()
    # The deployment the asset watchers watch: known when the DAG files are parsed, fires every minute.
    watched = hook.create_deployment(
        name="watched by two DAGs",
        agent="agent_demo",
        environment_id="env_demo",
        initial_events=[{"type": "user.message", "content": [{"type": "text", "text": "nightly review"}]}],
        schedule={"type": "cron", "expression": "* * * * *", "timezone": "UTC"},
    )
    from webhooks_check import WebhooksCheck  # type: ignore[import-not-found]

    pushed = WebhooksCheck(emulator, hook, port, home)  # a per-minute deployment pushed by webhooks
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
        "MANAGED_AGENTS_WATCHED_DEPLOYMENT_ID": watched.id,
        # A killed triggerer's watchers move to the new one after this many seconds without heartbeat.
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        **pushed.env(),
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
                    {"deployment_lifecycle", "wait_for_run_deferrable", "agent_as_pipeline_step"} | set(WATCHING_DAGS)
                    <= {d["dag_id"] for d in api.get("/dags", limit=100)["dags"]}
                ),
                180,
            )
            print("Airflow is up:", ", ".join(f"{name} pid {p.pid}" for name, p in processes.items()))
            for dag_id in WATCHING_DAGS:  # watchers run for unpaused DAGs: from now on, every fire
                api.client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

            # 1. The lifecycle example, scheduled by the real scheduler, run by LocalExecutor workers.
            run_id = api.trigger("deployment_lifecycle")
            state = wait_for_run(api, "deployment_lifecycle", run_id, 300)
            states = api.task_states("deployment_lifecycle", run_id)
            check(state == "success", f"deployment_lifecycle finished {state}: {states}", failures)
            if state != "success":
                print_failed_task_logs(api, home, "deployment_lifecycle", run_id)
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
            triggers = deferred_to(api, home, "wait_for_run_deferrable", sensor_run, "gate")
            check(
                any("ManagedAgentsDeploymentRunTrigger" in c for c in triggers),
                f"the trigger is registered with the triggerer ({len(triggers)} trigger row(s))",
                failures,
            )
            wait_for(
                "the scheduler to process the deferral's exit",
                lambda: defer_exit_seen(home, "wait_for_run_deferrable", "gate", sensor_run),
                120,
                every=0.5,
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
            # Sessions of 15 s: ending after the scheduler has taken in the deferral (see defer_exit_seen).
            emulator.control("POST", "sessions/default_script", {"turn_seconds": 15})
            extra_step_runs = [api.trigger("agent_as_pipeline_step") for _ in range(args.step_repeats - 1)]
            step_run = api.trigger("agent_as_pipeline_step")
            triggers = deferred_to(api, home, "agent_as_pipeline_step", step_run, "review_load")
            check(
                any("ManagedAgentsSessionTrigger" in c for c in triggers),
                "the session trigger runs in the triggerer",
                failures,
            )
            for extra in extra_step_runs:  # --step-repeats: the same DAG, concurrent runs
                extra_state = wait_for_run(api, "agent_as_pipeline_step", extra, 300)
                check(extra_state == "success", f"agent_as_pipeline_step {extra} finished {extra_state}", failures)
                if extra_state != "success":
                    print_failed_task_logs(api, home, "agent_as_pipeline_step", extra)
            state = wait_for_run(api, "agent_as_pipeline_step", step_run, 300)
            check(state == "success", f"agent_as_pipeline_step finished {state}", failures)
            if state != "success":
                print_failed_task_logs(api, home, "agent_as_pipeline_step", step_run)
                raise SystemExit(1)
            review = api.xcom("agent_as_pipeline_step", step_run, "publish_review")
            check(
                review.get("verdict") == "satisfied" and str(review.get("review", "")).startswith("Done:"),
                f"the downstream task got the agent's finished work: {review}",
                failures,
            )

            # 3b. When the agent asks: a person answers in Airflow's Required Actions (hitl_check.py).
            from hitl_check import check_hitl  # type: ignore[import-not-found]

            check_hitl(api, base, home, hook, emulator, ARTIFACTS if args.ui else None, failures, check)

            if args.until == "sessions":
                return 1 if failures else 0
            # 4. Event-driven: fires start the watching DAGs once each, through a triggerer kill -9.
            event_driven(api, home, env, processes, emulator, watched.id, failures)
            # 5. Pushed by webhooks: once per fire through an api-server kill -9; forgeries refused.
            pushed.run(api, env, processes, failures, check)

            if args.ui and args.until == "all":
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
