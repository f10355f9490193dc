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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_managed_agents.stores import TaskRecord

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.models.runs import RunSend

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


class RunJournal:
    """Reads and writes the task instance's :class:`RunAttempt` (a
    :class:`~airflow_provider_managed_agents.stores.TaskRecord`)."""

    def __init__(self, record: TaskRecord):
        self._record = record

    @classmethod
    def for_task(cls, context: Context) -> RunJournal:
        return cls(TaskRecord.for_task(context, STATE_KEY, VARIABLE_PREFIX, "this task's run journal"))

    def read(self) -> RunAttempt | None:
        return RunAttempt.from_dict(self._record.read())

    def write(self, attempt: RunAttempt) -> None:
        self._record.write(attempt.to_dict())

    def forget(self) -> None:
        self._record.forget()
