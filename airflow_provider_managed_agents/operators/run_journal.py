"""What a run task remembers across its tries: a manual run it sent and whose outcome it never
learned, or the run whose session it follows.

The API has no idempotency key for runs, so a retry cannot ask "did my earlier try start one?".
Before sending, the task writes down the hook's record of the send
(:class:`~airflow_provider_managed_agents.models.runs.RunSend`); once it learns the answer it
forgets it again, or keeps the run id while it follows that run's session. A retry adopts:

- the recorded run, when the task was following its session (never a second run);
- the run the recorded send made (the hook finds it: :meth:`ManagedAgentsHook.find_run_made_by`),
  when the earlier try sent and never learned the outcome (a worker crash, retries spent on a
  lost response), and that run created a session;
- nothing otherwise: after a definite answer (a run error, a refused request), or once the task
  stopped the session it gave up on, a retry sends a new run; a run this task did not send
  (another task, anyone else) is never adopted.

Where it is kept: Airflow >= 3.3's task state store (``context["task_state_store"]``), made for
exactly this and scoped to the task instance across its tries; on older Airflow, an Airflow
Variable named after the task instance (:class:`~airflow_provider_managed_agents.stores.VariableRecord`),
deleted as soon as the outcome is known (XComs cannot serve: Airflow clears a task's XComs when a
new try starts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.models.runs import RunSend

log = logging.getLogger(__name__)

STATE_KEY = "managed_agents_run_attempt"
VARIABLE_PREFIX = "managed_agents_run_attempt__"


@dataclass(frozen=True)
class RunAttempt:
    """One try's manual run: its send (outcome unknown while ``run_id`` is None), or the run
    whose session the task follows."""

    send: RunSend
    try_number: int
    run_id: str | None = None
    state: Literal["sent", "following"] = "sent"

    @property
    def deployment_id(self) -> str:
        return self.send.deployment_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "send": self.send.model_dump(mode="json"),
            "try_number": self.try_number,
            "run_id": self.run_id,
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: Any) -> RunAttempt | None:
        """The attempt ``data`` records, or None when it records none (or another version's)."""
        from pydantic import ValidationError

        from airflow_provider_managed_agents.models.runs import RunSend

        if not isinstance(data, dict) or not isinstance(data.get("send"), dict):
            return None
        try:
            send = RunSend.model_validate(data["send"])
            state = data.get("state", "sent")
            if state not in ("sent", "following"):
                return None
            return cls(send, int(data["try_number"]), data.get("run_id"), state)
        except (ValidationError, KeyError, TypeError, ValueError):
            return None


class _Store(Protocol):
    def get(self) -> Any: ...
    def put(self, value: Any) -> None: ...
    def drop(self) -> None: ...


class _TaskStateStore:
    def __init__(self, accessor: Any):
        self.accessor = accessor

    def get(self) -> Any:
        return self.accessor.get(STATE_KEY)

    def put(self, value: Any) -> None:
        self.accessor.set(STATE_KEY, value)

    def drop(self) -> None:
        self.accessor.delete(STATE_KEY)


class RunJournal:
    """Reads and writes the task instance's :class:`RunAttempt`. A store that cannot be
    reached costs the crash protection (said once in the log), never the task."""

    def __init__(self, store: _Store | None):
        self._store = store

    @classmethod
    def for_task(cls, context: Context) -> RunJournal:
        from airflow_provider_managed_agents.stores import VariableRecord, task_instance_identity

        accessor = context.get("task_state_store")
        if accessor is not None:
            return cls(_TaskStateStore(accessor))
        description = "airflow-provider-managed-agents: a run task's unfinished attempt (deleted when settled)"
        return cls(VariableRecord(VARIABLE_PREFIX, task_instance_identity(context["ti"]), description))

    def read(self) -> RunAttempt | None:
        return RunAttempt.from_dict(self._safely("read", lambda store: store.get()))

    def write(self, attempt: RunAttempt) -> None:
        self._safely("write", lambda store: store.put(attempt.to_dict()))

    def forget(self) -> None:
        self._safely("clear", lambda store: store.drop())

    def _safely(self, what: str, action: Callable[[_Store], Any]) -> Any:
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
