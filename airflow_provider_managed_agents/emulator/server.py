"""Running the emulator: in a background thread (tests), or as a process (demo, DAG tests)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DEFAULT_TEST_KEY = "emulator-test-key"


@dataclass
class EmulatorHandle:
    """Where a running emulator listens, and a small client for its control endpoints."""

    base_url: str
    api_key: str
    process: subprocess.Popen[str] | None = field(default=None, repr=False)

    def connection_json(self) -> str:
        """An Airflow connection (``AIRFLOW_CONN_...`` value) for the hook."""
        return json.dumps({"conn_type": "managed_agents", "host": self.base_url, "password": self.api_key})

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.base_url}/_emulator/{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict[str, Any]:
        return self.control("GET", "state")

    def reset(self) -> None:
        self.control("POST", "reset", {})

    def request_counts(self) -> dict[str, Any]:
        return self.control("GET", "requests")

    def fire(self, deployment_id: str) -> dict[str, Any]:
        return self.control("POST", f"deployments/{deployment_id}/fire", {})

    def force_next_run_error(self, deployment_id: str, error_type: str, message: str = "") -> None:
        self.control("POST", f"deployments/{deployment_id}/next_run_error", {"type": error_type, "message": message})

    def session_script(self, deployment_id: str | None = None, **script: Any) -> None:
        """How the deployment's later sessions (or, without one, the next session) play out:
        ``ending``, ``outcome_result``, ``iterations``, ``turn_seconds``, ``final_text``..."""
        path = f"deployments/{deployment_id}/session_script" if deployment_id else "sessions/next_script"
        self.control("POST", path, script)

    def inject_faults(self, **plan: Any) -> None:
        self.control("POST", "faults", plan)

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def advance_clock(self, seconds: float) -> int:
        """Move the emulator's clock forward; returns the scheduled fires that this made due
        (already recorded when it returns)."""
        return int(self.control("POST", "clock", {"advance_seconds": seconds})["fired"])

    def freeze_clock(self, frozen: bool = True) -> None:
        """Stop (or restart) the emulator's clock: only ``advance_clock`` moves it then."""
        self.control("POST", "clock", {"freeze": frozen})

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def run_emulator(
    *,
    api_key: str = DEFAULT_TEST_KEY,
    max_jitter: float = 1.0,
    state_file: Path | None = None,
    port: int | None = None,
) -> Iterator[EmulatorHandle]:
    """Serve an emulator on 127.0.0.1 (on ``port``, else a free one) in a background thread for
    the block's duration; with ``state_file``, a later emulator on the same port carries on."""
    import uvicorn

    from airflow_provider_managed_agents.emulator.app import Emulator

    emulator = Emulator(api_key=api_key, max_jitter=max_jitter, state_file=state_file)
    port = port or free_port()
    config = uvicorn.Config(
        emulator.app,
        host="127.0.0.1",
        port=port,
        log_level="critical",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,
        date_header=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="managed-agents-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the emulator did not start")
        time.sleep(0.02)
    try:
        yield EmulatorHandle(f"http://127.0.0.1:{port}", api_key)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def start_emulator_process(
    *,
    api_key: str = DEFAULT_TEST_KEY,
    max_jitter: float | None = 1.0,
    state_file: Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> EmulatorHandle:
    """Start ``python -m airflow_provider_managed_agents.emulator`` and wait for it to listen.

    ``max_jitter=None`` keeps the emulator's default (the API's 10 s); ``echo`` receives each
    line it prints while starting (its default world)."""
    cmd = [
        sys.executable,
        "-m",
        "airflow_provider_managed_agents.emulator",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-key",
        api_key,
    ]
    if max_jitter is not None:
        cmd += ["--max-jitter", str(max_jitter)]
    if state_file is not None:
        cmd += ["--state-file", str(state_file)]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if echo is not None:
            echo(line.rstrip())
        match = re.match(r"listening on (http://\S+)", line)
        if match:
            return EmulatorHandle(match.group(1), api_key, process=process)
    process.kill()
    raise RuntimeError("the emulator process did not start")
