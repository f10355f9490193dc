"""Operators that create, update, pause, unpause and archive a deployment.

This module is on the DAG-parse path: it imports only ``airflow.sdk`` at module level. The hook,
the pydantic models and the cron describer are imported inside ``execute``.

Each operator turns its (templated) arguments into one validated hook call, and the result into
XCom (``return_value`` = the deployment id, ``deployment``, ``deployment_url``), a readable log
and typed exceptions. Bad arguments fail the task at once, before any request, without using
Airflow retries; so do API errors that no retry can fix (400, 401, 403, 404, 413, 422).

The run operator lives in :mod:`~airflow_provider_managed_agents.operators.runs` (importable from
here too, as DAGs written for earlier versions do).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final

from airflow_provider_managed_agents.links import ManagedAgentsDeploymentLink
from airflow_provider_managed_agents.operators.base import ManagedAgentsBaseOperator, load_structured
from airflow_provider_managed_agents.operators.runs import ManagedAgentsRunDeploymentOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.models.deployments import Deployment

__all__ = [
    "ManagedAgentsArchiveDeploymentOperator",
    "ManagedAgentsCreateDeploymentOperator",
    "ManagedAgentsDeploymentLink",
    "ManagedAgentsPauseDeploymentOperator",
    "ManagedAgentsRunDeploymentOperator",
    "ManagedAgentsUnpauseDeploymentOperator",
    "ManagedAgentsUpdateDeploymentOperator",
]


class NotGiven:
    """The default of an update argument the DAG author did not pass: the field is left as it
    is, unlike an explicit ``None``, which clears it. Never stored on the operator."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()

DAG_ID_KEY = "airflow_dag_id"
TASK_ID_KEY = "airflow_task_id"
# API field -> operator attribute (BaseOperator owns ``resources``: worker cpus/ram).
API_FIELDS: dict[str, str] = {
    "agent": "agent",
    "environment_id": "environment_id",
    "initial_events": "initial_events",
    "name": "name",
    "description": "description",
    "metadata": "metadata",
    "resources": "deployment_resources",
    "schedule": "schedule",
    "vault_ids": "vault_ids",
    "budget": "budget",
}


def _message_events(message: str | None, initial_events: Any, required: bool) -> Any:
    """``message="..."`` is shorthand for one ``user.message`` text event."""
    from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

    if message is not None:
        if initial_events is not None:
            raise ManagedAgentsValidationError(
                "arguments", [("message", "give either message or initial_events, not both")]
            )
        return [{"type": "user.message", "content": [{"type": "text", "text": message}]}]
    if required and initial_events is None:
        raise ManagedAgentsValidationError(
            "arguments", [("initial_events", "required (or pass message='...' for a single text message)")]
        )
    return initial_events


def _mask_resource_tokens(resources: Any) -> None:
    if not isinstance(resources, list):
        return
    from airflow_provider_managed_agents.compat import mask_secret

    for resource in resources:
        token = resource.get("authorization_token") if isinstance(resource, Mapping) else None
        if token:
            mask_secret(token)


class _DeploymentFieldsOperator(ManagedAgentsBaseOperator):
    """The API's deployment fields as operator arguments with the same names; ``initial_events``
    and ``schedule`` may name a .json/.yaml file beside the DAG."""

    file_fields = ("initial_events", "schedule")

    message: str | None

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
        "managed_agents_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "initial_events": "json",
        "schedule": "json",
        "metadata": "json",
        "deployment_resources": "json",
        "budget": "json",
    }

    def _api_fields(self, given: set[str], *, events_required: bool) -> dict[str, Any]:
        """The API fields among ``given``, after templating, keyed by their API names."""
        values = {name: getattr(self, attribute) for name, attribute in API_FIELDS.items() if name in given}
        events = _message_events(self.message, values.get("initial_events"), events_required)
        if events is not None:
            values["initial_events"] = events
        for key in self.file_fields:
            if key in values:
                values[key] = load_structured(values[key], key)
        _mask_resource_tokens(values.get("resources"))
        return values


class ManagedAgentsCreateDeploymentOperator(_DeploymentFieldsOperator):
    """Create a deployment: an agent bound to an environment, initial events and an optional
    cron schedule.

    :param agent: agent id (latest version) or ``{"type": "agent", "id": ..., "version": N}``.
    :param environment_id: environment for every session the deployment creates.
    :param initial_events: events sent to each new session (1-50), or a .json/.yaml file name.
    :param message: shorthand for a single ``user.message`` text event.
    :param name: human-readable name (required).
    :param description: free text.
    :param metadata: up to 16 string pairs (one is taken by the idempotency marker).
    :param resources: repositories, files and memory stores to mount (kept on the
        ``deployment_resources`` attribute: BaseOperator owns ``resources``).
    :param schedule: ``{"type": "cron", "expression": ..., "timezone": ...}`` or a file name.
    :param vault_ids: vaults whose credentials sessions may use.
    :param budget: ``{"type": "limit", "max_list_cost": {"amount": "2500", "currency": "USD"}}``.
    :param idempotency_key: the deployment's identity across DAG runs: the create adopts the live
        deployment of this agent that holds it (one list call, before sending) instead of making
        a second one. Without it, a key derived from the DAG, task, run and map index makes the
        create exactly-once across this task instance's tries (looked up on retries only).
    :param managed_agents_conn_id: the ``managed_agents`` connection.

    Metadata gains ``airflow_idempotency_key``, then ``airflow_dag_id`` and ``airflow_task_id``
    while the 16-pair limit leaves room (never overwriting the author's keys). XCom:
    ``return_value`` = deployment id, ``deployment`` = the created (or adopted) deployment,
    ``action`` = ``created`` or ``adopted`` (an earlier DAG run's, by its ``idempotency_key``).
    """

    template_fields: Sequence[str] = (*_DeploymentFieldsOperator.template_fields, "idempotency_key")

    def __init__(
        self,
        *,
        agent: str | dict[str, Any] | None = None,
        environment_id: str | None = None,
        initial_events: list[dict[str, Any]] | str | None = None,
        message: str | None = None,
        name: str | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        resources: list[dict[str, Any]] | None = None,
        schedule: dict[str, Any] | str | None = None,
        vault_ids: list[str] | None = None,
        budget: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
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
        self.deployment_resources = resources
        self.schedule = schedule
        self.vault_ids = vault_ids
        self.budget = budget
        self.idempotency_key = idempotency_key

    def execute(self, context: Context) -> str:
        from airflow_provider_managed_agents.models.params import (
            IDEMPOTENCY_METADATA_KEY,
            METADATA_MAX_PAIRS,
            CreateDeploymentParams,
            validate_params,
        )

        set_fields = {name for name, attr in API_FIELDS.items() if getattr(self, attr) is not None}
        fields = self._api_fields(set_fields | {"initial_events"}, events_required=True)
        key = self.idempotency_key or default_idempotency_key(context)
        metadata = dict(fields.get("metadata") or {})
        # The marker first (it makes the create exactly-once), then the labels, while there is room.
        room = METADATA_MAX_PAIRS - len(metadata) - (0 if IDEMPOTENCY_METADATA_KEY in metadata else 1)
        for label, value in ((DAG_ID_KEY, self.dag_id), (TASK_ID_KEY, self.task_id)):
            if label not in metadata and room > 0:
                metadata[label] = value
                room -= 1
        fields["metadata"] = metadata
        params = validate_params(CreateDeploymentParams, fields, "create_deployment arguments")
        # An explicit key may have made a deployment in an earlier DAG run, the default key in an
        # earlier try of this task: look for it before sending (the hook adopts it).
        look_first = bool(self.idempotency_key) or context["ti"].try_number > 1
        adopted: list[str] = []
        deployment = self.hook.create_deployment(
            params, idempotency_key=key, look_first=look_first, on_adopt=lambda found: adopted.append(found.id)
        )
        self._log_deployment("Adopted" if adopted else "Created", deployment)
        context["ti"].xcom_push(key="action", value="adopted" if adopted else "created")
        return self._publish_deployment(context, deployment)


def default_idempotency_key(context: Context) -> str:
    """Stable across retries of one task instance, distinct between instances."""
    from airflow_provider_managed_agents.stores import task_instance_identity

    return task_instance_identity(context["ti"])


class ManagedAgentsUpdateDeploymentOperator(_DeploymentFieldsOperator):
    """Update a deployment, sending only the arguments the DAG author set.

    Arguments not given are omitted (the API preserves them); an explicit ``None`` clears the
    field where the API allows it (description, resources, schedule, vault_ids, budget).
    ``metadata`` is a merge patch: a ``None`` value deletes that key. Safe to retry: replaying
    the same update converges to the same state. Takes the create operator's field arguments,
    plus:

    :param deployment_id: the deployment to update.

    XCom: ``return_value`` = deployment id, ``deployment`` = the updated deployment.
    """

    template_fields: Sequence[str] = ("deployment_id", *_DeploymentFieldsOperator.template_fields)

    def __init__(
        self,
        *,
        deployment_id: str,
        agent: str | dict[str, Any] | NotGiven = NOT_GIVEN,
        environment_id: str | NotGiven = NOT_GIVEN,
        initial_events: list[dict[str, Any]] | str | NotGiven = NOT_GIVEN,
        message: str | None = None,
        name: str | NotGiven = NOT_GIVEN,
        description: str | NotGiven | None = NOT_GIVEN,
        metadata: dict[str, str | None] | NotGiven | None = NOT_GIVEN,
        resources: list[dict[str, Any]] | NotGiven | None = NOT_GIVEN,
        schedule: dict[str, Any] | str | NotGiven | None = NOT_GIVEN,
        vault_ids: list[str] | NotGiven | None = NOT_GIVEN,
        budget: dict[str, Any] | NotGiven | None = NOT_GIVEN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment_id = deployment_id
        arguments: dict[str, Any] = {
            "agent": agent,
            "environment_id": environment_id,
            "initial_events": initial_events,
            "name": name,
            "description": description,
            "metadata": metadata,
            "resources": resources,
            "schedule": schedule,
            "vault_ids": vault_ids,
            "budget": budget,
        }
        # Which fields to send is decided here, once; the attributes hold plain values (None
        # when not given) so that rendered templates show what the author wrote.
        self.given_fields = sorted(name for name, value in arguments.items() if value is not NOT_GIVEN)
        for name, value in arguments.items():
            setattr(self, API_FIELDS[name], None if value is NOT_GIVEN else value)
        self.message = message

    def execute(self, context: Context) -> str:
        from airflow_provider_managed_agents.models.params import UpdateDeploymentParams, checked_id, validate_params

        deployment_id = checked_id(self.deployment_id, "deployment_id")
        fields = self._api_fields(set(self.given_fields), events_required=False)
        params = validate_params(UpdateDeploymentParams, fields, "update_deployment arguments")
        changed = sorted(params.model_fields_set)
        deployment = self.hook.update_deployment(deployment_id, params)
        self._log_deployment(f"Updated {', '.join(changed) or 'nothing'} of", deployment)
        return self._publish_deployment(context, deployment)


class _DeploymentActionOperator(ManagedAgentsBaseOperator):
    """Pause, unpause or archive: read the state first, act only when it differs, so that a
    repeated action (or an Airflow retry) succeeds and says so.

    :param deployment_id: the deployment to act on.
    """

    template_fields: Sequence[str] = ("deployment_id", "managed_agents_conn_id")
    action: ClassVar[str]

    def __init__(self, *, deployment_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment_id = deployment_id

    def already_done(self, deployment: Deployment) -> bool:
        raise NotImplementedError

    def perform(self, deployment_id: str) -> Deployment:
        raise NotImplementedError

    def execute(self, context: Context) -> str:
        from airflow_provider_managed_agents.models.params import checked_id

        deployment_id = checked_id(self.deployment_id, "deployment_id")
        current = self.hook.get_deployment(deployment_id)
        if self.already_done(current):
            self._log_deployment(f"Nothing to do, already {self.action}:", current)
            deployment = current
        else:
            self._check_allowed(current)
            deployment = self.perform(deployment_id)
            self._log_deployment(f"{self.action.capitalize()}", deployment)
        return self._publish_deployment(context, deployment)

    def _check_allowed(self, deployment: Deployment) -> None:
        from airflow_provider_managed_agents.compat import AirflowFailException

        if deployment.is_archived:
            raise AirflowFailException(
                f"Deployment {deployment.id} is archived; it cannot be {self.action} (archive is terminal)."
            )


class ManagedAgentsPauseDeploymentOperator(_DeploymentActionOperator):
    """Pause a deployment's schedule (manual runs stay allowed). Idempotent."""

    action = "paused"

    def already_done(self, deployment: Deployment) -> bool:
        return deployment.is_paused

    def perform(self, deployment_id: str) -> Deployment:
        return self.hook.pause_deployment(deployment_id)


class ManagedAgentsUnpauseDeploymentOperator(_DeploymentActionOperator):
    """Resume a deployment's schedule from its next occurrence (no backfill). Idempotent."""

    action = "unpaused"

    def already_done(self, deployment: Deployment) -> bool:
        return not deployment.is_paused

    def perform(self, deployment_id: str) -> Deployment:
        return self.hook.unpause_deployment(deployment_id)


class ManagedAgentsArchiveDeploymentOperator(_DeploymentActionOperator):
    """Archive a deployment (terminal). Archiving an archived deployment succeeds. Fits a
    teardown task: ``ManagedAgentsArchiveDeploymentOperator(...).as_teardown(setups=create)``."""

    action = "archived"

    def already_done(self, deployment: Deployment) -> bool:
        return deployment.is_archived

    def _check_allowed(self, deployment: Deployment) -> None:
        pass

    def perform(self, deployment_id: str) -> Deployment:
        return self.hook.archive_deployment(deployment_id)
