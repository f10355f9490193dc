"""What every operator of this provider shares: the hook, publishing a deployment, its link.

On the DAG-parse path: imports only ``airflow.sdk`` at module level. The hook, the pydantic
models and the cron describer are imported inside ``execute``.

XCom a deployment operator leaves: ``return_value`` (the deployment id), ``deployment`` (the full
JSON-safe object, no secrets) and ``deployment_url`` (the deployment in the Claude Console, which
the deployment link reads).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator, BaseOperatorLink

from airflow_provider_managed_agents.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_managed_agents.lineage import OpenLineageReporter
from airflow_provider_managed_agents.links import (
    DEPLOYMENT_URL_KEY,
    ManagedAgentsDeploymentLink,
    record_links_unknown,
)

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.models.deployments import Deployment


# A structured field may name a .json/.yaml file beside the DAG as its whole value, a text field
# (a prompt) a .md/.txt one. Not template_ext: Airflow would then take any templated string
# ending in ".json" (a message "Summarise out/report.json", an event's text) for a file name.
STRUCTURED_EXTENSIONS = (".json", ".yaml", ".yml")
TEXT_EXTENSIONS = (".md", ".txt")


class ManagedAgentsBaseOperator(OpenLineageReporter, BaseOperator):
    """Shared plumbing: the hook, XCom of results, the deployment link and readable logs.

    :param managed_agents_conn_id: the ``managed_agents`` connection (or an ``anthropic`` one).
    """

    template_fields: Sequence[str] = ("managed_agents_conn_id",)
    # Fields whose whole value may name a JSON/YAML file (read, rendered, then parsed), and
    # fields whose whole value may name a text file (read and rendered).
    file_fields: ClassVar[tuple[str, ...]] = ()
    text_file_fields: ClassVar[tuple[str, ...]] = ()
    ui_color = "#d4a27f"
    operator_extra_links: Collection[BaseOperatorLink] = (ManagedAgentsDeploymentLink(),)

    def __init__(self, *, managed_agents_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.managed_agents_conn_id = managed_agents_conn_id
        # The DAG file's folder, known while the file is parsed: where a file field's file lives
        # when the template loader's search path is elsewhere (Airflow 3.0's `dags test`).
        dag = kwargs.get("dag") or getattr(self, "_dag", None)
        self._dag_folder: str | None = getattr(dag, "folder", None) if dag is not None else None

    @cached_property
    def hook(self) -> ManagedAgentsHook:
        from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

        return ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Read the files the file fields name, then render every field: a file's content is a
        template too (parsed as JSON or YAML at execution, for the structured fields)."""
        jinja_env = jinja_env or self.get_template_env()
        for field, extensions in [(f, STRUCTURED_EXTENSIONS) for f in self.file_fields] + [
            (f, TEXT_EXTENSIONS) for f in self.text_file_fields
        ]:
            value = getattr(self, field)
            if isinstance(value, str) and value.endswith(extensions):
                setattr(self, field, self._read_beside_the_dag(jinja_env, value))
        super().render_template_fields(context, jinja_env)

    def _read_beside_the_dag(self, jinja_env: jinja2.Environment, name: str) -> str:
        import jinja2

        assert jinja_env.loader is not None
        try:
            return jinja_env.loader.get_source(jinja_env, name)[0]
        except jinja2.TemplateNotFound:
            if self._dag_folder is None:
                raise
            return jinja2.FileSystemLoader(self._dag_folder).get_source(jinja_env, name)[0]

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
        self._note_lineage(deployment_id=deployment.id, deployment=deployment.model_dump(mode="json"))
        self._link_to(context, deployment.id)
        announce(context, self.outlets, deployment_id=deployment.id)
        return deployment.id

    def _log_deployment(self, verb: str, deployment: Deployment) -> None:
        from airflow_provider_managed_agents.reporting import describe_deployment

        self.log.info("%s %s", verb, describe_deployment(deployment))


def load_structured(value: Any, field: str) -> Any:
    """A field given as JSON/YAML text (a file's rendered content, or a string) becomes data."""
    if not isinstance(value, str):
        return value
    import yaml

    from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

    try:
        return json.loads(value)
    except ValueError:
        pass
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        problem = f"is neither valid JSON nor YAML ({type(exc).__name__})"
        raise ManagedAgentsValidationError(f"{field} argument", [(field, problem)]) from None
