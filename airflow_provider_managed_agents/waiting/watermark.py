"""What an event watcher has announced: the runs it will never announce again.

A :class:`Watermark` is small and exact: nothing created before ``since`` is announced, and of
the runs created since, those in ``announced`` already were. ``since`` trails the newest run the
watcher has examined by the runs feed's visibility overlap, so a run whose record becomes visible
a moment after a newer one is still announced, once. It is saved soon after each run it
examines, announced or filtered out (see
:mod:`airflow_provider_managed_agents.triggers.watermark_stores`), and a restarted watcher picks
up exactly where the saved one stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_managed_agents.models.runs import DeploymentRun


@dataclass
class Watermark:
    since: datetime
    overlap: timedelta
    newest_at: datetime | None = None
    newest_id: str | None = None
    announced: dict[str, datetime] = field(default_factory=dict)

    def admits(self, run: DeploymentRun) -> bool:
        """Whether ``run`` is new to this watcher (matching its filters is the caller's part)."""
        return run.created_at >= self.since and run.id not in self.announced

    def passed(self, run: DeploymentRun, *, announced: bool) -> None:
        """``run`` was examined (and announced, or filtered out): move past it."""
        if announced:
            self.announced[run.id] = run.created_at
        if self.newest_at is None or (run.created_at, run.id) > (self.newest_at, self.newest_id or ""):
            self.newest_at, self.newest_id = run.created_at, run.id
            self.since = max(self.since, run.created_at - self.overlap)
        self.announced = {i: t for i, t in self.announced.items() if t >= self.since}

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "newest": {"created_at": self.newest_at.isoformat(), "id": self.newest_id} if self.newest_at else None,
            "announced": {i: t.isoformat() for i, t in sorted(self.announced.items())},
        }

    @classmethod
    def from_dict(cls, data: Any, overlap: timedelta) -> Watermark | None:
        """The saved watermark, or None when there is none (or it is not one of ours)."""
        from airflow_provider_managed_agents.models.base import parse_timestamp

        if not isinstance(data, dict) or not isinstance(data.get("since"), str):
            return None
        try:
            newest = data.get("newest") or {}
            return cls(
                since=parse_timestamp(data["since"]),
                overlap=overlap,
                newest_at=parse_timestamp(newest["created_at"]) if newest.get("created_at") else None,
                newest_id=newest.get("id"),
                announced={i: parse_timestamp(t) for i, t in (data.get("announced") or {}).items()},
            )
        except (TypeError, ValueError, KeyError, AttributeError):
            return None
