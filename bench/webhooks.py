"""Benchmark 8: push vs poll. The emulator delivering webhooks to a real ``airflow api-server``
(SQLite, one worker, the receiver plugin), beside the polling watcher, in the same run.

1. Latency from a run's creation to its announcement: the webhook's asset event (its
   timestamp in the metadata database) against the polling watcher's event (the trigger running
   in this process, ``poll_interval`` 5 s: the shortest a user would set; the default is 60 s),
   for the same manual runs.
2. API requests per announced run (the receiver's reads), and while nothing happens.
3. Throughput: 500 runs recorded at once make 1,000 deliveries (``started`` and ``succeeded``
   each); all must be accepted on their first attempt, and the time they take is the
   api-server's sustained rate.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(
    0, str(HERE.parent / "tests")
)  # webhook_support: the plugin's entry point where an old install lacks it

from common import PYTHON, print_table, write_results  # noqa: E402

BIN = Path(PYTHON).parent
RUNS = 10
POLL = 5.0
BURST_RUNS = 500  # x 2 events = 1,000 deliveries
MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}
RUN_READS = "GET /v1/deployment_runs/{deployment_run_id}"
LIST_READS = "GET /v1/deployment_runs"


def free_port() -> int:
    from airflow_provider_managed_agents.emulator.server import free_port as pick

    return pick()


def wait(what: str, check: Any, seconds: float, every: float = 0.05) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:
            found = None
        if found:
            return found
        time.sleep(every)
    raise TimeoutError(what)


class Bench:
    def __init__(self) -> None:
        from airflow_provider_managed_agents.emulator.server import start_emulator_process

        self.home = Path(tempfile.mkdtemp(prefix="managed-agents-bench-webhooks-"))
        self.port = free_port()
        self.emulator = start_emulator_process(api_key="bench-key", max_jitter=0)
        url = f"http://127.0.0.1:{self.port}/managed-agents/webhooks/events"
        events = ["deployment_run.started", "deployment_run.succeeded"]
        self.endpoint = self.emulator.control("POST", "webhooks", {"url": url, "events": events})
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT": self.emulator.connection_json(),
            "AIRFLOW_CONN_MANAGED_AGENTS_WEBHOOK_DEFAULT": json.dumps(
                {"conn_type": "generic", "password": self.endpoint["signing_secret"]}
            ),
        }
        from webhook_support import plugin_path

        extra = plugin_path(self.home / "entry-point")
        if extra is not None:
            self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra), self.env.get("PYTHONPATH", "")) if p)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("AIRFLOW")})
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=self.env, check=True, capture_output=True)
        log = (self.home / "api-server.log").open("wb")
        self.server = subprocess.Popen(
            [str(BIN / "airflow"), "api-server"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{self.port}"
        wait("the api-server", lambda: httpx.get(f"{base}/managed-agents/webhooks/health").status_code == 200, 180, 1)
        from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

        self.hook = ManagedAgentsHook()

    def close(self) -> None:
        import signal

        os.killpg(self.server.pid, signal.SIGTERM)
        self.server.wait(timeout=60)
        self.emulator.stop()

    def deployment(self) -> str:
        from webhook_support import feed

        from airflow_provider_managed_agents.assets import runs_asset_key

        made = self.hook.create_deployment(
            name="pushed", agent="agent_demo", environment_id="env_demo", initial_events=[MESSAGE]
        ).id
        feed(runs_asset_key(made))
        return made

    def event_times(self, deployment_id: str) -> dict[str, float]:
        """When each run's asset event was written (the api-server's clock: this machine's)."""
        import sqlite3

        from airflow_provider_managed_agents.assets import runs_asset_key

        name = runs_asset_key(deployment_id)[0]
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute(
                "select e.timestamp, e.extra from asset_event e join asset a on a.id = e.asset_id where a.name = ?",
                (name,),
            ).fetchall()
        import pendulum

        return {
            json.loads(extra)["payload"]["deployment_run_id"]: pendulum.parse(str(when), tz="UTC").timestamp()  # type: ignore[union-attr]
            for when, extra in rows
        }

    def counts(self) -> dict[str, int]:
        return dict(self.emulator.request_counts()["by_endpoint"])

    # --- 1 and 2: latency, requests ---------------------------------------------------------------

    async def side_by_side(self) -> dict[str, Any]:
        import pendulum

        from airflow_provider_managed_agents.triggers.deployment_run_events import (
            ManagedAgentsDeploymentRunEventTrigger,
        )

        deployment_id = self.deployment()
        watcher = ManagedAgentsDeploymentRunEventTrigger(deployment_id=deployment_id, poll_interval=POLL)
        watcher.asset_state_store = _Memory()
        seen: dict[str, float] = {}

        async def drain() -> None:
            async for announced in watcher.run():
                seen.setdefault(announced.payload["deployment_run_id"], time.time())

        task = asyncio.create_task(drain())
        await asyncio.sleep(POLL + 1)  # through its first read
        self.emulator.control("DELETE", "requests")
        rng = random.Random(8)
        created: dict[str, float] = {}
        for _ in range(RUNS):
            run = await asyncio.to_thread(self.hook.run_deployment, deployment_id)
            created[run.id] = pendulum.instance(run.created_at).timestamp()
            await asyncio.sleep(rng.uniform(1.0, 4.0))
        await asyncio.to_thread(wait, "every announcement", lambda: set(created) <= set(seen), 60)
        busy = self.counts()
        self.emulator.control("DELETE", "requests")
        await asyncio.sleep(20)
        quiet = self.counts()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        pushed = await asyncio.to_thread(
            wait,
            "the asset events",
            lambda: times if set(created) <= set(times := self.event_times(deployment_id)) else None,
            60,
        )
        webhook = [pushed[r] - created[r] for r in created]
        polled = [seen[r] - created[r] for r in created]
        return {
            "runs": RUNS,
            "webhook_latency_s": {"median": statistics.median(webhook), "max": max(webhook)},
            "watcher_latency_s": {"median": statistics.median(polled), "max": max(polled), "poll_interval": POLL},
            "receiver_requests_per_run": busy.get(RUN_READS, 0) / RUNS,
            "watcher_list_reads_per_run": busy.get(LIST_READS, 0) / RUNS,
            "quiet_20s_receiver_requests": quiet.get(RUN_READS, 0),
            "quiet_20s_watcher_requests": quiet.get(LIST_READS, 0),
        }

    # --- 3: a thousand deliveries -------------------------------------------------------------------

    def burst(self) -> dict[str, Any]:
        deployment_id = self.deployment()
        self.emulator.control("DELETE", "requests")
        before = len(self.emulator.control("GET", "webhooks/deliveries")["data"])
        started = time.monotonic()
        self.emulator.control("POST", f"deployments/{deployment_id}/seed_runs", {"count": BURST_RUNS})

        def done() -> list[dict[str, Any]] | None:
            log = self.emulator.control("GET", "webhooks/deliveries")["data"][before:]
            return log if len(log) == 2 * BURST_RUNS and all(d["state"] != "pending" for d in log) else None

        log = wait("a thousand deliveries", done, 600, every=0.5)
        elapsed = time.monotonic() - started
        first_tries = [d["attempts"][0] for d in log]
        durations = sorted(a["duration_ms"] for d in log for a in d["attempts"])
        announced = wait(
            "the asset events",
            lambda: n if (n := len(self.event_times(deployment_id))) == BURST_RUNS else None,
            120,
            0.5,
        )
        return {
            "deliveries": len(log),
            "seconds": elapsed,
            "per_minute": len(log) / elapsed * 60,
            "failed_first_attempts": sum(1 for a in first_tries if a["status"] != 200),
            "failed_deliveries": sum(1 for d in log if d["state"] != "delivered"),
            "attempt_ms_p50": durations[len(durations) // 2],
            "attempt_ms_p99": durations[int(len(durations) * 0.99) - 1],
            "asset_events": announced,
            "receiver_requests_per_run": self.counts().get(RUN_READS, 0) / BURST_RUNS,
        }


class _Memory:
    """The watcher's asset state store, in memory (this benchmark keeps no watermark)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value


def main() -> int:
    import logging

    logging.getLogger("airflow_provider_managed_agents").setLevel(logging.WARNING)
    bench = Bench()
    try:
        sides = asyncio.run(bench.side_by_side())
        burst = bench.burst()
    finally:
        bench.close()
    w, p = sides["webhook_latency_s"], sides["watcher_latency_s"]
    print_table(
        f"Push vs poll: {RUNS} manual runs, one api-server (SQLite), the watcher polling every {POLL:g} s",
        ["measure", "webhooks", f"polling watcher ({POLL:g} s)", "ratio"],
        [
            (
                "run created -> announced, median (s)",
                round(w["median"], 3),
                round(p["median"], 3),
                f"{w['median'] / p['median']:.3f}",
            ),
            ("run created -> announced, max (s)", round(w["max"], 3), round(p["max"], 3), f"{w['max'] / p['max']:.3f}"),
            (
                "API requests per announced run",
                sides["receiver_requests_per_run"],
                sides["watcher_list_reads_per_run"],
                "-",
            ),
            (
                "API requests in 20 s with no run",
                sides["quiet_20s_receiver_requests"],
                sides["quiet_20s_watcher_requests"],
                "-",
            ),
        ],
    )
    print_table(
        f"{2 * BURST_RUNS} deliveries at once ({BURST_RUNS} runs recorded together), one api-server (SQLite)",
        ["measure", "value"],
        [
            ("deliveries", burst["deliveries"]),
            ("seconds to accept them all", round(burst["seconds"], 2)),
            ("deliveries per minute", round(burst["per_minute"])),
            (
                "failed first attempts / failed deliveries",
                f"{burst['failed_first_attempts']} / {burst['failed_deliveries']}",
            ),
            ("attempt p50 / p99 (ms)", f"{burst['attempt_ms_p50']} / {burst['attempt_ms_p99']}"),
            ("asset events (one per run)", burst["asset_events"]),
            ("API requests per announced run", burst["receiver_requests_per_run"]),
        ],
    )
    write_results("webhooks", {"side_by_side": sides, "burst": burst})
    ok = burst["failed_first_attempts"] == 0 and burst["per_minute"] >= 1000 and w["median"] < 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
