"""Benchmark 4: many ManagedAgentsDeploymentRunTriggers in one event loop, as in a triggerer.

N triggers (default 1,000) each wait for a manual run of their own deployment against one
emulator process. After a while every deployment is run; the table reports peak RSS, CPU time
per request, the open connections (one shared pool, not one per trigger) and the lag between a
run being recorded and its trigger firing, against the poll interval.

The baseline, in its own interpreter against its own emulator, is the same wait written the
obvious way: each waiter polls the runs list with an ``httpx.AsyncClient`` of its own, as a
trigger that builds its own client (or SDK instance) does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pendulum

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, print_table, write_results

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


PARAMS = {
    "agent": "agent_demo",
    "environment_id": "env_demo",
    "name": "scale",
    "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
}


def provider_waiter(since: Any, poll_interval: float) -> Any:
    from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger
    from airflow_provider_managed_agents.waiting.runs import RunWait

    async def wait(deployment_id: str) -> None:
        wait = RunWait(
            deployment_id=deployment_id, trigger_type="manual", created_after=since, poll_interval=poll_interval
        )
        async for event in ManagedAgentsDeploymentRunTrigger(wait=wait.to_dict()).run():
            assert event.payload["status"] == "success"
            return

    return wait


def client_per_waiter(since: Any, poll_interval: float, emulator: Any) -> Any:
    import httpx

    from airflow_provider_managed_agents.hooks.wire import API_VERSION, MANAGED_AGENTS_BETA

    headers = {"x-api-key": "bench-key", "anthropic-version": API_VERSION, "anthropic-beta": MANAGED_AGENTS_BETA}

    async def wait(deployment_id: str) -> None:
        query = {"deployment_id": deployment_id, "trigger_type": "manual", "created_at[gte]": since.isoformat()}
        async with httpx.AsyncClient(base_url=emulator.base_url, headers=headers) as client:
            while True:
                response = await client.get("/v1/deployment_runs", params=query)
                response.raise_for_status()
                if response.json()["data"]:
                    return
                await asyncio.sleep(poll_interval)

    return wait


async def scenario(
    kind: str, triggers: int, poll_interval: float, quiet_seconds: float, emulator: Any
) -> dict[str, Any]:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.hooks.wire import MAX_CONNECTIONS

    hook = ManagedAgentsHook()
    deployments = [hook.create_deployment(PARAMS).id for _ in range(triggers)]
    since = pendulum.now("UTC")
    wait = (
        provider_waiter(since, poll_interval)
        if kind == "provider"
        else client_per_waiter(since, poll_interval, emulator)
    )
    fired_at: dict[str, float] = {}
    baseline_sockets = open_sockets()
    counts_before = emulator.request_counts()["total"]

    async def watch(deployment_id: str) -> None:
        await wait(deployment_id)
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
        if time.monotonic() - started > quiet_seconds + 10 * poll_interval + 120:
            break
    for task in tasks:
        task.cancel()
    cpu = time.process_time() - cpu_before
    looks = emulator.request_counts()["total"] - counts_before - triggers  # minus the run requests
    lags = sorted(fired_at[d] - run_at[d] for d in fired_at)
    return {
        "scenario": kind,
        "triggers": triggers,
        "fired": len(fired_at),
        "poll_interval_s": poll_interval,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "requests": looks,
        "cpu_ms_per_request": 1000 * cpu / max(looks, 1),
        "peak_open_sockets": peak_sockets,
        "pool_max_connections": MAX_CONNECTIONS if kind == "provider" else None,
        "lag_median_s": lags[len(lags) // 2] if lags else None,
        "lag_max_s": lags[-1] if lags else None,
    }


def run_scenario(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """One scenario in this interpreter, against an emulator process of its own."""
    logging.getLogger("airflow_provider_managed_agents").setLevel(logging.WARNING)  # not 1,000 "Resolved" lines
    emulator = start_emulator_process(api_key="bench-key")
    os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
    try:
        return asyncio.run(scenario(kind, args.triggers, args.poll_interval, args.quiet_seconds, emulator))
    finally:
        emulator.stop()


def in_fresh_interpreter(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS is per process: each scenario gets its own."""
    command = [PYTHON, __file__, "--scenario", kind, "--triggers", str(args.triggers)]
    command += ["--poll-interval", str(args.poll_interval), "--quiet-seconds", str(args.quiet_seconds)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--quiet-seconds", type=float, default=15.0)
    parser.add_argument("--scenario", choices=["provider", "client-per-waiter"])
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario, args)))
        return 0
    ours = in_fresh_interpreter("provider", args)
    base = in_fresh_interpreter("client-per-waiter", args)

    def ratio(key: str) -> str:
        return f"{ours[key] / base[key]:.2f}" if ours[key] and base[key] else "-"

    def row(label: str, key: str, goal: str, digits: int = 2) -> tuple[object, ...]:
        return (label, round(ours[key], digits), round(base[key], digits), ratio(key), goal)

    print_table(
        f"{args.triggers} concurrent waits in one event loop, poll every {args.poll_interval} s",
        ["measure", "provider triggers", "client per waiter", "ratio", "goal (provider)"],
        [
            ("fired", f"{ours['fired']} / {ours['triggers']}", f"{base['fired']} / {base['triggers']}", "", "all"),
            row("peak RSS (MB)", "peak_rss_mb", "<= 250", 1),
            row("API requests while waiting", "requests", ""),
            row("CPU per request (ms)", "cpu_ms_per_request", "", 3),
            row("peak open sockets", "peak_open_sockets", f"<= pool size {ours['pool_max_connections']}"),
            row("lag run -> event, median (s)", "lag_median_s", ""),
            row("lag run -> event, max (s)", "lag_max_s", f"<= poll interval {args.poll_interval}"),
        ],
    )
    write_results("triggerer_scale", {"provider": ours, "client_per_waiter": base})
    return 0


if __name__ == "__main__":
    sys.exit(main())
