"""One sessions feed per event loop and connection: N deferred session waits cost O(1) requests
per poll while their sessions run.

Each deferred session wait (the run operator's follow, the run sensor's ``wait_for_session_end``,
``ManagedAgentsSessionSensor``) used to read its own session every poll: 1,000 waits at a 5 s poll
are 12,000 reads a minute, twenty times what an organization may read. The sessions list answers
for all of them at once:

- per poll, one paged ``GET /v1/sessions?statuses[]=running&statuses[]=rescheduling``, oldest
  first from the oldest followed session's creation: a session in it is still working, and its
  wait has nothing to decide;
- a session that is not in it gets its own look, the same look a worker makes (the session, then
  its status events when the status says the turn may be over: at most 2 requests), judged by
  the same decision (:func:`~airflow_provider_managed_agents.waiting.sessions.judge`). So a
  session idle before it ever ran, one that went idle and runs again, one created while the list
  pages, an archived one (the list leaves those out) are all judged on their own facts, never on
  their absence;
- a session's creation time bounds the list: the trigger is told a lower bound by the task that
  deferred (else the session's first own look gives it);
- several waits on one session share its look;
- a transient error (429, 5xx, connection) is transient for every wait: the next poll tries
  again; an error no retry fixes fails the waits it concerns (the list's: every wait due; a
  session's own: the waits on it) with its own class, as each would have met it alone;
- a wait that reaches its deadline times out after a last look (the list says it still runs, or
  its own look says it has not ended), with the session's last known facts;
- a cancelled wait (its trigger cancelled mid-poll) leaves without disturbing the others; the
  loop stops when the last wait leaves.

The loop is the one look loop of every wait (:mod:`airflow_provider_managed_agents.waiting.loop`):
its look is a cycle over the waits that are due, and it never gives up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from airflow_provider_managed_agents.waiting import clock
from airflow_provider_managed_agents.waiting.loop import Pace, afollow, gives_up_on
from airflow_provider_managed_agents.waiting.sessions import SessionVerdict, SessionWait, alook

if TYPE_CHECKING:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

log = logging.getLogger(__name__)

# Statuses of a session that is still working: its wait has nothing to decide.
WORKING = ("running", "rescheduling")
SESSIONS_PAGE = 1000
# A session can be listed a moment after it was created: the list starts this much earlier than
# the oldest followed session's creation.
CREATION_SLACK = timedelta(seconds=60)
DEFAULT_POLL_SECONDS = 60.0
# A cycle starts up to this much before its waits' next look: as long as the longest of the last
# few cycles took (one that meets many endings takes longer), so that a session's end reaches its
# wait within one poll interval, not one interval plus a cycle.
MAX_READ_LEAD = timedelta(seconds=1)
LEAD_MEMORY = 8


@dataclass(eq=False)
class _Follow:
    """One registered wait: its session, when it is next due, what is known of the session."""

    wait: SessionWait
    future: asyncio.Future[SessionVerdict]
    next_look: datetime
    deadline: datetime | None = None
    timeout: float = 0.0
    created_after: datetime | None = None  # a lower bound of the session's creation
    last: SessionVerdict | None = None

    @property
    def live(self) -> bool:
        return not self.future.done()

    def due(self) -> datetime:
        return min(self.next_look, self.deadline) if self.deadline is not None else self.next_look

    def due_by(self, now: datetime, lead: timedelta) -> bool:
        """Whether a cycle at ``now`` looks for this wait: its next look is within ``lead`` (a
        read started that early ends about on time), or its deadline has come."""
        return self.next_look <= now + lead or (self.deadline is not None and now >= self.deadline)


@dataclass(frozen=True)
class SessionsFeedStatus:
    """What a feed has done, for logs, tests and benchmarks."""

    list_reads: int
    own_looks: int
    failed_cycles: int
    waits: int
    running: bool


@dataclass(eq=False)
class SessionsFeed:
    """The sessions feed of one connection on one event loop (see the module docstring)."""

    hook: ManagedAgentsHook
    _follows: set[_Follow] = field(default_factory=set)
    _list_reads: int = 0
    _own_looks: int = 0
    _failed_cycles: int = 0
    _task: asyncio.Task[None] | None = None
    _cycle_times: list[timedelta] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._pace: Pace[SessionVerdict] = Pace(self, clock.now(), fatal=lambda exc: False, progress=False)
        self._wake = asyncio.Event()

    def status(self) -> SessionsFeedStatus:
        return SessionsFeedStatus(
            list_reads=self._list_reads,
            own_looks=self._own_looks,
            failed_cycles=self._failed_cycles,
            waits=sum(1 for f in self._follows if f.live),
            running=self._task is not None and not self._task.done(),
        )

    # --- registering ------------------------------------------------------------------------

    async def wait_for(
        self,
        wait: SessionWait,
        *,
        deadline: datetime | None = None,
        timeout: float = 0.0,
        not_before: datetime | None = None,
        created_after: datetime | None = None,
    ) -> SessionVerdict:
        """The verdict on ``wait``'s session from the feed's reads, the first of them not before
        ``not_before``; at ``deadline`` its timeout. An error no retry fixes is raised.
        ``created_after``: a lower bound of the session's creation, when the caller knows one.
        Cancelling the caller unregisters the wait cleanly."""
        start = not_before or clock.now()
        entry = _Follow(wait, asyncio.get_running_loop().create_future(), start, deadline, timeout, created_after)
        self._follows.add(entry)
        self._schedule(entry.due())
        try:
            return await entry.future
        finally:
            self._follows.discard(entry)
            if not any(f.live for f in self._follows) and self._task is not None and not self._task.done():
                self._schedule(clock.now())  # the loop looks, finds no wait, and ends

    def _schedule(self, at: datetime) -> None:
        if self._task is None or self._task.done():
            self._pace.next_look = at
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="managed-agents-sessions-feed")
            self._task.add_done_callback(self._crashed)
        elif at < self._pace.next_look:
            self._pace.next_look = at
            self._wake.set()

    async def _loop(self) -> None:
        await afollow(self._pace, self._look, self._sleep_or_wake)

    # --- the feed as the loop's watch --------------------------------------------------------

    def describe(self) -> str:
        return "the sessions feed's waits"

    def retry_at(self, now: datetime) -> datetime:
        """After a failed cycle: the shortest poll interval of any wait, or a deadline sooner."""
        live = [f for f in self._follows if f.live]
        retry = now + timedelta(seconds=min((f.wait.poll_interval for f in live), default=DEFAULT_POLL_SECONDS))
        deadlines = [f.deadline for f in live if f.deadline is not None]
        return max(min([retry, *deadlines]), now)

    def timed_out(self, timeout: float, last: SessionVerdict | None) -> SessionVerdict:
        raise AssertionError("the sessions feed has no deadline of its own")

    async def _sleep_or_wake(self, until: datetime) -> None:
        await clock.asleep_until_woken(until, self._wake)

    # --- a cycle -------------------------------------------------------------------------------

    async def _look(self, now: datetime, final: bool) -> SessionVerdict:
        live = [f for f in self._follows if f.live]
        if not live:
            return SessionVerdict("success", reason="no wait left")
        due = [f for f in live if f.due_by(now, self._lead())]
        try:
            if due:
                await self._cycle(due, now)
        except Exception:
            self._failed_cycles += 1
            raise
        else:
            self._failed_cycles = 0
            if due:
                self._cycle_times = [*self._cycle_times[-(LEAD_MEMORY - 1) :], max(clock.now() - now, timedelta(0))]
        finally:
            for entry in due:
                if entry.live and entry.deadline is not None and now >= entry.deadline:
                    entry.future.set_result(entry.wait.timed_out(entry.timeout, entry.last))
        return SessionVerdict("waiting", next_look_at=self._next_cycle_time(now))

    async def _cycle(self, due: list[_Follow], now: datetime) -> None:
        """The list of working sessions (when any due wait knows when its session was made),
        then an own look at each due session that is not in it."""
        bounded = [f.created_after for f in due if f.created_after is not None]
        working: set[str] = set()
        if bounded:
            try:
                working = await self._working_since(min(bounded) - CREATION_SLACK)
            except Exception as exc:
                if not gives_up_on(exc):
                    raise  # transient for every wait: the loop tries again
                for entry in due:
                    if entry.live:
                        entry.future.set_exception(exc)
                return
        by_session: dict[str, list[_Follow]] = {}
        for entry in due:
            listed = entry.created_after is not None and entry.wait.session_id in working
            if listed and not (entry.deadline is not None and now >= entry.deadline):
                entry.next_look = now + timedelta(seconds=entry.wait.poll_interval)
            else:
                by_session.setdefault(entry.wait.session_id, []).append(entry)
        if by_session:
            await asyncio.gather(*(self._own_look(entries, now) for entries in by_session.values()))

    async def _working_since(self, lower: datetime) -> set[str]:
        sessions = self.hook.alist_sessions(
            statuses=list(WORKING), created_at_gte=lower, order="asc", limit=SESSIONS_PAGE
        )
        working = {session.id async for session in sessions}
        self._list_reads += 1
        return working

    async def _own_look(self, entries: list[_Follow], now: datetime) -> None:
        """One look at a session for every wait on it (the worker's look, the same decision)."""
        wait = min((e.wait for e in entries), key=lambda w: w.poll_interval)
        self._own_looks += 1
        try:
            verdict = await alook(wait, self.hook, now)
        except Exception as exc:
            if gives_up_on(exc):
                for entry in entries:
                    if entry.live:
                        entry.future.set_exception(exc)
            else:
                log.warning("Transient error reading session %s (%s); looking again later", wait.session_id, exc)
                for entry in entries:
                    entry.next_look = entry.wait.retry_at(now)
            return
        created = verdict.facts.created_at if verdict.facts is not None else None
        for entry in entries:
            if not entry.live:
                continue  # cancelled while its session was read
            if created is not None and entry.created_after is None:
                from airflow_provider_managed_agents.models.base import parse_timestamp

                entry.created_after = parse_timestamp(created)
            if verdict.done:
                entry.future.set_result(verdict)
            else:
                entry.last = verdict
                entry.next_look = now + timedelta(seconds=entry.wait.poll_interval)

    def _lead(self) -> timedelta:
        return min(max(self._cycle_times, default=timedelta(0)), MAX_READ_LEAD)

    def _next_cycle_time(self, now: datetime) -> datetime:
        """The earliest next look of any wait, started early by the lead; or a deadline."""
        moments, lead = [now + timedelta(seconds=DEFAULT_POLL_SECONDS)], self._lead()
        for entry in self._follows:
            if entry.live:
                moments.append(entry.next_look - lead)
                if entry.deadline is not None:
                    moments.append(entry.deadline)
        return max(min(moments), now)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _crashed(self, task: asyncio.Task[None]) -> None:
        """The loop never gives up; should it break all the same, no wait is left hanging."""
        error = None if task.cancelled() else task.exception()
        if error is None:
            return
        log.error("The sessions feed stopped: %s", error)
        for entry in self._follows:
            if entry.live:
                entry.future.set_exception(error)


def sessions_feed(conn_id: str) -> SessionsFeed:
    """This event loop's sessions feed for ``conn_id``."""
    from airflow_provider_managed_agents.hooks.loop_pool import loop_pool
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

    def make() -> SessionsFeed:
        return SessionsFeed(ManagedAgentsHook(managed_agents_conn_id=conn_id))

    return loop_pool().shared(("sessions-feed", conn_id), make)
