"""The test doubles every test shares: a task instance, the state stores Airflow gives a task and
a watcher, the clocks, and running a deferring task as Airflow does. One of each, here, so that a
change to what the provider asks of Airflow is made once.

Importable from any test as ``fakes`` (``tests/`` is on the path through its conftest).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import pendulum
import pytest

T0 = pendulum.datetime(2026, 5, 1, 12, 0, 30)


class FakeTI:
    """The slice of a task instance the operators and sensors use; XComs must be JSON-safe."""

    def __init__(
        self,
        try_number: int = 1,
        *,
        dag_id: str = "dag_a",
        task_id: str = "task_b",
        run_id: str = "manual__2026-05-01",
        start_date: Any = None,
    ) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = dag_id, task_id, run_id, -1
        self.id = uuid.uuid4()
        self.try_number = try_number
        self.start_date = start_date
        self.xcom: dict[str, Any] = {}
        self.first_reschedule: Any = None

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)
        self.xcom[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        """This task's own XComs (what a task reads back of itself)."""
        assert task_ids in (None, self.task_id), "only this task's XComs are faked"
        return json.loads(json.dumps(self.xcom[key])) if key in self.xcom else None

    def get_first_reschedule_date(self, context: Any) -> Any:
        return self.first_reschedule


class TaskStateStore:
    """``context["task_state_store"]`` as Airflow >= 3.3 gives it: kept across a task's tries."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class AssetStateStore:
    """The accessor Airflow 3.3.2 gives a watcher (``aget`` / ``aset``), over a dict that
    outlives the watcher, as the metadata database does."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values[key])) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))
        self.writes += 1


def context(ti: FakeTI, store: TaskStateStore | None = None) -> Any:
    """A task's context: its task instance and its state store."""
    return {"ti": ti, "dag_run": None, "task_state_store": store if store is not None else TaskStateStore()}


class FakeClock:
    """Every ``now`` of the provider and of BaseSensorOperator's loop; sleeps move it."""

    def __init__(self, start: Any = T0) -> None:
        self.start = self.t = start
        self.sleeps: list[float] = []

    def now(self) -> Any:
        return self.t

    def sleep(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.sleeps.append(round(seconds, 3))
        self.t = self.t + timedelta(seconds=seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    # BaseSensorOperator's loop reads ``time.monotonic`` (poke mode) or ``timezone.utcnow``
    # (reschedule mode) and sleeps with ``time.sleep``.
    def monotonic(self) -> float:
        return (self.t - self.start).total_seconds()

    def utcnow(self) -> Any:
        return self.t


class EmulatorClock(FakeClock):
    """The provider's clock is the emulator's frozen one: every sleep moves both."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        emulator.freeze_clock(True)
        super().__init__(pendulum.parse(emulator.state()["now"]))

    def sleep(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.emulator.advance_clock(seconds)
        super().sleep(seconds)


def use_clock(monkeypatch: pytest.MonkeyPatch, fake: FakeClock) -> FakeClock:
    """Make ``fake`` the time of every wait (the provider's and BaseSensorOperator's)."""
    from airflow.sdk.bases import sensor as base_sensor_module

    from airflow_provider_managed_agents.waiting import clock

    monkeypatch.setattr(clock, "now", fake.now)
    monkeypatch.setattr(clock, "sleep", fake.sleep)
    monkeypatch.setattr(clock, "asleep", fake.asleep)
    monkeypatch.setattr(base_sensor_module, "time", fake)
    monkeypatch.setattr(base_sensor_module, "timezone", fake)
    return fake


def finish_deferred(task: Any, ctx: Any) -> Any:
    """Run a task as Airflow does: execute; while it defers, its trigger (rebuilt from its
    serialised form, as the triggerer does) to its first event, then resume it."""
    from airflow_provider_managed_agents.compat import TaskDeferred

    step = lambda: task.execute(ctx)  # noqa: E731
    while True:
        try:
            return step()
        except TaskDeferred as deferred:
            trigger, method, kwargs = deferred.trigger, deferred.method_name, deferred.kwargs or {}
            assert type(deferred.timeout) is timedelta  # the task runner refuses pendulum's Duration
        rebuilt = type(trigger)(**trigger.serialize()[1])
        event = asyncio.run(anext(aiter(rebuilt.run())))
        step = lambda method=method, kwargs=kwargs, event=event: task.resume_execution(  # noqa: E731
            method, {**kwargs, "event": event.payload}, ctx
        )
