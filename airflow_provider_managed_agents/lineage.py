"""OpenLineage from the provider's tasks, the Airflow side: what a task notes while it runs, and
the three methods Airflow's OpenLineage listener calls on it.

The listener (``apache-airflow-providers-openlineage``, an optional extra) calls
``get_openlineage_facets_on_start`` when the task starts and ``..._on_complete`` /
``..._on_failure`` when it ends, only when OpenLineage is enabled, and in a child process
forked from the task: the operator it sees is the one that ran ``execute`` (or, after a deferral,
the one that ran the resume method). So a task notes what it learned as it goes (the
deployment, the run, how the session ended, its typed error), and the methods build the facets
from those notes (:mod:`airflow_provider_managed_agents.openlineage`, imported only there). When
the OpenLineage packages are missing the methods return None: nothing to add.

On the DAG-parse path: imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

ERROR_MESSAGE_MAX_CHARS = 2_000


@dataclass
class LineageNotes:
    """What a task learned, JSON-safe: enough to describe its work without asking again."""

    deployment_id: str | None = None
    deployment: dict[str, Any] | None = None  # the deployment as the API returned it
    run: dict[str, Any] | None = None  # the deployment run
    deployment_run_id: str | None = None
    session_id: str | None = None
    session_end: dict[str, Any] | None = None  # the session's facts when the task saw it end
    error: dict[str, Any] | None = None  # the typed error the task failed with
    delivered: list[dict[str, Any]] | None = None  # files a files task put in object storage
    destination: str | None = None


def describe_error(error: BaseException) -> dict[str, Any]:
    """A typed error as lineage carries it: the class, the API's type (or the session's stop
    reason, or the outcome's result) and the message."""
    kind = getattr(error, "error_type", None) or getattr(error, "stop_reason", None) or getattr(error, "result", None)
    described = {"exception": type(error).__name__, "message": str(error)[:ERROR_MESSAGE_MAX_CHARS]}
    if isinstance(kind, str) and kind:
        described["type"] = kind
    return described


class OpenLineageReporter:
    """Mixed into the provider's operators and sensors: notes, and the listener's three methods."""

    _lineage_notes: LineageNotes | None = None

    @property
    def lineage_notes(self) -> LineageNotes:
        """What this task has noted so far (this process's instance)."""
        if self._lineage_notes is None:
            self._lineage_notes = LineageNotes()
        return self._lineage_notes

    def _note_lineage(self, **notes: Any) -> None:
        known = {f.name for f in fields(LineageNotes)}
        for name, value in notes.items():
            if name not in known:
                raise TypeError(f"no lineage note {name!r}")
            if value is not None:
                setattr(self.lineage_notes, name, value)

    def _note_error(self, error: BaseException | None) -> None:
        if error is not None:
            self._note_lineage(error=describe_error(error))

    def get_openlineage_facets_on_start(self) -> OperatorLineage | None:
        """What is known when the task starts: the ids its arguments name."""
        return _lineage(self, None, "start")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """The task's work: ids, how the session ended, usage and cost, what it read and wrote."""
        return _lineage(self, task_instance, "complete")

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage | None:
        """As on completion, with the typed error the task failed with."""
        return _lineage(self, task_instance, "failure")


def _lineage(task: Any, task_instance: Any, moment: str) -> OperatorLineage | None:
    try:
        from airflow_provider_managed_agents import openlineage
    except ImportError:  # the OpenLineage packages are not installed: nothing to add
        return None
    return openlineage.task_lineage(task, task_instance, moment)
