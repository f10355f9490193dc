"""One request budget per connection per process: what the API's rate limits allow, shared.

The Managed Agents API limits requests per organization and per class (reads and writes are
counted apart). A 429 is the organization's answer, not one request's: when any request of a
class hears "retry after N s", every request of that class on that connection in this process
waits until then, instead of each one finding out for itself and hammering on. Optional caps
(requests per minute per class, from the connection's extras) space requests so that 429s do not
happen at all.

- Classes: ``read`` (GET) and ``write`` (everything else: creates, updates, actions).
- A cap of N a minute allows a burst of ``ceil(N / 6)`` (ten seconds' worth), then one request
  every ``60 / N`` s: the generic cell rate algorithm, with the slot taken when it is reserved,
  so a thousand waiters each sleep once, to their own slot.
- A pause set by a 429 holds every request not yet sent, reserved ones included. Without a cap
  they then go one at a time, at the pace the 429 showed (its ``retry-after``, at most a second
  apart), for a minute after the pause: a rate limit's token bucket refills at that pace, so a
  herd released at once would only meet the limit again. With a cap, at the cap's pace.
- No request waits longer than :data:`MAX_BUDGET_WAIT_SECONDS` for its turn: past that it is not
  sent and fails as a transient, unsent connection error (a worker's retry, a trigger's next
  look), so the time a call can take stays bounded (:func:`~airflow_provider_managed_agents.hooks.wire.longest_call`).

The budgets are per process and per connection id: the hooks of one worker process and every
hook and trigger of a triggerer share them; two processes do not (caps are then per process).
Thread-safe: a reservation is a few arithmetic steps under a lock; the sleeping happens outside
it, in the caller's way (``time.sleep`` or ``asyncio.sleep``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import httpx

RequestClass = Literal["read", "write"]
CLASSES: tuple[RequestClass, ...] = ("read", "write")
# Longer than any retry-after a call rides out (wire.MAX_RETRY_AFTER_SECONDS), so a pause the
# server asked for is waited through; beyond it the request fails transiently, unsent.
MAX_BUDGET_WAIT_SECONDS = 90.0
BURST_SECONDS = 10.0
EPSILON_SECONDS = 1e-6  # below this, a wait is float rounding, not a wait
# After a 429: requests of the class go at most this far apart (the 429's retry-after, when
# shorter), for this long after the pause.
MAX_LEARNED_INTERVAL_SECONDS = 1.0
LEARNED_PACE_SECONDS = 60.0


def request_class(method: str) -> RequestClass:
    return "read" if method.upper() in ("GET", "HEAD") else "write"


class BudgetWaitTooLong(httpx.PoolTimeout):
    """The connection's budget has no turn for this request soon enough: it was never sent."""


@dataclass
class _ClassBudget:
    per_minute: float | None = None
    paused_until: float = 0.0  # monotonic seconds
    theoretical_arrival: float = 0.0  # GCRA: when the next request would be due at the cap's pace
    rate_limited: int = 0  # 429s heard
    waited: float = 0.0  # seconds requests spent waiting for their turn
    learned_interval: float = 0.0  # the pace a 429 showed
    learned_from: float = 0.0  # requests sent from then on went at that pace
    learned_until: float = 0.0

    def interval(self, now: float) -> float:
        """Seconds between requests: the cap's, else for a while after a 429 the pace it showed."""
        if self.per_minute:
            return 60.0 / self.per_minute
        return self.learned_interval if now < self.learned_until else 0.0

    def tolerance(self, now: float) -> float:
        """How far ahead of the cap's pace a burst may run: ten seconds' worth (at least one)."""
        if not self.per_minute:
            return 0.0
        burst = max(math.ceil(self.per_minute * BURST_SECONDS / 60.0), 1)
        return (burst - 1) * self.interval(now)


@dataclass(frozen=True)
class BudgetStatus:
    """A class's budget at a moment, for logs, tests and benchmarks."""

    per_minute: float | None
    paused_for: float
    rate_limited: int
    waited: float


@dataclass
class RequestBudget:
    """One connection's budget in this process (see the module docstring)."""

    monotonic: Callable[[], float] = time.monotonic
    _classes: dict[RequestClass, _ClassBudget] = field(default_factory=lambda: {c: _ClassBudget() for c in CLASSES})
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, reads_per_minute: float | None, writes_per_minute: float | None) -> None:
        """Set the caps (None: no cap); a change takes effect from the next reservation."""
        with self._lock:
            for klass, cap in (("read", reads_per_minute), ("write", writes_per_minute)):
                self._classes[klass].per_minute = cap or None  # type: ignore[index]

    def turns(self, klass: RequestClass, at_least: float | None = None) -> Iterator[float]:
        """The sleeps (seconds) before one request of ``klass`` may be sent: first to its slot
        under the cap, then through any pause a 429 sets meanwhile. Raises
        :class:`BudgetWaitTooLong` instead of a sleep that would pass the wait limit.

        Each sleep yielded counts as slept, whatever the clock says after it (a test's sleeps
        may be shortened); ``at_least`` is the caller's own reading of the time when it has just
        slept (a retry's delay), so what it waited for is not waited for again."""
        now = max(self.monotonic(), at_least or 0.0)
        started = now
        delay = self._reserve(klass, now, started)
        while delay > 0:
            yield delay
            now = max(self.monotonic(), now + delay)
            with self._lock:
                budget = self._classes[klass]
                budget.waited += delay
                paused = budget.paused_until - now > EPSILON_SECONDS
            # A 429 was heard meanwhile: this turn is void, the next one comes after the pause.
            delay = self._reserve(klass, now, started) if paused else 0.0

    def after(self, seconds: float) -> float:
        """The budget's time ``seconds`` from now: what a caller about to sleep that long passes
        as ``at_least`` to its next :meth:`turns`."""
        return self.monotonic() + seconds

    def _reserve(self, klass: RequestClass, now: float, started: float) -> float:
        """Take the class's next turn: seconds from ``now`` until it. A turn further than the
        wait limit from ``started`` is not taken (the request is not sent)."""
        with self._lock:
            budget = self._classes[klass]
            start = max(now, budget.paused_until)
            interval = budget.interval(start)
            if interval:
                start = max(start, budget.theoretical_arrival - budget.tolerance(start))
            if start - started > MAX_BUDGET_WAIT_SECONDS:
                raise BudgetWaitTooLong(
                    f"the connection's {klass} budget has no turn within {MAX_BUDGET_WAIT_SECONDS:g} s "
                    f"(paused by the API's rate limit, or capped): not sent"
                )
            if interval:
                budget.theoretical_arrival = max(budget.theoretical_arrival, start) + interval
            delay = start - now
            return delay if delay > EPSILON_SECONDS else 0.0

    def heard(
        self, klass: RequestClass, response: httpx.Response, fallback_seconds: float, sent_at: float | None = None
    ) -> None:
        """Take a response's news: a 429 pauses the whole class for its ``retry-after`` (or
        ``fallback_seconds``, the caller's own backoff, when it gives none). ``sent_at``: when
        the request went (this budget's time), to tell a 429 of a request that went at the
        learnt pace (the pace is too fast) from one already in flight before it."""
        if response.status_code != 429:
            return
        from airflow_provider_managed_agents.hooks.wire import retry_after_seconds

        pause = retry_after_seconds(response.headers)
        now = self.monotonic()
        until = now + (fallback_seconds if pause is None else pause)
        with self._lock:
            budget = self._classes[klass]
            budget.rate_limited += 1
            paced = now < budget.learned_until and sent_at is not None and sent_at >= budget.learned_from
            if not (now < budget.learned_until):
                budget.learned_interval, budget.learned_from = 0.0, until
            # The pace a 429 shows is the wait for the limit's next token; a request sent at the
            # learnt pace and refused all the same says the limit refills slower: double it.
            shown = min(until - now, MAX_LEARNED_INTERVAL_SECONDS)
            doubled = min(budget.learned_interval * 2, MAX_LEARNED_INTERVAL_SECONDS) if paced else 0.0
            budget.learned_interval = max(budget.learned_interval, shown, doubled)
            budget.paused_until = max(budget.paused_until, until)
            budget.learned_until = budget.paused_until + LEARNED_PACE_SECONDS
            budget.theoretical_arrival = max(budget.theoretical_arrival, budget.paused_until)

    def status(self, klass: RequestClass) -> BudgetStatus:
        with self._lock:
            budget = self._classes[klass]
            return BudgetStatus(
                per_minute=budget.per_minute,
                paused_for=max(budget.paused_until - self.monotonic(), 0.0),
                rate_limited=budget.rate_limited,
                waited=budget.waited,
            )


_budgets: dict[str, RequestBudget] = {}
_budgets_lock = threading.Lock()


def budget_for(conn_id: str) -> RequestBudget:
    """This process's budget for ``conn_id``, made on first use."""
    with _budgets_lock:
        found = _budgets.get(conn_id)
        if found is None:
            found = _budgets[conn_id] = RequestBudget()
        return found


def forget_budgets() -> None:
    """Drop every budget (a test's fresh start)."""
    with _budgets_lock:
        _budgets.clear()
