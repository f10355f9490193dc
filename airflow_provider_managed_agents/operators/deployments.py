"""Operators that create, update, pause, unpause, archive and run a deployment.

This module is on the DAG-parse path: it imports only ``airflow.sdk`` at module level. The hook,
the pydantic models and the cron describer are imported inside ``execute``.

Each operator turns its (templated) arguments into one validated hook call, and the result into
XCom, a readable log and typed exceptions:

- XCom ``return_value``: the deployment id (or the run id for the run operator); ``deployment``
  / ``deployment_run``: the full JSON-safe object (no secrets); ``session_id`` for runs;
  ``deployment_url``: the deployment in the Claude Console.
- Bad arguments fail the task at once, before any request, without using Airflow retries; so
  do API errors that no retry can fix (400, 401, 403, 404, 413, 422).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Final

from airflow.sdk import BaseOperator, BaseOperatorLink

from airflow_provider_managed_agents.compat import default_deferrable
from airflow_provider_managed_agents.operators.following import ManagedAgentsSessionLink, SessionFollower

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.models.deployments import Deployment
    from airflow_provider_managed_agents.models.runs import DeploymentRun
    from airflow_provider_managed_agents.operators.run_journal import RunAttempt, RunJournal


class NotGiven:
    """The default of an update argument the DAG author did not pass: the field is left as it
    is, unlike an explicit ``None``, which clears it. Never stored on the operator."""

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()

# initial_events and schedule may name a .json/.yaml file beside the DAG, as their whole value.
# Not template_ext: Airflow would then take any templated string ending in ".json" (a message
# "Summarise out/report.json", an event's text) for a file name.
FILE_FIELDS = ("initial_events", "schedule")
FILE_EXTENSIONS = (".json", ".yaml", ".yml")
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


class ManagedAgentsDeploymentLink(BaseOperatorLink):
    """Opens the deployment in the Claude Console.

    Airflow asks for the link once, on the worker, with the operator that just ran (and stores
    it for the UI), so the operator's own attribute answers; a task that failed before it knew
    the deployment has no link.
    """

    name = "Managed Agents deployment"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return str(getattr(operator, "deployment_url", None) or "")


class ManagedAgentsBaseOperator(BaseOperator):
    """Shared plumbing: the hook, XCom of results, and readable logs.

    :param managed_agents_conn_id: the ``managed_agents`` connection (or an ``anthropic`` one).
    """

    template_fields: Sequence[str] = ("managed_agents_conn_id",)
    ui_color = "#d4a27f"
    operator_extra_links: Collection[BaseOperatorLink] = (ManagedAgentsDeploymentLink(),)

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

    def _link_to(self, context: Context, deployment_id: str) -> None:
        from airflow_provider_managed_agents.operators.reporting import console_url

        self.deployment_url = console_url(self.hook.settings, deployment_id)
        context["ti"].xcom_push(key="deployment_url", value=self.deployment_url)

    def _publish_deployment(self, context: Context, deployment: Deployment) -> str:
        from airflow_provider_managed_agents.assets import announce

        context["ti"].xcom_push(key="deployment", value=deployment.model_dump(mode="json"))
        self._link_to(context, deployment.id)
        announce(context, self.outlets, deployment_id=deployment.id)
        return deployment.id

    def _log_deployment(self, verb: str, deployment: Deployment) -> None:
        from airflow_provider_managed_agents.operators.reporting import describe_deployment

        self.log.info("%s %s", verb, describe_deployment(deployment))


def checked_id(value: Any, field: str) -> str:
    """A rendered id argument, refused before any request when empty."""
    from airflow_provider_managed_agents.hooks.managed_agents import path_id

    path_id(value, field)
    return str(value)


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
    """The API's deployment fields as operator arguments with the same names."""

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

    def _api_fields(self, given: set[str], *, events_required: bool) -> dict[str, Any]:
        """The API fields among ``given``, after templating, keyed by their API names."""
        values = {name: getattr(self, attribute) for name, attribute in API_FIELDS.items() if name in given}
        events = _message_events(self.message, values.get("initial_events"), events_required)
        if events is not None:
            values["initial_events"] = events
        for key in FILE_FIELDS:
            if key in values:
                values[key] = _load_structured(values[key], key)
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
    ``return_value`` = deployment id, ``deployment`` = the created (or adopted) deployment.
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
            with_idempotency_marker,
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
        params = with_idempotency_marker(params, key)
        if self.idempotency_key or context["ti"].try_number > 1:
            agent_id = params.agent if isinstance(params.agent, str) else params.agent.id
            existing = self.hook.find_deployment(agent_id=agent_id, idempotency_key=key)
            if existing is not None:
                self._log_deployment("Adopted", existing)
                return self._publish_deployment(context, existing)
        deployment = self.hook.create_deployment(params, idempotency_key=key)
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
        from airflow_provider_managed_agents.models.params import UpdateDeploymentParams, validate_params

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


class ManagedAgentsRunDeploymentOperator(SessionFollower, ManagedAgentsBaseOperator):
    """Start a manual run of a deployment now and gate on its outcome, or on its session's end.

    :param deployment_id: the deployment to run.
    :param wait_for_session_end: after the run created its session, follow the session until
        the agent's turn is over: success only when it ended with ``end_turn`` (and any defined
        outcome is ``satisfied``); every other ending raises its ``SessionError`` class.
    :param deferrable: follow the session in the triggerer (default
        ``[operators] default_deferrable``); only with ``wait_for_session_end``.
    :param poll_interval: seconds between looks at the session while it runs (one request each).
    :param timeout: seconds to wait for the session's end before ``AirflowSensorTimeout``.
    :param final_message_max_chars: how much of the agent's final message goes to XCom.
    :param on_kill_session: what a kill of this task does to the session it started:
        ``interrupt`` (default), ``archive`` or ``none``.

    Success (a session was created) returns the run id and pushes ``session_id`` and
    ``deployment_run``; with ``wait_for_session_end`` also what the session did (``session_status``,
    ``stop_reason``, ``stop_details``, ``final_message``, ``outcome``, ``usage``, on failure too).
    A run error raises its typed exception (:mod:`airflow_provider_managed_agents.exceptions`):
    ``SessionRateLimitedRunError`` lets Airflow's task retries apply; terminal errors (archived,
    not found, disabled, rejected...) fail the task without retries. A retry starts a new run,
    except when an earlier try of this task sent one and never learned its outcome, or was
    following its session: that run is adopted (see
    :mod:`~airflow_provider_managed_agents.operators.run_journal`).
    """

    template_fields: Sequence[str] = ("deployment_id", "managed_agents_conn_id")
    operator_extra_links: Collection[BaseOperatorLink] = (ManagedAgentsDeploymentLink(), ManagedAgentsSessionLink())

    def __init__(
        self,
        *,
        deployment_id: str,
        wait_for_session_end: bool = False,
        deferrable: bool = default_deferrable(),
        poll_interval: float = 30.0,
        timeout: float = 86_400.0,
        final_message_max_chars: int = 100_000,
        on_kill_session: str = "interrupt",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment_id = deployment_id
        self.wait_for_session_end = wait_for_session_end
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.final_message_max_chars = final_message_max_chars
        self.on_kill_session = self._check_on_kill(on_kill_session)

    def execute(self, context: Context) -> str:
        import dataclasses
        from datetime import timedelta

        from airflow_provider_managed_agents.exceptions import exception_for_run
        from airflow_provider_managed_agents.operators.reporting import describe_run
        from airflow_provider_managed_agents.operators.run_journal import RunJournal
        from airflow_provider_managed_agents.waiting import clock

        deployment_id = checked_id(self.deployment_id, "deployment_id")
        journal = RunJournal.for_task(context)
        earlier = journal.read()
        run = self._adopt(earlier, deployment_id)
        if run is None:
            run, earlier = self._send(journal, deployment_id, context["ti"].try_number), None
            self.log.info("%s", describe_run(run))
        self._publish_run(context, run)
        error = exception_for_run(run)
        if error is not None or not self.wait_for_session_end or run.session_id is None:
            journal.forget()
            if error is not None:
                raise error
            return run.id
        # A retry of this task re-attaches to this run's session, never starts another.
        attempt = earlier or self._attempt(deployment_id, context["ti"].try_number)
        journal.write(dataclasses.replace(attempt, run_id=run.id, state="following"))
        deadline = clock.now() + timedelta(seconds=self.timeout)
        if self.deferrable:
            self.defer(
                trigger=self._session_trigger(
                    run.session_id,
                    deadline,
                    self.timeout,
                    stop_on_kill=True,
                    carry={"run_id": run.id, "deployment_id": run.deployment_id, "session_id": run.session_id},
                    just_started=True,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout) + timedelta(minutes=5),
            )
        verdict = self._follow_here(run.session_id, deadline, self.timeout, just_started=True)
        return self._session_ended(context, journal, run.id, verdict)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Back from the triggerer with the session's end."""
        from airflow_provider_managed_agents.assets import announce
        from airflow_provider_managed_agents.operators.run_journal import RunJournal
        from airflow_provider_managed_agents.waiting.sessions import verdict_from_event

        carry = event["carry"]
        run_id = str(carry["run_id"])
        # Asset events set before deferring are gone: the resumed task announces again.
        ids = {"deployment_id": carry.get("deployment_id"), "session_id": carry.get("session_id")}
        announce(context, self.outlets, deployment_run_id=run_id, **ids)
        return self._session_ended(context, RunJournal.for_task(context), run_id, verdict_from_event(event))

    def _session_ended(self, context: Context, journal: RunJournal, run_id: str, verdict: Any) -> str:
        error = self._publish_session(context, verdict)
        journal.forget()  # the session's ending is final: nothing for a retry to carry on
        if error is not None:
            raise error
        return run_id

    def on_kill(self) -> None:
        """Killed: stop the session this task started and was following, then close the client."""
        self._stop_followed_session()
        super().on_kill()

    def _adopt(self, earlier: RunAttempt | None, deployment_id: str) -> DeploymentRun | None:
        """The run an earlier try of this task made, when this try must carry on with it."""
        from airflow_provider_managed_agents.hooks.managed_agents import RUN_CLOCK_ALLOWANCE
        from airflow_provider_managed_agents.operators.reporting import describe_run

        if earlier is None or earlier.deployment_id != deployment_id:
            return None
        if earlier.state == "following" and earlier.run_id:
            run = self.hook.get_deployment_run(earlier.run_id)
            self.log.info("Adopted run %s, started by try %d of this task", run.id, earlier.try_number)
            return run
        start, end = earlier.window(longest_send(self.hook))
        found = self.hook.find_manual_run(deployment_id, created_from=start, created_to=end + RUN_CLOCK_ALLOWANCE)
        if found is None:
            self.log.info("Try %d of this task sent no run that landed; sending one", earlier.try_number)
            return None
        if found.error is not None:
            self.log.info(
                "Try %d of this task made run %s, which failed (%s); sending a new one",
                earlier.try_number,
                found.id,
                found.error.type,
            )
            return None
        self.log.info(
            "Adopted run %s, sent by try %d of this task, which never learned its outcome: %s",
            found.id,
            earlier.try_number,
            describe_run(found),
        )
        return found

    def _send(self, journal: RunJournal, deployment_id: str, try_number: int) -> DeploymentRun:
        """Start the run, with the journal saying so while its outcome is unknown."""
        import dataclasses

        from airflow_provider_managed_agents.exceptions import ManagedAgentsError
        from airflow_provider_managed_agents.hooks.wire import is_ambiguous
        from airflow_provider_managed_agents.models.base import format_timestamp
        from airflow_provider_managed_agents.waiting import clock

        attempt = self._attempt(deployment_id, try_number)
        journal.write(attempt)
        try:
            return self.hook.run_deployment(deployment_id)
        except ManagedAgentsError as exc:
            if is_ambiguous(exc):
                journal.write(dataclasses.replace(attempt, sent_until=format_timestamp(clock.now())))
            else:
                journal.forget()
            raise

    @staticmethod
    def _attempt(deployment_id: str, try_number: int) -> RunAttempt:
        from airflow_provider_managed_agents.hooks.managed_agents import RUN_CLOCK_ALLOWANCE
        from airflow_provider_managed_agents.models.base import format_timestamp
        from airflow_provider_managed_agents.operators.run_journal import RunAttempt
        from airflow_provider_managed_agents.waiting import clock

        return RunAttempt(deployment_id, try_number, format_timestamp(clock.now() - RUN_CLOCK_ALLOWANCE))

    def _publish_run(self, context: Context, run: DeploymentRun) -> None:
        from airflow_provider_managed_agents.assets import announce

        ti = context["ti"]
        ti.xcom_push(key="deployment_run", value=run.model_dump(mode="json"))
        ti.xcom_push(key="session_id", value=run.session_id)
        self._link_to(context, run.deployment_id)
        announce(
            context, self.outlets, deployment_id=run.deployment_id, deployment_run_id=run.id, session_id=run.session_id
        )


def longest_send(hook: ManagedAgentsHook) -> Any:
    """How long after its start a try's run request (all its retries) can still have landed."""
    from datetime import timedelta

    from airflow_provider_managed_agents.hooks.wire import MAX_BACKOFF_SECONDS

    settings = hook.settings
    seconds = settings.timeout * (settings.max_retries + 1) + MAX_BACKOFF_SECONDS * settings.max_retries
    return timedelta(seconds=seconds + 60)
