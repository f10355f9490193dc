"""Operators that create, update, pause, unpause, archive and run a deployment.

This module is on the DAG-parse path: it imports only ``airflow.sdk`` at module level. The hook,
the pydantic models and the cron describer are imported inside ``execute``.

Each operator turns its (templated) arguments into one validated hook call, and the result into
XCom, a readable log and typed exceptions:

- XCom ``return_value``: the deployment id (or the run id for the run operator); ``deployment``
  / ``deployment_run``: the full JSON-safe object (no secrets); ``session_id`` for runs;
  ``deployment_url``: the deployment in the Claude Console.
- Bad arguments fail the task at once, before any request, without using Airflow retries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator, BaseOperatorLink

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.models.deployments import Deployment
    from airflow_provider_managed_agents.models.runs import DeploymentRun


class _Unset:
    """Marks an argument the DAG author did not pass (different from an explicit None)."""

    _instance: ClassVar[_Unset | None] = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    def __deepcopy__(self, memo: dict[int, Any]) -> _Unset:
        return self


UNSET: Any = _Unset()

# initial_events and schedule may name a .json/.yaml file beside the DAG, as their whole value.
# Not template_ext: Airflow would then take any templated string ending in ".json" (a message
# "Summarise out/report.json", an event's text) for a file name.
FILE_FIELDS = ("initial_events", "schedule")
FILE_EXTENSIONS = (".json", ".yaml", ".yml")
DAG_ID_KEY = "airflow_dag_id"
# Allowance for the worker's clock running ahead of the service's when adopting a manual run.
RUN_ADOPTION_SKEW = 5
TASK_ID_KEY = "airflow_task_id"


class ManagedAgentsDeploymentLink(BaseOperatorLink):
    """Opens the deployment in the Claude Console."""

    name = "Managed Agents deployment"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        url = getattr(operator, "deployment_url", None)
        if url:
            return str(url)
        from airflow.sdk.bases.xcom import BaseXCom

        return str(BaseXCom.get_value(ti_key=ti_key, key="deployment_url") or "")  # type: ignore[arg-type]


class ManagedAgentsBaseOperator(BaseOperator):
    """Shared plumbing: the hook, XCom of results, and readable logs."""

    ui_color = "#d4a27f"
    operator_extra_links = (ManagedAgentsDeploymentLink(),)

    def __init__(self, *, managed_agents_conn_id: str = "managed_agents_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.managed_agents_conn_id = managed_agents_conn_id
        self.deployment_url: str | None = None

    @cached_property
    def hook(self) -> ManagedAgentsHook:
        from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

        return ManagedAgentsHook(managed_agents_conn_id=self.managed_agents_conn_id)

    def on_kill(self) -> None:
        """Killed mid-request: close the HTTP client so no connection is left open."""
        if "hook" in self.__dict__:
            self.hook.close()

    def _publish_deployment(self, context: Context, deployment: Deployment) -> str:
        from airflow_provider_managed_agents.operators.reporting import console_url

        self.deployment_url = console_url(self.hook.settings, deployment.id)
        ti = context["ti"]
        ti.xcom_push(key="deployment", value=deployment.model_dump(mode="json"))
        ti.xcom_push(key="deployment_url", value=self.deployment_url)
        return deployment.id

    def _log_deployment(self, verb: str, deployment: Deployment) -> None:
        from airflow_provider_managed_agents.operators.reporting import describe_deployment

        self.log.info("%s %s", verb, describe_deployment(deployment))


def _load_structured(value: Any, field: str) -> Any:
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


def _message_events(message: str | None, initial_events: Any, required: bool) -> Any:
    """``message="..."`` is shorthand for one ``user.message`` text event."""
    from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

    has_events = initial_events is not UNSET and initial_events is not None
    if message is not None and message is not UNSET:
        if has_events:
            raise ManagedAgentsValidationError(
                "arguments", [("message", "give either message or initial_events, not both")]
            )
        return [{"type": "user.message", "content": [{"type": "text", "text": message}]}]
    if required and not has_events:
        raise ManagedAgentsValidationError(
            "arguments", [("initial_events", "required (or pass message='...' for a single text message)")]
        )
    return initial_events


class _DeploymentFieldsOperator(ManagedAgentsBaseOperator):
    """The API's deployment fields as operator arguments with the same names."""

    template_fields: Sequence[str] = (
        "agent",
        "environment_id",
        "initial_events",
        "message",
        "name",
        "description",
        "metadata",
        "deployment_resources",
        "schedule",
        "vault_ids",
        "budget",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "initial_events": "json",
        "schedule": "json",
        "metadata": "json",
        "deployment_resources": "json",
        "budget": "json",
    }

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Read a file named by ``initial_events`` or ``schedule``, then render every field; the
        file's content is a template too, parsed as JSON or YAML at execution."""
        jinja_env = jinja_env or self.get_template_env()
        for field in FILE_FIELDS:
            value = getattr(self, field)
            if isinstance(value, str) and value.endswith(FILE_EXTENSIONS):
                assert jinja_env.loader is not None
                setattr(self, field, jinja_env.loader.get_source(jinja_env, value)[0])
        super().render_template_fields(context, jinja_env)

    def __init__(
        self,
        *,
        agent: Any = UNSET,
        environment_id: Any = UNSET,
        initial_events: Any = UNSET,
        message: Any = UNSET,
        name: Any = UNSET,
        description: Any = UNSET,
        metadata: Any = UNSET,
        resources: Any = UNSET,
        schedule: Any = UNSET,
        vault_ids: Any = UNSET,
        budget: Any = UNSET,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.agent = agent
        self.environment_id = environment_id
        self.initial_events = initial_events
        self.message = message
        self.name = name
        self.description = description
        self.metadata = metadata
        # BaseOperator already owns ``resources`` (worker cpus/ram), so the API's field lives
        # under another attribute while the argument keeps the API's name.
        self.deployment_resources = resources
        self.schedule = schedule
        self.vault_ids = vault_ids
        self.budget = budget

    def _set_fields(self, *, events_required: bool) -> dict[str, Any]:
        """The arguments the author set, after templating, as API field names."""
        values = {
            "agent": self.agent,
            "environment_id": self.environment_id,
            "initial_events": _message_events(self.message, self.initial_events, events_required),
            "name": self.name,
            "description": self.description,
            "metadata": self.metadata,
            "resources": self.deployment_resources,
            "schedule": self.schedule,
            "vault_ids": self.vault_ids,
            "budget": self.budget,
        }
        fields = {key: value for key, value in values.items() if value is not UNSET}
        for key in FILE_FIELDS:
            if key in fields:
                fields[key] = _load_structured(fields[key], key)
        _mask_resource_tokens(fields.get("resources"))
        return fields


def _mask_resource_tokens(resources: Any) -> None:
    if not isinstance(resources, list):
        return
    from airflow.sdk.log import mask_secret

    for resource in resources:
        token = resource.get("authorization_token") if isinstance(resource, Mapping) else None
        if token:
            mask_secret(token)


class ManagedAgentsCreateDeploymentOperator(_DeploymentFieldsOperator):
    """Create a deployment: an agent bound to an environment, initial events and an optional
    cron schedule.

    :param agent: agent id (latest version) or ``{"type": "agent", "id": ..., "version": N}``.
    :param environment_id: environment for every session the deployment creates.
    :param initial_events: events sent to each new session (1-50), or a .json/.yaml file name.
    :param message: shorthand for a single ``user.message`` text event.
    :param name: human-readable name (required).
    :param description, metadata, resources, vault_ids, budget: as in the API (``resources`` is
        kept on the ``deployment_resources`` attribute: BaseOperator owns ``resources``).
    :param schedule: ``{"type": "cron", "expression": ..., "timezone": ...}`` or a file name.
    :param idempotency_key: marker that makes the create exactly-once across retries; derived
        from the DAG, task, run and map index when not given.
    :param managed_agents_conn_id: the ``managed_agents`` connection.

    Metadata gains ``airflow_dag_id`` and ``airflow_task_id`` (never overwriting the author's
    keys, and only while under the 16-pair limit). XCom: ``return_value`` = deployment id,
    ``deployment`` = the created deployment.
    """

    template_fields: Sequence[str] = (*_DeploymentFieldsOperator.template_fields, "idempotency_key")

    def __init__(self, *, idempotency_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.idempotency_key = idempotency_key

    def execute(self, context: Context) -> str:
        from airflow_provider_managed_agents.models.params import (
            IDEMPOTENCY_METADATA_KEY,
            METADATA_MAX_PAIRS,
            CreateDeploymentParams,
            validate_params,
        )

        fields = self._set_fields(events_required=True)
        metadata = dict(fields.get("metadata") or {})
        key = self.idempotency_key or default_idempotency_key(context)
        # The marker first (it makes retries safe), then the labels, while there is room.
        labels = {IDEMPOTENCY_METADATA_KEY: key, DAG_ID_KEY: self.dag_id, TASK_ID_KEY: self.task_id}
        for label, value in labels.items():
            if label not in metadata and len(metadata) < METADATA_MAX_PAIRS:
                metadata[label] = value
        fields["metadata"] = metadata
        params = validate_params(CreateDeploymentParams, fields, "create_deployment arguments")
        exactly_once = metadata.get(IDEMPOTENCY_METADATA_KEY) == key
        if not exactly_once:
            self.log.warning("metadata is full: no idempotency marker, so a retried create may duplicate")
        deployment = self.hook.create_deployment(
            params,
            idempotency_key=key if exactly_once else None,
            look_first=context["ti"].try_number > 1,
        )
        self._log_deployment("Created", deployment)
        return self._publish_deployment(context, deployment)


def default_idempotency_key(context: Context) -> str:
    """Stable across retries of one task instance, distinct between instances."""
    import hashlib

    ti = context["ti"]
    identity = f"{ti.dag_id}|{ti.task_id}|{ti.run_id}|{getattr(ti, 'map_index', -1)}"
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


class ManagedAgentsUpdateDeploymentOperator(_DeploymentFieldsOperator):
    """Update a deployment, sending only the arguments the DAG author set.

    Unset arguments are omitted (the API preserves them); an explicit ``None`` clears the field
    where the API allows it (description, resources, schedule, vault_ids, budget). ``metadata``
    is a merge patch: a ``None`` value deletes that key. Safe to retry: replaying the same update
    converges to the same state.

    XCom: ``return_value`` = deployment id, ``deployment`` = the updated deployment.
    """

    template_fields: Sequence[str] = ("deployment_id", *_DeploymentFieldsOperator.template_fields)

    def __init__(self, *, deployment_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment_id = deployment_id

    def execute(self, context: Context) -> str:
        from airflow_provider_managed_agents.models.params import UpdateDeploymentParams, validate_params

        params = validate_params(
            UpdateDeploymentParams, self._set_fields(events_required=False), "update_deployment arguments"
        )
        changed = sorted(params.model_fields_set)
        deployment = self.hook.update_deployment(self.deployment_id, params)
        self._log_deployment(f"Updated {', '.join(changed) or 'nothing'} of", deployment)
        return self._publish_deployment(context, deployment)


class _DeploymentActionOperator(ManagedAgentsBaseOperator):
    """Pause, unpause or archive: read the state first, act only when it differs, so that a
    repeated action (or an Airflow retry) succeeds and says so."""

    template_fields: Sequence[str] = ("deployment_id",)
    action: ClassVar[str]

    def __init__(self, *, deployment_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment_id = deployment_id

    def already_done(self, deployment: Deployment) -> bool:
        raise NotImplementedError

    def perform(self) -> Deployment:
        raise NotImplementedError

    def execute(self, context: Context) -> str:
        from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

        if not isinstance(self.deployment_id, str) or not self.deployment_id.strip():
            raise ManagedAgentsValidationError("arguments", [("deployment_id", "must be a non-empty id")])
        current = self.hook.get_deployment(self.deployment_id)
        if self.already_done(current):
            self._log_deployment(f"Nothing to do, already {self.action}:", current)
            deployment = current
        else:
            self._check_allowed(current)
            deployment = self.perform()
            self._log_deployment(f"{self.action.capitalize()}", deployment)
        return self._publish_deployment(context, deployment)

    def _check_allowed(self, deployment: Deployment) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        if deployment.is_archived:
            raise AirflowFailException(
                f"Deployment {deployment.id} is archived; it cannot be {self.action} (archive is terminal)."
            )


class ManagedAgentsPauseDeploymentOperator(_DeploymentActionOperator):
    """Pause a deployment's schedule (manual runs stay allowed). Idempotent."""

    action = "paused"

    def already_done(self, deployment: Deployment) -> bool:
        return deployment.is_paused

    def perform(self) -> Deployment:
        return self.hook.pause_deployment(self.deployment_id)


class ManagedAgentsUnpauseDeploymentOperator(_DeploymentActionOperator):
    """Resume a deployment's schedule from its next occurrence (no backfill). Idempotent."""

    action = "unpaused"

    def already_done(self, deployment: Deployment) -> bool:
        return not deployment.is_paused

    def perform(self) -> Deployment:
        return self.hook.unpause_deployment(self.deployment_id)


class ManagedAgentsArchiveDeploymentOperator(_DeploymentActionOperator):
    """Archive a deployment (terminal). Archiving an archived deployment succeeds. Fits a
    teardown task: ``ManagedAgentsArchiveDeploymentOperator(...).as_teardown(setups=create)``."""

    action = "archived"

    def already_done(self, deployment: Deployment) -> bool:
        return deployment.is_archived

    def _check_allowed(self, deployment: Deployment) -> None:
        pass

    def perform(self) -> Deployment:
        return self.hook.archive_deployment(self.deployment_id)


class ManagedAgentsRunDeploymentOperator(ManagedAgentsBaseOperator):
    """Start a manual run of a deployment now and gate on its outcome.

    Success (a session was created) returns the run id and pushes ``session_id`` and
    ``deployment_run``. A run error raises its typed exception
    (:mod:`airflow_provider_managed_agents.exceptions`): ``SessionRateLimitedRunError`` lets
    Airflow's task retries apply; terminal errors (archived, not found, disabled, rejected...)
    fail the task without retries. Retries never start a second run for the same attempt: a
    manual run created since the first attempt was sent is adopted instead.
    """

    template_fields: Sequence[str] = ("deployment_id",)

    def __init__(self, *, deployment_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment_id = deployment_id

    def execute(self, context: Context) -> str:
        import pendulum

        from airflow_provider_managed_agents.exceptions import exception_for_run
        from airflow_provider_managed_agents.operators.reporting import console_url, describe_run

        ti = context["ti"]
        retrying = ti.try_number > 1
        # A retry adopts a session-creating manual run made since this DAG run started, since
        # the first try's send time does not survive into the retry.
        since = _dag_run_start(context) if retrying else pendulum.now("UTC").subtract(seconds=RUN_ADOPTION_SKEW)
        run = self.hook.run_deployment(self.deployment_id, adopt_since=since, look_first=retrying)
        self._publish_run(context, run)
        self.deployment_url = console_url(self.hook.settings, run.deployment_id)
        ti.xcom_push(key="deployment_url", value=self.deployment_url)
        self.log.info("%s", describe_run(run))
        error = exception_for_run(run)
        if error is not None:
            raise error
        return run.id

    @staticmethod
    def _publish_run(context: Context, run: DeploymentRun) -> None:
        ti = context["ti"]
        ti.xcom_push(key="deployment_run", value=run.model_dump(mode="json"))
        ti.xcom_push(key="session_id", value=run.session_id)


def _dag_run_start(context: Context) -> Any:
    import pendulum

    dag_run = context.get("dag_run")
    start = getattr(dag_run, "start_date", None) or getattr(context["ti"], "start_date", None)
    return start or pendulum.now("UTC")
