"""A task killed while a person is asked stops its session: the provider's Airflow listener.

While a task waits for a person's answer (:mod:`~airflow_provider_managed_agents.answering`) none
of its code runs: on Airflow 3.3 it is parked in ``awaiting_input`` with no process and no
trigger, on 3.1 and 3.2 it is deferred to the standard provider's ``HITLTrigger``. When someone
ends such a task (marks it, or its DAG run, failed or successful), Airflow calls its listeners
where the state changed (the api-server). This listener, registered by the provider's plugin
(the ``airflow.plugins`` entry point), looks for the task's ``pending_actions`` XCom: set, the
task was waiting for a person, and the session is sent what the task's ``on_kill_session`` says
(``interrupt``, ``archive``; nothing for ``none``), through the task's connection.

It acts only on a task instance of the metadata database (a server-side state change); a task
that ends on its worker has answered or cleared its request, and its own ``on_kill`` covers a
kill while it runs. It never raises: a listener's error must not fail the state change.

Light to import (every Airflow process loads its plugins): everything else is imported when a
task ends.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)


def _hookimpl(function: Any) -> Any:
    try:
        from airflow.listeners import hookimpl
    except ImportError:  # pragma: no cover - older layouts
        from airflow.sdk._shared.listeners import hookimpl
    return hookimpl(function)


class AskedTaskEndedListener:
    """Stops the session of a task that ended while it was asking a person."""

    @_hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        stop_session_of_asking_task(task_instance)

    @_hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        stop_session_of_asking_task(task_instance)


def stop_session_of_asking_task(task_instance: Any) -> str | None:
    """When ``task_instance`` (of the metadata database) was waiting for a person's answer:
    apply its ``on_kill_session`` to the session; how the session was stopped, or None."""
    try:
        from airflow.models.taskinstance import TaskInstance
    except ImportError:  # pragma: no cover - not a server process
        return None
    if not isinstance(task_instance, TaskInstance):
        return None
    try:
        asked = _pending_actions(task_instance)
        if not isinstance(asked, dict) or asked.get("on_kill_session") not in ("interrupt", "archive"):
            return None
        from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

        how, session_id = asked["on_kill_session"], asked["session_id"]
        log.info(
            "Task %s.%s ended while asking a person about session %s: sending it %s",
            task_instance.dag_id,
            task_instance.task_id,
            session_id,
            how,
        )
        # Twice (a task marked failed, then successful) is harmless: interrupt and archive are idempotent.
        ManagedAgentsHook(managed_agents_conn_id=asked["managed_agents_conn_id"]).stop_session(session_id, how)
    except Exception:  # a listener must never fail the state change
        log.exception("Could not stop the session of %s.%s", task_instance.dag_id, task_instance.task_id)
        return None
    return str(how)


def _pending_actions(task_instance: Any) -> Any:
    """The task's ``pending_actions`` XCom, read in a session of its own (a read: the state
    change's transaction may hold the write lock)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_provider_managed_agents.answering import PENDING_KEY

    query = select(XComModel).where(
        XComModel.dag_id == task_instance.dag_id,
        XComModel.task_id == task_instance.task_id,
        XComModel.run_id == task_instance.run_id,
        XComModel.map_index == task_instance.map_index,
        XComModel.key == PENDING_KEY,
    )
    with create_session() as session:
        row = session.scalars(query).first()
        return XComModel.deserialize_value(row) if row is not None else None


class ManagedAgentsPlugin(AirflowPlugin):
    """Registers :class:`AskedTaskEndedListener` in every Airflow process."""

    name = "managed_agents"
    listeners = [AskedTaskEndedListener()]
