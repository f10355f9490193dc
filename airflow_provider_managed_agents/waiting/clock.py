"""The one time source of every wait, and its sleeps.

Sensors, triggers and operators read ``now()`` and sleep through ``sleep()`` / ``asleep()``
here, never through ``time`` or ``pendulum`` directly, so that tests drive a wait's whole
timeline with a fake clock instead of racing the wall clock.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pendulum


def now() -> datetime:
    """The current time, aware, in UTC."""
    return pendulum.now("UTC")


def seconds_until(moment: datetime) -> float:
    return max((moment - now()).total_seconds(), 0.0)


def sleep(seconds: float) -> None:
    time.sleep(max(seconds, 0.0))


async def asleep(seconds: float) -> None:
    await asyncio.sleep(max(seconds, 0.0))


async def asleep_until(moment: datetime) -> None:
    await asleep(seconds_until(moment))


async def asleep_until_woken(moment: datetime, wake: asyncio.Event) -> None:
    """Sleep until ``moment``, or until ``wake`` is set (a feed's new wait asking for an earlier
    cycle); ``wake`` is cleared first, so only a wake from now on counts."""
    wake.clear()
    sleeper = asyncio.ensure_future(asleep_until(moment))
    waker = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, waker):
            task.cancel()
        await asyncio.gather(sleeper, waker, return_exceptions=True)


# Airflow's own deferral timeout is only a backstop behind a trigger's deadline.
DEFERRAL_SLACK = timedelta(minutes=5)


def deferral_timeout(deadline: datetime) -> timedelta:
    """Airflow's deferral timeout behind a trigger's ``deadline``: a plain ``timedelta`` (the
    task runner's serialiser refuses pendulum's ``Duration``, which pendulum arithmetic gives)."""
    return timedelta(seconds=(deadline - now()).total_seconds()) + DEFERRAL_SLACK


class Throttle:
    """Says yes at most once per ``every`` seconds (of this clock): for log lines of a loop
    that may turn every few seconds."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self._last: datetime | None = None

    def ready(self) -> bool:
        current = now()
        if self._last is None or (current - self._last).total_seconds() >= self.every:
            self._last = current
            return True
        return False
