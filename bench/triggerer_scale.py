"""Benchmark 4: many ManagedAgentsDeploymentRunTriggers in one event loop, as in a triggerer.

N triggers (default 1,000) each wait for a manual run of their own deployment against one
emulator process. After a while every deployment is run; the table reports peak RSS, CPU time
per look, the open connections (one shared pool, not one per trigger) and the lag between a
run being recorded and its trigger firing, against the poll interval.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pendulum

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, write_results

from airflow_provider_managed_agents.emulator.server import start_emulator_process


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


async def scenario(triggers: int, poll_interval: float, quiet_seconds: float, emulator: Any) -> dict[str, Any]:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook, shared_async_client
    from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger
    from airflow_provider_managed_agents.waiting import RunWait

    hook = ManagedAgentsHook()
    params = {
        "agent": "agent_demo",
        "environment_id": "env_demo",
        "name": "scale",
        "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
    }
    deployments = [hook.create_deployment(params).id for _ in range(triggers)]
    since = pendulum.now("UTC")
    fired_at: dict[str, float] = {}
    baseline_sockets = open_sockets()
    counts_before = emulator.request_counts()["total"]

    async def watch(deployment_id: str) -> None:
        wait = RunWait(
            deployment_id=deployment_id, trigger_type="manual", created_after=since, poll_interval=poll_interval
        )
        trigger = ManagedAgentsDeploymentRunTrigger(wait=wait.to_dict())
        async for event in trigger.run():
            assert event.payload["status"] == "success"
            fired_at[deployment_id] = time.time()

    cpu_before = time.process_time()
    started = time.monotonic()
    tasks = [asyncio.create_task(watch(d)) for d in deployments]
    peak_sockets = 0
    while time.monotonic() - started < quiet_seconds:  # everyone waiting, nothing to find
        await asyncio.sleep(0.5)
        peak_sockets = max(peak_sockets, open_sockets() - baseline_sockets)
    run_at: dict[str, float] = {}
    sync_run = hook.run_deployment
    for deployment_id in deployments:  # every deployment gets its run, one after the other
        await asyncio.to_thread(sync_run, deployment_id)
        run_at[deployment_id] = time.time()
    while len(fired_at) < len(deployments):
        await asyncio.sleep(0.5)
        peak_sockets = max(peak_sockets, open_sockets() - baseline_sockets)
        if time.monotonic() - started > quiet_seconds + 10 * poll_interval + 120:
            break
    for task in tasks:
        task.cancel()
    cpu = time.process_time() - cpu_before
    looks = emulator.request_counts()["total"] - counts_before - triggers  # minus the run requests
    lags = sorted(fired_at[d] - run_at[d] for d in fired_at)
    pool = shared_async_client(hook.settings)._transport._pool  # type: ignore[attr-defined]
    return {
        "triggers": triggers,
        "fired": len(fired_at),
        "poll_interval_s": poll_interval,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "requests": looks,
        "cpu_ms_per_request": 1000 * cpu / max(looks, 1),
        "peak_open_sockets": peak_sockets,
        "pool_max_connections": pool._max_connections,
        "lag_median_s": lags[len(lags) // 2] if lags else None,
        "lag_max_s": lags[-1] if lags else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--quiet-seconds", type=float, default=15.0)
    args = parser.parse_args()
    emulator = start_emulator_process(api_key="bench-key")
    os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
    try:
        result = asyncio.run(scenario(args.triggers, args.poll_interval, args.quiet_seconds, emulator))
    finally:
        emulator.stop()
    print_table(
        f"{args.triggers} concurrent triggers in one event loop",
        ["measure", "value", "goal"],
        [
            ("triggers fired", f"{result['fired']} / {result['triggers']}", "all"),
            ("peak RSS (MB)", round(result["peak_rss_mb"], 1), "<= 250"),
            ("API requests while waiting", result["requests"], ""),
            ("CPU per request (ms)", round(result["cpu_ms_per_request"], 3), ""),
            ("peak open sockets", result["peak_open_sockets"], f"<= pool size {result['pool_max_connections']}"),
            ("lag run -> event, median (s)", round(result["lag_median_s"] or -1, 2), ""),
            (
                "lag run -> event, max (s)",
                round(result["lag_max_s"] or -1, 2),
                f"<= poll interval {args.poll_interval}",
            ),
        ],
    )
    write_results("triggerer_scale", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
