"""What the receiver has seen and announced, in Airflow's metadata database.

Two tables of our own (their own SQLAlchemy metadata: Airflow's migrations neither know nor
touch them), created by the receiver when it starts (``CREATE TABLE IF NOT EXISTS``; a second
api-server racing to create them finds them made):

- ``managed_agents_webhook_event``: one row per delivered event id (the payload's ``id``): a
  redelivery of an event already handled is a no-op, whichever api-server handled it and
  whether it restarted since;
- ``managed_agents_announcement``: one row per (subject, asset) announced, the subject being a
  run id or a session ending: every path that announces (any api-server, the webhook of any
  event type, a watcher's hand-over) inserts here first, in the transaction that creates the
  asset event, so each run or ending becomes exactly one asset event per asset.

Why the metadata database: every api-server behind a load balancer reaches it, it outlives
restarts, and the primary key makes the check-and-record atomic on SQLite, PostgreSQL and MySQL
alike (a concurrent insert of the same key waits for the first transaction, then fails), in the
same transaction as Airflow's own asset event and queued DAG runs: both are committed or
neither is. Rows older than :data:`RETENTION` (far beyond any redelivery) are pruned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

log = logging.getLogger(__name__)

RETENTION = timedelta(days=14)
PRUNE_EVERY_SECONDS = 3600.0
# The subject of a run seen but matching no fed asset: later events of that run need no read.
NO_ASSET = 0

metadata = MetaData()

events = Table(
    "managed_agents_webhook_event",
    metadata,
    Column("event_id", String(250), primary_key=True),
    Column("event_type", String(200), nullable=False),
    Column("subject", String(250), nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("received_at", DateTime, nullable=False),
    Index("idx_managed_agents_webhook_event_received", "received_at"),
)

announcements = Table(
    "managed_agents_announcement",
    metadata,
    Column("subject", String(250), primary_key=True),
    Column("asset_id", Integer, primary_key=True, autoincrement=False),
    Column("asset_event_id", Integer, nullable=True),
    Column("source", String(40), nullable=False),
    Column("announced_at", DateTime, nullable=False),
    Index("idx_managed_agents_announcement_at", "announced_at"),
)

_ensured: set[int] = set()
_lock = threading.Lock()
_last_prune = 0.0


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # naive UTC: the same on every dialect


def ensure_tables(engine: Any) -> None:
    """Create the tables if missing (once per process and engine); tolerate a concurrent create."""
    if id(engine) in _ensured:
        return
    with _lock:
        if id(engine) in _ensured:
            return
        try:
            metadata.create_all(engine, checkfirst=True)
        except (OperationalError, ProgrammingError, IntegrityError):
            # Another api-server created them between our check and our create.
            metadata.create_all(engine, checkfirst=True)
        _ensured.add(id(engine))


def event_seen(session: Any, event_id: str) -> bool:
    return session.execute(select(events.c.event_id).where(events.c.event_id == event_id)).first() is not None


def subject_seen(session: Any, subject: str) -> bool:
    found = select(announcements.c.subject).where(announcements.c.subject == subject).limit(1)
    return session.execute(found).first() is not None


def record_event(session: Any, event_id: str, event_type: str, subject: str, outcome: str) -> bool:
    """Record a handled event; False when it already was (a concurrent or earlier delivery).
    Inside a savepoint, so that the caller's transaction goes on either way."""
    row = {
        "event_id": event_id,
        "event_type": event_type,
        "subject": subject,
        "outcome": outcome,
        "received_at": utcnow(),
    }
    return _insert_once(session, insert(events).values(**row))


def set_outcome(session: Any, event_id: str, outcome: str) -> None:
    session.execute(events.update().where(events.c.event_id == event_id).values(outcome=outcome))


def claim(session: Any, subject: str, asset_id: int, source: str) -> bool:
    """Claim the announcement of ``subject`` on an asset: True for the first claim ever, False
    when it was announced already (by any path, in any process)."""
    row = {"subject": subject, "asset_id": asset_id, "source": source, "announced_at": utcnow()}
    return _insert_once(session, insert(announcements).values(**row))


def note_asset_event(session: Any, subject: str, asset_id: int, asset_event_id: int | None) -> None:
    session.execute(
        announcements.update()
        .where(announcements.c.subject == subject, announcements.c.asset_id == asset_id)
        .values(asset_event_id=asset_event_id)
    )


def announced_subjects(session: Any, subjects: Iterable[str]) -> dict[str, list[int]]:
    """For tests and the bench: which assets each subject was announced on."""
    rows = session.execute(
        select(announcements.c.subject, announcements.c.asset_id).where(announcements.c.subject.in_(list(subjects)))
    )
    found: dict[str, list[int]] = {}
    for subject, asset_id in rows:
        found.setdefault(subject, []).append(asset_id)
    return found


def _insert_once(session: Any, statement: Any) -> bool:
    try:
        with session.begin_nested():
            session.execute(statement)
    except IntegrityError:
        return False
    return True


def prune_if_due(session: Any) -> None:
    """Delete rows older than :data:`RETENTION`, at most once an hour per process."""
    global _last_prune
    now = time.monotonic()
    if _last_prune and now - _last_prune < PRUNE_EVERY_SECONDS:
        return
    _last_prune = now
    cutoff = utcnow() - RETENTION
    session.execute(delete(events).where(events.c.received_at < cutoff))
    session.execute(delete(announcements).where(announcements.c.announced_at < cutoff))
