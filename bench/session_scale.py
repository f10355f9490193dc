"""Benchmark 8: thousands of session waits and run waits in one triggerer loop, inside the API's
rate limits.

Each scenario runs in a fresh interpreter (its own peak RSS) against a fresh emulator process,
in real time: N deferred session waits (``ManagedAgentsSessionTrigger``) on sessions that end at
random moments over a few minutes, and N run waits (``ManagedAgentsDeploymentRunTrigger``, ten on
each of N/10 deployments) on runs made at random moments over the same span, all in one event
loop, as a triggerer holds them. Polls every 5 s.

- ``feed``: as the provider runs them (one sessions feed, one runs feed per loop);
- ``alone``, the baseline in the same run: the same waits each reading for itself every poll
  (the provider's code before the feeds: ``follow_session_alone``, ``follow_alone``);
- ``limited``: the feeds under the emulator's organization limits (600 reads, 60 writes a
  minute), with the connection's caps set under them, and without caps.

Reported: requests per poll while sessions run (everything but a session's own end looks),
requests per session ending, reads per minute, 429s, failed waits, lag from a session's end (its
idle event) or a run's creation to its trigger event (median, max), peak RSS, CPU per wait per
poll.

    python bench/session_scale.py            # the whole table (about 25 minutes)
    python bench/session_scale.py --quick    # 200 waits, a minute's spread: a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, print_table, write_results

from airflow_provider_managed_agents.emulator.server import start_emulator_process
from airflow_provider_managed_agents.models.base import parse_timestamp

POLL = 5.0
MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "Review the load"}]}
LIMITS = {"reads_per_minute": 600, "writes_per_minute": 60}
CAPS = {"reads_per_minute": 540, "writes_per_minute": 54}


def scenario(args: argparse.Namespace) -> dict[str, Any]:
    logging.getLogger("airflow_provider_managed_agents").setLevel(logging.ERROR)
    emulator = start_emulator_process(api_key="bench-key")
    connection = {"conn_type": "managed_agents", "host": emulator.base_url, "password": "bench-key"}
    os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = json.dumps(connection)
    try:
        return asyncio.run(waits(args, emulator, connection))
    finally:
        emulator.stop()


async def waits(args: argparse.Namespace, emulator: Any, connection: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger, follow_alone
    from airflow_provider_managed_agents.triggers.sessions import ManagedAgentsSessionTrigger, follow_session_alone
    from airflow_provider_managed_agents.waiting import clock
    from airflow_provider_managed_agents.waiting.events import RunWaitEvent, SessionWaitEvent, decode
    from airflow_provider_managed_agents.waiting.runs import LookState, RunWait
    from airflow_provider_managed_agents.waiting.sessions import SessionWait

    rng = random.Random(args.count)
    count, spread = args.count, args.spread
    hook = ManagedAgentsHook()
    # Set-up, before any limit: the deployments the waits watch, and the sessions (made by the
    # emulator's control, as a schedule would: no API request), each ending at its own moment.
    session_deployment = hook.create_deployment(
        name="scale", agent="agent_demo", environment_id="env_demo", initial_events=[MESSAGE]
    ).id
    run_deployments = [
        hook.create_deployment(
            name=f"runs {i}", agent="agent_demo", environment_id="env_demo", initial_events=[MESSAGE]
        ).id
        for i in range(max(count // 10, 1))
    ]
    scripts = [{"start_delay": 0.5, "turn_seconds": rng.uniform(spread[0], spread[1])} for _ in range(count)]
    seeded = httpx.post(
        f"{emulator.base_url}/_emulator/deployments/{session_deployment}/seed_runs",
        json={"count": count, "scripts": scripts},
        timeout=300,
    )
    seeded.raise_for_status()
    sessions = [s["id"] for s in emulator.state()["sessions"] if s["deployment_id"] == session_deployment]
    if args.limited:
        emulator.control("POST", "rate_limit", LIMITS)
    if args.caps:
        connection["extra"] = CAPS
        os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = json.dumps(connection)
    emulator.control("DELETE", "requests")
    started = clock.now()
    wall_started, cpu_started = time.time(), time.process_time()
    deadline = started.add(seconds=spread[1] + 600)
    fired: dict[str, float] = {}
    outcomes: dict[str, str] = {}

    # As the run operator defers: a session it just started is idle until it runs, so the first
    # look is a poll later.
    first_look = started.add(seconds=POLL)

    async def session_wait(session_id: str) -> None:
        wait = SessionWait(session_id, POLL)
        try:
            if args.mode == "alone":
                verdict = await follow_session_alone(wait, hook, deadline, 3600, first_look)
            else:
                trigger = ManagedAgentsSessionTrigger(
                    session_id=session_id,
                    poll_interval=POLL,
                    deadline=deadline.isoformat(),
                    timeout=3600,
                    not_before=first_look.isoformat(),
                    created_after=started.subtract(minutes=1).isoformat(),
                )
                event = await anext(aiter(trigger.run()))
                verdict = decode(event.payload, SessionWaitEvent).verdict()
            outcomes[session_id] = verdict.status
        except Exception as exc:  # a failed wait, counted
            outcomes[session_id] = f"error: {type(exc).__name__}"
        fired[session_id] = time.time()

    async def run_wait(index: int, deployment_id: str) -> None:
        wait = RunWait(deployment_id=deployment_id, trigger_type="manual", created_after=started, poll_interval=POLL)
        key = f"run-wait-{index}"
        try:
            if args.mode == "alone":
                verdict = await follow_alone(wait, hook, LookState(), deadline, 3600, None)
            else:
                data = {**wait.to_dict(), "poll_interval": POLL}
                trigger = ManagedAgentsDeploymentRunTrigger(wait=data, timeout=3600, deadline=deadline.isoformat())
                event = await anext(aiter(trigger.run()))
                verdict = decode(event.payload, RunWaitEvent).verdict()
            outcomes[key] = verdict.status
            if verdict.run is not None:
                fired[key] = time.time() - verdict.run.created_at.timestamp()
        except Exception as exc:
            outcomes[key] = f"error: {type(exc).__name__}"

    async def make_runs() -> None:
        moments = sorted((rng.uniform(spread[0], spread[1]), d) for d in run_deployments)
        for at, deployment_id in moments:
            await asyncio.sleep(max(wall_started + at - time.time(), 0))
            await asyncio.to_thread(
                httpx.post, f"{emulator.base_url}/_emulator/deployments/{deployment_id}/seed_runs", json={"count": 1}
            )

    tasks = [asyncio.create_task(session_wait(s)) for s in sessions]
    tasks += [asyncio.create_task(run_wait(i, run_deployments[i % len(run_deployments)])) for i in range(count)]
    await asyncio.gather(make_runs(), *tasks)
    elapsed = time.time() - wall_started
    cpu = time.process_time() - cpu_started
    counts = emulator.request_counts()
    by_endpoint = counts["by_endpoint"]
    world = {s["id"]: s for s in emulator.state()["sessions"]}
    session_lags = []
    for session_id in sessions:
        idle = next((e for e in world[session_id]["events"] if e["type"] == "session.status_idle"), None)
        if idle is not None and session_id in fired:
            session_lags.append(fired[session_id] - parse_timestamp(idle["processed_at"]).timestamp())
    run_lags = [v for k, v in fired.items() if k.startswith("run-wait-")]
    own = by_endpoint.get("GET /v1/sessions/{session_id}", 0) + by_endpoint.get(
        "GET /v1/sessions/{session_id}/events", 0
    )
    reads = sum(v for k, v in by_endpoint.items() if k.startswith("GET "))
    polls = elapsed / POLL
    return {
        "mode": args.mode,
        "caps": args.caps,
        "limited": args.limited,
        "session_waits": count,
        "run_waits": count,
        "elapsed_s": elapsed,
        "polls": polls,
        "requests_per_poll_while_running": (reads - own) / polls,
        "requests_per_session_ending": own / count if args.mode == "feed" else None,
        "session_reads_per_poll": (by_endpoint.get("GET /v1/sessions", 0) + own) / polls,
        "reads_per_minute": reads / (elapsed / 60),
        "rate_limited": counts.get("rate_limited", {}),
        "failed_waits": sum(1 for v in outcomes.values() if v != "success"),
        "session_lag_median_s": _median(session_lags),
        "session_lag_max_s": max(session_lags, default=0.0),
        "run_lag_median_s": _median(run_lags),
        "run_lag_max_s": max(run_lags, default=0.0),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cpu_ms_per_wait_per_poll": 1000 * cpu / (2 * count * polls),
    }


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def in_fresh_interpreter(mode: str, count: int, spread: tuple[float, float], *, limited: bool, caps: bool) -> dict:
    command = [PYTHON, __file__, "--scenario", mode, "--count", str(count), "--spread", f"{spread[0]},{spread[1]}"]
    command += ["--limited"] * limited + ["--caps"] * caps
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", choices=["feed", "alone"])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--spread", default="30,150")
    parser.add_argument("--limited", action="store_true")
    parser.add_argument("--caps", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    args.spread = tuple(float(x) for x in args.spread.split(","))
    if args.scenario:
        args.mode = args.scenario
        print(json.dumps(scenario(args)))
        return 0
    sizes = [200] if args.quick else [1000, 5000]
    spread = (10.0, 60.0) if args.quick else (30.0, 150.0)
    limited_spread = (10.0, 60.0) if args.quick else (30.0, 270.0)
    runs = []
    for size in sizes:
        for mode in ("feed", "alone"):
            runs.append(in_fresh_interpreter(mode, size, spread, limited=False, caps=False))
    limited_size = sizes[0]
    runs.append(in_fresh_interpreter("feed", limited_size, limited_spread, limited=True, caps=True))
    runs.append(in_fresh_interpreter("feed", limited_size, limited_spread, limited=True, caps=False))
    rows = []
    for r in runs:
        label = r["mode"] + (" + limits" if r["limited"] else "") + (" + caps" if r["caps"] else "")
        limited = r["rate_limited"]
        rows.append(
            (
                label,
                r["session_waits"],
                round(r["requests_per_poll_while_running"], 2),
                "-" if r["requests_per_session_ending"] is None else round(r["requests_per_session_ending"], 2),
                round(r["reads_per_minute"], 1),
                sum(limited.values()) if limited else 0,
                r["failed_waits"],
                f"{r['session_lag_median_s']:.2f} / {r['session_lag_max_s']:.2f}",
                f"{r['run_lag_median_s']:.2f} / {r['run_lag_max_s']:.2f}",
                round(r["peak_rss_mb"], 1),
                round(r["cpu_ms_per_wait_per_poll"], 4),
            )
        )
    print_table(
        f"Session waits + as many run waits in one loop, a poll every {POLL:g} s (baseline: each wait reading alone)",
        [
            "scenario",
            "waits each",
            "requests/poll while running",
            "requests/session end",
            "reads/min",
            "429s",
            "failed waits",
            "session lag med/max (s)",
            "run lag med/max (s)",
            "peak RSS (MB)",
            "CPU ms/wait/poll",
        ],
        rows,
    )
    goals = {
        "requests_per_poll_while_running": "<= 2 + pages",
        "requests_per_session_ending": "<= 2",
        "limited_with_caps": "0 x 429, 0 failed waits",
        "limited_without_caps": "every 429 ridden out, 0 failed waits",
        "rss_at_5000": "<= 400 MB",
        "lag": f"<= one poll ({POLL:g} s)",
    }
    write_results("session_scale", {"runs": runs, "goals": goals, "poll_interval_s": POLL})
    return 0


if __name__ == "__main__":
    sys.exit(main())
