"""Benchmark 4: N deferred deployment waits in one event loop, as in a triggerer.

N waits (1,000 and 5,000) wait for the next manual run of their deployment, on one deployment
and spread over 1,000, polling every 5 s, against an emulator process of their own. Each case
runs twice in fresh interpreters:

- **runs feed**: the provider's ``ManagedAgentsDeploymentRunTrigger``, whose waits share the
  loop's runs feed (one all-deployments runs read per poll, deployments read once a minute);
- **alone** (the baseline, the trigger before the feed): every wait makes its own looks
  (``follow_alone``: a runs query per poll, its deployment read once a minute), over the same
  shared connection pool.

Measured, after a warm-up poll, over a steady window (60 s: one deployments re-read falls in
it): API requests per poll interval and per wait, CPU per wait per poll; then every deployment
is run once and the lag from a run's creation to each of its waits' events is measured. Peak RSS
is the interpreter's.
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
from collections import Counter
from pathlib import Path
from typing import Any

import pendulum

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, print_table, write_results

from airflow_provider_managed_agents.emulator.server import EmulatorHandle, start_emulator_process

POLL = 5.0
MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}
CASES = [(1000, 1), (1000, 1000), (5000, 1), (5000, 1000)]  # (waits, deployments)


def through_the_feed(wait: Any, deadline: Any) -> Any:
    from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger

    trigger = ManagedAgentsDeploymentRunTrigger(wait=wait.to_dict(), deadline=deadline.isoformat(), timeout=3600)
    return _first_event(trigger)


async def _first_event(trigger: Any) -> str:
    from airflow_provider_managed_agents.waiting.events import RunWaitEvent, decode

    async for event in trigger.run():
        return decode(event.payload, RunWaitEvent).verdict().status
    return "no event"


async def alone(wait: Any, deadline: Any) -> str:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.triggers.deployment_runs import follow_alone
    from airflow_provider_managed_agents.waiting.runs import LookState

    verdict = await follow_alone(wait, ManagedAgentsHook(), LookState(), deadline, 3600, None)
    return verdict.status


def by_endpoint(emulator: EmulatorHandle) -> Counter[str]:
    return Counter(emulator.request_counts()["by_endpoint"])


async def scenario(mode: str, waits: int, deployments: int, window: float, emulator: EmulatorHandle) -> dict[str, Any]:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.waiting.runs import RunWait

    hook = ManagedAgentsHook()
    ids = [
        hook.create_deployment(
            name=f"scale {i}", agent="agent_demo", environment_id="env_demo", initial_events=[MESSAGE]
        ).id
        for i in range(deployments)
    ]
    since = pendulum.now("UTC")
    deadline = since.add(hours=1)
    questions = [
        RunWait(deployment_id=ids[i % deployments], trigger_type="manual", created_after=since, poll_interval=POLL)
        for i in range(waits)
    ]
    follow = through_the_feed if mode == "feed" else alone
    fired_at: dict[int, float] = {}
    statuses: Counter[str] = Counter()

    async def one(index: int) -> None:
        statuses[await follow(questions[index], deadline)] += 1
        fired_at[index] = time.time()

    tasks = [asyncio.create_task(one(i)) for i in range(waits)]
    await asyncio.sleep(POLL)  # warm-up: every wait registered and through its first look
    before, cpu_before, started = by_endpoint(emulator), time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_before
    during = by_endpoint(emulator) - before
    polls = elapsed / POLL

    run_at: dict[str, float] = {}
    for deployment_id in ids:  # every deployment gets one run, one after another
        await asyncio.to_thread(hook.run_deployment, deployment_id)
        run_at[deployment_id] = time.time()
    give_up = time.monotonic() + 10 * POLL + 120
    while len(fired_at) < waits and time.monotonic() < give_up:
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    lags = sorted(fired_at[i] - run_at[questions[i].deployment_id or ""] for i in fired_at)
    runs_reads = sum(n for endpoint, n in during.items() if endpoint.startswith("GET /v1/deployment_runs"))
    deployment_reads = sum(n for endpoint, n in during.items() if endpoint.startswith("GET /v1/deployments"))
    total = sum(during.values())
    return {
        "mode": mode,
        "waits": waits,
        "deployments": deployments,
        "poll_interval_s": POLL,
        "window_s": round(elapsed, 1),
        "fired": len(fired_at),
        "successes": statuses["success"],
        "requests_per_poll": total / polls,
        "runs_reads_per_poll": runs_reads / polls,
        "deployment_reads_per_poll": deployment_reads / polls,
        "requests_per_wait_per_poll": total / polls / waits,
        "cpu_us_per_wait_per_poll": 1e6 * cpu / polls / waits,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "lag_median_s": lags[len(lags) // 2] if lags else None,
        "lag_p99_s": lags[int(len(lags) * 0.99)] if lags else None,
        "lag_max_s": lags[-1] if lags else None,
    }


def run_scenario(mode: str, waits: int, deployments: int, window: float) -> dict[str, Any]:
    """One case in this interpreter, against an emulator process of its own."""
    logging.getLogger("airflow_provider_managed_agents").setLevel(logging.WARNING)  # not 5,000 "Resolved" lines
    logging.getLogger("airflow.triggers").setLevel(logging.WARNING)
    emulator = start_emulator_process(api_key="bench-key")
    os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
    try:
        return asyncio.run(scenario(mode, waits, deployments, window, emulator))
    finally:
        emulator.stop()


def in_fresh_interpreter(mode: str, waits: int, deployments: int, window: float) -> dict[str, Any]:
    """Peak RSS is per process: each case gets its own."""
    command = [PYTHON, __file__, "--mode", mode, "--waits", str(waits), "--deployments", str(deployments)]
    command += ["--window", str(window)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--mode", choices=["feed", "alone"])
    parser.add_argument("--waits", type=int)
    parser.add_argument("--deployments", type=int)
    parser.add_argument("--cases", default=",".join(f"{w}x{d}" for w, d in CASES), help="e.g. 1000x1,5000x1000")
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_scenario(args.mode, args.waits, args.deployments, args.window)))
        return 0
    results: list[dict[str, Any]] = []
    rows: list[tuple[object, ...]] = []
    for case in args.cases.split(","):
        waits, deployments = (int(n) for n in case.split("x"))
        feed = in_fresh_interpreter("feed", waits, deployments, args.window)
        base = in_fresh_interpreter("alone", waits, deployments, args.window)
        results += [feed, base]
        for label, key, digits in [
            ("fired (success)", "successes", 0),
            ("requests per poll interval", "requests_per_poll", 2),
            ("  of which runs reads", "runs_reads_per_poll", 2),
            ("  of which deployment reads", "deployment_reads_per_poll", 2),
            ("CPU per wait per poll (us)", "cpu_us_per_wait_per_poll", 1),
            ("peak RSS (MB)", "peak_rss_mb", 1),
            ("lag run -> event, median (s)", "lag_median_s", 2),
            ("lag run -> event, max (s)", "lag_max_s", 2),
        ]:
            ours, theirs = feed[key], base[key]
            ratio = f"{ours / theirs:.3f}" if ours and theirs else "-"
            rows.append(
                (f"{waits} waits / {deployments} depl.", label, round(ours, digits), round(theirs, digits), ratio)
            )
    print_table(
        f"deferred waits in one event loop, poll every {POLL} s (goals: <= 2 + pages requests per poll, "
        f"<= 400 MB at 5,000 waits, lag <= {POLL} s)",
        ["case", "measure", "runs feed", "alone (baseline)", "ratio"],
        rows,
    )
    write_results("triggerer_scale", {"cases": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
