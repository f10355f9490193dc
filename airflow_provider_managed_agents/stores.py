"""The small JSON records this provider keeps in Airflow between a task's tries and a
triggerer's restarts, and the one identity they are named by.

- :func:`task_instance_identity`: a task instance across its tries (DAG, task, run, map index),
  hashed: the run journal's Variable name and the default idempotency key of a create;
- :func:`task_identity`: a task across its DAG runs: the default identity of what a
  provisioning task manages;
- :class:`VariableRecord`: one JSON value in an Airflow Variable, for Airflow versions without
  a better place (the run journal before Airflow 3.3's task state store, a watcher's watermark
  on 3.1 and 3.2 before the asset state store), with the blocking and the async accessors;
- :class:`TaskRecord`: one JSON value a task instance keeps across its tries (a run's journal, a
  rollout's), in Airflow 3.3's task state store, else in a :class:`VariableRecord`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

IDENTITY_CHARS = 32


def identity_hash(identity: str) -> str:
    """A short, stable name for ``identity`` (a key, a Variable's name)."""
    return hashlib.sha256(identity.encode()).hexdigest()[:IDENTITY_CHARS]


def task_instance_identity(ti: Any) -> str:
    """The same for every try of one task instance, different between instances."""
    return identity_hash(f"{ti.dag_id}|{ti.task_id}|{ti.run_id}|{getattr(ti, 'map_index', -1)}")


def task_identity(ti: Any) -> str:
    """The same for every run of one task (and map index) of one DAG: what a provisioning task
    manages across its DAG runs."""
    return identity_hash(f"{ti.dag_id}|{ti.task_id}|{getattr(ti, 'map_index', -1)}")


class VariableRecord:
    """One JSON value kept in the Airflow Variable ``prefix + identity_hash(identity)``."""

    def __init__(self, prefix: str, identity: str, description: str) -> None:
        self.key = prefix + identity_hash(identity)
        self.description = description

    def get(self) -> Any:
        """The value, or None when there is none (or it is not JSON)."""
        from airflow.sdk import Variable

        raw = Variable.get(self.key, default=None)
        if not isinstance(raw, str):
            return raw
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def put(self, value: Any) -> None:
        from airflow.sdk import Variable

        Variable.set(self.key, json.dumps(value), description=self.description)

    def drop(self) -> None:
        from airflow.sdk import Variable

        Variable.delete(self.key)

    async def aget(self) -> Any:
        """:meth:`get` from a coroutine (a triggerer's event loop must not block on it)."""
        from asgiref.sync import sync_to_async

        return await sync_to_async(self.get)()

    async def aput(self, value: Any) -> None:
        from asgiref.sync import sync_to_async

        await sync_to_async(self.put)(value)


class _Store(Protocol):
    def get(self) -> Any: ...
    def put(self, value: Any) -> None: ...
    def drop(self) -> None: ...


class _TaskStateStore:
    """Airflow >= 3.3's ``context["task_state_store"]``: scoped to the task instance across its
    tries, made for exactly this."""

    def __init__(self, accessor: Any, key: str):
        self.accessor, self.key = accessor, key

    def get(self) -> Any:
        return self.accessor.get(self.key)

    def put(self, value: Any) -> None:
        self.accessor.set(self.key, value)

    def drop(self) -> None:
        self.accessor.delete(self.key)


class TaskRecord:
    """One JSON record a task instance keeps across its tries (XComs cannot: Airflow clears them
    when a new try starts). A store that cannot be reached costs the protection the record gives
    (said once in the log), never the task."""

    def __init__(self, store: _Store | None, what: str):
        self._store = store
        self.what = what

    @classmethod
    def for_task(cls, context: Context, key: str, variable_prefix: str, what: str) -> TaskRecord:
        """The record ``key`` of this task instance: in the task state store (Airflow >= 3.3),
        else in a Variable named ``variable_prefix`` + the task instance's identity."""
        accessor = context.get("task_state_store")
        if accessor is not None:
            return cls(_TaskStateStore(accessor, key), what)
        description = f"airflow-provider-managed-agents: {what} (deleted when settled)"
        return cls(VariableRecord(variable_prefix, task_instance_identity(context["ti"]), description), what)

    def read(self) -> Any:
        return self._safely("read", lambda store: store.get())

    def write(self, value: Any) -> None:
        self._safely("write", lambda store: store.put(value))

    def forget(self) -> None:
        self._safely("clear", lambda store: store.drop())

    def _safely(self, action: str, do: Callable[[_Store], Any]) -> Any:
        if self._store is None:
            return None
        try:
            return do(self._store)
        except Exception as exc:
            log.warning(
                "Cannot %s %s (%s: %s); a retry after a crash may not pick up where this try stopped",
                action,
                self.what,
                type(exc).__name__,
                exc,
            )
            self._store = None
            return None
