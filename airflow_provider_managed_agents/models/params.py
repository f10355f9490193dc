"""Request parameters: every documented limit, checked before anything is sent.

:func:`validate_params` is the one entry point: it turns pydantic's errors into a
:class:`~airflow_provider_managed_agents.exceptions.ManagedAgentsValidationError` whose message
names each field and its limit and never echoes the input (it may hold a secret).
The emulator validates incoming bodies with these same classes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
from airflow_provider_managed_agents.models.base import ApiModel, Timestamp, format_timestamp, tag_or_fallback
from airflow_provider_managed_agents.models.cron import parse_cron, zone
from airflow_provider_managed_agents.models.deployments import AgentReference, Budget, Money
from airflow_provider_managed_agents.models.events import (
    ContentBlock,
    DefineOutcomeEvent,
    FileRubric,
    TextBlock,
    TextRubric,
    UnknownObject,
    UserMessageEvent,
)
from airflow_provider_managed_agents.models.resources import (
    REVEAL_SECRETS,
    FileResource,
    GitHubRepositoryResource,
    MemoryStoreResource,
)

INITIAL_EVENTS_MIN, INITIAL_EVENTS_MAX = 1, 50
METADATA_MAX_PAIRS = 16
METADATA_KEY_MAX_CHARS = 64
METADATA_VALUE_MAX_CHARS = 512
RESOURCES_MAX = 500
VAULT_IDS_MAX = 50
DEPLOYMENTS_PAGE_MAX = 100
DEPLOYMENT_RUNS_PAGE_MAX = 1000
# Not stated by the SDK; the emulator enforces these, and the API is lenient about less.
SESSION_PAGE_MAX = 1000
SESSION_EVENTS_PAGE_MAX = 1000
IDEMPOTENCY_METADATA_KEY = "airflow_idempotency_key"
RUBRIC_MAX_CHARS = 262_144
MAX_ITERATIONS_LIMIT = 20
MEMORY_STORE_INSTRUCTIONS_MAX_CHARS = 4_096


def _check_metadata_entries(metadata: dict[str, str | None]) -> None:
    for key, value in metadata.items():
        if not key:
            raise ValueError("keys must be non-empty")
        if len(key) > METADATA_KEY_MAX_CHARS:
            raise ValueError(f"key {key[:20]!r}... is {len(key)} chars; keys may be at most {METADATA_KEY_MAX_CHARS}")
        if value is not None and len(value) > METADATA_VALUE_MAX_CHARS:
            raise ValueError(
                f"value of key {key!r} is {len(value)} chars; values may be at most {METADATA_VALUE_MAX_CHARS}"
            )


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Validate a complete metadata bag against the API's limits."""
    if len(metadata) > METADATA_MAX_PAIRS:
        raise ValueError(f"{len(metadata)} pairs; at most {METADATA_MAX_PAIRS} are allowed")
    _check_metadata_entries(dict(metadata))
    return metadata


def check_metadata_patch(patch: dict[str, str | None]) -> dict[str, str | None]:
    """Validate a metadata patch: the upserts alone may not exceed the pair limit."""
    upserts = sum(1 for value in patch.values() if value is not None)
    if upserts > METADATA_MAX_PAIRS:
        raise ValueError(f"{upserts} pairs to set; at most {METADATA_MAX_PAIRS} are allowed")
    _check_metadata_entries(patch)
    return patch


def apply_metadata_patch(current: dict[str, str], patch: dict[str, str | None]) -> dict[str, str]:
    """The metadata bag after a merge patch: a null value deletes its key."""
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return check_metadata(merged)


def checked_id(value: Any, field: str) -> str:
    """An id argument (a deployment, run or session id, usually rendered from a template),
    refused before any request when it is empty or a dot segment."""
    if not isinstance(value, str) or not value.strip() or value in {".", ".."}:
        raise ManagedAgentsValidationError("arguments", [(field, "must be a non-empty id")])
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must be a non-empty string")
    return value


Metadata = Annotated[dict[str, str], AfterValidator(check_metadata)]
MetadataPatch = Annotated[dict[str, str | None], AfterValidator(check_metadata_patch)]
NonBlank = Annotated[str, AfterValidator(_non_blank)]


# --- request shapes: the response models, narrowed to what the API accepts ------------------
# Responses parse leniently (models.deployments, models.events, models.resources); only what is
# sent is held to the documented limits and closed enums, here.


class AgentReferenceParam(AgentReference):
    """``{"type": "agent", "id": ..., "version": N}``: a version, when given, is at least 1."""

    id: NonBlank
    version: int | None = Field(default=None, ge=1)


AgentParam = Annotated[
    Annotated[NonBlank, Tag("id")] | Annotated[AgentReferenceParam, Tag("reference")],
    Discriminator(lambda value: "id" if isinstance(value, str) else "reference"),
]


class ScheduleSpec(ApiModel):
    """A cron schedule as written in requests; validated exactly as the API does."""

    type: Literal["cron"] = "cron"
    expression: str
    timezone: str

    @model_validator(mode="before")
    @classmethod
    def _not_a_bare_expression(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                'a schedule is {"type": "cron", "expression": "0 3 * * *", "timezone": "UTC"} '
                "(an IANA timezone is required), not a cron string"
            )
        return value

    @field_validator("expression")
    @classmethod
    def _valid_cron(cls, expression: str) -> str:
        parse_cron(expression)
        return expression

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, timezone: str) -> str:
        zone(timezone)
        return timezone


class UserMessageParam(UserMessageEvent):
    """A ``user.message`` with at least one content block."""

    content: list[ContentBlock] = Field(min_length=1)


class TextRubricParam(TextRubric):
    """An inline rubric of at most ``RUBRIC_MAX_CHARS`` characters."""

    content: str = Field(max_length=RUBRIC_MAX_CHARS)


class FileRubricParam(FileRubric):
    """A rubric in an uploaded file."""

    file_id: NonBlank


RubricParam = Annotated[
    Annotated[TextRubricParam, Tag("text")]
    | Annotated[FileRubricParam, Tag("file")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback({"text", "file"}, "unknown")),
]


class DefineOutcomeParam(DefineOutcomeEvent):
    """A ``user.define_outcome`` with 1 to ``MAX_ITERATIONS_LIMIT`` iterations."""

    rubric: RubricParam
    max_iterations: int | None = Field(default=None, ge=1, le=MAX_ITERATIONS_LIMIT)


class SystemMessageParam(ApiModel):
    """A ``system.message`` with at least one text block (a response may hold other blocks:
    :class:`SystemMessageEvent`)."""

    type: Literal["system.message"] = "system.message"
    content: list[TextBlock] = Field(min_length=1)


InitialEventParam = Annotated[
    Annotated[UserMessageParam, Tag("user.message")]
    | Annotated[DefineOutcomeParam, Tag("user.define_outcome")]
    | Annotated[SystemMessageParam, Tag("system.message")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback({"user.message", "user.define_outcome", "system.message"}, "unknown")),
]


class GitHubRepositoryParam(GitHubRepositoryResource):
    """A repository to mount; ``authorization_token`` is write-only."""

    url: NonBlank


class FileResourceParam(FileResource):
    """An uploaded file to mount."""

    file_id: NonBlank


class MemoryStoreParam(MemoryStoreResource):
    """A memory store to attach, with a known ``access`` and bounded instructions."""

    memory_store_id: NonBlank
    access: Literal["read_write", "read_only"] | None = None
    instructions: str | None = Field(default=None, max_length=MEMORY_STORE_INSTRUCTIONS_MAX_CHARS)


ResourceParam = Annotated[
    Annotated[GitHubRepositoryParam, Tag("github_repository")]
    | Annotated[FileResourceParam, Tag("file")]
    | Annotated[MemoryStoreParam, Tag("memory_store")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback({"github_repository", "file", "memory_store"}, "unknown")),
]


class MoneyParam(Money):
    """An amount in integer minor units (no leading zeros) of USD, the only currency."""

    amount: str = Field(pattern=r"^(0|[1-9][0-9]*)$", description="integer minor units")
    currency: Literal["USD"] = "USD"


class BudgetParam(Budget):
    """``{"type": "limit", "max_list_cost": {...}}``."""

    type: Literal["limit"] = "limit"
    max_list_cost: MoneyParam


def _system_message_placement(events: list[InitialEventParam]) -> list[InitialEventParam]:
    """At most one ``system.message``: the final event, right after the ``user.message`` it
    accompanies (the API's rule)."""
    kinds = [getattr(event, "type", None) for event in events]
    count = kinds.count("system.message")
    if count > 1:
        raise ValueError(f"at most one system.message per request, got {count}")
    if count == 1:
        at = kinds.index("system.message")
        if at != len(kinds) - 1:
            raise ValueError(f"system.message must be the final event (it is event {at} of {len(kinds)})")
        if at == 0 or kinds[at - 1] != "user.message":
            raise ValueError("system.message must immediately follow a user.message")
    return events


InitialEvents = Annotated[
    list[InitialEventParam],
    Field(min_length=INITIAL_EVENTS_MIN, max_length=INITIAL_EVENTS_MAX),
    AfterValidator(_system_message_placement),
]
Resources = Annotated[list[ResourceParam], Field(max_length=RESOURCES_MAX)]
VaultIds = Annotated[list[NonBlank], Field(max_length=VAULT_IDS_MAX)]


def _unknown_variants(value: Any, path: str) -> list[tuple[str, str]]:
    """Paths of parts whose ``type`` this client does not know: fine in a response, but a
    request carrying one would be refused by the API."""
    if isinstance(value, UnknownObject):
        return [(path, f"unsupported type {value.type!r}")]
    if isinstance(value, BaseModel):
        found = []
        for name in type(value).model_fields:
            found += _unknown_variants(getattr(value, name), f"{path}.{name}" if path else name)
        return found
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _unknown_variants(item, f"{path}[{i}]")]
    return []


class RequestParams(ApiModel):
    """Request bodies refuse fields the API does not have (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _known_variants_only(self) -> RequestParams:
        problems = _unknown_variants(self, "")
        if problems:
            raise ValueError("; ".join(f"{path}: {msg}" for path, msg in problems))
        return self

    def to_body(self) -> dict[str, Any]:
        """The JSON body: only fields the caller set (omitted = preserve, None = clear), with
        write-only secrets revealed for the wire and nothing else."""
        dumped = self.model_dump(mode="json", include=set(self.model_fields_set), context={REVEAL_SECRETS: True})
        return {key: value if key == "metadata" else _drop_nested_nulls(value) for key, value in dumped.items()}


def _drop_nested_nulls(value: Any) -> Any:
    # Optional members of nested objects left unset are omitted rather than sent as null.
    if isinstance(value, dict):
        return {k: _drop_nested_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nested_nulls(v) for v in value]
    return value


class CreateDeploymentParams(RequestParams):
    """The create request's body, every documented limit checked before it is sent."""

    agent: AgentParam
    environment_id: NonBlank
    initial_events: InitialEvents
    name: NonBlank
    description: str | None = None
    metadata: Metadata | None = None
    resources: Resources | None = None
    schedule: ScheduleSpec | None = None
    vault_ids: VaultIds | None = None
    budget: BudgetParam | None = None


CreateParamsT = TypeVar("CreateParamsT", bound=RequestParams)


def with_idempotency_marker(
    params: CreateParamsT, key: str, what: str = "create_deployment parameters"
) -> CreateParamsT:
    """``params`` (a create's, with a ``metadata`` field) with the idempotency marker in
    ``metadata``, within the metadata limits.

    One policy, refused before anything is sent rather than losing exactly-once silently: the
    metadata may already hold the marker only with the same value, and must have room for it.
    """
    metadata = dict(getattr(params, "metadata", None) or {})
    held = metadata.get(IDEMPOTENCY_METADATA_KEY, key)
    if held != key:
        raise ManagedAgentsValidationError(
            what,
            [
                (
                    f"metadata.{IDEMPOTENCY_METADATA_KEY}",
                    "holds another value than the idempotency key; set one of them, not both",
                )
            ],
        )
    metadata[IDEMPOTENCY_METADATA_KEY] = key
    try:
        check_metadata(metadata)
    except ValueError as exc:
        raise ManagedAgentsValidationError(
            what,
            [("metadata", f"no room for the idempotency marker {IDEMPOTENCY_METADATA_KEY!r}: {exc}")],
        ) from None
    return params.model_copy(update={"metadata": metadata})


def not_clearable(cls: Any, value: Any) -> Any:
    """An update's ``before`` validator for a field the API requires: null cannot clear it."""
    if value is None:
        raise ValueError("cannot be cleared with null; omit it to keep the current value")
    return value


class UpdateDeploymentParams(RequestParams):
    """Three states per field: omitted (preserve), None (clear, where the API allows it),
    a value (replace). ``metadata`` is a merge patch where a None value deletes a key."""

    agent: AgentParam | None = None
    environment_id: NonBlank | None = None
    initial_events: InitialEvents | None = None
    name: NonBlank | None = None
    description: str | None = None
    metadata: MetadataPatch | None = None
    resources: Resources | None = None
    schedule: ScheduleSpec | None = None
    vault_ids: VaultIds | None = None
    budget: BudgetParam | None = None

    _not_clearable = field_validator("agent", "environment_id", "initial_events", "name", mode="before")(not_clearable)


class ListFilters(BaseModel):
    """Query filters; field aliases are the wire names (``created_at[gte]``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_query(self) -> dict[str, str | list[str]]:
        query: dict[str, str | list[str]] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None or value == []:
                continue
            # Arrays go out as repeated ``name[]=`` keys, as the official SDK sends them.
            query[field.alias or name] = [str(v) for v in value] if isinstance(value, list) else _query_text(value)
        return query


def _query_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_timestamp(value)
    return str(value)


class DeploymentListFilters(ListFilters):
    """Query parameters of the deployments list (wire names as aliases)."""

    agent_id: str | None = None
    status: Literal["active", "paused"] | None = None
    include_archived: bool | None = None
    created_at_gte: Timestamp | None = Field(default=None, alias="created_at[gte]")
    created_at_lte: Timestamp | None = Field(default=None, alias="created_at[lte]")
    limit: int | None = Field(default=None, ge=1, le=DEPLOYMENTS_PAGE_MAX)
    page: str | None = None

    @model_validator(mode="after")
    def _status_xor_archived(self) -> DeploymentListFilters:
        if self.status is not None and self.include_archived is not None:
            raise ValueError("status cannot be combined with include_archived")
        return self


class DeploymentRunListFilters(ListFilters):
    """Query parameters of the deployment runs list (wire names as aliases)."""

    deployment_id: str | None = None
    has_error: bool | None = None
    trigger_type: Literal["schedule", "manual"] | None = None
    created_at_gt: Timestamp | None = Field(default=None, alias="created_at[gt]")
    created_at_gte: Timestamp | None = Field(default=None, alias="created_at[gte]")
    created_at_lt: Timestamp | None = Field(default=None, alias="created_at[lt]")
    created_at_lte: Timestamp | None = Field(default=None, alias="created_at[lte]")
    limit: int | None = Field(default=None, ge=1, le=DEPLOYMENT_RUNS_PAGE_MAX)
    page: str | None = None


class SessionListFilters(ListFilters):
    """Query parameters of the sessions list (wire names as aliases; ``statuses`` as ``statuses[]``)."""

    agent_id: str | None = None
    agent_version: int | None = Field(default=None, ge=1)
    deployment_id: str | None = None
    memory_store_id: str | None = None
    statuses: list[Literal["rescheduling", "running", "idle", "terminated"]] | None = Field(
        default=None, alias="statuses[]"
    )
    include_archived: bool | None = None
    created_at_gt: Timestamp | None = Field(default=None, alias="created_at[gt]")
    created_at_gte: Timestamp | None = Field(default=None, alias="created_at[gte]")
    created_at_lt: Timestamp | None = Field(default=None, alias="created_at[lt]")
    created_at_lte: Timestamp | None = Field(default=None, alias="created_at[lte]")
    order: Literal["asc", "desc"] | None = None
    limit: int | None = Field(default=None, ge=1, le=SESSION_PAGE_MAX)
    page: str | None = None

    @model_validator(mode="after")
    def _version_needs_agent(self) -> SessionListFilters:
        if self.agent_version is not None and self.agent_id is None:
            raise ValueError("agent_version needs agent_id")
        return self


class SessionEventListFilters(ListFilters):
    """Query parameters of a session's events (``created_at`` bounds apply to ``processed_at``;
    ``types`` goes out as ``types[]``)."""

    types: list[NonBlank] | None = Field(default=None, alias="types[]")
    created_at_gt: Timestamp | None = Field(default=None, alias="created_at[gt]")
    created_at_gte: Timestamp | None = Field(default=None, alias="created_at[gte]")
    created_at_lt: Timestamp | None = Field(default=None, alias="created_at[lt]")
    created_at_lte: Timestamp | None = Field(default=None, alias="created_at[lte]")
    order: Literal["asc", "desc"] | None = None
    limit: int | None = Field(default=None, ge=1, le=SESSION_EVENTS_PAGE_MAX)
    page: str | None = None


ParamsT = TypeVar("ParamsT", bound=BaseModel)


def format_location(loc: tuple[int | str, ...], data: Any) -> str:
    """``('initial_events', 0, 'content')`` -> ``initial_events[0].content``.

    Walks the input alongside the location so that the branch names pydantic inserts for
    unions (``ScheduleSpec``, a tag) are dropped: only real keys and indexes are kept.
    """
    path = ""
    current = data
    for part in loc:
        if isinstance(part, int) and isinstance(current, list) and part < len(current):
            path += f"[{part}]"
            current = current[part]
        elif isinstance(part, str) and isinstance(current, dict) and part in current:
            path += f".{part}" if path else part
            current = current[part]
        elif isinstance(part, str) and not isinstance(current, (dict, list)) and not path:
            path = part
    return path


def validate_params(model: type[ParamsT], data: dict[str, Any], what: str) -> ParamsT:
    """Validate ``data`` as ``model``; raise a ManagedAgentsValidationError naming each field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            message = error["msg"].removeprefix("Value error, ")
            loc = error["loc"]
            if error["type"] == "missing" and loc and isinstance(loc[-1], str):
                # The missing key is not in the input to walk: name it after its parent's path.
                parent = format_location(loc[:-1], data)
                problems.append((f"{parent}.{loc[-1]}" if parent else loc[-1], message))
            else:
                problems.append((format_location(loc, data), message))
        raise ManagedAgentsValidationError(what, problems) from None
