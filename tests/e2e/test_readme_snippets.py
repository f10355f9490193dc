"""Every Python snippet in README.md runs as written, against the emulator: DAGs with
`airflow dags test` (every task must succeed), tests with pytest, anything else as a script; and
the connection commands make the connection the operators use."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Snippet:
    line: int
    language: str
    code: str

    def __str__(self) -> str:
        return f"README.md:{self.line}"


def snippets(language: str) -> list[Snippet]:
    found, lines = [], README.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = re.fullmatch(r"```(\w+)", lines[i])
        if opening:
            end = lines.index("```", i + 1)
            if opening.group(1) == language:
                found.append(Snippet(i + 1, language, "\n".join(lines[i + 1 : end]) + "\n"))
            i = end
        i += 1
    return found


def dag_ids(code: str) -> list[str]:
    return re.findall(r"^@dag\([^\n]*\)\ndef (\w+)\(", code, flags=re.MULTILINE)


PYTHON = snippets("python")


def test_the_readme_has_the_snippets_this_test_runs() -> None:
    kinds = [("dag" if dag_ids(s.code) else "test" if "def test_" in s.code else "script") for s in PYTHON]
    assert kinds.count("dag") >= 3 and "test" in kinds, kinds


@pytest.mark.parametrize("snippet", PYTHON, ids=str)
def test_each_python_snippet_runs_as_written(
    snippet: Snippet, run_dag: Any, managed_agents_emulator: Any, tmp_path: Path
) -> None:
    env = {**os.environ, "AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT": managed_agents_emulator.connection_json()}
    ids = dag_ids(snippet.code)
    if ids:
        dags = tmp_path / "dags"
        dags.mkdir()
        (dags / "readme_snippet.py").write_text(snippet.code)
        # The connection the provisioning snippet's credential names (a secrets backend's job in production).
        token = {"AIRFLOW_CONN_GITHUB_MCP_TOKEN": json.dumps({"conn_type": "generic", "password": "ghp_readme"})}
        for dag_id in ids:
            result = run_dag(dag_id, dags_folder=dags, env=token)
            assert result.returncode == 0 and result.state == "success", result
            assert result.task_states and set(result.task_states.values()) == {"success"}, result
    elif "def test_" in snippet.code:
        (tmp_path / "test_readme_snippet.py").write_text(snippet.code)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0 and " passed" in done.stdout, done.stdout + done.stderr
    else:
        done = subprocess.run(
            [sys.executable, "-c", snippet.code], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_connection_commands_make_the_connection_the_operators_use(airflow_db: Path) -> None:
    blocks = [s for s in snippets("bash") if "airflow connections add" in s.code]
    assert blocks
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-readme-test"}
    env.pop("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", None)
    export = None
    for block in blocks:
        lines = block.code.replace("\\\n", " ").splitlines()  # continuation lines joined
        add = next(line for line in lines if line.startswith("airflow connections add"))
        export = export or next((line for line in lines if line.startswith("export AIRFLOW_CONN_")), None)
        subprocess.run(
            [str(BIN / "airflow"), "connections", "delete", "managed_agents_default"], env=env, capture_output=True
        )
        subprocess.run(["bash", "-c", add.replace("airflow ", f"{BIN / 'airflow'} ", 1)], env=env, check=True)
        shown = subprocess.run(
            [str(BIN / "airflow"), "connections", "get", "managed_agents_default", "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        stored = json.loads(shown.stdout)[0]
        assert stored["conn_type"] == "managed_agents"
        if "--conn-extra" in add:  # the extras the README shows are read by the hook as it says
            from airflow.models.connection import Connection

            from airflow_provider_managed_agents.hooks.managed_agents import settings_from_connection

            extra = stored["extra_dejson"]
            conn = Connection(conn_id="c", conn_type="managed_agents", password="k", extra=json.dumps(extra))
            settings = settings_from_connection(conn)
            shown_in_readme = json.loads(add.split("--conn-extra", 1)[1].strip().strip("'"))
            assert (settings.reads_per_minute, settings.writes_per_minute) == (
                shown_in_readme["reads_per_minute"],
                shown_in_readme["writes_per_minute"],
            )
    subprocess.run(
        [str(BIN / "airflow"), "connections", "delete", "managed_agents_default"], env=env, capture_output=True
    )
    assert export is not None
    value = export.split("=", 1)[1].strip("'")
    assert json.loads(value)["conn_type"] == "managed_agents"
