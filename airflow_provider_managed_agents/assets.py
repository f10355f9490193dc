"""Assets for event-driven pipelines around Managed Agents (URI scheme ``managed-agents://``).

Both directions:

- **agent -> DAG**: ``schedule=[deployment_runs_asset("depl_...")]`` starts the DAG on each new
  run of the deployment (optionally only scheduled or manual ones, only failed ones or only
  those that created a session), from a watcher in the triggerer
  (:class:`~airflow_provider_managed_agents.triggers.deployment_run_events.ManagedAgentsDeploymentRunEventTrigger`);
  the triggered run reads the run from ``triggering_asset_events`` (:func:`run_details`);
- **DAG -> DAG**: a managed-agents operator with ``outlets=[<a managed-agents:// asset>]``
  attaches the deployment, run and session ids it produced to that asset's event, so the DAG
  scheduled on it knows what ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_managed_agents.get_provider_info import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context

SCHEME = "managed-agents"
_KIND_SUFFIX = {None: "", "schedule": "__scheduled", "manual": "__manual"}
_OUTCOME_SUFFIX = {None: "", True: "__failed", False: "__sessions"}


def deployment_runs_asset(
    deployment_id: str,
    *,
    trigger_type: str | None = None,
    has_error: bool | None = None,
    managed_agents_conn_id: str = DEFAULT_CONN_ID,
    poll_interval: float = 60.0,
) -> Asset:
    """An asset updated by each new run of a deployment, watched from the triggerer.

    :param deployment_id: the deployment whose runs update the asset.
    :param trigger_type: only runs started by ``"schedule"`` or ``"manual"``; None for both.
    :param has_error: only runs that failed (True) or created a session (False); None for both.
    :param managed_agents_conn_id: the ``managed_agents`` connection the watcher reads with.
    :param poll_interval: seconds between looks for manual runs (scheduled runs are looked for
        just after each fire). Watchers and deferred waits on one connection share each read.

    The asset's name and URI depend only on the deployment and the filters (stable across DAG
    edits, so the watermark of what was announced survives them): for example
    ``managed_agents_deployment_runs__depl_01__scheduled`` and
    ``managed-agents://deployments/depl_01/runs?trigger_type=schedule``. Bad arguments raise
    :class:`~airflow_provider_managed_agents.exceptions.ManagedAgentsValidationError` when the
    DAG file is parsed.
    """
    from airflow.sdk import Asset, AssetWatcher

    from airflow_provider_managed_agents.triggers.deployment_run_events import (
        ManagedAgentsDeploymentRunEventTrigger,
    )

    trigger = ManagedAgentsDeploymentRunEventTrigger(
        deployment_id=deployment_id,
        trigger_type=trigger_type,
        has_error=has_error,
        managed_agents_conn_id=managed_agents_conn_id,
        poll_interval=poll_interval,
    )
    name = "managed_agents_deployment_runs__" + deployment_id
    name += _KIND_SUFFIX[trigger_type] + _OUTCOME_SUFFIX[has_error]
    query = [f"{key}={str(value).lower()}" for key, value in (("has_error", has_error), ("trigger_type", trigger_type))]
    query = [part for part in query if not part.endswith("=none")]
    uri = f"{SCHEME}://deployments/{deployment_id}/runs" + ("?" + "&".join(query) if query else "")
    return Asset(name=name, uri=uri, watchers=[AssetWatcher(name=f"{name}__watcher", trigger=trigger)])


def is_managed_agents_asset(outlet: Any) -> bool:
    uri = getattr(outlet, "uri", None)
    return isinstance(uri, str) and uri.startswith(f"{SCHEME}://")


def announce(context: Context, outlets: Iterable[Any], **ids: str | None) -> None:
    """Attach ``ids`` (the deployment, run and session a task produced) to the asset event of
    each ``managed-agents://`` outlet of the task."""
    events = context.get("outlet_events")
    if events is None:
        return
    present = {key: value for key, value in ids.items() if value is not None}
    for outlet in outlets:
        if is_managed_agents_asset(outlet):
            events[outlet].extra.update(present)


def run_details(asset_event: Any) -> dict[str, Any]:
    """What a managed-agents asset event says, whichever side made it: the watcher's run
    (``deployment_id``, ``deployment_run_id``, ``session_id``, ``error_type``,
    ``trigger_type``, ``created_at`` and the whole ``deployment_run``) or an operator's ids.

    ``asset_event`` is one item of ``context["triggering_asset_events"][asset]``.
    """
    extra: Mapping[str, Any] = getattr(asset_event, "extra", None) or {}
    payload = extra.get("payload") if extra.get("from_trigger") else None
    return dict(payload) if isinstance(payload, Mapping) else dict(extra)


def triggering_runs(context: Mapping[str, Any], asset: Any) -> list[dict[str, Any]]:
    """:func:`run_details` of every event of ``asset`` that triggered this DAG run, on every
    Airflow version (3.0's ``airflow dags test`` keys ``triggering_asset_events`` by URI)."""
    events = context["triggering_asset_events"]
    try:
        found = events[asset]
    except (TypeError, KeyError):
        found = events.get(getattr(asset, "uri", None), ())
    return [run_details(event) for event in found]
