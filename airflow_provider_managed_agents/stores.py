"""The small JSON records this provider keeps in Airflow between a task's tries and a
triggerer's restarts, and the one identity they are named by.

- :func:`task_instance_identity`: a task instance across its tries (DAG, task, run, map index),
  hashed: the run journal's Variable name and the default idempotency key of a create;
- :class:`VariableRecord`: one JSON value in an Airflow Variable, for Airflow versions without
  a better place (the run journal before Airflow 3.3's task state store, a watcher's watermark
  on 3.1 and 3.2 before the asset state store), with the blocking and the async accessors.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

IDENTITY_CHARS = 32


def identity_hash(identity: str) -> str:
    """A short, stable name for ``identity`` (a key, a Variable's name)."""
    return hashlib.sha256(identity.encode()).hexdigest()[:IDENTITY_CHARS]


def task_instance_identity(ti: Any) -> str:
    """The same for every try of one task instance, different between instances."""
    return identity_hash(f"{ti.dag_id}|{ti.task_id}|{ti.run_id}|{getattr(ti, 'map_index', -1)}")


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
