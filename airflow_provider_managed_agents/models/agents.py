"""Agents: the model, prompt and tools a session runs, versioned by the API.

Every update that changes an agent makes a new version (``version`` starts at 1); a deployment
pins one (``{"type": "agent", "id": ..., "version": N}``) or takes the latest at create. An update
may carry the ``version`` it was based on: the API refuses it when the agent moved on since.

The response model is lenient (unknown fields and tool types are kept, a bare-string ``model``
reads as ``{"id": ...}``); the request models hold the documented limits and are checked before
anything is sent.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from airflow_provider_managed_agents.models.base import ApiModel, Timestamp, tag_or_fallback
from airflow_provider_managed_agents.models.events import UnknownObject
from airflow_provider_managed_agents.models.params import (
    ListFilters,
    Metadata,
    MetadataPatch,
    NonBlank,
    RequestParams,
    not_clearable,
)

AGENT_NAME_MAX_CHARS = 256
AGENT_DESCRIPTION_MAX_CHARS = 2_048
AGENT_SYSTEM_MAX_CHARS = 100_000
AGENT_TOOLS_MAX = 256
AGENT_MCP_SERVERS_MAX = 20
AGENT_SKILLS_MAX = 64
AGENTS_PAGE_MAX = 100
CUSTOM_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _model_object(value: Any) -> Any:
    # Requests may name a model by its id alone; responses always give the object.
    return {"id": value} if isinstance(value, str) else value


def _effort_object(value: Any) -> Any:
    return {"type": value} if isinstance(value, str) else value


class ModelEffort(ApiModel):
    """How hard the model thinks: ``low``, ``medium``, ``high``, ``xhigh``, ``max`` (or newer)."""

    type: str


class AgentModel(ApiModel):
    """The model an agent runs, with its settings."""

    id: str
    effort: Annotated[ModelEffort | None, BeforeValidator(_effort_object)] = None
    inference_geo: str | None = None
    speed: str | None = None


class Agent(ApiModel):
    """An agent, at one of its versions."""

    id: str
    type: str = "agent"
    name: str
    model: Annotated[AgentModel, BeforeValidator(_model_object)]
    system: str | None = None
    description: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    mcp_servers: list[dict[str, Any]] = Field(default_factory=list)
    skills: list[dict[str, Any]] = Field(default_factory=list)
    metadata: Annotated[dict[str, str], BeforeValidator(lambda v: {} if v is None else v)] = Field(default_factory=dict)
    execution_identity: dict[str, Any] | None = None
    multiagent: dict[str, Any] | None = None
    version: int
    created_at: Timestamp
    updated_at: Timestamp | None = None
    archived_at: Timestamp | None = None

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    def pin(self) -> dict[str, Any]:
        """This version as a deployment pins it."""
        return {"type": "agent", "id": self.id, "version": self.version}


# --- requests -------------------------------------------------------------------------------


class AgentModelParam(ApiModel):
    """``model`` in a request, as an object: an id with optional settings (``effort`` as a name
    or ``{"type": ...}``)."""

    id: NonBlank
    effort: str | ModelEffort | None = None
    inference_geo: str | None = None
    speed: Literal["standard", "fast"] | None = None


class ToolsetParam(ApiModel):
    """The built-in tools (bash, edit, read, write, glob, grep, web fetch and search)."""

    type: Literal["agent_toolset_20260401"] = "agent_toolset_20260401"
    configs: list[dict[str, Any]] | None = None
    default_config: dict[str, Any] | None = None


class McpToolsetParam(ApiModel):
    """The tools of one MCP server named in ``mcp_servers``."""

    type: Literal["mcp_toolset"] = "mcp_toolset"
    mcp_server_name: str = Field(min_length=1, max_length=255)
    configs: list[dict[str, Any]] | None = None
    default_config: dict[str, Any] | None = None


class CustomToolParam(ApiModel):
    """A tool the session's client answers (``user.custom_tool_result``)."""

    type: Literal["custom"] = "custom"
    name: str
    description: NonBlank
    input_schema: dict[str, Any]

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        if not CUSTOM_TOOL_NAME.match(name):
            raise ValueError("must be 1-128 characters of letters, digits, '_' and '-'")
        return name

    @field_validator("input_schema")
    @classmethod
    def _object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if schema.get("type") != "object":
            raise ValueError('must be a JSON schema of "type": "object"')
        return schema


ToolParam = Annotated[
    Annotated[ToolsetParam, Tag("agent_toolset_20260401")]
    | Annotated[McpToolsetParam, Tag("mcp_toolset")]
    | Annotated[CustomToolParam, Tag("custom")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback({"agent_toolset_20260401", "mcp_toolset", "custom"}, "unknown")),
]


class McpServerParam(ApiModel):
    """An MCP server by URL; its tools come in through an ``mcp_toolset`` naming it."""

    type: Literal["url"] = "url"
    name: str = Field(min_length=1, max_length=255)
    url: NonBlank


class SkillParam(ApiModel):
    """A skill: ``anthropic`` (by name, e.g. ``xlsx``) or ``custom`` (``skill_...``); latest
    version unless one is given."""

    type: Literal["anthropic", "custom"]
    skill_id: NonBlank
    version: str | None = None


def _mcp_servers_referenced(tools: list[Any] | None, servers: list[McpServerParam] | None) -> None:
    names = [server.name for server in servers or []]
    if len(names) != len(set(names)):
        raise ValueError("mcp_servers: names must be unique")
    used = {tool.mcp_server_name for tool in tools or [] if isinstance(tool, McpToolsetParam)}
    unused = sorted(set(names) - used)
    if unused and tools is not None:
        raise ValueError(f"mcp_servers: {', '.join(unused)} not used by any mcp_toolset in tools")
    unknown = sorted(used - set(names))
    if unknown and servers is not None:
        raise ValueError(f"tools: mcp_toolset names {', '.join(unknown)}, which mcp_servers does not define")


Tools = Annotated[list[ToolParam], Field(max_length=AGENT_TOOLS_MAX)]
McpServers = Annotated[list[McpServerParam], Field(max_length=AGENT_MCP_SERVERS_MAX)]
Skills = Annotated[list[SkillParam], Field(max_length=AGENT_SKILLS_MAX)]
# A model id, or the object with its settings: sent as written.
AgentModelValue = NonBlank | AgentModelParam


class CreateAgentParams(RequestParams):
    """The create request's body."""

    name: NonBlank = Field(max_length=AGENT_NAME_MAX_CHARS)
    model: AgentModelValue
    system: str | None = Field(default=None, max_length=AGENT_SYSTEM_MAX_CHARS)
    description: str | None = Field(default=None, max_length=AGENT_DESCRIPTION_MAX_CHARS)
    tools: Tools | None = None
    mcp_servers: McpServers | None = None
    skills: Skills | None = None
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _servers_and_toolsets_match(self) -> CreateAgentParams:
        if self.mcp_servers:
            _mcp_servers_referenced(self.tools or [], self.mcp_servers)
        return self


class UpdateAgentParams(RequestParams):
    """An update: omitted fields are kept, ``None`` clears (``system``, ``description``,
    ``tools``, ``mcp_servers``, ``skills``), lists replace, ``metadata`` is a merge patch;
    ``version`` refuses the update when the agent is no longer at it."""

    name: NonBlank | None = Field(default=None, max_length=AGENT_NAME_MAX_CHARS)
    model: AgentModelValue | None = None
    system: str | None = Field(default=None, max_length=AGENT_SYSTEM_MAX_CHARS)
    description: str | None = Field(default=None, max_length=AGENT_DESCRIPTION_MAX_CHARS)
    tools: Tools | None = None
    mcp_servers: McpServers | None = None
    skills: Skills | None = None
    metadata: MetadataPatch | None = None
    version: int | None = Field(default=None, ge=1)

    _not_clearable = field_validator("name", "model", mode="before")(not_clearable)


class AgentListFilters(ListFilters):
    """Query parameters of the agents list."""

    include_archived: bool | None = None
    created_at_gte: Timestamp | None = Field(default=None, alias="created_at[gte]")
    created_at_lte: Timestamp | None = Field(default=None, alias="created_at[lte]")
    limit: int | None = Field(default=None, ge=1, le=AGENTS_PAGE_MAX)
    page: str | None = None


class AgentVersionListFilters(ListFilters):
    """Query parameters of an agent's versions list."""

    limit: int | None = Field(default=None, ge=1, le=AGENTS_PAGE_MAX)
    page: str | None = None
