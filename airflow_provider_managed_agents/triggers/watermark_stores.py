"""Where an event watcher keeps its :class:`~airflow_provider_managed_agents.waiting.watermark.Watermark`
across triggerer restarts, on each Airflow version, and when it saves it.

- Airflow >= 3.3: the watched asset's state store (``asset_state_store``, made for watermarks;
  async on 3.3.2+, bridged on 3.3.0/3.3.1);
- Airflow 3.1 and 3.2: an Airflow Variable named after the watcher (the triggerer can write
  Variables from 3.1);
- Airflow 3.0: the triggerer process's memory (its triggers can read Variables, not write them):
  a watcher restarted inside one triggerer resumes, one started by a new triggerer announces the
  runs created from its start on.

A run's announcement is a trigger event the triggerer stores in Airflow's database a moment after
the watcher yields it, and no version tells a watcher when it has (outside acknowledged shared
streams). So a watermark is saved :data:`SAVE_AFTER` after the announcements it records: a
triggerer killed before its events were stored announces those runs again after the restart, not
never; one killed in the seconds after, announces them twice. Idle, nothing is lost or repeated.

A store that cannot be reached costs the restart protection (said once in the log), never the
watcher: it keeps announcing from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from airflow_provider_managed_agents.waiting import clock

log = logging.getLogger(__name__)

STATE_KEY = "managed_agents_watermark"
VARIABLE_PREFIX = "managed_agents_watermark__"
# Long enough for the triggerer to hand the events to its supervisor (once a second) and for the
# supervisor to store them (its next loop), with room for a loaded machine.
SAVE_AFTER = timedelta(seconds=10)

_memory: dict[str, Any] = {}


class WatermarkStore(Protocol):
    kind: str

    async def load(self) -> Any: ...
    async def save(self, value: dict[str, Any]) -> None: ...


class AssetStateStore:
    """The watched asset's state store (Airflow >= 3.3); every asset the watcher feeds when one
    trigger serves several."""

    kind = "the asset state store"

    def __init__(self, accessors: Any):
        self.accessors = accessors

    def _targets(self) -> list[Any]:
        several = getattr(self.accessors, "_by_name", None)
        return list(several.values()) if isinstance(several, dict) and len(several) > 1 else [self.accessors]

    async def load(self) -> Any:
        values = [await _call(target, "get", STATE_KEY, None) for target in self._targets()]
        found = [v for v in values if isinstance(v, dict)]
        # Written together; should one write have failed, the most advanced copy counts.
        return max(found, key=lambda v: json.dumps(v.get("newest"), sort_keys=True), default=None)

    async def save(self, value: dict[str, Any]) -> None:
        for target in self._targets():
            await _call(target, "set", STATE_KEY, value)


async def _call(accessor: Any, name: str, *args: Any) -> Any:
    asynchronous = getattr(accessor, f"a{name}", None)
    if asynchronous is not None:  # Airflow >= 3.3.2
        return await asynchronous(*args)
    import greenback  # 3.3.0/3.3.1: the blocking accessor, bridged to the triggerer's loop

    await greenback.ensure_portal()
    return getattr(accessor, name)(*args)


class VariableStore:
    """An Airflow Variable per watcher (Airflow 3.1 and 3.2)."""

    kind = "an Airflow Variable"

    def __init__(self, identity: str, description: str):
        from airflow_provider_managed_agents.stores import VariableRecord

        self.record = VariableRecord(VARIABLE_PREFIX, identity, description)

    async def load(self) -> Any:
        return await self.record.aget()

    async def save(self, value: dict[str, Any]) -> None:
        await self.record.aput(value)


class MemoryStore:
    """This process's memory (Airflow 3.0, or a store that cannot be reached)."""

    kind = "the triggerer's memory"

    def __init__(self, identity: str):
        self.identity = identity

    async def load(self) -> Any:
        return _memory.get(self.identity)

    async def save(self, value: dict[str, Any]) -> None:
        _memory[self.identity] = value


def store_for(trigger: Any, identity: str, description: str) -> WatermarkStore:
    accessors = getattr(trigger, "asset_state_store", None)
    if accessors is not None:
        return AssetStateStore(accessors)
    if _triggerer_writes_variables():
        return VariableStore(identity, description)
    return MemoryStore(identity)


def _triggerer_writes_variables() -> bool:
    from airflow import __version__

    major, minor = (int(part) for part in __version__.split(".")[:2])
    return (major, minor) >= (3, 1)


@dataclass
class Keeper:
    """Loads a watcher's watermark and saves each version of it :data:`SAVE_AFTER` after the
    announcements it records, in the background; falls back to memory if the store fails."""

    store: WatermarkStore
    identity: str
    _due: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def load(self) -> Any:
        try:
            return await self.store.load()
        except Exception as exc:
            self._degrade("read", exc)
            return await self.store.load()

    async def save_now(self, value: dict[str, Any]) -> None:
        try:
            await self.store.save(value)
        except Exception as exc:
            self._degrade("write", exc)
            await self.store.save(value)

    def save_later(self, value: dict[str, Any]) -> None:
        self._due.append((clock.now() + SAVE_AFTER, value))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._save_when_due(), name="managed-agents-watermark")

    async def _save_when_due(self) -> None:
        while True:
            if not self._due:
                self._wake.clear()
                await self._wake.wait()
                continue
            await clock.asleep_until(self._due[0][0])
            now = clock.now()
            ready = [value for due, value in self._due if due <= now]
            self._due = [(due, value) for due, value in self._due if due > now]
            if ready:
                await self.save_now(ready[-1])

    async def close(self) -> None:
        """Stop saving. Versions not yet due are dropped: their runs are announced again after
        a restart rather than risk never being announced."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _degrade(self, what: str, exc: Exception) -> None:
        log.warning(
            "Could not %s the watermark in %s (%s); keeping it in memory: runs created while no "
            "triggerer runs this watcher may not be announced",
            what,
            self.store.kind,
            exc,
        )
        self.store = MemoryStore(self.identity)
