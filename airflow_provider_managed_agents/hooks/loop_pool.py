"""What the hooks of one event loop share: connection settings, one HTTP client per connection,
and a bounded number of requests in flight on it.

A triggerer runs thousands of triggers in one event loop. Each trigger has its own hook, but
they must not each look the connection up, open a connection pool, or queue unboundedly on one.
The lifecycle is explicit:

- settings are looked up once per ``SETTINGS_TTL_SECONDS`` per connection id (a lookup in flight
  is shared, and runs as its own task so that one cancelled caller does not cancel it for all);
- at most one live client per connection id: when a lookup returns other settings (a rotated
  key), the old client is retired and closed once its last request is done;
- at most ``MAX_CONNECTIONS`` requests in flight per client; waiting for a slot longer than the
  request timeout is a transient failure (retried like any other), never an unbounded stall;
- when the loop ends (``asyncio.run`` cancels its remaining tasks), every client is closed and
  the loop's record is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from airflow_provider_managed_agents.hooks.wire import MAX_CONNECTIONS, Settings

SETTINGS_TTL_SECONDS = 300.0
SharedT = TypeVar("SharedT")


def new_async_client(settings: Settings) -> httpx.AsyncClient:
    """A client for ``settings`` (tests replace this to put a mock transport underneath)."""
    return httpx.AsyncClient(**settings.client_options())


class SlotTimeout(httpx.PoolTimeout):
    """No request slot came free within the request timeout: the request was never sent."""


@dataclass(eq=False)
class _Client:
    """One connection's client on this loop, its request slots and how many requests use it."""

    settings: Settings
    http: httpx.AsyncClient
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_CONNECTIONS))
    in_use: int = 0
    retired: bool = False


class LoopPool:
    """The shared record of one event loop (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._settled: dict[str, tuple[float, Settings]] = {}
        self._lookups: dict[str, asyncio.Task[Settings]] = {}
        self._clients: dict[str, _Client] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._shared: dict[Any, Any] = {}
        self._keeper = loop.create_task(self._close_when_the_loop_ends(), name="managed-agents-loop-pool")

    # --- settings --------------------------------------------------------------------------

    async def settings(self, conn_id: str, load: Callable[[], Awaitable[Settings]]) -> Settings:
        """The connection's settings, looked up at most once per TTL for the whole loop."""
        settled = self._settled.get(conn_id)
        if settled is not None and time.monotonic() - settled[0] <= SETTINGS_TTL_SECONDS:
            return settled[1]
        task = self._lookups.get(conn_id)
        if task is None:
            task = self._loop.create_task(self._lookup(conn_id, load))
            self._lookups[conn_id] = task
        return await asyncio.shield(task)

    async def _lookup(self, conn_id: str, load: Callable[[], Awaitable[Settings]]) -> Settings:
        try:
            settings = await load()
            self._settled[conn_id] = (time.monotonic(), settings)
            return settings
        finally:
            # A finished task is not kept: a failed lookup is retried by the next caller.
            del self._lookups[conn_id]

    # --- clients ---------------------------------------------------------------------------

    def _client(self, conn_id: str, settings: Settings) -> _Client:
        current = self._clients.get(conn_id)
        if current is not None and current.settings == settings and not current.http.is_closed:
            return current
        if current is not None:
            self._retire(current)
        fresh = _Client(settings, new_async_client(settings))
        self._clients[conn_id] = fresh
        return fresh

    def _retire(self, client: _Client) -> None:
        client.retired = True
        if client.in_use == 0:
            self._close_later(client)

    def _close_later(self, client: _Client) -> None:
        task = self._loop.create_task(client.http.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @contextlib.asynccontextmanager
    async def request_slot(self, conn_id: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        """The connection's client, with one of its request slots held for the block.

        httpcore matches every queued request against every pooled connection each time one
        frees up, milliseconds of CPU per request with a thousand triggers polling at once:
        admitting no more requests than there are connections keeps its queue empty.
        """
        client = self._client(conn_id, settings)
        try:
            await asyncio.wait_for(client.slots.acquire(), timeout=settings.timeout)
        except TimeoutError:
            raise SlotTimeout(
                f"no request slot free within {settings.timeout:g} s ({MAX_CONNECTIONS} requests in flight)"
            ) from None
        client.in_use += 1
        try:
            yield client.http
        finally:
            client.in_use -= 1
            client.slots.release()
            if client.retired and client.in_use == 0:
                self._close_later(client)

    def shared(self, key: Any, make: Callable[[], SharedT]) -> SharedT:
        """A loop-wide object (the runs feed of a connection), made on first use; closed with
        the loop when it has a ``close()``."""
        found = self._shared.get(key)
        if found is None:
            found = self._shared[key] = make()
        return found

    def live_clients(self) -> int:
        """Clients open on this loop, retired ones still finishing included (for tests)."""
        open_now = {id(c.http) for c in self._clients.values() if not c.http.is_closed}
        return len(open_now) + len(self._closing)

    # --- the end of the loop ------------------------------------------------------------------

    async def _close_when_the_loop_ends(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            _pools.pop(self._loop, None)
            for shared in self._shared.values():
                close = getattr(shared, "close", None)
                if close is not None:
                    close()
            clients, self._clients = list(self._clients.values()), {}
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.http.aclose()
            if self._closing:
                await asyncio.gather(*self._closing, return_exceptions=True)


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPool] = weakref.WeakKeyDictionary()


def loop_pool() -> LoopPool:
    """This event loop's shared record, created on first use."""
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = LoopPool(loop)
    return pool
