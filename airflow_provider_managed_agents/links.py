"""Extra links: the deployment and the session a task worked on, in the Claude Console.

Airflow 3 computes a task's links once, on the worker, after the task ends, and stores them for
the UI. A link here reads what the task recorded (its ``deployment_url`` / ``session_url`` XCom,
by the task instance's key), never an attribute of the operator object: after a deferral or in
a retried try the operator that finishes is not the one that started the work.

Every link reads a key the task records as unknown (None) before it starts
(:func:`record_links_unknown`, from the operators' and sensors' ``pre_execute``), so a task
that fails before it knows its deployment or session shows no link, quietly: Airflow reads the
links of failed tasks too.

On the DAG-parse path: imports only ``airflow.sdk`` at module level.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

DEPLOYMENT_URL_KEY = "deployment_url"
SESSION_URL_KEY = "session_url"


class _RecordedLink(BaseOperatorLink):
    """A link to the URL the task recorded under :attr:`url_key`."""

    url_key: ClassVar[str]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow_provider_managed_agents.compat import xcom_value

        return str(xcom_value(ti_key, self.url_key) or "")


class ManagedAgentsDeploymentLink(_RecordedLink):
    """Opens the deployment the task created, changed or ran."""

    name = "Managed Agents deployment"
    url_key = DEPLOYMENT_URL_KEY


class ManagedAgentsSessionLink(_RecordedLink):
    """Opens the session the task started or followed."""

    name = "Managed Agents session"
    url_key = SESSION_URL_KEY


def record_links_unknown(context: Context, links: Iterable[BaseOperatorLink]) -> None:
    """Before the task runs (and each time it resumes): its links' URLs are not known yet."""
    ti = context["ti"]
    for link in links:
        if isinstance(link, _RecordedLink):
            ti.xcom_push(key=link.url_key, value=None)
