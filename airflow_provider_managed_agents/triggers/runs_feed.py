"""One runs feed per event loop and connection: N deferred waits cost O(1) requests per poll.

Every deferred wait for "the next run of deployment D" used to ask the API itself, once per poll
interval: at 1,000 waits polling every 5 s, 200 requests a second from one triggerer against an
organisation limit of 600 a minute. The runs list answers for every deployment at once, so all
waits on one connection share one query per poll:

- one poll loop asks for the runs created since its watermark (all deployments, every page) and
  hands each run to the waits on its deployment; waits register and unregister as triggers start
  and stop, and the loop stops when the last one leaves;
- a wait registered with a reference time older than what the feed has already read is caught up
  by the next poll, which then starts from that time: a run that fired while a trigger was
  starting, or while the triggerer was down, is delivered like any other;
- a wait is judged only on complete information: by the same :class:`RunWait` decision as a
  poking sensor, over every run of its deployment created since its reference time, after a poll
  that covered all of them (every page, with an overlap for records that become visible late);
- the deployment state fail-fast needs (paused, archived, next fire) comes from the deployments
  list, 100 a page, at most once a minute (or from single reads when they are fewer);
- the feed polls at the shortest interval any live wait needs, and just after each listed fire
  of a scheduled deployment someone waits on;
- a transient error (429, 5xx, connection) is transient for every wait: the next cycle tries
  again; an error no retry fixes fails the waits it concerns with its own class, as each of them
  would have met it polling alone (a deployment's 404 its waits, a refused key every wait);
- a read that fails changes nothing: where the next read starts, what it has seen, which
  catch-ups it owes; the first read after an outage covers everything since the last good one;
- the loop is the one look loop of every wait (:mod:`airflow_provider_managed_agents.waiting.loop`):
  the feed's look is a cycle over all of its waits, and it never gives up.

The event-driven watchers (:mod:`airflow_provider_managed_agents.triggers.deployment_run_events`)
subscribe to the same feed as *streams*: each gets every new run of its deployment as it is read,
then a :class:`RunsRead` tick saying which span of time that read covered, so a watcher knows when
its catch-up (``rewind``, after a restart) is complete and can announce in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from airflow_provider_managed_agents.waiting import clock
from airflow_provider_managed_agents.waiting.loop import Pace, afollow
from airflow_provider_managed_agents.waiting.runs import (
    DEPLOYMENT_RECHECK,
    RUNS_PAGE_SIZE,
    LookState,
    RunWait,
    TriggerTypeFilter,
    Verdict,
    with_pending_fires,
)

if TYPE_CHECKING:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.models.deployments import Deployment, DeploymentState
    from airflow_provider_managed_agents.models.runs import DeploymentRun

log = logging.getLogger(__name__)

# A run record can become visible a moment after a newer one: every poll re-reads this far back
# (seconds, not minutes: the overlap is re-read on every poll, and at 1,000 fires a minute a
# minute of overlap would double the pages) before its watermark, de-duplicated by id.
VISIBILITY_OVERLAP = timedelta(seconds=10)
# At most this much earlier than a wait's pace does the next runs read start (see read_lead).
MAX_READ_LEAD = timedelta(seconds=1)
# The feed's own pace when no wait says otherwise (an idle subscriber list never polls).
DEFAULT_POLL_SECONDS = 60.0
DEPLOYMENTS_PAGE = 100


@dataclass(eq=False)
class _Wait:
    """One registered wait: its question, the runs of its deployment seen so far, how far the
    feed's reads cover it, its deadline and its verdict."""

    wait: RunWait
    future: asyncio.Future[Verdict]
    deadline: datetime | None = None
    timeout: float = 0.0
    covered_until: datetime | None = None  # every run created before this has been read for it
    runs: dict[str, DeploymentRun] = field(default_factory=dict)
    runs_judged: int = -1  # how many of them the last verdict on runs saw
    next_look: datetime | None = None  # from the last verdict on the deployment
    skips_logged: set[str] = field(default_factory=set)

    def pace_key(self) -> tuple[object, ...]:
        """Waits with equal keys look next at the same moment: judged once per cycle."""
        w = self.wait
        return (w.deployment_id, w.trigger_type, w.poll_interval, self.covered_until)

    @property
    def live(self) -> bool:
        return not self.future.done()


@dataclass(frozen=True)
class RunsRead:
    """Told to every subscriber after each runs read, after the runs it delivered: the feed has
    read every run created since ``covered_from`` (read number ``seq``)."""

    seq: int
    covered_from: datetime


@dataclass(eq=False)
class _Stream:
    """An event-driven subscriber: every run of a deployment created at or after ``since``, each
    delivered once (the subscriber keeps its own exact record), each read followed by a
    :class:`RunsRead`. ``wait`` paces it like a wait for the same runs (schedule-aware)."""

    wait: RunWait
    deliver: Callable[[DeploymentRun | RunsRead], None]
    since: datetime
    catch_up_from: datetime | None = None  # a rewind the next read must cover
    seen: dict[str, datetime] = field(default_factory=dict)

    @property
    def deployment_id(self) -> str:
        return self.wait.deployment_id or ""


@dataclass(frozen=True)
class FeedStatus:
    """What a feed is doing, for logs and tests: its reads so far, its plan, who it serves."""

    runs_reads: int
    runs_read_at: datetime | None
    deployments_read_at: datetime | None
    next_look_at: datetime | None
    failed_cycles: int
    waits: int
    streams: int
    running: bool
    next_runs_look: dict[str, datetime]


class RunsFeed:
    """The runs feed of one connection on one event loop (see the module docstring)."""

    def __init__(self, hook: ManagedAgentsHook) -> None:
        self.hook = hook
        self._waits: set[_Wait] = set()
        self._streams: set[_Stream] = set()
        self._by_deployment: dict[str, set[_Wait]] = {}
        self._deployments: dict[str, DeploymentState] = {}
        self._deployments_read_at: datetime | None = None
        self._deployment_pages = 1
        self._watermark: datetime | None = None  # the newest created_at read so far
        self._read_from: datetime | None = None  # where the next runs read must start at the latest
        self._seen: dict[str, datetime] = {}  # run ids read within the overlap window
        self._runs_read_at: datetime | None = None
        # How long the last runs read took: the next one starts that much early, so a run made
        # just after a read reaches its waits within one poll interval, not one interval plus a read.
        self._read_lead = timedelta(0)
        self._runs_reads = 0
        # Catch-ups asked for while a runs read is in flight: that read does not cover them.
        self._reading = False
        self._arrived: datetime | None = None
        self._failed_cycles = 0  # in a row: the service's trouble, ridden out
        self._pace: Pace[Verdict] = Pace(self, clock.now(), fatal=lambda exc: False, progress=False)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def status(self) -> FeedStatus:
        """A snapshot of the feed (:class:`FeedStatus`); ``next_runs_look`` per watched deployment
        whose state is known: when its runs are next worth reading."""
        running = self._task is not None and not self._task.done()
        looks: dict[str, datetime] = {}
        if self._runs_read_at is not None:
            for stream in self._streams:
                deployment = self._deployments.get(stream.deployment_id)
                if deployment is not None:
                    looks[stream.deployment_id] = stream.wait.next_runs_look(deployment, self._runs_read_at)
        return FeedStatus(
            runs_reads=self._runs_reads,
            runs_read_at=self._runs_read_at,
            deployments_read_at=self._deployments_read_at,
            next_look_at=self._pace.due() if running else None,
            failed_cycles=self._failed_cycles,
            waits=sum(1 for entry in self._waits if entry.live),
            streams=len(self._streams),
            running=running,
            next_runs_look=looks,
        )

    def subscribed(self, stream: _Stream) -> bool:
        return stream in self._streams

    # --- registering --------------------------------------------------------------------------

    async def wait_for(
        self,
        wait: RunWait,
        *,
        deadline: datetime | None = None,
        timeout: float = 0.0,
        not_before: datetime | None = None,
        state: LookState | None = None,
    ) -> Verdict:
        """The verdict of ``wait`` (a deployment wait) from the feed's reads, the first of them
        not before ``not_before``; at ``deadline``, after a last full read (as a poking sensor's
        last look), its timeout. ``state`` is what the deferring sensor read (its deployment,
        and how far its runs query went): the feed carries on from there. Cancelling the caller
        unregisters the wait cleanly."""
        assert wait.deployment_id is not None and wait.created_after is not None
        entry = _Wait(wait, asyncio.get_running_loop().create_future(), deadline, timeout)
        if state is not None and state.runs_read_at is not None:
            entry.covered_until = state.runs_read_at
            self._catch_up(state.runs_read_at - VISIBILITY_OVERLAP)
        else:
            self._catch_up(wait.created_after)
        if state is not None and state.deployment is not None and wait.deployment_id not in self._deployments:
            self._deployments[wait.deployment_id] = state.deployment
            if self._deployments_read_at is None and state.deployment_read_at is not None:
                self._deployments_read_at = state.deployment_read_at
        self._waits.add(entry)
        self._by_deployment.setdefault(wait.deployment_id, set()).add(entry)
        start = not_before or clock.now()
        self._schedule(min(start, deadline) if deadline is not None else start)
        try:
            return await entry.future
        finally:
            self._waits.discard(entry)
            peers = self._by_deployment.get(wait.deployment_id)
            if peers is not None:
                peers.discard(entry)
                if not peers:
                    del self._by_deployment[wait.deployment_id]
            self._stop_when_idle()

    def subscribe(
        self,
        deployment_id: str,
        since: datetime,
        deliver: Callable[[DeploymentRun | RunsRead], None],
        poll_interval: float,
        trigger_type: TriggerTypeFilter = None,
    ) -> _Stream:
        """Every run of ``deployment_id`` created at or after ``since``, each passed once to
        ``deliver`` in creation order, then a :class:`RunsRead`, until :meth:`unsubscribe`.
        Read every ``poll_interval`` seconds, or, for ``trigger_type="schedule"``, just after
        each listed fire."""
        wait = RunWait(
            deployment_id=deployment_id, trigger_type=trigger_type, created_after=since, poll_interval=poll_interval
        )
        stream = _Stream(wait, deliver, since, catch_up_from=since)
        self._streams.add(stream)
        self._catch_up(since)
        self._schedule(clock.now())
        return stream

    def rewind(self, stream: _Stream, since: datetime) -> int:
        """Deliver again every run created since ``since`` (a new member of a shared stream
        catching up); returns the number of the last read so far: the first :class:`RunsRead`
        with a higher ``seq`` and ``covered_from <= since`` follows the runs asked for."""
        stream.since = min(stream.since, since)
        stream.catch_up_from = min(stream.catch_up_from or since, since)
        stream.seen.clear()
        self._catch_up(since)
        self._schedule(clock.now())
        return self._runs_reads

    def unsubscribe(self, stream: _Stream) -> None:
        self._streams.discard(stream)
        self._stop_when_idle()

    def _stop_when_idle(self) -> None:
        """The last wait or stream left: have the loop look now, find none, and end."""
        if not (self._waits or self._streams) and self._task is not None and not self._task.done():
            self._schedule(clock.now())

    def _catch_up(self, since: datetime) -> None:
        if self._read_from is None or since < self._read_from:
            self._read_from = since
        if self._reading:
            self._arrived = since if self._arrived is None else min(self._arrived, since)

    def _schedule(self, at: datetime) -> None:
        if self._task is None or self._task.done():
            self._pace.next_look = at
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="managed-agents-runs-feed")
        elif at < self._pace.next_look:
            self._pace.next_look = at
            self._wake.set()

    # --- the loop --------------------------------------------------------------------------------

    async def _loop(self) -> None:
        await afollow(self._pace, self._look, self._sleep_or_wake)

    async def _look(self, now: datetime, final: bool) -> Verdict:
        """One cycle over every wait; done when none is left. Whatever the cycle met, the waits
        at their deadline time out (a transient error is then the loop's to ride out)."""
        if not (self._waits or self._streams):
            return Verdict("success", reason="no wait left")
        at_a_deadline = any(e.live and e.deadline is not None and now >= e.deadline for e in self._waits)
        try:
            await self._cycle(now, at_a_deadline)
        except Exception:
            self._failed_cycles += 1
            raise
        else:
            self._failed_cycles = 0
        finally:
            self._time_out(now)
        return Verdict("waiting", next_look_at=self._next_cycle_time())

    # --- the feed as the loop's watch ----------------------------------------------------------

    def describe(self) -> str:
        return "the runs feed's waits"

    def retry_at(self, now: datetime) -> datetime:
        """After a failed cycle: one poll interval later (the shortest any wait asks for), or a
        wait's deadline when that is sooner."""
        intervals = [w.wait.poll_interval for w in self._waits if w.live] + [
            s.wait.poll_interval for s in self._streams
        ]
        retry_at = now + timedelta(seconds=min(intervals, default=DEFAULT_POLL_SECONDS))
        deadlines = [w.deadline for w in self._waits if w.live and w.deadline is not None]
        return max(min([retry_at, *deadlines]), now)

    def timed_out(self, timeout: float, last: Verdict | None) -> Verdict:
        raise AssertionError("the runs feed has no deadline of its own")

    async def _sleep_or_wake(self, until: datetime) -> None:
        await clock.asleep_until_woken(until, self._wake)

    async def _cycle(self, now: datetime, final: bool) -> None:
        """Read what is due, runs first (a run that answers spares the deployment read); at a
        wait's deadline, everything."""
        if final or self._runs_due(now):
            await self._definite_errors_fail(self._read_runs(now), self._waits)
            self._judge(now, with_deployments=False)
        watching = any(w.live for w in self._waits) or bool(self._watched_deployments())
        if watching and (final or self._deployments_due(now)):
            await self._read_deployments(now)
        self._judge(now, with_deployments=True)

    async def _definite_errors_fail(self, read: Awaitable[None], waits: Iterable[_Wait]) -> None:
        """Run ``read``; an error no retry fixes fails ``waits`` with it (transient ones are
        raised on, for the next cycle to try again)."""
        from airflow_provider_managed_agents.exceptions import ManagedAgentsError
        from airflow_provider_managed_agents.hooks.wire import is_transient

        try:
            await read
        except ManagedAgentsError as exc:
            if is_transient(exc):
                raise
            for entry in list(waits):
                if entry.live:
                    entry.future.set_result(Verdict("failed", error=exc, reason=str(exc)))
            if self._streams:  # watchers never give up: they try again a poll interval later
                raise

    def _runs_due(self, now: datetime) -> bool:
        now += self._read_lead
        last = self._runs_read_at
        for stream in self._streams:
            if last is None or stream.catch_up_from is not None:
                return True
            deployment = self._deployments.get(stream.deployment_id)
            if deployment is None:
                if now >= last + timedelta(seconds=stream.wait.poll_interval):
                    return True
            elif now >= stream.wait.next_runs_look(deployment, last):
                return True
        looked: set[tuple[object, ...]] = set()
        for entry in self._waits:
            if not entry.live:
                continue
            if entry.covered_until is None:
                return True
            key = entry.pace_key()
            if key in looked:
                continue
            looked.add(key)
            deployment = self._deployments.get(entry.wait.deployment_id or "")
            if deployment is None or now >= entry.wait.next_runs_look(deployment, entry.covered_until):
                return True
        return False

    def _watched_deployments(self) -> set[str]:
        """The deployments whose state someone needs: every wait's (fail-fast, schedule) and
        every stream's that may await a scheduled run (schedule-aware pace)."""
        paced = {s.deployment_id for s in self._streams if s.wait.trigger_type != "manual"}
        return set(self._by_deployment) | paced

    def _deployments_due(self, now: datetime) -> bool:
        if self._watched_deployments() - set(self._deployments):
            return True
        return self._deployments_read_at is None or now - self._deployments_read_at >= DEPLOYMENT_RECHECK

    async def _read_runs(self, now: datetime) -> None:
        """Every run created since the watermark (less the overlap) or the oldest catch-up, all
        deployments, every page: each wait on its deployment gets it. A read that fails leaves
        everything as it was: the next one starts from the same point."""
        lower = self._read_from or now
        if self._watermark is not None:
            lower = min(lower, self._watermark - VISIBILITY_OVERLAP)
        covered = list(self._waits)
        rewound = [s for s in self._streams if s.catch_up_from is not None and lower <= s.catch_up_from]
        self._reading, self._arrived = True, None
        try:
            listed = [run async for run in self.hook.alist_deployment_runs(created_at_gte=lower, limit=RUNS_PAGE_SIZE)]
        finally:
            self._reading = False
        # The read succeeded: only what arrived during it is still owed.
        self._read_from, self._arrived = self._arrived, None
        fresh = [run for run in listed if run.id not in self._seen]
        self._seen.update((run.id, run.created_at) for run in fresh)
        self._runs_reads += 1
        self._runs_read_at = now
        self._read_lead = min(max(clock.now() - now, timedelta(0)), MAX_READ_LEAD)
        newest = max((r.created_at for r in fresh), default=None)
        if newest is not None and (self._watermark is None or newest > self._watermark):
            self._watermark = newest
        if self._watermark is None:
            self._watermark = lower
        horizon = self._watermark - VISIBILITY_OVERLAP
        self._seen = {i: t for i, t in self._seen.items() if t >= horizon}
        # Every run read goes to the waits on its deployment, not only the new ones: a wait that
        # registered since the last read is caught up on what the others already had.
        for run in listed:
            for entry in self._by_deployment.get(run.deployment_id, ()):
                entry.runs[run.id] = run
        for entry in covered:
            entry.covered_until = now
        for stream in rewound:
            stream.catch_up_from = None
        self._deliver(listed, RunsRead(self._runs_reads, lower), horizon)

    def _deliver(self, listed: list[DeploymentRun], read: RunsRead, horizon: datetime) -> None:
        """Each stream's runs it has not had yet, oldest first, then the read's end."""
        in_order = sorted(listed, key=lambda r: (r.created_at, r.id))
        for stream in list(self._streams):
            for run in in_order:
                if run.deployment_id != stream.deployment_id or run.created_at < stream.since:
                    continue
                if run.id not in stream.seen:
                    stream.seen[run.id] = run.created_at
                    stream.deliver(run)
            stream.deliver(read)
            if stream.catch_up_from is None:
                stream.since = max(stream.since, horizon)
            stream.seen = {i: t for i, t in stream.seen.items() if t >= stream.since}

    async def _read_deployments(self, now: datetime) -> None:
        """The waited deployments' state: the deployments list (100 a page, archived ones too)
        when that takes fewer requests than reading each one."""
        wanted = self._watched_deployments()
        if not wanted:
            return
        if len(wanted) <= self._deployment_pages:
            for deployment_id in sorted(wanted):
                await self._definite_errors_fail(
                    self._read_one(deployment_id, now), self._by_deployment.get(deployment_id, ())
                )
        else:
            await self._definite_errors_fail(self._read_list(wanted, now), self._waits)
        self._deployments_read_at = now

    async def _read_one(self, deployment_id: str, now: datetime) -> None:
        self._remember(await self.hook.aget_deployment(deployment_id), now)

    async def _read_list(self, wanted: set[str], now: datetime) -> None:
        count = 0
        async for deployment in self.hook.alist_deployments(include_archived=True, limit=DEPLOYMENTS_PAGE):
            count += 1
            if deployment.id in wanted:
                self._remember(deployment, now)
        self._deployment_pages = max(-(-count // DEPLOYMENTS_PAGE), 1)

    def _remember(self, deployment: Deployment, now: datetime) -> None:
        from airflow_provider_managed_agents.models.deployments import DeploymentState

        previous = self._deployments.get(deployment.id)
        state = with_pending_fires(DeploymentState.of(deployment), previous, self._runs_read_at, now)
        self._deployments[deployment.id] = state

    def _judge(self, now: datetime, *, with_deployments: bool) -> None:
        """Every covered wait, by the same decision a poking sensor makes: on its runs when
        new ones came, on its deployment's state (once per deployment and pace)."""
        by_pace: dict[tuple[object, ...], Verdict] = {}
        for entry in list(self._waits):
            if entry.covered_until is None or not entry.live:
                continue
            if len(entry.runs) != entry.runs_judged:
                entry.runs_judged = len(entry.runs)
                verdict = entry.wait.on_runs(list(entry.runs.values()))
                for run in verdict.skipped if verdict is not None else ():
                    if run.id not in entry.skips_logged:
                        entry.skips_logged.add(run.id)
                        log.info("Waiting through run %s: %s", run.id, run.error.type if run.error else "")
                if verdict is not None and verdict.done:
                    entry.future.set_result(verdict)
                    continue
            deployment = self._deployments.get(entry.wait.deployment_id or "")
            if with_deployments and deployment is not None:
                key = entry.pace_key()
                judged = by_pace.get(key)
                if judged is None:
                    judged = by_pace[key] = entry.wait.on_deployment(deployment, self._state(entry, deployment), now)
                if judged.done:
                    entry.future.set_result(judged)
                else:
                    entry.next_look = judged.next_look_at

    def _time_out(self, now: datetime) -> None:
        for entry in self._waits:
            if entry.live and entry.deadline is not None and now >= entry.deadline:
                entry.future.set_result(entry.wait.timed_out(entry.timeout))

    def _state(self, entry: _Wait, deployment: DeploymentState) -> LookState:
        return LookState(deployment, self._deployments_read_at, entry.covered_until)

    def _next_cycle_time(self) -> datetime:
        """The earliest moment any live wait (or stream) needs the runs, the deployments or its
        deadline."""
        now = clock.now()
        moments = [now + timedelta(seconds=DEFAULT_POLL_SECONDS)]
        lead = self._read_lead  # only runs reads start early; deployment re-reads and deadlines do not
        paces: set[tuple[object, ...]] = set()
        for entry in self._waits:
            if not entry.live:
                continue
            if entry.covered_until is None or entry.next_look is None:
                return now
            moments.append(entry.next_look)
            if entry.deadline is not None:
                moments.append(entry.deadline)
            deployment = self._deployments.get(entry.wait.deployment_id or "")
            if lead and deployment is not None and entry.pace_key() not in paces:
                paces.add(entry.pace_key())
                moments.append(entry.wait.next_runs_look(deployment, entry.covered_until) - lead)
        last = self._runs_read_at or now
        for stream in self._streams:
            deployment = self._deployments.get(stream.deployment_id)
            if stream.catch_up_from is not None:
                return now
            if deployment is None:
                moments.append(last + timedelta(seconds=stream.wait.poll_interval) - lead)
            else:
                state = LookState(deployment, self._deployments_read_at, last)
                moments.append(stream.wait.next_look_at(deployment, state, now))
                moments.append(stream.wait.next_runs_look(deployment, last) - lead)
        return max(min(moments), now)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


def runs_feed(conn_id: str) -> RunsFeed:
    """This event loop's runs feed for ``conn_id``."""
    from airflow_provider_managed_agents.hooks.loop_pool import loop_pool
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

    def make() -> RunsFeed:
        return RunsFeed(ManagedAgentsHook(managed_agents_conn_id=conn_id))

    return loop_pool().shared(("runs-feed", conn_id), make)
