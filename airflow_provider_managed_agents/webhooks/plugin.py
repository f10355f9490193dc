"""The Airflow plugin that puts the webhook receiver on the api-server.

Registered by this package's entry point (``[project.entry-points."airflow.plugins"]``), so
installing the package is enough on Airflow 3.0 to 3.3: no file in the plugins folder, no
setting. The api-server mounts the receiver (:mod:`.receiver`) at :data:`URL_PREFIX` below
``[api] base_url``; ``airflow plugins`` lists it as ``managed_agents_webhooks``.

Every Airflow component loads plugins (the scheduler, the triggerer, workers for macros), and
none but the api-server needs the receiver: the app is built when the api-server asks for
``fastapi_apps``, so the others import this small module and nothing else.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_managed_agents.webhooks import URL_PREFIX

__all__ = ["URL_PREFIX", "ManagedAgentsWebhooksPlugin"]


class ManagedAgentsWebhooksPlugin(AirflowPlugin):
    """Mounts the Managed Agents webhook receiver on the api-server."""

    name = "managed_agents_webhooks"

    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from airflow_provider_managed_agents.webhooks.receiver import create_app

        return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Managed Agents webhooks"}]
