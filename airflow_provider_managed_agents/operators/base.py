"""What every operator of this provider shares: the hook, publishing a deployment, its link.

On the DAG-parse path: imports only ``airflow.sdk`` at module level. The hook, the pydantic
models and the cron describer are imported inside ``execute``.

XCom a deployment operator leaves: ``return_value`` (the deployment id), ``deployment`` (the full
JSON-safe object, no secrets) and ``deployment_url`` (the deployment in the Claude Console, which
the deployment link reads).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseOperatorLink

from airflow_provider_managed_agents.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_managed_agents.links import (
    DEPLOYMENT_URL_KEY,
    ManagedAgentsDeploymentLink,
    record_links_unknown,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.models.deployments import Deployment


class ManagedAgentsBaseOperator(BaseOperator):
    """Shared plumbing: the hook, XCom of results, the deployment link and readable logs.

    :param managed_agents_conn_id: the ``managed_agents`` connection (or an ``anthropic`` one).
    """

    template_fields: Sequence[str] = ("managed_agents_conn_id",)
    ui_color = "#d4a27f"
    operator_extra_links: Collection[BaseOperatorLink] = (ManagedAgentsDeploymentLink(),)

    def __init__(self, *, managed_agents_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.managed_agents_conn_id = managed_agents_conn_id

    @cached_property
    def hook(self) -> ManagedAgentsHook:
        from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

        return ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)

    def pre_execute(self, context: Context) -> None:
        """Before each start (and resumption): the links' URLs are not known yet."""
        record_links_unknown(context, self.operator_extra_links)

    def on_kill(self) -> None:
        """Killed mid-request: close the HTTP client so no connection is left open."""
        if "hook" in self.__dict__:
            self.hook.close()

    def _link_to(self, context: Context, deployment_id: str) -> None:
        from airflow_provider_managed_agents.reporting import console_url

        context["ti"].xcom_push(key=DEPLOYMENT_URL_KEY, value=console_url(self.hook.settings, deployment_id))

    def _publish_deployment(self, context: Context, deployment: Deployment) -> str:
        from airflow_provider_managed_agents.assets import announce

        context["ti"].xcom_push(key="deployment", value=deployment.model_dump(mode="json"))
        self._link_to(context, deployment.id)
        announce(context, self.outlets, deployment_id=deployment.id)
        return deployment.id

    def _log_deployment(self, verb: str, deployment: Deployment) -> None:
        from airflow_provider_managed_agents.reporting import describe_deployment

        self.log.info("%s %s", verb, describe_deployment(deployment))
