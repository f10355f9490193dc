"""Benchmark 6: what following a session to its end costs.

(a) Requests to follow one session of N agent turns (an outcome revised N times, each turn 60 s)
    with a 30 s poll: the run operator's follow (the session while it runs, its status events
    and final message at the end) against the anthropic provider's way, request by request (its
    1.2.0 operator: retrieve the session every poll; while idle on a message run, the newest 20
    events, paging until it finds the kickoff or an idle event; one more retrieve for the usage
    on success). Time is simulated on the emulator's frozen clock; every request is real HTTP.
(b) 1,000 concurrent session waits (``ManagedAgentsSessionTrigger``) in one event loop, as in a
    triggerer, against sessions ending at spread-out moments in real time: peak RSS, CPU per
    request and the lag from a session going idle to its trigger's event.
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
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, print_table, write_results
from waiting_cost import VirtualTime

from airflow_provider_managed_agents.emulator.server import EmulatorHandle, start_emulator_process
from airflow_provider_managed_agents.hooks.wire import API_VERSION, MANAGED_AGENTS_BETA
from airflow_provider_managed_agents.models.base import parse_timestamp
from airflow_provider_managed_agents.waiting.events import SessionWaitEvent, decode

POLL = 30.0
TURN = 60.0
MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "Review the load"}]}
OUTCOME = {"type": "user.define_outcome", "description": "a review", "rubric": {"type": "text", "content": "r"}}


def started_session(hook: Any, emulator: EmulatorHandle, turns: int, *, outcome: bool) -> str:
    deployment = hook.create_deployment(
        name="bench",
        agent="agent_demo",
        environment_id="env_demo",
        initial_events=[MESSAGE, OUTCOME] if outcome else [MESSAGE],
    )
    script = {"iterations": turns, "turn_seconds": TURN, "start_delay": 1.0}
    emulator.control("POST", f"deployments/{deployment.id}/session_script", script)
    session_id = hook.run_deployment(deployment.id).session_id
    assert session_id is not None
    return session_id


def ours(hook: Any, emulator: EmulatorHandle, session_id: str, clock: VirtualTime) -> str:
    """The run operator's follow, as it runs in a worker (its clock is the emulator's)."""
    from airflow_provider_managed_agents.following import TimeLimit
    from airflow_provider_managed_agents.operators.runs import ManagedAgentsRunDeploymentOperator
    from airflow_provider_managed_agents.waiting import clock as provider_clock
    from airflow_provider_managed_agents.waiting.sessions import final_message

    provider_clock.now = clock.now  # type: ignore[assignment]
    provider_clock.sleep = clock.sleep  # type: ignore[assignment]
    op = ManagedAgentsRunDeploymentOperator(task_id="bench", deployment_id="x", poll_interval=POLL)
    op.__dict__["hook"] = hook
    limit = TimeLimit(clock.now() + timedelta(hours=12), 43_200)
    verdict = op._follow_here(session_id, limit, clock.now() + timedelta(seconds=POLL))
    final_message(hook, session_id)
    return verdict.status


def anthropic_provider_way(emulator: EmulatorHandle, session_id: str, clock: VirtualTime, *, outcome: bool) -> str:
    """The anthropic provider 1.2.0's poll loop, request by request, against the same API."""
    headers = {"x-api-key": emulator.api_key, "anthropic-version": API_VERSION, "anthropic-beta": MANAGED_AGENTS_BETA}
    # The provider knows the event it sent to start the work from its send's answer (no request).
    kickoff = emulator.state()["sessions"][0]["events"][0]["id"]
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=30) as client:
        while True:
            session = client.get(f"/v1/sessions/{session_id}").json()
            if session["status"] == "terminated":
                return "failed"
            if session["status"] == "idle":
                if outcome:
                    results = [o["result"] for o in session["outcome_evaluations"]]
                    if "satisfied" in results:
                        client.get(f"/v1/sessions/{session_id}")  # the usage for XCom
                        return "success"
                    if any(r in ("failed", "max_iterations_reached", "interrupted") for r in results):
                        return "failed"
                else:
                    verdict = newest_idle(client, session_id, kickoff)
                    if verdict is not None:
                        if verdict == "end_turn":
                            client.get(f"/v1/sessions/{session_id}")
                            return "success"
                        return "failed"
            clock.sleep(POLL)


def newest_idle(client: httpx.Client, session_id: str, kickoff: str) -> str | None:
    params: dict[str, Any] = {"limit": 20, "order": "desc"}
    seen = 0
    while seen < 100:
        page = client.get(f"/v1/sessions/{session_id}/events", params=params).json()
        for event in page["data"]:
            seen += 1
            if event["id"] == kickoff:
                return None
            if event["type"] == "session.status_idle":
                return str(event["stop_reason"]["type"])
        if not page.get("next_page"):
            return None
        params["page"] = page["next_page"]
    return None


def requests_made(emulator: EmulatorHandle) -> int:
    counts = emulator.request_counts()["by_endpoint"]
    return sum(v for k, v in counts.items() if "/v1/sessions" in k)


def follow_costs(turn_counts: list[int]) -> list[dict[str, Any]]:
    emulator = start_emulator_process(api_key="bench-key")
    os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

    results = []
    try:
        for turns in turn_counts:
            for outcome in (True, False) if turns == 1 else (True,):
                for strategy in ("ours", "anthropic provider"):
                    emulator.reset()
                    clock = VirtualTime(emulator)
                    hook = ManagedAgentsHook()
                    session_id = started_session(hook, emulator, turns, outcome=outcome)
                    before = requests_made(emulator)
                    if strategy == "ours":
                        status = ours(hook, emulator, session_id, clock)
                    else:
                        status = anthropic_provider_way(emulator, session_id, clock, outcome=outcome)
                    assert status == "success", status
                    session = emulator.state()["sessions"][0]
                    idle = parse_timestamp(
                        next(e for e in session["events"] if e["type"] == "session.status_idle")["processed_at"]
                    )
                    running_for = (idle - parse_timestamp(session["created_at"])).total_seconds()
                    results.append(
                        {
                            "turns": turns,
                            "outcome": outcome,
                            "strategy": strategy,
                            "requests": requests_made(emulator) - before,
                            "polls_while_running": int(running_for // POLL) + 1,
                            "simulated_wait_s": round((clock.now() - idle).total_seconds() + running_for, 1),
                        }
                    )
    finally:
        emulator.stop()
    return results


# --- (b) many session waits in one loop ------------------------------------------------------


async def many_waits(count: int, poll_interval: float, emulator: EmulatorHandle) -> dict[str, Any]:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.triggers.sessions import ManagedAgentsSessionTrigger

    hook = ManagedAgentsHook()
    deployment = hook.create_deployment(
        name="scale", agent="agent_demo", environment_id="env_demo", initial_events=[MESSAGE]
    )
    sessions: list[str] = []
    created_from = time.time()
    for i in range(count):  # each ends at its own moment, 20 to 50 s from its start
        emulator.control("POST", "sessions/next_script", {"turn_seconds": 20 + 30 * i / count, "start_delay": 0.5})
        run = await asyncio.to_thread(hook.run_deployment, deployment.id)
        sessions.append(str(run.session_id))
    fired_at: dict[str, float] = {}
    started_at = time.time()  # every wait starts now: a session that ended earlier is seen from here
    before = sum(emulator.request_counts()["by_endpoint"].values())

    async def wait(session_id: str) -> None:
        async for event in ManagedAgentsSessionTrigger(session_id=session_id, poll_interval=poll_interval).run():
            assert decode(event.payload, SessionWaitEvent).verdict().status == "success", event.payload
            fired_at[session_id] = time.time()
            return

    cpu_before = time.process_time()
    await asyncio.gather(*(wait(s) for s in sessions))
    cpu = time.process_time() - cpu_before
    requests = sum(emulator.request_counts()["by_endpoint"].values()) - before
    world = {s["id"]: s for s in emulator.state()["sessions"]}
    lags, idle_before_start = [], 0
    for session_id, fired in fired_at.items():
        idle = next(e for e in world[session_id]["events"] if e["type"] == "session.status_idle")
        # The emulator's clock is real time here (not frozen): the idle event's time is wall time.
        idle_at = parse_timestamp(idle["processed_at"]).timestamp()
        idle_before_start += idle_at < started_at
        lags.append(fired - max(idle_at, started_at))
    lags.sort()
    return {
        "waits": count,
        "ended": len(fired_at),
        "poll_interval_s": poll_interval,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "requests": requests,
        "cpu_ms_per_request": 1000 * cpu / max(requests, 1),
        "lag_median_s": lags[len(lags) // 2],
        "lag_max_s": lags[-1],
        "ended_before_their_wait_started": idle_before_start,
        "creating_the_runs_s": started_at - created_from,
    }


def run_many(args: argparse.Namespace) -> dict[str, Any]:
    logging.getLogger("airflow_provider_managed_agents").setLevel(logging.WARNING)
    emulator = start_emulator_process(api_key="bench-key")
    os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
    try:
        return asyncio.run(many_waits(args.waits, args.poll_interval, emulator))
    finally:
        emulator.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--waits", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--many", action="store_true", help="(b) only, in this interpreter")
    args = parser.parse_args()
    if args.many:
        print(json.dumps(run_many(args)))
        return 0
    costs = follow_costs([1, 3, 10])
    rows = [
        (r["turns"], "yes" if r["outcome"] else "no", r["strategy"], r["requests"], r["polls_while_running"])
        for r in costs
    ]
    print_table(
        f"(a) Requests to follow a session to its end ({TURN:g} s turns, poll every {POLL:g} s)",
        ["turns", "outcome", "strategy", "requests", "polls while running"],
        rows,
    )
    command = [PYTHON, __file__, "--many", "--waits", str(args.waits), "--poll-interval", str(args.poll_interval)]
    many = json.loads(
        subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    )
    print_table(
        f"(b) {many['waits']} concurrent session waits in one event loop, poll every {many['poll_interval_s']} s",
        ["measure", "value", "goal"],
        [
            ("ended", f"{many['ended']} / {many['waits']}", "all"),
            ("peak RSS (MB)", round(many["peak_rss_mb"], 1), ""),
            ("API requests", many["requests"], ""),
            ("CPU per request (ms)", round(many["cpu_ms_per_request"], 3), ""),
            ("lag idle -> event, median (s)", round(many["lag_median_s"], 2), ""),
            ("lag idle -> event, max (s)", round(many["lag_max_s"], 2), f"<= poll interval {many['poll_interval_s']}"),
            ("creating the 1,000 runs first (s)", round(many["creating_the_runs_s"], 1), ""),
            ("idle before their wait started", many["ended_before_their_wait_started"], "lag counted from the start"),
        ],
    )
    write_results("session_cost", {"follow": costs, "many_waits": many, "goal": "<= 1 per poll while running + 2"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
