"""The runs feed over real HTTP: many deferred waits on many deployments in one event loop share
one runs query per poll, and each resolves with exactly the run a single wait polling alone would
pick, whenever the runs come (between polls, between the pages of a poll, while a trigger starts,
while the triggerer is down), under faults, and through cancellations."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import pendulum
import pytest

from airflow_provider_managed_agents.hooks import loop_pool as loop_pool_module
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.triggers import runs_feed as runs_feed_module
from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger
from airflow_provider_managed_agents.triggers.runs_feed import runs_feed
from airflow_provider_managed_agents.waiting.events import RunWaitEvent, decode
from airflow_provider_managed_agents.waiting.runs import LookState, RunWait, Verdict, look

# Each test here runs a feed for seconds of real time: `make test-fast` leaves them out.
pytestmark = pytest.mark.slow

MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}


@pytest.fixture
def hook(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> ManagedAgentsHook:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    monkeypatch.setattr(runs_feed_module, "RUNS_PAGE_SIZE", 25)  # many pages from few runs
    return ManagedAgentsHook()


def deployments(hook: ManagedAgentsHook, count: int) -> list[str]:
    return [
        hook.create_deployment(
            name=f"feed {i}", agent="agent_demo", environment_id="env_demo", initial_events=[MESSAGE]
        ).id
        for i in range(count)
    ]


def alone(hook: ManagedAgentsHook, wait: RunWait) -> str | None:
    """What a single wait polling alone picks, looking now at everything that exists."""
    verdict = look(wait, hook, LookState(), pendulum.now("UTC"), final=True)
    return verdict.run.id if verdict.run is not None else None


def trigger_for(wait: RunWait, poll_interval: float = 0.2) -> ManagedAgentsDeploymentRunTrigger:
    data = {**wait.to_dict(), "poll_interval": poll_interval}
    return ManagedAgentsDeploymentRunTrigger(
        wait=data, timeout=120, deadline=pendulum.now("UTC").add(minutes=2).isoformat()
    )


async def first_event(trigger: ManagedAgentsDeploymentRunTrigger) -> Verdict:
    """The trigger's one event, read back as the worker reads it."""
    event = await anext(aiter(trigger.run()))
    return decode(event.payload, RunWaitEvent).verdict()


class PagingHook:
    """Makes a run of a waited deployment between the pages of a feed's read (once per read)."""

    def __init__(self, hook: ManagedAgentsHook, targets: list[str]) -> None:
        self.hook, self.targets, self.made = hook, targets, 0

    def wrap(self, settings: Any) -> httpx.AsyncClient:
        outer = self

        class Transport(httpx.AsyncHTTPTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                response = await super().handle_async_request(request)
                if request.url.path == "/v1/deployment_runs" and request.url.params.get("page") is None:
                    await response.aread()
                    if b'"next_page": "' in response.content or b'"next_page":"' in response.content:
                        target = outer.targets[outer.made % len(outer.targets)]
                        await asyncio.to_thread(outer.hook.run_deployment, target)
                        outer.made += 1
                return response

        return httpx.AsyncClient(transport=Transport(), **settings.client_options())


def test_many_waits_resolve_with_the_run_a_single_wait_would_pick(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(16)
    ids = deployments(hook, 12)
    for deployment_id in ids[:6]:  # history before the waits: some of it inside their windows
        managed_agents_emulator.control("POST", f"deployments/{deployment_id}/seed_runs", {"count": 8})
    paging = PagingHook(hook, ids)
    monkeypatch.setattr(loop_pool_module, "new_async_client", paging.wrap)
    waits: list[RunWait] = []
    for deployment_id in ids:
        for trigger_type in (None, "manual"):
            waits.append(
                RunWait(
                    deployment_id=deployment_id,
                    trigger_type=trigger_type,
                    created_after=pendulum.now("UTC"),
                    poll_interval=0.2,
                )
            )

    async def scenario() -> list[dict[str, Any]]:
        tasks = []
        for wait in waits:  # triggers start one by one, runs landing while they do
            tasks.append(asyncio.create_task(first_event(trigger_for(wait))))
            if rng.random() < 0.3:
                await asyncio.to_thread(hook.run_deployment, rng.choice(ids))
            await asyncio.sleep(0)
        for _ in range(15):  # and at random moments afterwards
            await asyncio.sleep(rng.random() * 0.2)
            await asyncio.to_thread(hook.run_deployment, rng.choice(ids))
        for deployment_id in ids:  # every wait has something to find in the end
            await asyncio.to_thread(hook.run_deployment, deployment_id)
        return await asyncio.wait_for(asyncio.gather(*tasks), 120)

    events = asyncio.run(scenario())
    assert paging.made > 0  # runs really landed between the pages of a read
    for wait, event in zip(waits, events, strict=True):
        assert event.status == "success" and event.run is not None, event
        assert event.run.id == alone(hook, wait), wait


def test_a_run_that_fired_while_the_triggerer_was_down_is_delivered_once(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    (deployment_id,) = deployments(hook, 1)
    since = pendulum.now("UTC")
    wait = RunWait(deployment_id=deployment_id, trigger_type=None, created_after=since, poll_interval=0.2)
    _, kwargs = trigger_for(wait).serialize()

    async def until_looked(count: int) -> None:
        give_up = time.monotonic() + 60
        while managed_agents_emulator.request_counts()["by_endpoint"].get("GET /v1/deployment_runs", 0) < count:
            assert time.monotonic() < give_up
            await asyncio.sleep(0.02)

    async def first_triggerer() -> None:
        waiting = asyncio.create_task(first_event(ManagedAgentsDeploymentRunTrigger(**kwargs)))
        await until_looked(1)
        waiting.cancel()  # the triggerer dies mid-wait
        with pytest.raises(asyncio.CancelledError):
            await waiting

    async def second_triggerer() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(first_event(ManagedAgentsDeploymentRunTrigger(**kwargs)) for _ in range(3))))

    managed_agents_emulator.control("DELETE", "requests")
    asyncio.run(first_triggerer())
    fired = hook.run_deployment(deployment_id)  # while no triggerer runs
    later = hook.run_deployment(deployment_id)
    events = asyncio.run(second_triggerer())  # a new event loop: a new feed, as after a restart
    assert {e.run.id for e in events if e.run} == {fired.id} and fired.id != later.id


def test_feed_errors_are_transient_and_cancelled_waits_leave_cleanly(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    ids = deployments(hook, 20)
    since = pendulum.now("UTC")
    waits = [RunWait(deployment_id=d, created_after=since, poll_interval=0.2) for d in ids]
    cancelled_ids = set(ids[::4])

    async def scenario() -> tuple[dict[str, Any], Any]:
        managed_agents_emulator.inject_faults(  # on the feed's reads only: the test's own runs must land
            rate=0.3,
            kinds=["429", "500", "503", "drop"],
            seed=3,
            retry_after=0,
            endpoints=["GET /v1/deployment_runs", "GET /v1/deployments", "GET /v1/deployments/{deployment_id}"],
        )
        tasks = {w.deployment_id: asyncio.create_task(first_event(trigger_for(w))) for w in waits}
        await asyncio.sleep(0.5)
        for deployment_id in cancelled_ids:  # a trigger torn down mid-poll
            tasks[deployment_id].cancel()
        for deployment_id in ids:
            await asyncio.to_thread(hook.run_deployment, deployment_id)
        done = await asyncio.gather(*tasks.values(), return_exceptions=True)
        managed_agents_emulator.clear_faults()
        feed = runs_feed("managed_agents_default")
        for _ in range(200):  # the feed's loop ends once its last wait is gone
            if not feed.status().running:
                break
            await asyncio.sleep(0.05)
        return dict(zip(tasks, done, strict=True)), feed.status()

    outcomes, status = asyncio.run(scenario())
    for deployment_id, outcome in outcomes.items():
        if deployment_id in cancelled_ids:
            assert isinstance(outcome, asyncio.CancelledError)
        else:
            assert isinstance(outcome, Verdict) and outcome.status == "success", outcome
    assert status.waits == 0 and not status.running
    assert managed_agents_emulator.request_counts()["faults"] > 0


def test_one_runs_query_per_poll_however_many_waits(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs_feed_module, "RUNS_PAGE_SIZE", 1000)
    ids = deployments(hook, 60)
    since = pendulum.now("UTC")

    async def scenario() -> tuple[int, float]:
        managed_agents_emulator.control("DELETE", "requests")
        started = time.monotonic()
        tasks = [
            asyncio.create_task(
                first_event(
                    trigger_for(
                        RunWait(deployment_id=d, trigger_type="manual", created_after=since, poll_interval=0.5), 0.5
                    )
                )
            )
            for d in ids
        ]
        await asyncio.sleep(3)
        for deployment_id in ids:
            await asyncio.to_thread(hook.run_deployment, deployment_id)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        return runs_feed("managed_agents_default").status().runs_reads, time.monotonic() - started

    reads, elapsed = asyncio.run(scenario())
    counts = managed_agents_emulator.request_counts()["by_endpoint"]
    # One request a read (a page holds them all), beside the one each manual run notes before it sends.
    assert counts["GET /v1/deployment_runs"] == reads + len(ids)
    # About one per 0.5 s however long a loaded machine takes, not one per wait per poll (60 x that).
    assert reads <= elapsed / 0.5 + 2
    assert counts.get("GET /v1/deployments", 0) <= 2 + elapsed // 60  # the deployments list, not 60 reads
    assert counts.get("GET /v1/deployments/{deployment_id}", 0) == 0
