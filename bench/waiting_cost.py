"""Benchmark 3: what waiting for a run costs in API requests and time.

The sensor's own decision (``RunWait``: schedule-aware sleeps) against fixed-interval polling
(one runs query every 10 s or 60 s), waiting for (a) a manual run made 30 s in, (b) the next
fire of a per-minute schedule, (c) the next fire of an hourly schedule. Time is simulated: the
emulator's clock is advanced by each sleep instead of sleeping, so an hour costs seconds, while
every request is real HTTP and the emulator's scheduler really fires (with up to 10 s jitter).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, write_results

from airflow_provider_managed_agents.emulator.server import EmulatorHandle, start_emulator_process
from airflow_provider_managed_agents.models.base import parse_timestamp
from airflow_provider_managed_agents.waiting.runs import LookState, RunWait, Verdict, look


class VirtualTime:
    """The emulator's clock, frozen, and moved only by this waiter's sleeps: the waiter and the
    emulator's scheduler see the same instants, and an hour of waiting costs no real time. Each
    jump returns once the fires it made due are recorded."""

    def __init__(self, emulator: EmulatorHandle):
        self.emulator = emulator
        emulator.freeze_clock(True)
        self._now = parse_timestamp(emulator.state()["now"])

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.emulator.advance_clock(seconds)
        self._now += timedelta(seconds=seconds)


PARAMS: dict[str, Any] = {
    "agent": "agent_demo",
    "environment_id": "env_demo",
    "name": "bench",
    "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
}


def just_after_a_fire(hook: Any, clock: VirtualTime, cron: str) -> Any:
    """A deployment on ``cron`` (UTC), the clock just past a fire and its run: the worst case
    for a wait, a whole period ahead."""
    deployment = hook.create_deployment({**PARAMS, "schedule": {"type": "cron", "expression": cron, "timezone": "UTC"}})
    clock.sleep((deployment.schedule.upcoming_runs_at[0] - clock.now()).total_seconds() + 11)
    clock.sleep(1)  # that fire's run is now strictly before the wait's reference time
    return deployment


def requests_by_endpoint(emulator: EmulatorHandle) -> dict[str, int]:
    return dict(emulator.request_counts()["by_endpoint"])


def wait(
    hook: Any,
    emulator: EmulatorHandle,
    clock: VirtualTime,
    question: RunWait,
    interval: float | None,
    on_step: Callable[[float], None] = lambda elapsed: None,
) -> tuple[dict[str, int], float, Verdict]:
    """Wait until a run answers; ``interval`` None = the sensor's schedule-aware looks.
    Returns the requests made by endpoint, the simulated wait and the verdict."""
    started, before = clock.now(), requests_by_endpoint(emulator)
    state = LookState()  # as the trigger and a poking sensor keep it
    while True:
        if interval is None:
            verdict = look(question, hook, state, clock.now())
        else:  # the naive poller: one runs query per interval, nothing else
            page = hook.list_deployment_runs_page(**question.runs_filters())
            verdict = question.on_runs(page.data) or Verdict("waiting")
        if verdict.done:
            break
        if interval is None:
            assert verdict.next_look_at is not None
            clock.sleep((verdict.next_look_at - clock.now()).total_seconds())
        else:
            clock.sleep(interval)
        on_step((clock.now() - started).total_seconds())
        if (clock.now() - started) > timedelta(hours=3):
            raise RuntimeError("gave up")
    after = requests_by_endpoint(emulator)
    made = {endpoint: after.get(endpoint, 0) - before.get(endpoint, 0) for endpoint in after}
    return {k: v for k, v in made.items() if v}, (clock.now() - started).total_seconds(), verdict


def main() -> int:
    emulator = start_emulator_process(api_key="bench-key", max_jitter=10.0)
    os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

    hook = ManagedAgentsHook()
    rows: list[tuple[Any, ...]] = []
    results: list[dict[str, Any]] = []
    try:
        strategies: list[tuple[str, float | None]] = [
            ("RunWait (schedule-aware)", None),
            ("fixed 10 s polling", 10.0),
            ("fixed 60 s polling", 60.0),
        ]
        scenarios = [
            ("(a) manual run 30 s in", None, "manual"),
            ("(b) per-minute schedule", "* * * * *", "schedule"),
            ("(c) hourly schedule", "0 * * * *", "schedule"),
        ]
        for scenario, cron, trigger_type in scenarios:
            for strategy, interval in strategies:
                emulator.reset()
                clock = VirtualTime(emulator)
                deployment = just_after_a_fire(hook, clock, cron) if cron else hook.create_deployment(PARAMS)
                question = RunWait(
                    deployment_id=deployment.id,
                    trigger_type=trigger_type,  # type: ignore[arg-type]
                    created_after=clock.now(),
                    poll_interval=10.0,
                )
                made: list[bool] = []

                def manual(elapsed: float, deployment_id: str = deployment.id, made: list[bool] = made) -> None:
                    if elapsed >= 30 and not made:
                        hook.run_deployment(deployment_id)
                        made.append(True)

                made, waited, verdict = wait(
                    hook, emulator, clock, question, interval, manual if trigger_type == "manual" else (lambda e: None)
                )
                assert verdict.status == "success", verdict.reason
                runs_queries = made.get("GET /v1/deployment_runs", 0)
                deployment_reads = made.get("GET /v1/deployments/{deployment_id}", 0)
                requests = runs_queries + deployment_reads
                rows.append((scenario, strategy, requests, runs_queries, deployment_reads, round(waited, 1)))
                results.append(
                    {
                        "scenario": scenario,
                        "strategy": strategy,
                        "requests": requests,
                        "runs_queries": runs_queries,
                        "deployment_reads": deployment_reads,
                        "simulated_wait_s": waited,
                    }
                )
        print_table(
            "Requests and simulated wait until the run is seen",
            ["scenario", "strategy", "requests", "runs queries", "deployment reads", "wait (s)"],
            rows,
        )
        ours = {r["scenario"]: r["requests"] for r in results if r["strategy"].startswith("RunWait")}
        print(
            f"\nschedule-aware requests per fire: {ours} (goal: <= 3 for a per-minute schedule; a far fire adds"
            " one deployment read per minute waited, so that a pause or archive fails the wait within a minute)"
        )
        write_results("waiting_cost", {"results": results, "goal_requests_per_minute_fire": 3})
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
