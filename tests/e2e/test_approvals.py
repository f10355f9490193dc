"""A session that asks, answered in Airflow: real DAGs under `airflow dags test` against the
emulator, a person answering through Airflow's REST API on an api-server that shares the run's
metadata database (scripts/required_actions.py), as the UI's Required Actions page does.

Airflow 3.3 only: `airflow dags test` keeps a run alive while a task waits in ``awaiting_input``
and resumes it once the answer is recorded. Before 3.3 the task defers to ``HITLTrigger``, whose
reads `dags test`'s in-process trigger runner does not answer: the demo (``--use-executor`` with a
triggerer) and the matrix cover Airflow 3.1 and 3.2. `dags test` enforces no response timeout (that
is the scheduler's sweep): ``make test-system`` covers it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, TEST_DAGS, DagResult, _read_run  # type: ignore[import-not-found]

from airflow_provider_managed_agents.compat import human_in_the_loop

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from required_actions import RequiredActions, api_server, parked

pytestmark = pytest.mark.timeout(600)
ON_3_3 = pytest.mark.skipif(
    human_in_the_loop()[0] != "awaiting_input",
    reason="airflow dags test resumes a person's answer from Airflow 3.3 (awaiting_input)",
)
BASH = {"tool": "bash", "input": {"command": "rm -rf /data/tmp", "api_key": "sk-agent-wrote-this"}}
ISSUE = {"tool": "create_issue", "mcp_server": "github", "input": {"title": "Stale tables"}}
ROWS = {"custom_tool": "row_count", "input": {"table": "orders"}}


@pytest.fixture(scope="module")
def person(
    airflow_db: Path, _managed_agents_emulator_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RequiredActions]:
    """An api-server on this worker's Airflow home: the person's way in (and where a task's end
    while it asks reaches the provider's listener, which needs the connection)."""
    env = {**os.environ, "AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT": _managed_agents_emulator_server.connection_json()}
    if not any(e.name == "managed_agents" for e in entry_points(group="airflow.plugins")):
        # An editable install made before the plugin's entry point existed: load it from a folder.
        plugins = tmp_path_factory.mktemp("plugins")
        (plugins / "managed_agents_plugin.py").write_text(
            "from airflow_provider_managed_agents.listeners import ManagedAgentsPlugin  # noqa: F401\n"
        )
        env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(plugins)
    with api_server(env, log=tmp_path_factory.mktemp("api") / "api-server.log") as actions:
        yield actions


class Running:
    """`airflow dags test` running in the background while the test answers."""

    def __init__(self, dag_id: str, script: dict[str, Any], env: dict[str, str], emulator: Any):
        self.dag_id = dag_id
        process_env = {
            **env,
            "AIRFLOW__CORE__DAGS_FOLDER": str(TEST_DAGS),
            "AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT": emulator.connection_json(),
            "AIRFLOW_VAR_EMULATOR_URL": emulator.base_url,
        }
        conf = json.dumps({"script": script})
        # Into a file, not a pipe: nobody reads while the test answers, and a full pipe would stop
        # the DAG run mid-log (a multi-round run writes more than a pipe holds).
        self.log = tempfile.NamedTemporaryFile(prefix=f"{dag_id}-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(BIN / "airflow"), "dags", "test", dag_id, "-c", conf],
            env=process_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def parked(self, task_id: str, times: int = 1) -> Callable[[], bool]:
        """Whether the run has parked ``task_id`` awaiting input ``times`` times (answer after)."""
        return parked(Path(self.log.name), task_id, times)

    def result(self, timeout: float = 300) -> DagResult:
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.log.close()
        output = Path(self.log.name).read_text(errors="replace")
        Path(self.log.name).unlink()
        state, tasks, xcom = _read_run(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db", self.dag_id)
        return DagResult(self.dag_id, self.process.returncode, output, state, tasks, xcom)


def events_of(emulator: Any) -> list[dict[str, Any]]:
    (session,) = emulator.state()["sessions"]
    return list(session["events"])


@ON_3_3
def test_a_person_approves_through_the_rest_api_and_the_session_finishes(
    person: RequiredActions, managed_agents_emulator: Any
) -> None:
    running = Running("approvals_deferred", {"actions": [[BASH]]}, person.env, managed_agents_emulator)
    request = person.wait_for_request("approvals_deferred", "run", timeout=180, ready=running.parked("run"))
    session_id = managed_agents_emulator.state()["sessions"][0]["id"]
    assert request["subject"] == f"Demo agent asks to use tools in session {session_id}"
    assert request["options"] == ["Allow", "Deny"] and request["defaults"] == ["Deny"]
    assert "`bash` (built-in tool)" in request["body"] and '"command": "rm -rf /data/tmp"' in request["body"]
    assert "sk-agent-wrote-this" not in request["body"] and '"api_key": "***"' in request["body"]
    assert request["task_instance"]["state"] == "awaiting_input"  # no worker, no trigger
    person.answer(request, "Allow")
    result = running.result()
    assert result.state == "success", result
    (action,) = result.xcom[("run", "actions")]
    assert action["decision"] == "allow" and action["by"] == "Anonymous" and action["tool"] == "bash"
    assert action["round"] == 1 and "sk-agent-wrote-this" not in json.dumps(action)
    assert result.xcom[("run", "pending_actions")] is None
    assert result.xcom[("run", "final_message")] == "Done: Tidy the tables."
    answers = [e for e in events_of(managed_agents_emulator) if e["type"] == "user.tool_confirmation"]
    assert [(a["result"], a["tool_use_id"]) for a in answers] == [("allow", action["tool_use_id"])]
    assert "allowed bash by Anonymous" in result.output


@ON_3_3
def test_a_deny_and_its_message_lead_to_the_scripted_ending(
    person: RequiredActions, managed_agents_emulator: Any
) -> None:
    script = {"actions": [[BASH]], "when_denied": {"final_text": "I left the data as it was."}}
    running = Running("approvals_worker", script, person.env, managed_agents_emulator)
    request = person.wait_for_request("approvals_worker", "run", timeout=180, ready=running.parked("run"))
    person.answer(request, "Deny", deny_message="use staging")
    result = running.result()
    assert result.state == "success", result
    assert result.xcom[("run", "final_message")] == "I left the data as it was."
    (action,) = result.xcom[("run", "actions")]
    assert action["decision"] == "deny" and action["deny_message"] == "use staging"
    (answer,) = [e for e in events_of(managed_agents_emulator) if e["type"] == "user.tool_confirmation"]
    assert answer["result"] == "deny" and answer["deny_message"] == "use staging"


@ON_3_3
def test_two_rounds_with_a_custom_tool_in_between(person: RequiredActions, managed_agents_emulator: Any) -> None:
    script = {"actions": [[BASH, ROWS], [ISSUE]]}
    running = Running("approvals_worker", script, person.env, managed_agents_emulator)
    person.answer(person.wait_for_request("approvals_worker", "run", timeout=180, ready=running.parked("run")), "Allow")
    # The same request, asked again.
    second = person.wait_for_request("approvals_worker", "run", timeout=180, ready=running.parked("run", 2))
    _, _, xcom = _read_run(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db", "approvals_worker")
    pending = xcom[("run", "pending_actions")]  # where round 2's calls are (the request's text is round 1's)
    assert pending["round"] == 2 and [c["tool"] for c in pending["calls"]] == ["github/create_issue"]
    person.answer(second, "Deny")
    result = running.result()
    assert result.state == "success", result
    actions = result.xcom[("run", "actions")]
    assert [(a["round"], a["tool"], a["decision"]) for a in actions] == [
        (1, "row_count", "result"),
        (1, "bash", "allow"),
        (2, "github/create_issue", "deny"),
    ]
    assert result.xcom[("run", "final_message")] == "Stopped: not allowed to run create_issue."
    answers = [e for e in events_of(managed_agents_emulator) if e["type"].startswith("user.") and "result" in e]
    results = [e for e in events_of(managed_agents_emulator) if e["type"] == "user.custom_tool_result"]
    assert [a["result"] for a in answers] == ["allow", "deny"]
    assert results[0]["content"] == [{"type": "text", "text": "orders: 1200 rows"}]
    assert "Round 2 of session" in result.output and "denied github/create_issue by Anonymous" in result.output


@ON_3_3
def test_the_session_sensor_asks_a_person_too(person: RequiredActions, managed_agents_emulator: Any) -> None:
    running = Running("approvals_sensor", {"actions": [[BASH]]}, person.env, managed_agents_emulator)
    request = person.wait_for_request("approvals_sensor", "sense", timeout=180, ready=running.parked("sense"))
    person.answer(request, "Allow")
    result = running.result()
    assert result.state == "success", result
    assert [a["decision"] for a in result.xcom[("sense", "actions")]] == ["allow"]
    assert result.xcom[("sense", "stop_reason")] == "end_turn"


@ON_3_3
def test_a_task_ended_while_a_person_is_asked_interrupts_its_session(
    person: RequiredActions, managed_agents_emulator: Any
) -> None:
    running = Running("approvals_worker", {"actions": [[BASH]]}, person.env, managed_agents_emulator)
    request = person.wait_for_request("approvals_worker", "run", timeout=180, ready=running.parked("run"))
    person.set_task_state(request, "failed")  # as a person in the UI: nothing of the task runs now
    result = running.result()
    assert result.task_states["run"] == "failed", result
    kinds = [e["type"] for e in events_of(managed_agents_emulator)]
    assert kinds[-2:] == ["user.interrupt", "session.status_idle"], kinds  # on_kill_session="interrupt"
    assert "user.tool_confirmation" not in kinds


def test_custom_tools_answer_without_a_person(run_dag: Any, managed_agents_emulator: Any) -> None:
    script = {"actions": [[ROWS], [{"custom_tool": "broken", "input": {"table": "x"}}]]}
    result = run_dag("custom_tools_only", conf={"script": script}, test_dags=True)
    assert result.state == "success", result
    actions = result.xcom[("run", "actions")]
    assert [(a["round"], a["tool"], a["decision"], a["by"]) for a in actions] == [
        (1, "row_count", "result", "agent_tools.row_count"),
        (2, "broken", "error", "agent_tools.broken"),
    ]
    results = [e for e in events_of(managed_agents_emulator) if e["type"] == "user.custom_tool_result"]
    assert results[0]["content"][0]["text"] == "orders: 1200 rows" and not results[0].get("is_error")
    assert results[1]["content"][0]["text"] == "LookupError: no statistics for x" and results[1]["is_error"] is True
    assert "Custom tool broken (agent_tools.broken) raised" in result.output
