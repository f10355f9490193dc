"""Vaults and their credentials: the secrets a session may use (an MCP server's bearer token or
OAuth grant, an environment variable), kept by the API and never returned.

A credential's secret fields are write-only: requests carry them as
:data:`~airflow_provider_managed_agents.models.resources.WriteOnlySecret` (masked in every
repr, log and dump but the request body the hook sends); responses hold none of them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, field_validator

from airflow_provider_managed_agents.models.base import ApiModel, Timestamp, tag_or_fallback
from airflow_provider_managed_agents.models.events import UnknownObject
from airflow_provider_managed_agents.models.params import (
    ListFilters,
    Metadata,
    MetadataPatch,
    NonBlank,
    RequestParams,
)
from airflow_provider_managed_agents.models.resources import WriteOnlySecret

VAULTS_PAGE_MAX = 100
DISPLAY_NAME_MAX_CHARS = 255
ALLOWED_HOSTS_MAX = 16
# The secret fields of each credential type, as the request names them (never in a response).
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "static_bearer": ("token",),
    "environment_variable": ("secret_value",),
    "mcp_oauth": ("access_token", "refresh.refresh_token", "refresh.token_endpoint_auth.client_secret"),
}


def _null_as_empty(value: Any) -> Any:
    return {} if value is None else value


class Vault(ApiModel):
    """A vault: a named set of credentials that deployments and sessions list in ``vault_ids``."""

    id: str
    type: str = "vault"
    display_name: str
    metadata: Annotated[dict[str, str], BeforeValidator(_null_as_empty)] = Field(default_factory=dict)
    created_at: Timestamp
    updated_at: Timestamp | None = None
    archived_at: Timestamp | None = None

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class VaultCredential(ApiModel):
    """A credential as the API returns it: its ``auth`` without any secret."""

    id: str
    type: str = "vault_credential"
    vault_id: str
    display_name: str | None = None
    auth: dict[str, Any] = Field(default_factory=dict)
    metadata: Annotated[dict[str, str], BeforeValidator(_null_as_empty)] = Field(default_factory=dict)
    created_at: Timestamp
    updated_at: Timestamp | None = None
    archived_at: Timestamp | None = None

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class Deleted(ApiModel):
    """What a delete answers: the id and ``<kind>_deleted``."""

    id: str
    type: str


# --- requests -------------------------------------------------------------------------------

DisplayName = Annotated[str, Field(min_length=1, max_length=DISPLAY_NAME_MAX_CHARS)]


class StaticBearerAuth(ApiModel):
    """A bearer token for an MCP server (one credential per server URL)."""

    type: Literal["static_bearer"] = "static_bearer"
    token: WriteOnlySecret
    mcp_server_url: NonBlank


class UnrestrictedEgress(ApiModel):
    type: Literal["unrestricted"] = "unrestricted"


class LimitedEgress(ApiModel):
    """The hosts the secret may be sent to: bare hosts, IPv4 addresses or ``*.domain``."""

    type: Literal["limited"] = "limited"
    allowed_hosts: list[NonBlank] = Field(min_length=1, max_length=ALLOWED_HOSTS_MAX)

    @field_validator("allowed_hosts")
    @classmethod
    def _bare_hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if "/" in host or ":" in host:
                raise ValueError(f"{host!r}: a bare host (no scheme, port, path or IPv6)")
        return hosts


class InjectionLocation(ApiModel):
    header: bool | None = None
    body: bool | None = None


class EnvironmentVariableAuth(ApiModel):
    """A secret the session sees as an environment variable, sent only to the allowed hosts."""

    type: Literal["environment_variable"] = "environment_variable"
    secret_name: NonBlank
    secret_value: WriteOnlySecret
    networking: UnrestrictedEgress | LimitedEgress = Field(discriminator="type")
    injection_location: InjectionLocation | None = None


class TokenEndpointAuth(ApiModel):
    """How the OAuth refresh authenticates: ``none``, or a client secret (basic or post)."""

    type: Literal["none", "client_secret_basic", "client_secret_post"]
    client_secret: WriteOnlySecret | None = None


class OAuthRefresh(ApiModel):
    client_id: NonBlank
    refresh_token: WriteOnlySecret
    token_endpoint: NonBlank
    token_endpoint_auth: TokenEndpointAuth
    resource: str | None = None
    scope: str | None = None


class McpOAuthAuth(ApiModel):
    """An OAuth grant for an MCP server, refreshed by the API when ``refresh`` is given."""

    type: Literal["mcp_oauth"] = "mcp_oauth"
    access_token: WriteOnlySecret
    mcp_server_url: NonBlank
    expires_at: Timestamp | None = None
    refresh: OAuthRefresh | None = None


CredentialAuth = Annotated[
    Annotated[StaticBearerAuth, Tag("static_bearer")]
    | Annotated[EnvironmentVariableAuth, Tag("environment_variable")]
    | Annotated[McpOAuthAuth, Tag("mcp_oauth")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback(set(SECRET_FIELDS), "unknown")),
]


# An update's auth: of the stored type; the secret (and what may change with it) optional, the
# server URL and the variable's name fixed.


class StaticBearerUpdate(ApiModel):
    type: Literal["static_bearer"] = "static_bearer"
    token: WriteOnlySecret | None = None


class EnvironmentVariableUpdate(ApiModel):
    type: Literal["environment_variable"] = "environment_variable"
    secret_value: WriteOnlySecret | None = None
    networking: UnrestrictedEgress | LimitedEgress | None = Field(default=None, discriminator="type")
    injection_location: InjectionLocation | None = None


class TokenEndpointAuthUpdate(ApiModel):
    type: Literal["client_secret_basic", "client_secret_post"]
    client_secret: WriteOnlySecret | None = None


class OAuthRefreshUpdate(ApiModel):
    refresh_token: WriteOnlySecret | None = None
    scope: str | None = None
    token_endpoint_auth: TokenEndpointAuthUpdate | None = None


class McpOAuthUpdate(ApiModel):
    type: Literal["mcp_oauth"] = "mcp_oauth"
    access_token: WriteOnlySecret | None = None
    expires_at: Timestamp | None = None
    refresh: OAuthRefreshUpdate | None = None


CredentialAuthUpdate = Annotated[
    Annotated[StaticBearerUpdate, Tag("static_bearer")]
    | Annotated[EnvironmentVariableUpdate, Tag("environment_variable")]
    | Annotated[McpOAuthUpdate, Tag("mcp_oauth")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback(set(SECRET_FIELDS), "unknown")),
]


class CreateVaultParams(RequestParams):
    display_name: DisplayName
    metadata: Metadata | None = None


class UpdateVaultParams(RequestParams):
    """An update: omitted fields are kept, ``metadata`` is a merge patch."""

    display_name: DisplayName | None = None
    metadata: MetadataPatch | None = None


class CreateCredentialParams(RequestParams):
    auth: CredentialAuth
    display_name: DisplayName | None = None
    metadata: Metadata | None = None


class UpdateCredentialParams(RequestParams):
    """An update: ``auth`` (of the stored type) replaces the secret and what may change with it;
    ``mcp_server_url`` and ``secret_name`` cannot change. ``metadata`` is a merge patch."""

    auth: CredentialAuthUpdate | None = None
    display_name: DisplayName | None = None
    metadata: MetadataPatch | None = None


class VaultListFilters(ListFilters):
    """Query parameters of the vaults list (and of a vault's credentials)."""

    include_archived: bool | None = None
    limit: int | None = Field(default=None, ge=1, le=VAULTS_PAGE_MAX)
    page: str | None = None
