"""Environments: where an agent's sessions run (a cloud container with its networking and
packages, or a self-hosted runner).

The response model is lenient; the request models hold the documented rules (a config's type
cannot change on update; package managers need ``allow_package_managers`` under limited
networking) and are checked before anything is sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from airflow_provider_managed_agents.models.base import ApiModel, Timestamp
from airflow_provider_managed_agents.models.params import (
    ListFilters,
    Metadata,
    MetadataPatch,
    NonBlank,
    RequestParams,
    not_clearable,
)

ENVIRONMENTS_PAGE_MAX = 100
PACKAGE_MANAGERS = ("apt", "cargo", "gem", "go", "npm", "pip")


class Environment(ApiModel):
    """An environment; ``config`` as the API returns it (``type`` ``cloud`` with ``networking``
    and ``packages``, or ``self_hosted``)."""

    id: str
    type: str = "environment"
    name: str
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    metadata: Annotated[dict[str, str], BeforeValidator(lambda v: {} if v is None else v)] = Field(default_factory=dict)
    scope: str | None = None
    created_at: Timestamp
    updated_at: Timestamp | None = None
    archived_at: Timestamp | None = None

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


# --- requests -------------------------------------------------------------------------------


class UnrestrictedNetworking(ApiModel):
    type: Literal["unrestricted"] = "unrestricted"


class LimitedNetworking(ApiModel):
    """Only the listed hosts (and, when allowed, MCP servers and package registries)."""

    type: Literal["limited"] = "limited"
    allowed_hosts: list[NonBlank] | None = None
    allow_mcp_servers: bool | None = None
    allow_package_managers: bool | None = None


class Packages(ApiModel):
    """Packages installed in the container, per manager, each in its manager's syntax."""

    type: Literal["packages"] | None = None
    apt: list[NonBlank] | None = None
    cargo: list[NonBlank] | None = None
    gem: list[NonBlank] | None = None
    go: list[NonBlank] | None = None
    npm: list[NonBlank] | None = None
    pip: list[NonBlank] | None = None

    def any(self) -> bool:
        return any(getattr(self, manager) for manager in PACKAGE_MANAGERS)


class CloudConfig(ApiModel):
    """A container the API runs."""

    type: Literal["cloud"] = "cloud"
    networking: UnrestrictedNetworking | LimitedNetworking | None = Field(default=None, discriminator="type")
    packages: Packages | None = None

    @model_validator(mode="after")
    def _registries_reachable(self) -> CloudConfig:
        limited = isinstance(self.networking, LimitedNetworking)
        if limited and self.packages is not None and self.packages.any():
            assert isinstance(self.networking, LimitedNetworking)
            if not self.networking.allow_package_managers:
                raise ValueError("packages under limited networking need networking.allow_package_managers: true")
        return self


class SelfHostedConfig(ApiModel):
    """A runner of your own."""

    type: Literal["self_hosted"] = "self_hosted"


EnvironmentConfig = Annotated[CloudConfig | SelfHostedConfig, Field(discriminator="type")]


class CreateEnvironmentParams(RequestParams):
    """The create request's body."""

    name: NonBlank
    description: str | None = None
    config: EnvironmentConfig | None = None
    metadata: Metadata | None = None
    scope: Literal["organization", "account"] | None = None


class UpdateEnvironmentParams(RequestParams):
    """An update: omitted fields are kept (also inside ``config``), ``metadata`` is a merge
    patch; a config's ``type`` cannot change."""

    name: NonBlank | None = None
    description: str | None = None
    config: EnvironmentConfig | None = None
    metadata: MetadataPatch | None = None
    scope: Literal["organization", "account"] | None = None

    _not_clearable = field_validator("name", "config", mode="before")(not_clearable)


class EnvironmentListFilters(ListFilters):
    """Query parameters of the environments list."""

    include_archived: bool | None = None
    limit: int | None = Field(default=None, ge=1, le=ENVIRONMENTS_PAGE_MAX)
    page: str | None = None
