"""The triggerer's shared async client, per event loop: bounded waits for a request slot, one
live client per connection, a rotated key picked up within the lookup TTL, everything closed
when the loop ends."""

from __future__ import annotations

import asyncio
from typing import Any

import api_samples
import httpx
import pytest

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.hooks import loop_pool as loop_pool_module
from airflow_provider_managed_agents.hooks.loop_pool import MAX_CONNECTIONS, loop_pool
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import Secret, Settings

RUN = api_samples.run_json(agent={"type": "agent", "id": "a", "version": 1})


class Clients:
    """Builds the pool's clients on a mock transport and keeps them, to check they get closed."""

    def __init__(self, handler: Any):
        self.handler = handler
        self.made: list[httpx.AsyncClient] = []

    def __call__(self, settings: Settings) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handler), **settings.client_options())
        self.made.append(client)
        return client


def use(monkeypatch: pytest.MonkeyPatch, handler: Any, keys: list[str], **settings: Any) -> Clients:
    clients = Clients(handler)
    monkeypatch.setattr(loop_pool_module, "new_async_client", clients)

    async def load(self: ManagedAgentsHook) -> Settings:
        key = keys.pop(0) if len(keys) > 1 else keys[0]
        return Settings(api_key=Secret(key), base_url="http://api.test", **settings)

    monkeypatch.setattr(ManagedAgentsHook, "_aload_settings", load)
    return clients


def test_waiting_for_a_request_slot_is_bounded_and_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_CONNECTIONS requests stuck on a silent server: the next one gives up after the
    request timeout with a transient (retryable) error, instead of stalling every trigger."""
    never = asyncio.Event()

    async def silent(request: httpx.Request) -> httpx.Response:
        await never.wait()
        return httpx.Response(200, json=RUN)

    use(monkeypatch, silent, ["k"], timeout=0.05, max_retries=0)

    async def scenario() -> BaseException:
        hook = ManagedAgentsHook()
        stuck = [asyncio.ensure_future(hook.aget_deployment_run("drun_1")) for _ in range(MAX_CONNECTIONS)]
        await asyncio.sleep(0)
        try:
            await hook.aget_deployment_run("drun_1")
        except BaseException as exc:
            return exc
        finally:
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        raise AssertionError("the slot wait did not end")

    failure = asyncio.run(scenario())
    assert isinstance(failure, errors.ManagedAgentsConnectionError)
    assert failure.request_sent is False  # never sent: safe to retry, also for writes
    assert "no request slot free" in str(failure)


def test_a_rotated_key_reaches_running_hooks_and_the_old_client_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["x-api-key"])
        return httpx.Response(200, json=RUN)

    clients = use(monkeypatch, answer, ["key-1", "key-2"])
    monkeypatch.setattr(loop_pool_module, "SETTINGS_TTL_SECONDS", 0.0)  # every lookup is stale

    async def scenario() -> None:
        hook = ManagedAgentsHook()  # one hook, as a trigger keeps it for its whole life
        await hook.aget_deployment_run("drun_1")
        await hook.aget_deployment_run("drun_1")
        for _ in range(1000):  # let the retired client's close run (a few loop turns; more on 3.13)
            if loop_pool().live_clients() == 1:
                break
            await asyncio.sleep(0)
        assert loop_pool().live_clients() == 1

    asyncio.run(scenario())
    assert seen == ["key-1", "key-2"]
    assert len(clients.made) == 2 and clients.made[0].is_closed


def test_one_client_per_connection_while_the_settings_stay_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=RUN)

    clients = use(monkeypatch, answer, ["k"])

    async def scenario() -> None:
        await asyncio.gather(*(ManagedAgentsHook().aget_deployment_run("drun_1") for _ in range(200)))

    asyncio.run(scenario())
    assert len(clients.made) == 1


def test_everything_is_closed_and_forgotten_when_the_loop_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=RUN)

    clients = use(monkeypatch, answer, ["k"])
    loops: list[asyncio.AbstractEventLoop] = []

    async def scenario() -> None:
        loops.append(asyncio.get_running_loop())
        await ManagedAgentsHook().aget_deployment_run("drun_1")

    asyncio.run(scenario())
    assert clients.made and all(client.is_closed for client in clients.made)
    assert loops[0] not in loop_pool_module._pools
