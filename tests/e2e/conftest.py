"""End-to-end: real DAGs run by `airflow dags test` in a subprocess, against the emulator."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
TEST_DAGS = Path(__file__).resolve().parent / "dags"


@dataclass
class DagResult:
    dag_id: str
    returncode: int
    output: str
    state: str | None
    task_states: dict[str, str]
    xcom: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __str__(self) -> str:  # shown by pytest when an assertion fails
        return f"{self.dag_id}: {self.state} {self.task_states}\n{self.output[-6000:]}"


def _airflow_home() -> Path:
    return Path(os.environ["AIRFLOW_HOME"])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every DAG test runs `airflow dags test` subprocesses: slow (see `make test-fast`)."""
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(here):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    home = _airflow_home()
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=True, capture_output=True, timeout=300)
    return home / "airflow.db"


def _read_run(db: Path, dag_id: str) -> tuple[str | None, dict[str, str], dict[tuple[str, str], Any]]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "select run_id, state from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
        ).fetchone()
        if row is None:
            return None, {}, {}
        run_id, state = row
        tasks = dict(
            conn.execute("select task_id, state from task_instance where dag_id = ? and run_id = ?", (dag_id, run_id))
        )
        xcom = {}
        for task_id, key, value in conn.execute(
            "select task_id, key, value from xcom where dag_id = ? and run_id = ?", (dag_id, run_id)
        ):
            xcom[(task_id, key)] = json.loads(value) if isinstance(value, (str, bytes)) else value
    return state, tasks, xcom


@pytest.fixture
def run_dag(airflow_db: Path, managed_agents_emulator: Any) -> Iterator[Any]:
    """Run one example DAG with `airflow dags test` against the test's emulator."""

    def run(
        dag_id: str,
        *,
        conf: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 240,
        test_dags: bool = False,
        logical_date: str | None = None,
        dags_folder: Path | None = None,
    ) -> DagResult:
        process_env = dict(os.environ)
        if test_dags or dags_folder is not None:
            process_env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder or TEST_DAGS)
        process_env.update(
            AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT=managed_agents_emulator.connection_json(),
            AIRFLOW_VAR_MANAGED_AGENTS_AGENT_ID="agent_demo",
            AIRFLOW_VAR_MANAGED_AGENTS_ENVIRONMENT_ID="env_demo",
            AIRFLOW_VAR_EMULATOR_URL=managed_agents_emulator.base_url,
        )
        process_env.update(env or {})
        cmd = [str(BIN / "airflow"), "dags", "test", dag_id]
        if logical_date:
            cmd.append(logical_date)
        if conf:
            cmd += ["-c", json.dumps(conf)]
        proc = subprocess.run(cmd, env=process_env, capture_output=True, text=True, timeout=timeout)
        state, tasks, xcom = _read_run(airflow_db, dag_id)
        return DagResult(dag_id, proc.returncode, proc.stdout + proc.stderr, state, tasks, xcom)

    yield run
