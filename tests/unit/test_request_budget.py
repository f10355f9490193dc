"""The request budget of a connection: a 429 pauses its whole class for every hook of the
process, caps space requests, nothing waits past the limit. Time is a fake clock that only the
sleeps move; the hooks talk to httpx's MockTransport (a live server adds nothing here: the
emulator's own limits are tested over HTTP in tests/integration/test_rate_limits.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.hooks import budget as budget_module
from airflow_provider_managed_agents.hooks import loop_pool as loop_pool_module
from airflow_provider_managed_agents.hooks import managed_agents as hook_module
from airflow_provider_managed_agents.hooks.budget import MAX_BUDGET_WAIT_SECONDS, BudgetWaitTooLong, RequestBudget
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import RATE_LIMITED_RETRIES, Secret, Settings, longest_call

DEPLOYMENT = {
    "id": "depl_1",
    "type": "deployment",
    "name": "n",
    "agent": {"type": "agent", "id": "agent_1", "version": 1},
    "environment_id": "env_1",
    "initial_events": [],
    "status": "active",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}


class FakeTime:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def drain(budget: RequestBudget, klass: Any, time: FakeTime) -> float:
    """Wait for one turn; the seconds waited."""
    start = time.now
    for pause in budget.turns(klass):
        time.sleep(pause)
    return time.now - start


def rate_limited(seconds: float | None = None) -> httpx.Response:
    headers = {"retry-after": f"{seconds:g}"} if seconds is not None else {}
    return httpx.Response(429, json={"type": "error", "error": {"type": "rate_limit_error"}}, headers=headers)


# --- the budget alone ------------------------------------------------------------------------


def test_no_cap_no_wait_and_a_429_pauses_only_its_class() -> None:
    time = FakeTime()
    budget = RequestBudget(monotonic=time.monotonic)
    assert [drain(budget, "read", time) for _ in range(100)] == [0.0] * 100
    budget.heard("write", rate_limited(7), fallback_seconds=1)
    assert drain(budget, "read", time) == 0.0  # reads are another class
    assert drain(budget, "write", time) == pytest.approx(7)
    # The pause is over for everyone; for a minute they go at the pace it showed (at most 1 s).
    assert [drain(budget, "write", time) for _ in range(3)] == [pytest.approx(1.0)] * 3
    time.sleep(60)
    assert drain(budget, "write", time) == 0.0
    assert budget.status("write").rate_limited == 1 and budget.status("read").rate_limited == 0


def test_the_pace_after_a_429_doubles_only_when_a_paced_request_is_refused_too() -> None:
    time = FakeTime()
    budget = RequestBudget(monotonic=time.monotonic)
    sent = time.now
    for _ in range(5):  # five requests in flight when the limit was met: one pace, not five doublings
        budget.heard("read", rate_limited(0.1), fallback_seconds=1, sent_at=sent)
    assert [drain(budget, "read", time) for _ in range(3)] == [pytest.approx(0.1)] * 3
    budget.heard("read", rate_limited(0.1), fallback_seconds=1, sent_at=time.now)  # sent at that pace
    assert drain(budget, "read", time) == pytest.approx(0.1)  # the pause
    assert drain(budget, "read", time) == pytest.approx(0.2)  # then twice the pace


def test_a_429_without_retry_after_pauses_for_the_callers_backoff() -> None:
    time = FakeTime()
    budget = RequestBudget(monotonic=time.monotonic)
    budget.heard("read", rate_limited(None), fallback_seconds=0.75)
    assert drain(budget, "read", time) == pytest.approx(0.75)


def test_a_cap_allows_ten_seconds_worth_at_once_then_spaces_evenly() -> None:
    time = FakeTime()
    budget = RequestBudget(monotonic=time.monotonic)
    budget.configure(reads_per_minute=None, writes_per_minute=60)
    waits = [drain(budget, "write", time) for _ in range(40)]
    assert waits[:10] == [0.0] * 10
    assert waits[10:] == [pytest.approx(1.0)] * 30
    # Over any minute after the burst: the cap, never more.
    assert time.now - 1000.0 == pytest.approx(30.0)


def test_reservations_give_each_waiter_its_own_slot() -> None:
    """A thousand waiters reserve at once: each sleeps once, to its slot (no herd waking)."""
    time = FakeTime()
    budget = RequestBudget(monotonic=time.monotonic)
    budget.configure(reads_per_minute=600, writes_per_minute=None)
    firsts = [next(budget.turns("read"), 0.0) for _ in range(1000)]
    assert firsts[:100] == [0.0] * 100  # ten seconds' worth of 600 a minute
    assert firsts[100:] == [pytest.approx(0.1 * i) for i in range(1, 901)]


def test_a_pause_heard_while_waiting_for_a_slot_is_waited_through() -> None:
    time = FakeTime()
    budget = RequestBudget(monotonic=time.monotonic)
    budget.configure(reads_per_minute=60, writes_per_minute=None)
    for _ in range(10):
        drain(budget, "read", time)
    turns = budget.turns("read")
    assert next(turns) == pytest.approx(1.0)  # its slot, a second from now
    budget.heard("read", rate_limited(5), fallback_seconds=1)  # meanwhile another request heard 429
    time.sleep(1.0)
    assert next(turns) == pytest.approx(4.0)  # the rest of the pause
    time.sleep(4.0)
    assert next(turns, None) is None


def test_nothing_waits_past_the_limit_and_such_a_request_is_never_sent() -> None:
    time = FakeTime()
    budget = RequestBudget(monotonic=time.monotonic)
    budget.heard("write", rate_limited(MAX_BUDGET_WAIT_SECONDS + 30), fallback_seconds=1)
    with pytest.raises(BudgetWaitTooLong):
        drain(budget, "write", time)
    assert time.slept == []


def test_a_turn_refused_for_being_too_far_takes_no_slot() -> None:
    time = FakeTime()
    budget = RequestBudget(monotonic=time.monotonic)
    budget.configure(reads_per_minute=60, writes_per_minute=None)
    queued = [next(budget.turns("read"), 0.0) for _ in range(10 + 90)]  # the burst, then 90 s of queue
    assert queued[-1] == pytest.approx(90.0)
    for _ in range(5):  # refused, again and again: the queue does not grow
        with pytest.raises(BudgetWaitTooLong):
            next(budget.turns("read"))
    time.sleep(1.0)
    assert next(budget.turns("read")) == pytest.approx(90.0)


def test_a_caller_that_just_slept_a_retry_delay_does_not_wait_for_it_again() -> None:
    time = FakeTime()
    budget = RequestBudget(monotonic=time.monotonic)
    budget.heard("read", rate_limited(3), fallback_seconds=1)
    slept_until = budget.after(3)
    # The caller's sleep was shortened (a test's), the clock did not move: still no second wait.
    assert list(budget.turns("read", slept_until)) == []


def test_the_longest_call_covers_the_rate_limited_retries_and_the_waits_for_a_turn() -> None:
    settings = Settings(api_key=Secret("k"), timeout=60, max_retries=2)
    attempts = settings.max_retries + RATE_LIMITED_RETRIES + 1
    assert longest_call(settings) >= attempts * (60 + MAX_BUDGET_WAIT_SECONDS)


# --- hooks sharing it --------------------------------------------------------------------------


@pytest.fixture
def time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(budget_module.RequestBudget, "__init__", _with_clock(fake))
    return fake


def _with_clock(fake: FakeTime) -> Any:
    original = RequestBudget.__init__

    def init(self: RequestBudget, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.monotonic = fake.monotonic

    return init


class Wire:
    """A fake API: answers from a script, records when (on the fake clock) each request came."""

    def __init__(self, time: FakeTime, script: list[httpx.Response]) -> None:
        self.time, self.script, self.seen = time, list(script), []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((round(self.time.now - 1000.0, 6), request.method, request.url.path))
        return self.script.pop(0) if self.script else httpx.Response(200, json=DEPLOYMENT)


def sync_hook(wire: Wire, time: FakeTime, **settings: Any) -> ManagedAgentsHook:
    hook = ManagedAgentsHook()
    hook._settings = Settings(api_key=Secret("k"), base_url="http://api.test", **settings)
    hook.__dict__["client"] = httpx.Client(transport=httpx.MockTransport(wire), **hook._settings.client_options())
    hook._sleep = time.sleep  # type: ignore[method-assign]
    return hook


def test_a_429_one_hook_hears_pauses_the_other_hooks_of_the_connection(time: FakeTime) -> None:
    wire = Wire(time, [rate_limited(4)])
    first, second = sync_hook(wire, time), sync_hook(wire, time)
    first.get_deployment("depl_1")  # 429, then sent again 4 s later
    second.get_deployment("depl_1")  # the pause is over: a second later, at the pace the 429 showed
    assert [when for when, _, _ in wire.seen] == [0.0, 4.0, 5.0]
    assert time.slept == [4.0, 1.0]


def test_requests_started_during_a_pause_wait_for_its_end_before_sending(time: FakeTime) -> None:
    wire = Wire(time, [rate_limited(4), httpx.Response(200, json=DEPLOYMENT)])
    hearing = sync_hook(wire, time, max_retries=0)
    other = sync_hook(wire, time)
    budget_module.budget_for("managed_agents_default").heard("read", rate_limited(4), 1)
    # Another process-wide 429 arrives first: neither hook sends before the pause ends.
    other.get_deployment("depl_1")
    hearing.get_deployment("depl_1")
    assert [when for when, _, _ in wire.seen] == [4.0, 8.0, 9.0]
    assert budget_module.budget_for("managed_agents_default").status("read").rate_limited == 2


def test_429s_do_not_use_up_max_retries_but_are_bounded(time: FakeTime) -> None:
    wire = Wire(time, [rate_limited(1)] * RATE_LIMITED_RETRIES + [httpx.Response(503)] * 2)
    hook = sync_hook(wire, time, max_retries=2)
    assert hook.get_deployment("depl_1").id == "depl_1"  # four 429s and two 503s ridden out
    assert len(wire.seen) == RATE_LIMITED_RETRIES + 3
    endless = Wire(time, [rate_limited(1)] * (RATE_LIMITED_RETRIES + 10))
    with pytest.raises(errors.ManagedAgentsRateLimitError):
        sync_hook(endless, time, max_retries=2).get_deployment("depl_1")
    assert len(endless.seen) == RATE_LIMITED_RETRIES + 3


def test_connection_caps_space_the_writes_of_every_hook(time: FakeTime) -> None:
    wire = Wire(time, [])
    hooks = [sync_hook(wire, time, writes_per_minute=30) for _ in range(3)]
    for _ in range(4):
        for hook in hooks:
            hook.pause_deployment("depl_1")
    whens = [when for when, method, _ in wire.seen if method == "POST"]
    assert whens[:5] == [0.0] * 5  # ten seconds' worth of 30 a minute
    assert whens[5:] == [pytest.approx(2.0 * i) for i in range(1, 8)]


def test_the_async_path_shares_the_budget_of_the_process(time: FakeTime, monkeypatch: pytest.MonkeyPatch) -> None:
    wire = Wire(time, [rate_limited(6)])
    monkeypatch.setenv(
        "AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT",
        '{"conn_type": "managed_agents", "password": "k", "host": "http://api.test"}',
    )
    monkeypatch.setattr(
        loop_pool_module,
        "new_async_client",
        lambda settings: httpx.AsyncClient(transport=httpx.MockTransport(wire), **settings.client_options()),
    )

    async def scenario() -> None:
        hook = ManagedAgentsHook()
        hook._asleep = time.asleep  # type: ignore[method-assign]
        await hook.aget_deployment("depl_1")

    asyncio.run(scenario())
    blocking = sync_hook(wire, time)
    blocking.get_deployment("depl_1")
    assert [when for when, _, _ in wire.seen] == [0.0, 6.0, 7.0]
    assert hook_module.budget_for("managed_agents_default").status("read").rate_limited == 1


def test_caps_from_the_connection_extras_are_checked() -> None:
    from airflow.models.connection import Connection

    conn = Connection(conn_id="c", conn_type="managed_agents", password="k", extra='{"writes_per_minute": "0"}')
    with pytest.raises(errors.ManagedAgentsValidationError, match=r"extra\.writes_per_minute"):
        hook_module.settings_from_connection(conn)
    conn = Connection(conn_id="c", conn_type="managed_agents", password="k", extra='{"reads_per_minute": 600}')
    settings = hook_module.settings_from_connection(conn)
    assert settings.reads_per_minute == 600 and settings.writes_per_minute is None
