"""The fault campaign: create -> run -> follow the session to its end -> sense, through the
operators and the sensor's look, against the emulator injecting faults, then an audit of the
emulator's own state. Each cycle's session is scripted to one of several endings (success, an
unmet outcome, a refusal, the budget...): the run operator must reach exactly that verdict.

Used by ``tests/reliability/test_campaign.py`` (a CI sample) and ``make reliability`` (the full
count). Retry sleeps are shortened (the delays are the hook's to choose, the outcome is what is
measured here); every other part runs as in production, over real HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pendulum
from fakes import FakeTI
from fakes import context as fake_context

from airflow_provider_managed_agents.hooks.budget import budget_for
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)
from airflow_provider_managed_agents.waiting.runs import LookState, RunWait, look

FAULT_KINDS = ["429", "529", "500", "503", "drop", "commit_then_drop", "latency"]
MARKER = "airflow_idempotency_key"


def CampaignTI(cycle: int) -> FakeTI:
    return FakeTI(dag_id="reliability", task_id=f"cycle_{cycle}", run_id="campaign", start_date=pendulum.now("UTC"))


@dataclass
class CampaignResult:
    cycles: int
    seconds: float
    requests: int = 0
    faults_injected: int = 0
    failed_cycles: list[tuple[int, str]] = field(default_factory=list)
    duplicate_deployments: int = 0
    duplicate_manual_runs: int = 0
    lost_runs: int = 0
    sessions_followed: int = 0
    wrong_verdicts: list[tuple[int, str, str]] = field(default_factory=list)
    feed_waits: int = 0
    feed_lost: list[str] = field(default_factory=list)
    feed_wrong: int = 0
    session_feed_waits: int = 0
    session_feed_wrong: list[tuple[str, str, str]] = field(default_factory=list)

    def table(self) -> str:
        rows = [
            ("cycles (create -> run -> follow -> sense)", self.cycles),
            ("API requests", self.requests),
            ("faults injected", self.faults_injected),
            ("cycles failed by a transient fault", len(self.failed_cycles)),
            ("duplicate deployments", self.duplicate_deployments),
            ("duplicate manual runs", self.duplicate_manual_runs),
            ("lost runs", self.lost_runs),
            ("sessions followed to their end", self.sessions_followed),
            ("wrong session verdicts", len(self.wrong_verdicts)),
            ("deferred waits through the runs feed", self.feed_waits),
            ("feed waits never resolved", len(self.feed_lost)),
            ("feed waits with a wrong verdict", self.feed_wrong),
            ("deferred session waits through the sessions feed", self.session_feed_waits),
            ("session feed waits with a wrong verdict", len(self.session_feed_wrong)),
            ("wall time (s)", f"{self.seconds:.1f}"),
        ]
        return "\n".join(f"| {name:<36} | {value:>8} |" for name, value in rows)


class ShortenedTime:
    """Sleeps of a fiftieth (at most 20 ms) that count as slept in full: a monotonic clock that
    runs ahead by what each sleep skipped."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead

    def _skip(self, seconds: float) -> float:
        real = min(max(seconds, 0.0), 1.0) / 50
        self.ahead += max(seconds, 0.0) - real
        return real

    def sleep(self, seconds: float) -> None:
        time.sleep(self._skip(seconds))

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(self._skip(seconds))


def control(base_url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(method, f"{base_url}/_emulator/{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json() if response.content else None


def run_campaign(emulator: Any, cycles: int, *, fault_rate: float = 0.3, seed: int = 7) -> CampaignResult:
    base_url = emulator.base_url
    hook = ManagedAgentsHook()
    # Retry budget for a 30 % fault rate: P(9 faults in a row) = 2e-5 per request.
    hook._settings = dataclasses.replace(hook.settings, max_retries=8, timeout=10.0)
    clock = ShortenedTime()
    hook._sleep = clock.sleep  # type: ignore[method-assign]
    hook._asleep = clock.asleep  # type: ignore[method-assign]
    # The connection's request budget (a 429's pause, the pace after it) keeps the same time as
    # the shortened sleeps: what a request waited for counts in full.
    budget_for(hook.managed_agents_conn_id).monotonic = clock.monotonic
    control(
        base_url,
        "POST",
        "faults",
        {
            "rate": fault_rate,
            "kinds": FAULT_KINDS,
            "endpoints": ["*"],
            "retry_after": 1,
            "latency_ms": 50,
            "seed": seed,
        },
    )
    started = time.monotonic()
    result = CampaignResult(cycles=cycles, seconds=0.0)
    sensed: dict[str, str] = {}
    followed: dict[str, str] = {}  # session id -> the verdict the run operator reached
    try:
        for cycle in range(cycles):
            script, expected = SESSION_ENDINGS[cycle % len(SESSION_ENDINGS)]
            try:
                sensed[f"cycle-{cycle}"], verdict, session_id = one_cycle(hook, cycle, base_url, script)
            except Exception as exc:  # recorded and asserted on: none may happen
                result.failed_cycles.append((cycle, f"{type(exc).__name__}: {exc}"))
                continue
            result.sessions_followed += 1
            followed[session_id] = verdict
            if verdict != expected:
                result.wrong_verdicts.append((cycle, expected, verdict))
        audit(base_url, result, sensed)  # before the feed's waits add a second manual run to each
        feed_campaign(hook, base_url, list(sensed), result)
        session_feed_campaign(hook, followed, result)
    finally:
        control(base_url, "DELETE", "faults")
    result.seconds = time.monotonic() - started
    result.requests = control(base_url, "GET", "requests").get("total", 0)
    result.faults_injected = control(base_url, "GET", "requests").get("faults", 0)
    return result


def feed_campaign(hook: ManagedAgentsHook, base_url: str, markers: list[str], result: CampaignResult) -> None:
    """Deferred waits on every cycle's deployment, all through one runs feed, under the same
    faults: each must resolve with exactly the run a wait polling alone would pick."""
    from airflow_provider_managed_agents.triggers.runs_feed import runs_feed

    world = control(base_url, "GET", "state")
    deployment_ids = [d["id"] for d in world["deployments"] if d["metadata"].get(MARKER, "") in set(markers)]
    since = pendulum.now("UTC")
    waits = [
        RunWait(deployment_id=d, trigger_type="manual", created_after=since, poll_interval=0.1) for d in deployment_ids
    ]

    async def scenario() -> list[Any]:
        feed = runs_feed(hook.managed_agents_conn_id)
        feed.hook = hook  # the campaign's hook: its retry budget and shortened sleeps
        pending = [
            asyncio.create_task(feed.wait_for(w, deadline=pendulum.now("UTC").add(minutes=5), timeout=300))
            for w in waits
        ]
        for deployment_id in deployment_ids:
            await asyncio.to_thread(hook.run_deployment, deployment_id)
        return list(await asyncio.gather(*pending))

    verdicts = asyncio.run(scenario())
    result.feed_waits = len(waits)
    for wait, verdict in zip(waits, verdicts, strict=True):
        if verdict.status != "success" or verdict.run is None:
            result.feed_lost.append(f"{verdict.status}: {verdict.reason}")
            continue
        alone = look(wait, hook, LookState(), pendulum.now("UTC"), final=True)
        if alone.run is None or alone.run.id != verdict.run.id:
            result.feed_wrong += 1


def session_feed_campaign(hook: ManagedAgentsHook, followed: dict[str, str], result: CampaignResult) -> None:
    """Deferred waits on every cycle's session, all through one sessions feed, under the same
    faults: each must end as the run operator's own follow ended."""
    from airflow_provider_managed_agents.triggers.sessions_feed import sessions_feed
    from airflow_provider_managed_agents.waiting.sessions import SessionWait

    async def scenario() -> list[Any]:
        feed = sessions_feed(hook.managed_agents_conn_id)
        feed.hook = hook  # the campaign's hook: its retry budget and shortened sleeps
        since = pendulum.now("UTC").subtract(hours=1)
        return list(
            await asyncio.gather(
                *(
                    feed.wait_for(
                        SessionWait(session_id, 0.1),
                        deadline=pendulum.now("UTC").add(minutes=5),
                        timeout=300,
                        created_after=since,
                    )
                    for session_id in followed
                )
            )
        )

    verdicts = asyncio.run(scenario())
    result.session_feed_waits = len(verdicts)
    for (session_id, expected), verdict in zip(followed.items(), verdicts, strict=True):
        reached = "success" if verdict.status == "success" else type(verdict.error).__name__
        if reached != expected:
            result.session_feed_wrong.append((session_id, expected, reached))


# (the session's script, the verdict the run operator must reach: "success" or the error class)
SESSION_ENDINGS: list[tuple[dict[str, Any], str]] = [
    ({}, "success"),
    ({"outcome_result": "failed"}, "SessionOutcomeNotMetError"),
    ({"ending": "refusal"}, "SessionRefusedError"),
    ({}, "success"),
    ({"ending": "budget_reached"}, "SessionBudgetReachedError"),
    ({"ending": "retries_exhausted", "rescheduling": True}, "SessionRetriesExhaustedError"),
    ({"rescheduling": True}, "success"),
    ({"ending": "terminated"}, "SessionTerminatedError"),
]
OUTCOME = {"type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "r"}}
MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "reliability cycle"}]}


def one_cycle(hook: ManagedAgentsHook, cycle: int, base_url: str, script: dict[str, Any]) -> tuple[str, str, str]:
    """One create -> run -> follow -> sense cycle; the run id, the session verdict reached and
    the session."""
    from airflow_provider_managed_agents.exceptions import SessionError

    ti = CampaignTI(cycle)
    context = fake_context(ti)
    create = ManagedAgentsCreateDeploymentOperator(
        task_id=ti.task_id,
        agent="agent_demo",
        environment_id="env_demo",
        name=f"campaign {cycle}",
        initial_events=[MESSAGE, OUTCOME] if "outcome_result" in script else [MESSAGE],
        idempotency_key=f"cycle-{cycle}",
    )
    create.__dict__["hook"] = hook
    deployment_id = create.execute(context)
    # A fast script: the campaign is about the conversation under faults, not the agent's pace.
    control(
        base_url,
        "POST",
        f"deployments/{deployment_id}/session_script",
        {**script, "start_delay": 0.0, "turn_seconds": 0.05},
    )
    run = ManagedAgentsRunDeploymentOperator(
        task_id=f"run_{cycle}",
        deployment_id=deployment_id,
        wait_for_session_end=True,
        deferrable=False,
        poll_interval=0.02,
    )
    run.__dict__["hook"] = hook
    try:
        run_id = run.execute(context)
        verdict = "success"
    except SessionError as ending:
        run_id, verdict = ti.xcom["deployment_run"]["id"], type(ending).__name__
    sensed = look(RunWait(deployment_run_id=run_id), hook, LookState(), pendulum.now("UTC"))
    assert sensed.status == "success", sensed.reason
    return run_id, verdict, ti.xcom["session_id"]


def audit(base_url: str, result: CampaignResult, sensed: dict[str, str]) -> None:
    world = control(base_url, "GET", "state")
    counts = control(base_url, "GET", "requests")
    result.requests = counts.get("total", 0)
    result.faults_injected = counts.get("faults", 0)
    by_marker: dict[str, list[str]] = {}
    for deployment in world["deployments"]:
        marker = deployment.get("metadata", {}).get(MARKER, "")
        if marker.startswith("cycle-"):
            by_marker.setdefault(marker, []).append(deployment["id"])
    result.duplicate_deployments = sum(len(ids) - 1 for ids in by_marker.values())
    manual_runs = Counter(r["deployment_id"] for r in world["runs"] if r["trigger_context"]["type"] == "manual")
    result.duplicate_manual_runs = sum(
        max(manual_runs[deployment_id] - 1, 0) for ids in by_marker.values() for deployment_id in ids
    )
    recorded = {r["id"] for r in world["runs"]}
    # A lost run: a cycle whose run the operator reported but the service never recorded.
    result.lost_runs = sum(1 for run_id in sensed.values() if run_id not in recorded)
