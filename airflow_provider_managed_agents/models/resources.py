"""Resources mounted into each session: GitHub repositories, files and memory stores.

Lenient, as every response model: request-side limits live in
:mod:`~airflow_provider_managed_agents.models.params`.

A GitHub ``authorization_token`` is write-only: it is held as a :class:`~pydantic.SecretStr`
(never in repr, str, logs or XCom) and only revealed when the request body is serialised with
the ``reveal_secrets`` context, which the hook alone uses.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, PlainSerializer, SecretStr, SerializationInfo, Tag, field_serializer

from airflow_provider_managed_agents.models.base import ApiModel, tag_or_fallback
from airflow_provider_managed_agents.models.events import UnknownObject

REVEAL_SECRETS = "reveal_secrets"


def reveals_secrets(info: SerializationInfo) -> bool:
    return bool(info.context and info.context.get(REVEAL_SECRETS))


def _write_only(secret: SecretStr, info: SerializationInfo) -> str:
    return secret.get_secret_value() if reveals_secrets(info) else "**********"


WriteOnlySecret = Annotated[SecretStr, PlainSerializer(_write_only, return_type=str)]
"""A secret a request sends and no response returns: masked everywhere but the request body."""


class BranchCheckout(ApiModel):
    """Check out a branch of the repository."""

    type: Literal["branch"] = "branch"
    name: str


class CommitCheckout(ApiModel):
    """Check out a commit of the repository."""

    type: Literal["commit"] = "commit"
    sha: str


Checkout = Annotated[
    Annotated[BranchCheckout, Tag("branch")]
    | Annotated[CommitCheckout, Tag("commit")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback({"branch", "commit"}, "unknown")),
]


class GitHubRepositoryResource(ApiModel):
    """A GitHub repository mounted into the session; its token is a secret and never shown."""

    type: Literal["github_repository"] = "github_repository"
    url: str
    checkout: Checkout | None = None
    mount_path: str | None = None
    authorization_token: SecretStr | None = Field(default=None, repr=False)

    @field_serializer("authorization_token")
    def _serialize_token(self, token: SecretStr | None, info: SerializationInfo) -> str | None:
        if token is None:
            return None
        return token.get_secret_value() if reveals_secrets(info) else "**********"


class FileResource(ApiModel):
    """An uploaded file mounted into the session."""

    type: Literal["file"] = "file"
    file_id: str
    mount_path: str | None = None


class MemoryStoreResource(ApiModel):
    """A memory store attached to the session."""

    type: Literal["memory_store"] = "memory_store"
    memory_store_id: str
    access: str | None = None  # read_write | read_only; a newer value keeps its string
    instructions: str | None = None


Resource = Annotated[
    Annotated[GitHubRepositoryResource, Tag("github_repository")]
    | Annotated[FileResource, Tag("file")]
    | Annotated[MemoryStoreResource, Tag("memory_store")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback({"github_repository", "file", "memory_store"}, "unknown")),
]
