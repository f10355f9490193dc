"""What a run task remembers across its tries: a manual run it sent and whose outcome it never
learned, or the run whose session it follows.

The API has no idempotency key for runs, so a retry cannot ask "did my earlier try start one?".
Before sending, the task writes down that it is about to (and when); once it learns the answer
it forgets it again, or keeps the run id while it follows that run's session. A retry adopts:

- the recorded run, when the task was following its session (never a second run);
- the oldest session-creating manual run inside the recorded send window, when the earlier try
  sent and never learned the outcome (a worker crash, retries spent on a lost response);
- nothing otherwise: after a definite answer (a run error, a refused request) a retry sends a
  new run, and a run this task did not send (another task, anyone else) is never adopted.

Where it is kept: Airflow >= 3.3's task state store (``context["task_state_store"]``), made for
exactly this and scoped to the task instance across its tries; on older Airflow, an Airflow
Variable named after the task instance, deleted as soon as the outcome is known (XComs cannot
serve: Airflow clears a task's XComs when a new try starts).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

STATE_KEY = "managed_agents_run_attempt"
VARIABLE_PREFIX = "managed_agents_run_attempt__"


@dataclass(frozen=True)
class RunAttempt:
    """One try's manual run: sent at ``sent_from`` (less the clock allowance), its outcome
    unknown (``run_id`` None) or the run whose session the task follows."""

    deployment_id: str
    try_number: int
    sent_from: str
    sent_until: str | None = None
    run_id: str | None = None
    state: Literal["sent", "following"] = "sent"

    def window(self, longest_send: timedelta) -> tuple[datetime, datetime]:
        """The creation times a run made by this attempt can have."""
        from airflow_provider_managed_agents.models.base import parse_timestamp

        start = parse_timestamp(self.sent_from)
        end = parse_timestamp(self.sent_until) if self.sent_until else start + longest_send
        return start, end


class _Store(Protocol):
    def get(self) -> dict[str, Any] | None: ...
    def put(self, value: dict[str, Any]) -> None: ...
    def drop(self) -> None: ...


class _TaskStateStore:
    def __init__(self, accessor: Any):
        self.accessor = accessor

    def get(self) -> dict[str, Any] | None:
        value = self.accessor.get(STATE_KEY)
        return value if isinstance(value, dict) else None

    def put(self, value: dict[str, Any]) -> None:
        self.accessor.set(STATE_KEY, value)

    def drop(self) -> None:
        self.accessor.delete(STATE_KEY)


class _VariableStore:
    def __init__(self, key: str):
        self.key = key

    def get(self) -> dict[str, Any] | None:
        from airflow.sdk import Variable

        raw = Variable.get(self.key, default=None)
        try:
            value = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def put(self, value: dict[str, Any]) -> None:
        from airflow.sdk import Variable

        Variable.set(
            self.key,
            json.dumps(value),
            description="airflow-provider-managed-agents: a run task's unfinished attempt (deleted when settled)",
        )

    def drop(self) -> None:
        from airflow.sdk import Variable

        Variable.delete(self.key)


class RunJournal:
    """Reads and writes the task instance's :class:`RunAttempt`. A store that cannot be
    reached costs the crash protection (said once in the log), never the task."""

    def __init__(self, store: _Store | None):
        self._store = store

    @classmethod
    def for_task(cls, context: Context) -> RunJournal:
        accessor = context.get("task_state_store")
        if accessor is not None:
            return cls(_TaskStateStore(accessor))
        ti = context["ti"]
        identity = f"{ti.dag_id}|{ti.run_id}|{ti.task_id}|{getattr(ti, 'map_index', -1)}"
        return cls(_VariableStore(VARIABLE_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:32]))

    def read(self) -> RunAttempt | None:
        value = self._safely("read", lambda store: store.get())
        if not value:
            return None
        try:
            return RunAttempt(**value)
        except TypeError:
            return None

    def write(self, attempt: RunAttempt) -> None:
        self._safely("write", lambda store: store.put(asdict(attempt)))

    def forget(self) -> None:
        self._safely("clear", lambda store: store.drop())

    def _safely(self, what: str, action: Any) -> Any:
        if self._store is None:
            return None
        try:
            return action(self._store)
        except Exception as exc:
            log.warning(
                "Cannot %s this task's run journal (%s: %s); a retry after a crash mid-request may start a second run",
                what,
                type(exc).__name__,
                exc,
            )
            self._store = None
            return None
