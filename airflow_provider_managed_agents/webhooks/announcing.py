"""From a verified delivery to asset events: which object, which assets, exactly once.

- ``deployment_run.*`` (started, succeeded, failed): the run is read (one request; the payload
  is thin) unless an earlier event of that run already announced it (then none), and announced
  on every *fed* asset of its deployment whose filters it matches: the assets
  :func:`~airflow_provider_managed_agents.assets.deployment_runs_asset` defines with
  ``delivery="webhook"`` or ``"both"`` (never a polled one, which its watcher announces), with
  the very ``extra`` the watcher's event carries, so that DAGs and :func:`run_details` see no
  difference.
- ``session.status_idled`` / ``session.status_terminated`` / ``session.outcome_evaluation_ended``:
  the session is read and judged with the same decision as every session wait
  (:func:`~airflow_provider_managed_agents.waiting.sessions.judge`); an ending (a final stop
  reason, or terminated) is announced on the deployment's
  :func:`~airflow_provider_managed_agents.assets.deployment_sessions_ended_asset`, once per
  ending (keyed by its ``session.status_idle`` event, or "terminated").
- Anything else is acknowledged and ignored.
- A run handed over by a watcher with ``delivery="both"`` (:func:`handle_handover`) is read and
  announced like a ``deployment_run.*`` event's.

Order does not matter: every event makes the receiver read the object's current state, and the
announcement records in :mod:`.records` make the first path to announce a subject the only one.
The record, the asset event and Airflow's queued DAG runs commit in one transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_managed_agents.assets import DELIVERY_EXTRA_KEY, runs_asset_key, sessions_ended_asset_key
from airflow_provider_managed_agents.webhooks import records

if TYPE_CHECKING:
    from airflow_provider_managed_agents.hooks.wire import Settings
    from airflow_provider_managed_agents.models.runs import DeploymentRun
    from airflow_provider_managed_agents.models.webhooks import WebhookEvent
    from airflow_provider_managed_agents.waiting.sessions import SessionVerdict

log = logging.getLogger(__name__)

FED_DELIVERIES = ("webhook", "both")
# The receiver answers the API quickly or not at all: one try, a short timeout; a failed read is
# answered 503 and the API delivers again later.
READ_TIMEOUT_SECONDS = 10.0

SessionScope = Callable[[], AbstractContextManager[Any]]


@dataclass(frozen=True)
class Outcome:
    """What a delivery did: ``announced`` (on ``assets``), ``duplicate`` (this event was handled
    before), ``already_announced`` (another event or path announced the subject), ``no_asset``
    (nothing is fed by it), ``not_ended`` (the session has not ended) or ``ignored`` (a type
    nothing is made of)."""

    status: str
    subject: str = ""
    assets: tuple[str, ...] = field(default_factory=tuple)


class Reader(Protocol):
    """How the receiver reads the API."""

    def run(self, run_id: str) -> DeploymentRun: ...
    def session(self, session_id: str) -> SessionVerdict: ...


class HookReader:
    """:class:`Reader` through the hook: one try per read, a short timeout."""

    def __init__(self, conn_id: str, settings: Settings):
        from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

        fast = replace(settings, max_retries=0, timeout=min(settings.timeout, READ_TIMEOUT_SECONDS))

        class ReceiverHook(ManagedAgentsHook):
            @property
            def settings(self) -> Settings:
                return fast

        self.hook = ReceiverHook(conn_id)

    def run(self, run_id: str) -> DeploymentRun:
        return self.hook.get_deployment_run(run_id)

    def session(self, session_id: str) -> SessionVerdict:
        from airflow_provider_managed_agents.waiting import clock
        from airflow_provider_managed_agents.waiting.sessions import SessionWait, look

        return look(SessionWait(session_id), self.hook, clock.now())

    def close(self) -> None:
        self.hook.close()


# SQLite has one writer at a time: taking turns in the process beats waiting on its lock.
_sqlite_turn = threading.Lock()


@contextmanager
def airflow_session() -> Iterator[Any]:
    """One transaction on Airflow's metadata database: committed on success, rolled back on error."""
    from airflow import settings
    from airflow.utils.session import create_session

    engine = settings.engine
    records.ensure_tables(engine)
    turn = _sqlite_turn if engine is not None and engine.dialect.name == "sqlite" else None
    if turn is not None:
        turn.acquire()
    try:
        with create_session(scoped=False) as session:
            yield session
    finally:
        if turn is not None:
            turn.release()


class _Turns:
    """One turn at a time per subject in this process: the ``started`` and ``succeeded`` events
    of a run, delivered together, read the run once (the second finds it announced)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def of(self, subject: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(subject, (threading.Lock(), 0))
            self._locks[subject] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[subject]
                if users == 1:
                    del self._locks[subject]
                else:
                    self._locks[subject] = (lock, users - 1)


_turns = _Turns()


def handle_event(event: WebhookEvent, reader: Reader, scope: SessionScope = airflow_session) -> Outcome:
    """Handle one verified delivery (see the module docstring). Raises the reader's errors
    before anything is recorded: the API then delivers again."""
    with _turns.of(event.data.id):
        return _handle(event, reader, scope)


def handle_handover(run_id: str, reader: Reader, scope: SessionScope = airflow_session) -> Outcome:
    """A run a watcher found (``delivery="both"``): announced unless any path already did. The
    run is read from the API like a webhook's (one request, only when not yet announced), never
    taken from the request: a leaked secret cannot make up a run."""
    with _turns.of(run_id):
        with scope() as session:
            if records.subject_seen(session, run_id):
                return Outcome("already_announced", run_id)
        return announce_run(reader.run(run_id), source="watcher", scope=scope)


def _handle(event: WebhookEvent, reader: Reader, scope: SessionScope) -> Outcome:
    kind = event.data.type
    with scope() as session:
        if records.event_seen(session, event.id):
            return Outcome("duplicate", event.data.id)
        if event.about_a_run and records.subject_seen(session, event.data.id):
            # started, then succeeded: the run was read and announced on the first.
            recorded = records.record_event(session, event.id, kind, event.data.id, "already_announced")
            return Outcome("already_announced" if recorded else "duplicate", event.data.id)
    if event.about_a_run:
        return announce_run(reader.run(event.data.id), source="webhook", event=event, scope=scope)
    if event.about_a_session_ending:
        return _announce_session(event, reader.session(event.data.id), scope)
    with scope() as session:
        recorded = records.record_event(session, event.id, kind, event.data.id, "ignored")
    return Outcome("ignored" if recorded else "duplicate", event.data.id)


def announce_run(
    run: DeploymentRun, *, source: str, event: WebhookEvent | None = None, scope: SessionScope = airflow_session
) -> Outcome:
    """Announce ``run`` on every fed asset it matches, unless it was already (by any path)."""
    from airflow_provider_managed_agents.waiting.events import RunAnnouncement, encode

    trigger_types = {None, run.trigger_type} if run.trigger_type in ("schedule", "manual") else {None}
    keys = {runs_asset_key(run.deployment_id, t, e) for t in trigger_types for e in (None, run.error is not None)}
    # What the watcher's trigger event becomes in the triggerer: the same extra, the same reader.
    extra = {"from_trigger": True, "payload": encode(RunAnnouncement(run))}
    return _announce(run.id, keys, extra, source, event, scope)


def _announce_session(event: WebhookEvent, verdict: SessionVerdict, scope: SessionScope) -> Outcome:
    facts = verdict.facts
    if not verdict.done or facts is None or not facts.deployment_id:
        with scope() as session:
            recorded = records.record_event(session, event.id, event.data.type, event.data.id, "not_ended")
        return Outcome("not_ended" if recorded else "duplicate", event.data.id)
    ending = facts.idle.get("id") if facts.status == "idle" and facts.idle else None
    subject = f"{facts.session_id}/{ending or facts.status}"
    return _announce(
        subject, {sessions_ended_asset_key(facts.deployment_id)}, session_ending_extra(verdict), "webhook", event, scope
    )


def session_ending_extra(verdict: SessionVerdict) -> dict[str, Any]:
    """The asset event's extra for a session that ended: the run operator's XCom keys (but the
    final message, which would cost one more read), its deployment, and how it ended."""
    from airflow_provider_managed_agents.waiting.sessions import report

    assert verdict.facts is not None
    extra = report(verdict.facts, None)
    extra.pop("final_message", None)
    extra["deployment_id"] = verdict.facts.deployment_id
    extra["succeeded"] = verdict.status == "success"
    extra["error_type"] = type(verdict.error).__name__ if verdict.error is not None else None
    return extra


def _announce(
    subject: str,
    keys: set[tuple[str, str]],
    extra: dict[str, Any],
    source: str,
    event: WebhookEvent | None,
    scope: SessionScope,
) -> Outcome:
    from airflow.assets.manager import asset_manager

    after_commit: list[Callable[[], None]] = []
    with scope() as session:
        if event is not None and not records.record_event(session, event.id, event.data.type, subject, "announced"):
            return Outcome("duplicate", subject)  # a concurrent delivery of the same event
        targets = _fed_assets(session, keys)
        if not targets:
            records.claim(session, subject, records.NO_ASSET, source)
            if event is not None:
                records.set_outcome(session, event.id, "no_asset")
            return Outcome("no_asset", subject)
        announced = []
        for asset in targets:
            if not records.claim(session, subject, asset.id, source):
                continue  # announced already: by another event, api-server or the watcher
            # callback_sink (Airflow >= 3.3; older versions take it into **kwargs and notify
            # listeners inline): listeners hear of the event once it is committed.
            made = asset_manager.register_asset_change(
                asset=asset, extra=extra, session=session, callback_sink=after_commit
            )
            records.note_asset_event(session, subject, asset.id, getattr(made, "id", None))
            announced.append(asset.name)
        if event is not None and not announced:
            records.set_outcome(session, event.id, "already_announced")
        records.prune_if_due(session)
    for callback in after_commit:
        callback()
    if announced:
        log.info("Announced %s on %s (%s)", subject, ", ".join(announced), source)
        return Outcome("announced", subject, tuple(announced))
    return Outcome("already_announced", subject)


def _fed_assets(session: Any, keys: set[tuple[str, str]]) -> list[Any]:
    """The active assets among ``keys`` that webhooks feed (their own extra says so)."""
    from airflow.models.asset import AssetModel
    from sqlalchemy import select

    uris = sorted({uri for _, uri in keys})
    rows = session.scalars(select(AssetModel).where(AssetModel.uri.in_(uris), AssetModel.active.has())).all()
    return sorted(
        (
            asset
            for asset in rows
            if (asset.name, asset.uri) in keys and (asset.extra or {}).get(DELIVERY_EXTRA_KEY) in FED_DELIVERIES
        ),
        key=lambda asset: asset.id,
    )
