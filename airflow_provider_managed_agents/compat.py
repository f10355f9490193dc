"""The Airflow 3 surface this provider uses, the same on every 3.x it supports.

Airflow 3.0 and 3.1 keep some of it outside the Task SDK (``BaseHook`` until 3.1, ``conf`` and
the exception classes until 3.2, ``mask_secret`` in another module until 3.1), and features
arrive by minor version (async masking, a trigger's ``on_kill``, the task state store, shared
event streams). Each name is imported from where the running Airflow has it, newest first, so
the rest of the provider imports from here and never asks which version it runs on.

A small module of our own rather than ``apache-airflow-providers-common-compat``: we need a dozen
names, that package pins its own release train to Airflow's and would be one more dependency to
keep in step, and the fallbacks below are each one import deep.

Cheap to import: only what a DAG file loads anyway; the authoring classes themselves
(``BaseOperator``, ``BaseSensorOperator``, ``BaseOperatorLink``, ``PokeReturnValue``) are in
``airflow.sdk`` on every 3.x and are imported from there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseHook
    from airflow.sdk.configuration import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
        TaskDeferralError,
        TaskDeferralTimeout,
        TaskDeferred,
    )
else:
    try:  # Airflow >= 3.1
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow 3.0
        from airflow.hooks.base import BaseHook

    try:  # Airflow >= 3.2
        from airflow.sdk.configuration import conf
    except ImportError:
        from airflow.configuration import conf

    try:  # Airflow >= 3.2: the Task SDK owns them (airflow.exceptions re-exports the same classes)
        from airflow.sdk.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowNotFoundException,
            AirflowRescheduleException,
            AirflowSensorTimeout,
            AirflowSkipException,
            AirflowTaskTimeout,
            TaskDeferralError,
            TaskDeferralTimeout,
            TaskDeferred,
        )
    except ImportError:
        from airflow.exceptions import (
            AirflowException,
            AirflowFailException,
            AirflowNotFoundException,
            AirflowRescheduleException,
            AirflowSensorTimeout,
            AirflowSkipException,
            AirflowTaskTimeout,
            TaskDeferralError,
            TaskDeferralTimeout,
            TaskDeferred,
        )

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "BaseHook",
    "TaskDeferralError",
    "TaskDeferralTimeout",
    "TaskDeferred",
    "aextra_dejson",
    "aget_connection",
    "amask_secret",
    "conf",
    "connection_form_widgets",
    "default_deferrable",
    "get_connection",
    "hitl_params_serialized",
    "human_in_the_loop",
    "mask_secret",
    "redact",
    "triggers_hear_kills",
    "xcom_value",
]


def triggers_hear_kills() -> bool:
    """Whether Airflow tells a trigger its task was killed (``BaseTrigger.on_kill``, 3.3+); before,
    a trigger cannot tell a kill from a triggerer restart."""
    from airflow.triggers.base import BaseTrigger

    return hasattr(BaseTrigger, "on_kill")


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, the default of every ``deferrable`` argument."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


def mask_secret(secret: str) -> None:
    """Keep ``secret`` out of every log line (the task's and its supervisor's)."""
    try:  # Airflow >= 3.1
        from airflow.sdk.log import mask_secret as mask_in_logs
    except ImportError:
        from airflow.sdk.execution_time.secrets_masker import (  # type: ignore[no-redef]
            mask_secret as mask_in_logs,
        )
    mask_in_logs(secret)


async def amask_secret(secret: str) -> None:
    """:func:`mask_secret` from a coroutine. Airflow >= 3.3 tells the supervisor without
    blocking the event loop; before that the blocking form runs in a thread (on the loop
    thread it raises on 3.0.5/3.0.6, and masks only in-process on 3.1/3.2)."""
    try:
        from airflow.sdk.log import amask_secret as amask
    except ImportError:
        from asgiref.sync import sync_to_async

        await sync_to_async(mask_secret)(secret)
    else:
        await amask(secret)


def get_connection(hook: BaseHook, conn_id: str) -> Any:
    """The connection; :class:`AirflowNotFoundException` when it does not exist, on every 3.x
    (3.1.0 raises an ImportError instead when asked outside a task, in a script or a test)."""
    with _missing_outside_a_task(conn_id):
        return hook.get_connection(conn_id)


async def aget_connection(hook: BaseHook, conn_id: str) -> Any:
    """The connection, looked up without blocking the triggerer's event loop, on every 3.x.

    ``aget_connection`` exists from 3.1, but under ``airflow dags test`` (3.1 to 3.3) it only
    sees ``AIRFLOW_CONN_*`` connections; the blocking lookup, run in a thread, sees them all.
    """
    lookup = getattr(hook, "aget_connection", None)
    if lookup is not None:
        try:
            with _missing_outside_a_task(conn_id):
                return await lookup(conn_id)
        except (AirflowNotFoundException, AttributeError):
            pass
    from asgiref.sync import sync_to_async

    return await sync_to_async(get_connection)(hook, conn_id)


@contextlib.contextmanager
def _missing_outside_a_task(conn_id: str) -> Iterator[None]:
    try:
        yield
    except ImportError as exc:
        if "SUPERVISOR_COMMS" not in str(exc):
            raise
        raise AirflowNotFoundException(
            f"The conn_id `{conn_id}` isn't defined (outside a task, Airflow cannot ask its API server)"
        ) from exc


async def aextra_dejson(conn: Any) -> dict[str, Any]:
    """The connection's decoded extra, read without blocking the event loop (decoding masks the
    sensitive values, which is a blocking call before Airflow 3.3.2)."""
    read = getattr(conn, "aextra_dejson", None)
    if read is not None:
        return await read()
    from asgiref.sync import sync_to_async

    return await sync_to_async(lambda: conn.extra_dejson)()


def connection_form_widgets() -> dict[str, Any]:
    """The connection form's extra fields, for Airflow < 3.2, whose UI does not read the
    provider info's declarative ``conn-fields``. Only the field classes Airflow accepts there
    (any other class drops the whole connection type from the form), imported here, where
    Airflow may have put stand-ins for them (3.1.3+ needs no wtforms installed; 3.0.0 to 3.1.2
    need it in the api-server's environment)."""
    from airflow_provider_managed_agents.get_provider_info import CONN_FIELDS

    try:
        from wtforms import IntegerField, StringField
        from wtforms.validators import NumberRange, Optional
    except ImportError:
        return {}
    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        if "integer" in spec["schema"]["type"]:
            validators = [Optional(), NumberRange(min=spec["schema"].get("minimum", 0))]
            widgets[name] = IntegerField(spec["label"], validators=validators, description=spec["description"])
        else:  # strings, and numbers (a FloatField would be refused): the hook reads either
            widgets[name] = StringField(spec["label"], validators=[Optional()], description=spec["description"])
    return widgets


def xcom_value(ti_key: Any, key: str) -> Any:
    """The XCom ``key`` a task instance pushed (None when it pushed none), read through the
    configured XCom backend: what an extra link shows."""
    try:  # Airflow >= 3.0 on a worker: the Task SDK's backend
        from airflow.sdk.execution_time.xcom import XCom
    except ImportError:  # pragma: no cover - older layouts
        from airflow.models.xcom import XCom  # type: ignore[no-redef]
    return XCom.get_value(ti_key=ti_key, key=key)


# --- human-in-the-loop (Airflow >= 3.1) ----------------------------------------------------------

# The first apache-airflow-providers-standard whose HITLTrigger matches Airflow 3.1's Task SDK.
STANDARD_PROVIDER_FOR_HITL = (1, 9, 0)


def human_in_the_loop() -> tuple[str | None, str]:
    """How this Airflow waits for a person's answer without holding a worker: ``awaiting_input``
    (3.3+: the task parks, no trigger), ``trigger`` (3.1 and 3.2: a deferral to the standard
    provider's ``HITLTrigger``), or None; and what is missing when None. Cheap: nothing is
    imported but ``airflow.sdk.exceptions`` (a DAG file's import)."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    import airflow

    if importlib.util.find_spec("airflow.sdk.execution_time.hitl") is None:
        return None, f"Airflow's human-in-the-loop needs Airflow >= 3.1 (this is Airflow {airflow.__version__})"
    from airflow.sdk import exceptions

    if hasattr(exceptions, "TaskAwaitingInput"):
        return "awaiting_input", ""
    try:
        standard = version("apache-airflow-providers-standard")
    except PackageNotFoundError:
        standard = None
    needed = ".".join(map(str, STANDARD_PROVIDER_FOR_HITL))
    if standard is None or _release(standard) < STANDARD_PROVIDER_FOR_HITL:
        found = f"{standard} is installed" if standard else "it is not installed"
        return None, (
            f"Airflow's human-in-the-loop needs apache-airflow-providers-standard >= {needed} on Airflow "
            f"{airflow.__version__} ({found})"
        )
    return "trigger", ""


def _release(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def hitl_params_serialized() -> bool:
    """Whether a human-in-the-loop request's params go out as ``Param.serialize()`` (Airflow >=
    3.1.3, what its UI renders as a form) rather than as plain values (3.1.0 to 3.1.2)."""
    import airflow

    return _release(airflow.__version__) >= (3, 1, 3)


def redact(value: Any) -> Any:
    """``value`` with every secret Airflow masks in logs replaced (connections' passwords, the
    API key, what ``mask_secret`` registered), for text that leaves through another door than
    the log (a human-in-the-loop request, XCom)."""
    try:  # Airflow >= 3.1
        from airflow.sdk._shared.secrets_masker import redact as redacting
    except ImportError:
        try:
            from airflow.sdk.execution_time.secrets_masker import redact as redacting  # type: ignore[no-redef]
        except ImportError:  # pragma: no cover - a layout without a masker
            return value
    return redacting(value)
