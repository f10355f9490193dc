"""A person at Airflow's Required Actions, for the demo and the tests: an ``airflow api-server``
on the Airflow home a run uses (simple auth manager, every user an admin), and its
human-in-the-loop REST API (the same routes on Airflow 3.1 to 3.3): the requests waiting for an
answer, and the answer.

    with api_server(env) as person:
        request = person.wait_for_request("agent_with_approval", "clean_up", timeout=120)
        person.answer(request, "Allow")

Everything it starts is stopped when the ``with`` block ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

BIN = Path(sys.executable).parent
ALL_ADMINS = {
    "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
}
# Tasks run by an executor call this api-server's Execution API with tokens signed by this secret.
JWT_SECRET = "required-actions-jwt-secret-of-the-local-run"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def server_env(env: dict[str, str], port: int) -> dict[str, str]:
    """The settings an api-server on ``port`` needs, and that whatever shares its Airflow home
    (``airflow dags test``, a triggerer) must use too."""
    base = f"http://127.0.0.1:{port}"
    return {
        **env,
        **ALL_ADMINS,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": env.get("AIRFLOW__API_AUTH__JWT_SECRET", JWT_SECRET),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
    }


class RequiredActions:
    """The human-in-the-loop REST API of one api-server (no token: every user is an admin)."""

    def __init__(self, base_url: str, env: dict[str, str]):
        self.base_url = base_url
        self.env = env  # what a process sharing this api-server's Airflow home runs with
        self.client = httpx.Client(base_url=f"{base_url}/api/v2", timeout=30)
        # Airflow 3.1 and 3.2 want a token even when every user is an admin (3.3 does not): the
        # simple auth manager hands one out for nobody in particular ("Anonymous").
        token = httpx.get(f"{base_url}/auth/token", timeout=30)
        if token.is_success:
            self.client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def pending(self, dag_id: str = "~") -> list[dict[str, Any]]:
        """The requests of ``dag_id`` (every DAG by default) waiting for an answer."""
        query = {"response_received": "false", "limit": 100}
        response = self.client.get(f"/dags/{dag_id}/dagRuns/~/hitlDetails", params=query)
        response.raise_for_status()
        return [
            d for d in response.json()["hitl_details"] if d["task_instance"]["state"] in ("awaiting_input", "deferred")
        ]

    def wait_for_request(
        self,
        dag_id: str,
        task_id: str,
        timeout: float,
        poll: float = 0.5,
        ready: Callable[[], bool] = lambda: True,
    ) -> dict[str, Any]:
        """The first request of ``task_id`` that waits for an answer (once its task waits and
        ``ready()`` says the process running it is done writing its state: see :func:`parked`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                for detail in self.pending(dag_id):
                    if detail["task_instance"]["task_id"] == task_id:
                        return detail
            time.sleep(poll)
        raise TimeoutError(f"no request of {dag_id}.{task_id} waited for an answer within {timeout:g} s")

    def answer(self, request: dict[str, Any], option: str, **params: str) -> dict[str, Any]:
        """Answer ``request`` with ``option`` and the form's ``params``, as a person in the UI."""
        ti = request["task_instance"]
        response = self.client.patch(
            self._path(ti, "/hitlDetails"), json={"chosen_options": [option], "params_input": params}
        )
        response.raise_for_status()
        return dict(response.json())

    def set_task_state(self, request: dict[str, Any], state: str) -> None:
        """Mark the request's task ``state`` (``failed``, ``success``), as a person in the UI."""
        ti = request["task_instance"]
        path = f"/dags/{ti['dag_id']}/dagRuns/{quote(ti['dag_run_id'], safe='')}/taskInstances/{ti['task_id']}"
        self.client.patch(path, json={"new_state": state}).raise_for_status()

    @staticmethod
    def _path(ti: dict[str, Any], suffix: str) -> str:
        run = quote(ti["dag_run_id"], safe="")
        return f"/dags/{ti['dag_id']}/dagRuns/{run}/taskInstances/{ti['task_id']}/{ti['map_index']}{suffix}"


def parked(log: Path, task_id: str, times: int) -> Callable[[], bool]:
    """Whether `airflow dags test` (run here without an executor, its output in ``log``) has
    parked ``task_id`` for the ``times``-th time. It writes the task's state once more after the
    task has parked it awaiting input, so an answer given between the two is overwritten and
    the run waits for ever: answer only after its "end task" line for that park."""
    line = f"[DAG TEST] end task task_id={task_id} "

    def done() -> bool:
        return log.exists() and log.read_text(errors="replace").count(line) >= times

    return done


def executor_took_the_deferral(log: Path, request: dict[str, Any]) -> bool:
    """Whether `airflow dags test --use-executor` (its output in ``log``) has taken from its
    executor the end of the task run that wrote ``request`` (an end of that task logged after the
    request's ``created_at``). Answered before that, the trigger reschedules the task first and
    Airflow then fails it ("finished with state success, but the task instance's state attribute
    is scheduled"): a person is never that quick, a script is."""
    asked = datetime.fromisoformat(request["created_at"])
    task = f"task_id='{request['task_instance']['task_id']}'"
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in text.splitlines():
        taken = "Received executor event with state" in line and task in line
        if taken and datetime.fromisoformat(line.split(maxsplit=1)[0]) >= asked:
            return True
    return False


@contextmanager
def api_server(env: dict[str, str], log: Path | None = None, timeout: float = 180) -> Iterator[RequiredActions]:
    """An api-server on the Airflow home ``env`` names, for as long as the block runs."""
    port = free_port()
    env = server_env(env, port)
    home = Path(env["AIRFLOW_HOME"])
    out = (log or home / "api-server.log").open("ab")
    process = subprocess.Popen(
        [str(BIN / "airflow"), "api-server", "--port", str(port)],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the api-server exited ({process.returncode}); see {out.name}")
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the api-server did not answer within {timeout:g} s; see {out.name}")
            time.sleep(0.5)
        yield RequiredActions(base, env)
    finally:
        stop(process)
        out.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session, and its children."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
