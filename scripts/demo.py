"""`make demo`: run the `deployment_lifecycle` and `agent_as_pipeline_step` example DAGs end to
end with `airflow dags test` (``--all``: every example DAG that runs offline; ``--dag``: one).
A DAG whose agent asks a person (``agent_with_approval``) runs beside an api-server, the demo
answering as the person; below Airflow 3.1 (no human-in-the-loop) it is skipped, saying why.

Against the local emulator by default (started and stopped here, seeded with an agent and an
environment). With ANTHROPIC_API_KEY, MANAGED_AGENTS_AGENT_ID and MANAGED_AGENTS_ENVIRONMENT_ID
set, the same DAG runs against the real API instead. Airflow's home is `.demo/airflow` (SQLite,
git-ignored). Prints a short summary and exits non-zero when anything failed.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from airflow_provider_managed_agents.emulator.server import EmulatorHandle, start_emulator_process

REPO = Path(__file__).resolve().parent.parent
DEMO_HOME = REPO / ".demo"
AIRFLOW_HOME = DEMO_HOME / "airflow"
DAG_IDS = ["deployment_lifecycle", "agent_as_pipeline_step"]
# Every example DAG `airflow dags test` can run against the emulator (the asset-scheduled ones
# run once with no triggering event); `make test-matrix` runs them all on every cell.
EXAMPLE_DAG_IDS = [
    *DAG_IDS,
    "data_pipeline_trigger",
    "agent_version_rollout",
    "provision_agent_environment",
    "run_agent_and_announce",
    "after_agent_run",
    "react_to_agent_runs",
    "react_to_pushed_runs",
    "after_pushed_sessions_end",
    "agent_report_to_object_storage",
    "agent_with_approval",
]
# What the emulator's agents write in their sessions (agent_report_to_object_storage reads it).
DEMO_REPORT = "Publish: yes\n\n1,200 rows loaded; 3 rejected as duplicates (rows 17, 212, 988).\n"
# Example DAGs whose agent asks a person (Airflow's human-in-the-loop, Airflow >= 3.1): the demo
# tells the emulator's session what to ask, starts an api-server and answers as the person. The
# task they wait on, and the session's script.
ASKING = {
    "agent_with_approval": (
        "clean_up",
        {
            "actions": [
                [{"custom_tool": "row_count", "input": {"table": "orders_tmp"}}],
                [{"tool": "bash", "input": {"command": "psql -c 'DROP TABLE orders_tmp'"}}],
            ],
            "final_text": "Dropped orders_tmp (0 rows); the other tables stay.",
        },
    )
}
BIN = Path(sys.executable).parent
DEMO_KEY = "demo-emulator-key"


def airflow_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(AIRFLOW_HOME),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    )
    env.update(extra)
    return env


def run(cmd: list[str], env: dict[str, str], log: Path | None = None) -> int:
    if log is None:
        return subprocess.run(cmd, env=env, check=False).returncode
    with log.open("w") as out:
        return subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode


def main() -> int:
    global DEMO_HOME, AIRFLOW_HOME
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=DEMO_HOME, help="where the demo's Airflow home and logs go")
    parser.add_argument("--dag", action="append", choices=EXAMPLE_DAG_IDS, help="only this DAG (repeatable)")
    parser.add_argument("--all", action="store_true", help="every example DAG that runs offline")
    args = parser.parse_args()
    DEMO_HOME, AIRFLOW_HOME = args.home.resolve(), args.home.resolve() / "airflow"
    dag_ids = args.dag or (EXAMPLE_DAG_IDS if args.all else DAG_IDS)
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    real_api = all(
        os.environ.get(k) for k in ("ANTHROPIC_API_KEY", "MANAGED_AGENTS_AGENT_ID", "MANAGED_AGENTS_ENVIRONMENT_ID")
    )
    emulator = None
    extra: dict[str, str] = {}
    if real_api:
        print("Running against the real API (ANTHROPIC_API_KEY is set)")
        extra["AIRFLOW_VAR_MANAGED_AGENTS_AGENT_ID"] = os.environ["MANAGED_AGENTS_AGENT_ID"]
        extra["AIRFLOW_VAR_MANAGED_AGENTS_ENVIRONMENT_ID"] = os.environ["MANAGED_AGENTS_ENVIRONMENT_ID"]
    else:
        print("Starting the Managed Agents emulator")
        emulator = start_emulator_process(
            api_key=DEMO_KEY, max_jitter=None, echo=lambda line: print(f"  emulator | {line}")
        )
        world = emulator.state()
        print(
            f"  seeded: agents {sorted(a['id'] for a in world.get('agents', []))}, "
            f"environments {sorted(e['id'] for e in world.get('environments', []))}"
        )
        extra["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
        extra["AIRFLOW_VAR_MANAGED_AGENTS_AGENT_ID"] = "agent_demo"
        extra["AIRFLOW_VAR_MANAGED_AGENTS_ENVIRONMENT_ID"] = "env_demo"
        extra["MANAGED_AGENTS_WATCHED_DEPLOYMENT_ID"] = watched_deployment(emulator)
        extra["MANAGED_AGENTS_PUSHED_DEPLOYMENT_ID"] = extra["MANAGED_AGENTS_WATCHED_DEPLOYMENT_ID"]
        emulator.control(
            "POST", "sessions/default_script", {"files": [{"filename": "report.md", "content": DEMO_REPORT}]}
        )
        extra["AIRFLOW_VAR_MANAGED_AGENTS_REPORTS_URL"] = f"file://{DEMO_HOME / 'reports'}"
        # The GitHub token provision_agent_environment puts in a vault (the emulator keeps a hash).
        extra["AIRFLOW_CONN_GITHUB_MCP_TOKEN"] = '{"conn_type": "generic", "password": "demo-github-token"}'
    env = airflow_env(extra)
    try:
        print(f"Preparing Airflow's metadata database in {shown(AIRFLOW_HOME)}")
        if run([str(BIN / "airflow"), "db", "migrate"], env, DEMO_HOME / "db-migrate.log") != 0:
            print(f"airflow db migrate failed; see {DEMO_HOME / 'db-migrate.log'}")
            return 1
        # 3.0's `dags test` reads the DAG from the database only.
        reserialize = [str(BIN / "airflow"), "dags", "reserialize"]
        if airflow_version() < (3, 1) and run(reserialize, env, DEMO_HOME / "dags-reserialize.log") != 0:
            print(f"airflow dags reserialize failed; see {DEMO_HOME / 'dags-reserialize.log'}")
            return 1
        codes = []
        for dag_id in dag_ids:
            log = DEMO_HOME / f"{dag_id}.log"
            if dag_id in ASKING:
                codes.append(run_asking(dag_id, env, log, emulator))
                continue
            print(f"\nRunning `airflow dags test {dag_id}` (log: {shown(log)})")
            started = time.monotonic()
            code = run([str(BIN / "airflow"), "dags", "test", dag_id], env, log)
            codes.append(summarize(dag_id, code, time.monotonic() - started))
        if emulator is not None:
            describe_world(emulator)
        ok = not any(codes)
        print("\nDemo succeeded." if ok else "\nDemo FAILED: see the logs above.")
        return 0 if ok else 1
    finally:
        if emulator is not None:
            emulator.stop()


def run_asking(dag_id: str, env: dict[str, str], log: Path, emulator: EmulatorHandle | None) -> int:
    """A DAG whose agent asks a person: `airflow dags test` beside an api-server, the demo
    answering every request with Allow. Airflow 3.3 parks the task and `dags test` resumes it;
    3.1 and 3.2 defer it to HITLTrigger, which needs a triggerer, so the task runs through the
    executor (`--use-executor`). Below 3.1 it is skipped (the DAG file defines no DAG there)."""
    from required_actions import api_server, executor_took_the_deferral, free_port, parked, stop

    from airflow_provider_managed_agents.compat import human_in_the_loop

    mode, missing = human_in_the_loop()
    if mode is None:
        print(f"\nSkipping {dag_id}: {missing}; its file defines no DAG on this Airflow")
        return 0
    if mode == "trigger" and airflow_version() < (3, 2):
        # Airflow 3.1's `dags test --use-executor` fails a task whose trigger fires before the
        # executor's report of the deferral is taken ("finished with state success, but the task
        # instance's state attribute is scheduled"): this DAG's fast triggers lose that race at
        # random there (3.2 takes the report first). HITLTrigger on 3.1 is in the unit and
        # integration tests of every cell.
        print(f"\nSkipping {dag_id}: `airflow dags test --use-executor` on Airflow 3.1 races fast triggers")
        return 0
    task_id, script = ASKING[dag_id]
    if emulator is not None:
        emulator.control("POST", "sessions/next_script", script)
    with api_server(env, log=DEMO_HOME / "api-server.log") as person:
        command = [str(BIN / "airflow"), "dags", "test", dag_id]
        triggerer = None
        if mode == "trigger":
            command.insert(3, "--use-executor")
            out = (DEMO_HOME / "triggerer.log").open("ab")
            # Its log server on a port of its own: another matrix cell may run a triggerer too.
            log_port = {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
            triggerer = subprocess.Popen(
                [str(BIN / "airflow"), "triggerer"],
                env={**person.env, **log_port},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        print(f"\nRunning `{' '.join(command[1:])}`, answering as the person at {person.base_url} (log: {shown(log)})")
        started = time.monotonic()
        with log.open("w") as out_log:
            process = subprocess.Popen(command, env=person.env, stdout=out_log, stderr=subprocess.STDOUT)
            try:
                answered = 0
                while process.poll() is None:
                    # Answer once `dags test` is done with the task's last state, as a person's pace
                    # always allows: without an executor it writes a parked task's state once more
                    # (answer after that); with one, it must first take the deferral's end.
                    if triggerer is not None or parked(log, task_id, answered + 1)():
                        for request in person.pending(dag_id):
                            if request["task_instance"]["task_id"] != task_id:
                                continue
                            if triggerer is None or executor_took_the_deferral(log, request):
                                person.answer(request, "Allow")
                                answered += 1
                                print(f"  answered Allow: {request['subject']}")
                    time.sleep(1)
            finally:
                if process.poll() is None:
                    process.kill()
                if triggerer is not None:
                    stop(triggerer)
    return summarize(dag_id, process.returncode, time.monotonic() - started)


def watched_deployment(emulator: EmulatorHandle) -> str:
    """A deployment for the event-driven examples (they need its id when the file is parsed)."""
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

    os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
    hook = ManagedAgentsHook()
    made = hook.create_deployment(
        name="watched by the examples", agent="agent_demo", environment_id="env_demo", initial_events=[NIGHTLY]
    )
    hook.close()
    return made.id


NIGHTLY = {"type": "user.message", "content": [{"type": "text", "text": "Nightly review."}]}


def airflow_version() -> tuple[int, int]:
    from importlib.metadata import version

    major, minor = version("apache-airflow-core").split(".")[:2]
    return int(major), int(minor)


def shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def task_states(dag_id: str) -> tuple[str | None, dict[str, str]]:
    """The last run of the DAG and its tasks' states, from the demo's SQLite metadata database."""
    with sqlite3.connect(AIRFLOW_HOME / "airflow.db") as db:
        row = db.execute(
            "select run_id, state from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
        ).fetchone()
        if row is None:
            return None, {}
        tasks = db.execute(
            "select task_id, state from task_instance where dag_id = ? and run_id = ? order by start_date",
            (dag_id, row[0]),
        ).fetchall()
    return row[1], dict(tasks)


def summarize(dag_id: str, code: int, elapsed: float) -> int:
    dag_state, states = task_states(dag_id)
    dag_state = dag_state or ("success" if code == 0 else "failed")
    print(f"DAG {dag_id}: {dag_state} in {elapsed:.1f}s (airflow dags test exit code {code})")
    for task_id, state in states.items():
        print(f"  {task_id:<20} {state}")
    return 0 if code == 0 and dag_state == "success" else 1


def describe_world(emulator: EmulatorHandle) -> None:
    world = emulator.state()
    print("\nThe emulator's world afterwards:")
    for deployment in world.get("deployments", []):
        state = "archived" if deployment.get("archived_at") else deployment["status"]
        print(f"  deployment {deployment['id']} {deployment['name']!r}: {state}")
    for run_record in world.get("runs", []):
        outcome = run_record.get("session_id") or (run_record.get("error") or {}).get("type")
        print(f"  run {run_record['id']} ({run_record['trigger_context']['type']}): {outcome}")
    for session in world.get("sessions", []):
        stop = next((e["stop_reason"]["type"] for e in reversed(session["events"]) if "stop_reason" in e), None)
        results = ", ".join(o["result"] for o in session["outcome_evaluations"]) or "no outcome"
        print(f"  session {session['id']}: {session['status']} ({stop}); outcome {results}")


if __name__ == "__main__":
    sys.exit(main())
