"""ManagedAgentsDeploymentRunEventTrigger: an asset watcher announcing a deployment's new runs.

Event-driven scheduling (``Asset(watchers=[AssetWatcher(...)])``, Airflow 3.0+): the triggerer
runs this trigger for as long as a DAG is scheduled on the asset, and each event it yields
becomes an asset event that starts that DAG. Use it through
:func:`airflow_provider_managed_agents.assets.deployment_runs_asset`.

- Each new run of the deployment that matches the filters (``trigger_type``, ``has_error``) is
  announced once, with the run itself as the payload (id, session id or typed error, trigger
  context), in creation order.
- Reads come from the loop's runs feed (:mod:`~airflow_provider_managed_agents.triggers.runs_feed`):
  every watcher and deferred wait on a connection shares one runs read per poll. Airflow >= 3.3
  also groups watchers of one deployment (and pace) into one shared stream
  (``shared_stream_key`` / ``open_shared_stream`` / ``filter_shared_stream``): one subscription
  to the feed fanned out to each watcher's filter.
- The pace is schedule-aware, as the sensor's: a watcher of scheduled runs looks just after each
  listed fire (and re-reads the deployment once a minute); any other every ``poll_interval``.
- What it announced is kept in a :class:`~airflow_provider_managed_agents.waiting.watermark.Watermark`,
  saved where the Airflow version allows (:mod:`~airflow_provider_managed_agents.triggers.watermark_stores`):
  a run created while the triggerer was down is announced once after the restart, and a run
  already announced is not announced again. A watcher's first start announces the runs created
  from then on, not the deployment's history.
- ``delivery="both"`` (webhooks, and this watcher as their safety net): the watcher does not
  announce; it hands each new matching run to the webhook receiver
  (:mod:`~airflow_provider_managed_agents.triggers.webhook_handover`), which announces every run
  once whether the webhook or the watcher brought it, and moves its watermark past the run only
  once the receiver has it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
from airflow_provider_managed_agents.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_managed_agents.models.runs import DeploymentRun
from airflow_provider_managed_agents.triggers.runs_feed import VISIBILITY_OVERLAP, RunsFeed, RunsRead, runs_feed
from airflow_provider_managed_agents.triggers.watermark_stores import Keeper, store_for
from airflow_provider_managed_agents.waiting import clock
from airflow_provider_managed_agents.waiting.events import RunAnnouncement, encode
from airflow_provider_managed_agents.waiting.runs import TriggerTypeFilter
from airflow_provider_managed_agents.waiting.watermark import Watermark

if TYPE_CHECKING:
    from airflow_provider_managed_agents.triggers.webhook_handover import Handover

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 60.0
MIN_POLL_INTERVAL = 1.0
STREAM_TAG = "airflow_provider_managed_agents.deployment_runs"
FeedItem = DeploymentRun | RunsRead


@dataclass(frozen=True)
class RunFilters:
    """Which of a deployment's runs a watcher announces; validated where the DAG is parsed."""

    deployment_id: str
    trigger_type: str | None = None
    has_error: bool | None = None
    managed_agents_conn_id: str = DEFAULT_CONN_ID
    poll_interval: float = DEFAULT_POLL_INTERVAL
    delivery: str = "poll"  # or "both": hand the runs to the webhook receiver (see the module docstring)

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        if not isinstance(self.deployment_id, str) or not self.deployment_id.strip() or "/" in self.deployment_id:
            problems.append(("deployment_id", "must be a non-empty deployment id"))
        if self.trigger_type not in (None, "schedule", "manual"):
            problems.append(("trigger_type", "must be 'schedule', 'manual' or None"))
        if self.has_error not in (None, True, False):
            problems.append(("has_error", "must be True, False or None"))
        if not isinstance(self.managed_agents_conn_id, str) or not self.managed_agents_conn_id:
            problems.append(("managed_agents_conn_id", "must be a connection id"))
        if not isinstance(self.poll_interval, int | float) or self.poll_interval < MIN_POLL_INTERVAL:
            problems.append(("poll_interval", f"must be at least {MIN_POLL_INTERVAL:g} s"))
        if self.delivery not in ("poll", "both"):
            problems.append(("delivery", "must be 'poll' or 'both' (a 'webhook' asset has no watcher)"))
        if problems:
            raise ManagedAgentsValidationError("deployment runs watcher", problems)

    def matches(self, run: DeploymentRun) -> bool:
        if self.trigger_type is not None and run.trigger_type != self.trigger_type:
            return False
        return self.has_error is None or (run.error is not None) == self.has_error

    @property
    def pace(self) -> TriggerTypeFilter:
        """How the feed paces the reads: after each fire for scheduled runs, else by the poll."""
        return "schedule" if self.trigger_type == "schedule" else None

    def identity(self) -> str:
        """The watcher's identity for its watermark: what it announces, not how often it looks."""
        return "|".join([self.managed_agents_conn_id, self.deployment_id, str(self.trigger_type), str(self.has_error)])

    def describe(self) -> str:
        kinds = {None: "", "schedule": "scheduled ", "manual": "manual "}[self.trigger_type]
        outcome = {None: "", True: " that failed", False: " that created a session"}[self.has_error]
        return f"new {kinds}runs{outcome} of deployment {self.deployment_id}"


class ManagedAgentsDeploymentRunEventTrigger(BaseEventTrigger):
    """Announce each new run of a deployment (see the module docstring).

    :param deployment_id: the deployment whose runs are announced.
    :param trigger_type: only runs started by ``"schedule"`` or ``"manual"``; None for both.
    :param has_error: only runs that failed (True) or created a session (False); None for both.
    :param managed_agents_conn_id: the ``managed_agents`` connection.
    :param poll_interval: seconds between looks for manual runs (at least 1; scheduled runs
        are looked for just after each fire).
    :param delivery: ``"poll"`` (announce) or ``"both"`` (hand each run to the webhook receiver).
    """

    def __init__(
        self,
        *,
        deployment_id: str,
        trigger_type: str | None = None,
        has_error: bool | None = None,
        managed_agents_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        delivery: str = "poll",
    ) -> None:
        super().__init__()
        self.filters = RunFilters(
            deployment_id, trigger_type, has_error, managed_agents_conn_id, poll_interval, delivery
        )
        self._handover: Handover | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The filters' fields are this trigger's keyword arguments, by name ("poll" left out: the
        # kwargs, and so the trigger's identity, of every watcher made before it existed).
        kwargs = asdict(self.filters)
        if kwargs["delivery"] == "poll":
            del kwargs["delivery"]
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    # --- Airflow >= 3.3: one shared stream per connection, deployment and pace -----------------

    def shared_stream_key(self) -> Hashable | None:
        f = self.filters
        return (STREAM_TAG, f.managed_agents_conn_id, f.deployment_id, f.pace, float(f.poll_interval))

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """The group's one subscription to the runs feed: every run of the deployment, then a
        :class:`RunsRead` after each read. Yields until the last member leaves."""
        filters = RunFilters(**kwargs)
        async for item in _feed_items(filters, _groups().setdefault(_group_key(filters), _Group())):
            yield item

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        group = _groups().setdefault(_group_key(self.filters), _Group())
        async for event in self._announce(shared_stream, group.rewind):
            yield event

    # --- every version: a subscription of its own (the feed still shares the reads) ---------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        own = _Group()
        async for event in self._announce(_feed_items(self.filters, own), own.rewind):
            yield event

    # --- the announcing, for both --------------------------------------------------------------

    async def _announce(
        self, items: AsyncIterator[Any], rewind: Callable[[datetime], int]
    ) -> AsyncIterator[TriggerEvent]:
        """Announce each new matching run, oldest first, from the stream of feed items; on
        start, first every run since the saved watermark (the feed re-reads them on ``rewind``;
        what arrives before that read completes waits, so the order holds)."""
        f = self.filters
        keeper = Keeper(
            store_for(
                self, f.identity(), f"airflow-provider-managed-agents: what the watcher of {f.describe()} announced"
            ),
            f.identity(),
        )
        mark = Watermark.from_dict(await keeper.load(), VISIBILITY_OVERLAP)
        if mark is None:
            mark = Watermark(since=clock.now(), overlap=VISIBILITY_OVERLAP)
            await keeper.save_now(mark.to_dict())  # a restart before the first run keeps this start
        self.log.info("Announcing %s created since %s (watermark in %s)", f.describe(), mark.since, keeper.store.kind)
        after_read = rewind(mark.since)
        backlog: list[DeploymentRun] | None = []
        try:
            async for item in items:
                if isinstance(item, RunsRead):
                    if backlog is not None and item.seq > after_read and item.covered_from <= mark.since:
                        ready, backlog = sorted(backlog, key=lambda r: (r.created_at, r.id)), None
                        for run in ready:
                            for event in await self._consider(run, mark, keeper):
                                yield event
                    continue
                if not isinstance(item, DeploymentRun):
                    continue
                if backlog is not None:
                    backlog.append(item)
                    continue
                for event in await self._consider(item, mark, keeper):
                    yield event
        finally:
            await keeper.close()
            if self._handover is not None:
                await self._handover.close()

    async def _consider(self, run: DeploymentRun, mark: Watermark, keeper: Keeper) -> list[TriggerEvent]:
        if not mark.admits(run):
            return []
        announce = self.filters.matches(run)
        if announce and self.filters.delivery == "both":
            # The receiver announces it (once, whether its webhook came first or not); only then
            # does the watermark move past it.
            from airflow_provider_managed_agents.triggers.webhook_handover import Handover

            self._handover = self._handover or Handover()
            await self._handover.deliver(run)
            self.log.info("Run %s of deployment %s handed to the webhook receiver", run.id, run.deployment_id)
            mark.passed(run, announced=True)
            keeper.save_later(mark.to_dict())
            return []
        mark.passed(run, announced=announce)
        # Filtered-out runs move the watermark too: a restart then re-reads from near now, not from
        # the last run that matched (which may be weeks old).
        keeper.save_later(mark.to_dict())
        if not announce:
            return []
        self.log.info("Run %s of deployment %s: %s", run.id, run.deployment_id, run_outcome(run))
        return [TriggerEvent(encode(RunAnnouncement(run)))]


def run_outcome(run: DeploymentRun) -> str:
    if run.error is not None:
        return f"failed ({run.error.type})"
    return f"created session {run.session_id}"


# --- the stream from the feed, and the shared groups of this event loop ------------------------


@dataclass(eq=False)
class _Group:
    """The feed subscription behind one shared stream (or one watcher's own), and the rewind
    its members asked for before it opened."""

    feed: RunsFeed | None = None
    stream: Any = None
    pending_since: datetime | None = None

    def rewind(self, since: datetime) -> int:
        """Have the stream deliver every run since ``since`` again (see :meth:`RunsFeed.rewind`)."""
        if self.feed is None or not self.feed.subscribed(self.stream):
            self.pending_since = min(self.pending_since or since, since)
            return -1  # the stream's first read covers it
        return self.feed.rewind(self.stream, since)


async def _feed_items(filters: RunFilters, group: _Group) -> AsyncIterator[FeedItem]:
    """The group's subscription to the loop's runs feed, as an async stream of its items."""
    items: asyncio.Queue[FeedItem] = asyncio.Queue()
    feed = runs_feed(filters.managed_agents_conn_id)
    since = group.pending_since or clock.now()
    group.feed, group.pending_since = feed, None
    group.stream = feed.subscribe(filters.deployment_id, since, items.put_nowait, filters.poll_interval, filters.pace)
    try:
        while True:
            yield await items.get()
    finally:
        feed.unsubscribe(group.stream)
        group.feed = group.stream = None


def _group_key(filters: RunFilters) -> tuple[Any, ...]:
    return (filters.managed_agents_conn_id, filters.deployment_id, filters.pace, float(filters.poll_interval))


def _groups() -> dict[tuple[Any, ...], _Group]:
    from airflow_provider_managed_agents.hooks.loop_pool import loop_pool

    return loop_pool().shared("managed-agents-shared-streams", dict)
