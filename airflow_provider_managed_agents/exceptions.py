"""The provider's exception hierarchy.

Three families, all under :class:`ManagedAgentsError` (itself an ``AirflowException``):

- :class:`ManagedAgentsValidationError`: bad input, found before any request is sent.
- :class:`ManagedAgentsAPIError` and its per-status subclasses, plus connection and timeout
  errors: the HTTP conversation failed (:class:`ManagedAgentsClientError` for the statuses no
  retry can fix); :class:`ManagedAgentsResponseError`: an answer that cannot be read.
- :class:`DeploymentRunError` and one subclass per run error type: the API answered, and the
  run it recorded failed to create a session. :func:`exception_for_run` picks the class.

Exceptions that retrying cannot fix also derive from ``AirflowFailException``, so Airflow fails
the task at once instead of spending its retries. This module stays free of pydantic and httpx:
DAG files import it to catch or branch on these classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_managed_agents.compat import AirflowException, AirflowFailException
from airflow_provider_managed_agents.models.enums import RunErrorType

if TYPE_CHECKING:
    from airflow_provider_managed_agents.models.deployments import DeploymentState
    from airflow_provider_managed_agents.models.runs import DeploymentRun


class ManagedAgentsError(AirflowException):
    """Base of every error raised by this provider."""


# --- bad input -----------------------------------------------------------------------------


class ManagedAgentsValidationError(ManagedAgentsError, AirflowFailException, ValueError):
    """Input the API would refuse, caught before anything was sent.

    ``problems`` lists ``(field path, message)`` pairs; the message names each field and limit
    and never echoes the offending value (it may be a secret).
    """

    def __init__(self, what: str, problems: list[tuple[str, str]]):
        self.what = what
        self.problems = problems
        lines = "; ".join(f"{path}: {message}" if path else message for path, message in problems)
        super().__init__(f"Invalid {what}: {lines}")


# --- HTTP errors ---------------------------------------------------------------------------


class ManagedAgentsAPIError(ManagedAgentsError):
    """The API answered with an error status."""

    http_status: ClassVar[int | None] = None

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_type: str | None = None,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
        method: str | None = None,
        path: str | None = None,
    ):
        self.status = status
        self.error_type = error_type
        self.message = message
        self.request_id = request_id
        self.details = details or {}
        self.method = method
        self.path = path
        where = f" on {method} {path}" if method and path else ""
        rid = f" (request-id {request_id})" if request_id else ""
        super().__init__(f"{status} {error_type or 'error'}{where}: {message}{rid}")

    @property
    def error_code(self) -> str | None:
        code = self.details.get("error_code")
        return code if isinstance(code, str) else None


class ManagedAgentsClientError(ManagedAgentsAPIError, AirflowFailException):
    """A client error no retry can fix (400, 401, 403, 404, 413, 422): the task fails at once
    instead of spending its retries on the same answer."""


class ManagedAgentsBadRequestError(ManagedAgentsClientError):
    """400: the request was invalid (e.g. running or modifying an archived deployment)."""

    http_status = 400


class ManagedAgentsAuthenticationError(ManagedAgentsClientError):
    """401: the API key was rejected."""

    http_status = 401


class ManagedAgentsPermissionError(ManagedAgentsClientError):
    """403: the key may not do this."""

    http_status = 403


class ManagedAgentsNotFoundError(ManagedAgentsClientError):
    """404: no such deployment, run or session."""

    http_status = 404


class ManagedAgentsRequestTimeoutError(ManagedAgentsAPIError):
    """408: the service timed the request out (retried)."""

    http_status = 408


class ManagedAgentsConflictError(ManagedAgentsAPIError):
    """409: the request conflicts with the current state."""

    http_status = 409


class ManagedAgentsRequestTooLargeError(ManagedAgentsClientError):
    """413: the request body is too large."""

    http_status = 413


class ManagedAgentsUnprocessableEntityError(ManagedAgentsClientError):
    """422: the request was well-formed but not acceptable."""

    http_status = 422


class ManagedAgentsRateLimitError(ManagedAgentsAPIError):
    """429: too many requests (retried, honouring ``retry-after``)."""

    http_status = 429


class ManagedAgentsServerError(ManagedAgentsAPIError):
    """Any 5xx."""


class ManagedAgentsOverloadedError(ManagedAgentsServerError):
    """529: the service is overloaded (retried)."""

    http_status = 529


_STATUS_CLASSES: dict[int, type[ManagedAgentsAPIError]] = {
    cls.http_status: cls
    for cls in (
        ManagedAgentsBadRequestError,
        ManagedAgentsAuthenticationError,
        ManagedAgentsPermissionError,
        ManagedAgentsNotFoundError,
        ManagedAgentsRequestTimeoutError,
        ManagedAgentsConflictError,
        ManagedAgentsRequestTooLargeError,
        ManagedAgentsUnprocessableEntityError,
        ManagedAgentsRateLimitError,
        ManagedAgentsOverloadedError,
    )
    if cls.http_status is not None
}


def api_error_class(status: int) -> type[ManagedAgentsAPIError]:
    """The exception class for an HTTP error status."""
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    return ManagedAgentsServerError if status >= 500 else ManagedAgentsAPIError


class ManagedAgentsConnectionError(ManagedAgentsError):
    """No usable response: the connection failed or dropped.

    ``request_sent`` is False when the request provably never reached the server (connect
    failure), True or None when it may have been processed.
    """

    def __init__(self, message: str, *, request_sent: bool | None = None):
        self.request_sent = request_sent
        super().__init__(message)


class ManagedAgentsTimeoutError(ManagedAgentsConnectionError):
    """The request timed out; it may or may not have been processed."""


class ManagedAgentsResponseError(ManagedAgentsError):
    """A success response this client cannot read at all (not merely a new field or enum value,
    which parse): names the field and the ``request-id``."""

    def __init__(self, message: str, *, request_id: str | None = None, field: str | None = None):
        self.request_id = request_id
        self.field = field
        super().__init__(message)

    @classmethod
    def from_validation(cls, exc: Any, label: str, request_id: str | None) -> ManagedAgentsResponseError:
        """From a pydantic ``ValidationError`` (never echoing the input: it may hold a secret)."""
        first = exc.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(body)"
        rid = f" (request-id {request_id})" if request_id else ""
        count = exc.error_count()
        more = f" and {count - 1} more" if count > 1 else ""
        return cls(
            f"Unreadable response to {label}: {field}: {first['msg']}{more}{rid}", request_id=request_id, field=field
        )


# --- run errors ----------------------------------------------------------------------------


class DeploymentRunError(ManagedAgentsError):
    """A deployment run recorded an error instead of creating a session.

    ``error_type`` is the API's original string (also for types newer than this client);
    ``retryable`` says whether a later attempt may succeed.
    """

    error_type_key: ClassVar[RunErrorType | None] = None
    retryable: ClassVar[bool] = False

    def __init__(self, run: DeploymentRun, *, error_type: str, message: str):
        self.run = run
        self.error_type = error_type
        self.message = message
        self.run_id = run.id
        self.deployment_id = run.deployment_id
        super().__init__(f"Deployment run {run.id} of {run.deployment_id} failed with {error_type}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_run_error, (type(self), self.run, self.error_type, self.message))


def _rebuild_run_error(
    cls: type[DeploymentRunError], run: DeploymentRun, error_type: str, message: str
) -> DeploymentRunError:
    return cls(run, error_type=error_type, message=message)


class TerminalDeploymentRunError(DeploymentRunError, AirflowFailException):
    """A run error that retrying cannot fix: the task fails without using its retries."""


class EnvironmentArchivedRunError(TerminalDeploymentRunError):
    """The run failed with ``environment_archived_error``."""

    error_type_key = RunErrorType.ENVIRONMENT_ARCHIVED


class AgentArchivedRunError(TerminalDeploymentRunError):
    """The run failed with ``agent_archived_error``."""

    error_type_key = RunErrorType.AGENT_ARCHIVED


class EnvironmentNotFoundRunError(TerminalDeploymentRunError):
    """The run failed with ``environment_not_found_error``."""

    error_type_key = RunErrorType.ENVIRONMENT_NOT_FOUND


class VaultNotFoundRunError(TerminalDeploymentRunError):
    """The run failed with ``vault_not_found_error``."""

    error_type_key = RunErrorType.VAULT_NOT_FOUND


class VaultArchivedRunError(TerminalDeploymentRunError):
    """The run failed with ``vault_archived_error``."""

    error_type_key = RunErrorType.VAULT_ARCHIVED


class FileNotFoundRunError(TerminalDeploymentRunError):
    """The run failed with ``file_not_found_error``."""

    error_type_key = RunErrorType.FILE_NOT_FOUND


class MemoryStoreArchivedRunError(TerminalDeploymentRunError):
    """The run failed with ``memory_store_archived_error``."""

    error_type_key = RunErrorType.MEMORY_STORE_ARCHIVED


class SkillNotFoundRunError(TerminalDeploymentRunError):
    """The run failed with ``skill_not_found_error``."""

    error_type_key = RunErrorType.SKILL_NOT_FOUND


class SessionResourceNotFoundRunError(TerminalDeploymentRunError):
    """The run failed with ``session_resource_not_found_error``."""

    error_type_key = RunErrorType.SESSION_RESOURCE_NOT_FOUND


class WorkspaceArchivedRunError(TerminalDeploymentRunError):
    """The run failed with ``workspace_archived_error``."""

    error_type_key = RunErrorType.WORKSPACE_ARCHIVED


class OrganizationDisabledRunError(TerminalDeploymentRunError):
    """The run failed with ``organization_disabled_error``."""

    error_type_key = RunErrorType.ORGANIZATION_DISABLED


class SessionCreationRejectedRunError(TerminalDeploymentRunError):
    """The run failed with ``session_creation_rejected_error``."""

    error_type_key = RunErrorType.SESSION_CREATION_REJECTED


class SelfHostedResourcesUnsupportedRunError(TerminalDeploymentRunError):
    """The run failed with ``self_hosted_resources_unsupported_error``."""

    error_type_key = RunErrorType.SELF_HOSTED_RESOURCES_UNSUPPORTED


class McpEgressBlockedRunError(TerminalDeploymentRunError):
    """The run failed with ``mcp_egress_blocked_error``."""

    error_type_key = RunErrorType.MCP_EGRESS_BLOCKED


class SessionRateLimitedRunError(DeploymentRunError):
    """Session creation was rate limited; the next attempt may succeed, so task retries apply."""

    error_type_key = RunErrorType.SESSION_RATE_LIMITED
    retryable = True


class UnknownRunError(DeploymentRunError):
    """The fallback: ``unknown_error`` or a type newer than this client. Airflow task retries
    apply, since nothing says retrying is futile; ``retryable`` stays False, so a sensor's
    ``wait_through_retryable`` does not wait through an error it cannot judge."""

    error_type_key = RunErrorType.UNKNOWN


RUN_ERROR_CLASSES: dict[RunErrorType, type[DeploymentRunError]] = {
    cls.error_type_key: cls
    for cls in (
        EnvironmentArchivedRunError,
        AgentArchivedRunError,
        EnvironmentNotFoundRunError,
        VaultNotFoundRunError,
        VaultArchivedRunError,
        FileNotFoundRunError,
        MemoryStoreArchivedRunError,
        SkillNotFoundRunError,
        SessionResourceNotFoundRunError,
        WorkspaceArchivedRunError,
        OrganizationDisabledRunError,
        SessionCreationRejectedRunError,
        SelfHostedResourcesUnsupportedRunError,
        McpEgressBlockedRunError,
        SessionRateLimitedRunError,
        UnknownRunError,
    )
    if cls.error_type_key is not None
}


def run_error_class(error_type: str) -> type[DeploymentRunError]:
    """The exception class for a run error type; unknown types map to :class:`UnknownRunError`."""
    return RUN_ERROR_CLASSES[RunErrorType.resolve(error_type)]


def exception_for_run(run: DeploymentRun) -> DeploymentRunError | None:
    """The typed exception for a failed run, or None when the run created a session."""
    if run.error is None:
        return None
    cls = run_error_class(run.error.type)
    return cls(run, error_type=run.error.type, message=run.error.message)


# --- waiting on a deployment that cannot fire ----------------------------------------------


class DeploymentNotRunnableError(ManagedAgentsError, AirflowFailException):
    """A sensor waited for a scheduled run of a deployment that will not fire."""

    def __init__(self, deployment_id: str, message: str):
        self.deployment_id = deployment_id
        super().__init__(message)


class DeploymentArchivedError(DeploymentNotRunnableError):
    """The deployment is archived: no run will ever come."""

    def __init__(self, deployment_id: str):
        super().__init__(deployment_id, f"Deployment {deployment_id} is archived: it will never run again.")


class DeploymentPausedError(DeploymentNotRunnableError):
    """The deployment is paused. ``paused_reason_type`` is ``manual`` or ``error``; for an
    auto-pause, ``error_type`` is the run error type that paused it."""

    def __init__(self, deployment_id: str, *, paused_reason_type: str, error_type: str | None = None):
        self.paused_reason_type = paused_reason_type
        self.error_type = error_type
        if paused_reason_type == "error":
            why = f"auto-paused after a scheduled run failed with {error_type or 'an unknown error'}"
        else:
            why = f"paused ({paused_reason_type})"
        super().__init__(
            deployment_id,
            f"Deployment {deployment_id} is {why}: no scheduled run will fire until it is unpaused.",
        )

    @property
    def run_error_class(self) -> type[DeploymentRunError] | None:
        """For an auto-pause, the typed class of the run error that paused it (the same mapping
        as :func:`exception_for_run`); None for a manual pause."""
        return run_error_class(self.error_type) if self.error_type else None


def exception_for_unrunnable(deployment: DeploymentState) -> DeploymentNotRunnableError | None:
    """Why a deployment's schedule cannot fire (archived or paused), or None when it can."""
    if deployment.is_archived:
        return DeploymentArchivedError(deployment.id)
    if deployment.is_paused:
        reason = deployment.paused_reason
        reason_type = getattr(reason, "type", "manual")
        error = getattr(reason, "error", None)
        return DeploymentPausedError(
            deployment.id, paused_reason_type=reason_type, error_type=getattr(error, "type", None)
        )
    return None


# --- sessions that ended without doing their work -------------------------------------------


class SessionError(ManagedAgentsError, AirflowFailException):
    """A followed session ended without finishing its work. Final: Airflow does not retry it
    (a retry would re-attach to the same session, never start another run).

    ``session_id``, ``status`` (the session's), ``stop_reason`` (the type string of the newest
    idle event's stop reason, or None) and ``usage`` (as the API gives it) are always set.
    """

    def __init__(
        self,
        message: str,
        *,
        session_id: str,
        status: str,
        stop_reason: str | None = None,
        usage: dict[str, Any] | None = None,
    ):
        self.session_id = session_id
        self.status = status
        self.stop_reason = stop_reason
        self.usage = usage or {}
        super().__init__(message)


class SessionRequiresActionError(SessionError):
    """The session is idle waiting for a tool confirmation or a custom tool result
    (``event_ids``): nobody in a pipeline will answer it."""

    def __init__(self, message: str, *, event_ids: list[str] | None = None, **facts: Any):
        self.event_ids = list(event_ids or [])
        super().__init__(message, **facts)


class SessionRetriesExhaustedError(SessionError):
    """The turn ended after repeated errors; ``error_type`` / ``error_message`` are the newest
    ``session.error``'s."""

    def __init__(self, message: str, *, error_type: str | None = None, error_message: str | None = None, **facts: Any):
        self.error_type = error_type
        self.error_message = error_message
        super().__init__(message, **facts)


class SessionBudgetReachedError(SessionError):
    """The session hit its spend cap (``budget``) before the agent finished."""


class SessionRefusedError(SessionError):
    """The model refused: ``category`` (cyber, bio, ...) and ``explanation``."""

    def __init__(self, message: str, *, category: str | None = None, explanation: str | None = None, **facts: Any):
        self.category = category
        self.explanation = explanation
        super().__init__(message, **facts)


class SessionTerminatedError(SessionError):
    """The session terminated (an error, an archive, its end of life); ``error_type`` /
    ``error_message`` are the newest ``session.error``'s, when there is one."""

    def __init__(self, message: str, *, error_type: str | None = None, error_message: str | None = None, **facts: Any):
        self.error_type = error_type
        self.error_message = error_message
        super().__init__(message, **facts)


class SessionOutcomeNotMetError(SessionError):
    """The turn ended but its defined outcome was not met: ``result`` is ``failed`` (the rubric
    does not apply), ``max_iterations_reached`` or ``interrupted``, with the evaluation's
    ``explanation``, ``iteration`` and ``outcome_id``."""

    def __init__(
        self,
        message: str,
        *,
        result: str,
        explanation: str | None = None,
        iteration: int | None = None,
        outcome_id: str | None = None,
        **facts: Any,
    ):
        self.result = result
        self.explanation = explanation
        self.iteration = iteration
        self.outcome_id = outcome_id
        super().__init__(message, **facts)


class SessionInterruptedError(SessionError):
    """The turn ended because someone sent ``user.interrupt`` (no outcome was defined to say
    more): the agent's work did not finish."""


class UnknownSessionStopError(SessionError):
    """A stop reason newer than this client (``stop_reason`` keeps its type string)."""


# --- across the triggerer boundary -----------------------------------------------------------


class MalformedTriggerEventError(ManagedAgentsError, AirflowFailException):
    """A trigger event this provider cannot read (a field missing, another trigger's or another
    version's event): names the trigger and the field. Retrying would read the same event."""
