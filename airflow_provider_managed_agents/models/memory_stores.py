"""Memory stores: what agents remember across sessions, mounted at ``/mnt/memory/<name>``.

Archiving a store is final (its memories stay readable, nothing new is written); an archived
store cannot be updated or attached to a new session.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from airflow_provider_managed_agents.models.base import ApiModel, Timestamp
from airflow_provider_managed_agents.models.params import (
    ListFilters,
    Metadata,
    MetadataPatch,
    RequestParams,
    not_clearable,
)

MEMORY_STORES_PAGE_MAX = 100
MEMORY_STORE_NAME_MAX_CHARS = 255
MEMORY_STORE_DESCRIPTION_MAX_CHARS = 1_024


class MemoryStore(ApiModel):
    """A memory store (``description`` is ``""`` when unset)."""

    id: str
    type: str = "memory_store"
    name: str
    description: Annotated[str, BeforeValidator(lambda v: "" if v is None else v)] = ""
    metadata: Annotated[dict[str, str], BeforeValidator(lambda v: {} if v is None else v)] = Field(default_factory=dict)
    created_at: Timestamp
    updated_at: Timestamp | None = None
    archived_at: Timestamp | None = None

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


def _printable(name: str) -> str:
    if not name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError("must be non-empty, without control characters")
    return name


StoreName = Annotated[str, Field(max_length=MEMORY_STORE_NAME_MAX_CHARS)]
Description = Annotated[str, Field(max_length=MEMORY_STORE_DESCRIPTION_MAX_CHARS)]


class CreateMemoryStoreParams(RequestParams):
    name: StoreName
    description: Description | None = None
    metadata: Metadata | None = None

    @field_validator("name")
    @classmethod
    def _named(cls, name: str) -> str:
        return _printable(name)


class UpdateMemoryStoreParams(RequestParams):
    """An update: omitted fields are kept, ``""`` clears the description, ``metadata`` is a
    merge patch."""

    name: StoreName | None = None
    description: Description | None = None
    metadata: MetadataPatch | None = None

    @field_validator("name", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        value = not_clearable(cls, value)
        return _printable(value) if isinstance(value, str) else value


class MemoryStoreListFilters(ListFilters):
    """Query parameters of the memory stores list."""

    include_archived: bool | None = None
    created_at_gte: Timestamp | None = Field(default=None, alias="created_at[gte]")
    created_at_lte: Timestamp | None = Field(default=None, alias="created_at[lte]")
    limit: int | None = Field(default=None, ge=1, le=MEMORY_STORES_PAGE_MAX)
    page: str | None = None
