"""Benchmark 7: N asset watchers (1, 10, 100) on one deployment, as in a triggerer.

Each watcher is a ``ManagedAgentsDeploymentRunEventTrigger`` with its own arguments (so Airflow
keeps them as N triggers rather than one), driven through Airflow 3.3's own
``SharedStreamManager`` as the triggerer drives them. The deployment fires every 2 s (the
emulator's fire control: a scheduled run now); the watchers poll every second.

Baseline, in the same run: the same N watchers written the obvious way, each polling the runs
list of the deployment on its own (what a watcher without a shared read costs).

Reported per case: API requests per fire, announcements delivered (N per fire, each once), the
lag from a fire to its announcement, and the interpreter's peak RSS.
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

FIRE_EVERY = 2.0
FIRES = 10
POLL = 1.0
MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}


async def through_the_feed(deployment_id: str, watchers: int, deliver: Any) -> list[asyncio.Task[None]]:
    from airflow.triggers.shared_stream import SharedStreamManager

    from airflow_provider_managed_agents.triggers.deployment_run_events import ManagedAgentsDeploymentRunEventTrigger
    from airflow_provider_managed_agents.triggers.watermark_stores import MemoryStore

    manager = SharedStreamManager()
    tasks = []
    for number in range(watchers):
        trigger = ManagedAgentsDeploymentRunEventTrigger(
            deployment_id=deployment_id, poll_interval=POLL + number / 1000
        )
        trigger.asset_state_store = _Accessor(MemoryStore(f"bench-{number}"))
        stream = manager.subscribe(trigger_id=number, trigger=trigger, key=trigger.shared_stream_key())

        async def drain(trigger: Any = trigger, stream: Any = stream, number: int = number) -> None:
            async for event in trigger.filter_shared_stream(stream):
                deliver(number, event.payload["deployment_run_id"])

        tasks.append(asyncio.create_task(drain()))
    return tasks


class _Accessor:
    """An asset state store accessor over process memory (the bench has no metadata DB)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    async def aget(self, key: str, default: Any = None) -> Any:
        return await self.store.load() or default

    async def aset(self, key: str, value: Any) -> None:
        await self.store.save(value)


async def alone(deployment_id: str, watchers: int, deliver: Any) -> list[asyncio.Task[None]]:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

    async def watch(number: int) -> None:
        hook = ManagedAgentsHook()
        since, seen = pendulum.now("UTC"), set()
        while True:
            async for run in hook.alist_deployment_runs(deployment_id=deployment_id, created_at_gte=since, limit=1000):
                if run.id not in seen:
                    seen.add(run.id)
                    deliver(number, run.id)
            await asyncio.sleep(POLL + number / 1000)

    return [asyncio.create_task(watch(n)) for n in range(watchers)]


async def scenario(mode: str, watchers: int, emulator: EmulatorHandle) -> dict[str, Any]:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

    hook = ManagedAgentsHook()
    deployment_id = hook.create_deployment(
        name="watched",
        agent="agent_demo",
        environment_id="env_demo",
        initial_events=[MESSAGE],
        schedule={"type": "cron", "expression": "0 0 1 1 *", "timezone": "UTC"},
    ).id
    announced: Counter[tuple[int, str]] = Counter()
    first_seen: dict[tuple[int, str], float] = {}

    def deliver(number: int, run_id: str) -> None:
        announced[(number, run_id)] += 1
        first_seen.setdefault((number, run_id), time.time())

    start = through_the_feed if mode == "feed" else alone
    tasks = await start(deployment_id, watchers, deliver)
    await asyncio.sleep(2 * POLL)  # every watcher started and through its first read
    before = Counter(emulator.request_counts()["by_endpoint"])
    fired_at: dict[str, float] = {}
    for _ in range(FIRES):
        run = await asyncio.to_thread(emulator.control, "POST", f"deployments/{deployment_id}/fire")
        fired_at[run["run"]["id"]] = time.time()
        await asyncio.sleep(FIRE_EVERY)
    give_up = time.monotonic() + 60
    while len(first_seen) < watchers * FIRES and time.monotonic() < give_up:
        await asyncio.sleep(0.1)
    during = Counter(emulator.request_counts()["by_endpoint"]) - before
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lags = sorted(first_seen[key] - fired_at[key[1]] for key in first_seen if key[1] in fired_at)
    reads = sum(n for endpoint, n in during.items() if endpoint.startswith("GET "))
    return {
        "mode": mode,
        "watchers": watchers,
        "fires": FIRES,
        "announcements": sum(1 for key in first_seen if key[1] in fired_at),
        "duplicates": sum(n - 1 for n in announced.values()),
        "requests_per_fire": reads / FIRES,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "lag_median_s": lags[len(lags) // 2] if lags else None,
        "lag_max_s": lags[-1] if lags else None,
    }


def run_scenario(mode: str, watchers: int) -> dict[str, Any]:
    logging.getLogger("airflow_provider_managed_agents").setLevel(logging.WARNING)
    emulator = start_emulator_process(api_key="bench-key")
    os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
    try:
        return asyncio.run(scenario(mode, watchers, emulator))
    finally:
        emulator.stop()


def in_fresh_interpreter(mode: str, watchers: int) -> dict[str, Any]:
    command = [PYTHON, __file__, "--mode", mode, "--watchers", str(watchers)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["feed", "alone"])
    parser.add_argument("--watchers", type=int)
    parser.add_argument("--counts", default="1,10,100")
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_scenario(args.mode, args.watchers)))
        return 0
    results, rows = [], []
    for watchers in (int(n) for n in args.counts.split(",")):
        ours, base = in_fresh_interpreter("feed", watchers), in_fresh_interpreter("alone", watchers)
        results += [ours, base]
        for label, key in [
            ("announcements (of watchers x fires)", "announcements"),
            ("duplicates", "duplicates"),
            ("API requests per fire", "requests_per_fire"),
            ("peak RSS (MB)", "peak_rss_mb"),
            ("lag fire -> announcement, median (s)", "lag_median_s"),
            ("lag fire -> announcement, max (s)", "lag_max_s"),
        ]:
            a, b = ours[key], base[key]
            ratio = f"{a / b:.3f}" if a and b else "-"
            rows.append(
                (watchers, label, round(a, 2) if a is not None else "-", round(b, 2) if b is not None else "-", ratio)
            )
    print_table(
        f"N watchers on one deployment, a fire every {FIRE_EVERY:g} s, polling every {POLL:g} s ({FIRES} fires)",
        ["watchers", "measure", "shared feed", "each alone (baseline)", "ratio"],
        rows,
    )
    write_results("watchers", {"cases": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
