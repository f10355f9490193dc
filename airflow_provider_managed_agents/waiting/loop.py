"""The one look loop of every wait: look, ride out transient errors, stop at the deadline,
compute the next look; and a look's reads, written once for both clients.

A poking sensor (one :func:`step` per poke), a task following a session on its worker
(:func:`follow`), a trigger (:func:`afollow`) and the runs feed (:func:`afollow` over all of its
waits) all drive a :class:`Pace`, which holds everything they decide between looks and does no
I/O, so the sync and async drivers are the same few lines around it:

- a look's verdict that is done ends the wait;
- a transient API error (429, 5xx, a dropped connection:
  :func:`~airflow_provider_managed_agents.hooks.wire.is_transient`) is logged and the wait looks
  again at ``watch.retry_at(now)`` (one poll interval later); any other error ends it, raised to
  the caller;
- at the deadline the wait ends with ``watch.timed_out(timeout, last)``, after one last look
  (``final=True``: fresh reads, nothing from memory);
- otherwise the next look is the verdict's ``next_look_at`` (schedule-aware for runs), never
  past the deadline.

A look itself is a plan (a generator) that yields the reads it needs (:class:`Read`) and decides
from their answers; :func:`answer` runs it with the blocking hook (a poke, a worker),
:func:`aanswer` with the async one (a trigger). So a poke and a trigger make the same requests in
the same order and reach the same verdict, and a look's logic exists once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from airflow_provider_managed_agents.waiting import clock

if TYPE_CHECKING:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

log = logging.getLogger(__name__)


class Judged(Protocol):
    """What a look returns: a verdict that is done, or says when to look next."""

    @property
    def done(self) -> bool: ...

    @property
    def next_look_at(self) -> datetime | None: ...


VerdictT = TypeVar("VerdictT", bound=Judged)


class Watch(Protocol[VerdictT]):
    """The wait a loop drives: its words for logs, when to look again after a transient error,
    and its verdict at the deadline."""

    def describe(self) -> str: ...

    def retry_at(self, now: datetime) -> datetime: ...

    def timed_out(self, timeout: float, last: VerdictT | None) -> VerdictT: ...


def gives_up_on(exc: Exception) -> bool:
    """Whether an error ends a wait: anything but the service's passing trouble."""
    from airflow_provider_managed_agents.exceptions import ManagedAgentsError
    from airflow_provider_managed_agents.hooks.wire import is_transient

    return not (isinstance(exc, ManagedAgentsError) and is_transient(exc))


@dataclass
class Pace(Generic[VerdictT]):
    """Where one wait stands between its looks (no I/O: the drivers below do that).

    :param watch: the wait.
    :param next_look: when the first look is due.
    :param deadline: when the wait times out (None: never).
    :param timeout: the wait's timeout in seconds, for its timeout message.
    :param fatal: which errors end the wait (default :func:`gives_up_on`).
    :param final_margin: a look this close to the deadline is already the last one (a poking
        sensor's: Airflow's own timeout check could otherwise come before its last look).
    :param progress: log "waiting for ..., next look at ..." at most once a minute.
    :param throttle: the once-a-minute of that line (shared by the pokes of one try).
    """

    watch: Watch[VerdictT]
    next_look: datetime
    deadline: datetime | None = None
    timeout: float = 0.0
    fatal: Callable[[Exception], bool] = gives_up_on
    final_margin: timedelta = timedelta(0)
    progress: bool = True
    throttle: clock.Throttle = field(default_factory=clock.Throttle, repr=False)
    last: VerdictT | None = None

    def due(self) -> datetime:
        """When to look next: never past the deadline."""
        return min(self.next_look, self.deadline) if self.deadline is not None else self.next_look

    def final(self, now: datetime) -> bool:
        """Whether a look at ``now`` is the last one before the deadline."""
        return self.deadline is not None and now >= self.deadline - self.final_margin

    def took(self, now: datetime, outcome: VerdictT | Exception) -> VerdictT | None:
        """Take the outcome of the look made at ``now``: the wait's end, or None with
        :attr:`next_look` set. An error that ends the wait is raised."""
        verdict: VerdictT | None = None
        if isinstance(outcome, Exception):
            if self.fatal(outcome):
                raise outcome
            log.warning("Transient error while waiting for %s (%s); looking again later", self._what(), outcome)
        else:
            verdict = outcome
            if verdict.done:
                return verdict
            self.last = verdict
        if self.final(now):
            return self.watch.timed_out(self.timeout, self.last)
        after = verdict.next_look_at if verdict is not None else None
        self.next_look = after or self.watch.retry_at(now)
        if self.progress and self.throttle.ready():
            log.info("Waiting for %s; next look at %s", self._what(), self.due().isoformat())
        return None

    def _what(self) -> str:
        return self.watch.describe()


def step(pace: Pace[VerdictT], look: Callable[[datetime, bool], VerdictT]) -> VerdictT | None:
    """One look now (a poke): the wait's end, or None with ``pace.next_look`` set."""
    now = clock.now()
    outcome: VerdictT | Exception
    try:
        outcome = look(now, pace.final(now))
    except Exception as exc:
        outcome = exc
    return pace.took(now, outcome)


async def astep(pace: Pace[VerdictT], look: Callable[[datetime, bool], Awaitable[VerdictT]]) -> VerdictT | None:
    """:func:`step` with an async look."""
    now = clock.now()
    outcome: VerdictT | Exception
    try:
        outcome = await look(now, pace.final(now))
    except Exception as exc:
        outcome = exc
    return pace.took(now, outcome)


def follow(pace: Pace[VerdictT], look: Callable[[datetime, bool], VerdictT]) -> VerdictT:
    """Look when due until the wait ends (blocking: a task on its worker)."""
    while True:
        clock.sleep(clock.seconds_until(pace.due()))
        ended = step(pace, look)
        if ended is not None:
            return ended


async def afollow(
    pace: Pace[VerdictT],
    look: Callable[[datetime, bool], Awaitable[VerdictT]],
    sleep_until: Callable[[datetime], Awaitable[None]] = clock.asleep_until,
) -> VerdictT:
    """Look when due until the wait ends (a trigger, the runs feed). ``sleep_until`` may return
    early (a feed woken by a new wait): the next look is then re-read from the pace."""
    while True:
        due = pace.due()
        await sleep_until(due)
        if clock.now() < due and pace.due() >= due:
            continue  # woken early, and nothing asks for an earlier look: sleep on
        ended = await astep(pace, look)
        if ended is not None:
            return ended


# --- what a look reads ----------------------------------------------------------------------

ResultT = TypeVar("ResultT")
Plan = Generator["Read", Any, ResultT]


class Read:
    """One read of the API, by either client."""

    def send(self, hook: ManagedAgentsHook) -> Any:
        raise NotImplementedError

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class ReadRun(Read):
    """A deployment run."""

    run_id: str

    def send(self, hook: ManagedAgentsHook) -> Any:
        return hook.get_deployment_run(self.run_id)

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        return await hook.aget_deployment_run(self.run_id)


@dataclass(frozen=True)
class ReadRuns(Read):
    """Every run matching ``filters``, every page."""

    filters: dict[str, Any]

    def send(self, hook: ManagedAgentsHook) -> Any:
        return list(hook.list_deployment_runs(**self.filters))

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        return [run async for run in hook.alist_deployment_runs(**self.filters)]


@dataclass(frozen=True)
class ReadDeployment(Read):
    """A deployment."""

    deployment_id: str

    def send(self, hook: ManagedAgentsHook) -> Any:
        return hook.get_deployment(self.deployment_id)

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        return await hook.aget_deployment(self.deployment_id)


@dataclass(frozen=True)
class ReadSession(Read):
    """A session."""

    session_id: str

    def send(self, hook: ManagedAgentsHook) -> Any:
        return hook.get_session(self.session_id)

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        return await hook.aget_session(self.session_id)


@dataclass(frozen=True)
class ReadEvents(Read):
    """One page of a session's events matching ``filters``."""

    session_id: str
    filters: dict[str, Any]

    def send(self, hook: ManagedAgentsHook) -> Any:
        return hook.list_session_events_page(self.session_id, **self.filters).data

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        return (await hook.alist_session_events_page(self.session_id, **self.filters)).data


def answer(plan: Plan[ResultT], hook: ManagedAgentsHook) -> ResultT:
    """Run ``plan`` with the blocking client: its result (the hook's errors are raised)."""
    try:
        read = next(plan)
        while True:
            read = plan.send(read.send(hook))
    except StopIteration as done:
        return done.value


async def aanswer(plan: Plan[ResultT], hook: ManagedAgentsHook) -> ResultT:
    """Run ``plan`` with the async client."""
    try:
        read = next(plan)
        while True:
            read = plan.send(await read.asend(hook))
    except StopIteration as done:
        return done.value
