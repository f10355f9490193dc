"""A trigger survives a triggerer restart without missing or double-counting a run, and
cancelling triggers or killing a sensor leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pendulum
import pytest

from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.triggers.deployment_runs import ManagedAgentsDeploymentRunTrigger
from airflow_provider_managed_agents.waiting.events import RunWaitEvent, decode
from airflow_provider_managed_agents.waiting.runs import RunWait

PARAMS = {
    "agent": "agent_demo",
    "environment_id": "env_demo",
    "name": "restart",
    "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
}


@pytest.fixture
def hook(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> ManagedAgentsHook:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    return ManagedAgentsHook()


def open_sockets() -> int:
    return sum(
        1
        for fd in os.listdir("/proc/self/fd")
        if os.path.exists(f"/proc/self/fd/{fd}") and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    )


async def first_event(trigger: ManagedAgentsDeploymentRunTrigger, timeout: float) -> Any:
    return await asyncio.wait_for(anext(aiter(trigger.run())), timeout)


async def until_runs_queries(emulator: Any, count: int, deadline: float = 60) -> None:
    """Until the emulator has answered ``count`` runs queries: the triggers are really waiting."""
    give_up = time.monotonic() + deadline
    while emulator.request_counts()["by_endpoint"].get("GET /v1/deployment_runs", 0) < count:
        assert time.monotonic() < give_up, "the triggers never looked"
        await asyncio.sleep(0.05)


def test_a_run_fired_while_the_triggerer_was_down_is_found_exactly_once(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment = hook.create_deployment(
        {**PARAMS, "schedule": {"type": "cron", "expression": "0 3 * * *", "timezone": "UTC"}}
    )
    wait = RunWait(deployment_id=deployment.id, trigger_type=None, created_after=pendulum.now("UTC"), poll_interval=0.5)
    classpath, kwargs = ManagedAgentsDeploymentRunTrigger(wait=wait.to_dict()).serialize()

    async def scenario() -> list[Any]:
        # The first triggerer starts waiting, then dies.
        managed_agents_emulator.control("DELETE", "requests")
        waiting = asyncio.create_task(first_event(ManagedAgentsDeploymentRunTrigger(**kwargs), 30))
        await until_runs_queries(managed_agents_emulator, 2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # While it is down, the schedule fires.
        fired = managed_agents_emulator.fire(deployment.id)["run"]
        # Another triggerer rebuilds the trigger from its serialised form.
        event = await first_event(ManagedAgentsDeploymentRunTrigger(**kwargs), 30)
        # And a second restart after the event does not produce another, different run.
        again = await first_event(ManagedAgentsDeploymentRunTrigger(**kwargs), 30)
        return [fired, event, again]

    fired, event, again = asyncio.run(scenario())
    assert classpath.endswith("ManagedAgentsDeploymentRunTrigger")
    verdict, verdict_again = (decode(e.payload, RunWaitEvent).verdict() for e in (event, again))
    assert verdict.status == "success" and verdict.run is not None and verdict.run.id == fired["id"]
    assert verdict_again.run is not None and verdict_again.run.id == fired["id"]  # the same run, never a second one
    runs = [r for r in managed_agents_emulator.state()["runs"] if r["deployment_id"] == deployment.id]
    assert len(runs) == 1


@pytest.mark.slow
def test_cancelling_waiting_triggers_raises_nothing_else_and_leaks_no_connections(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployments = [hook.create_deployment(PARAMS).id for _ in range(30)]
    since = pendulum.now("UTC")
    before = open_sockets()

    async def scenario() -> list[BaseException | None]:
        managed_agents_emulator.control("DELETE", "requests")
        tasks = [
            asyncio.create_task(
                first_event(
                    ManagedAgentsDeploymentRunTrigger(
                        wait=RunWait(
                            deployment_id=d, trigger_type="manual", created_after=since, poll_interval=0.2
                        ).to_dict()
                    ),
                    60,
                )
            )
            for d in deployments
        ]
        await until_runs_queries(managed_agents_emulator, 2 * len(tasks))  # every trigger mid-wait, some mid-request
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        return [o if isinstance(o, BaseException) else None for o in outcomes]

    outcomes = asyncio.run(scenario())  # the end of the loop closes its shared client
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
    # The emulator serves from this process: its side of each closed connection goes away
    # once it reads the EOF, a moment after the client closed.
    deadline = time.monotonic() + 5
    while open_sockets() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_sockets() <= before


def test_killing_a_poking_sensor_closes_its_client(hook: ManagedAgentsHook) -> None:
    from airflow_provider_managed_agents.sensors.deployment_runs import ManagedAgentsDeploymentRunSensor

    sensor = ManagedAgentsDeploymentRunSensor(task_id="gate", deployment_id="depl_x", trigger_type="manual")
    sensor.__dict__["hook"] = hook
    hook.list_deployment_runs_page(deployment_id="depl_x")  # the client is open
    client = hook.client
    sensor.on_kill()
    assert client.is_closed
