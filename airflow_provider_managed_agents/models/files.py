"""Files (the Files API): what a session wrote under ``/mnt/session/outputs/``, listed by the
session's id as ``scope_id``, and uploaded files a deployment mounts.

Lenient, as every response model: a newer scope type or field keeps its value.
"""

from __future__ import annotations

from pydantic import Field

from airflow_provider_managed_agents.models.base import ApiModel, Timestamp
from airflow_provider_managed_agents.models.pages import Page
from airflow_provider_managed_agents.models.params import ListFilters

FILES_PAGE_MAX = 1_000


class FileScope(ApiModel):
    """What a file belongs to: ``{"type": "session", "id": "sesn_..."}`` for a session's output."""

    type: str
    id: str


class FileMetadata(ApiModel):
    """A file's metadata; its bytes come from ``GET /v1/files/{id}/content``."""

    id: str
    type: str = "file"
    filename: str
    mime_type: str
    size_bytes: int
    created_at: Timestamp
    downloadable: bool | None = None
    expires_at: Timestamp | None = None
    scope: FileScope | None = None


FilePage = Page[FileMetadata]


class FileListFilters(ListFilters):
    """Query parameters of the files list: ``scope_id`` (a session id) keeps that session's
    files; ``limit`` is the page size (the API's default 20)."""

    scope_id: str | None = Field(default=None, min_length=1)
    limit: int | None = Field(default=None, ge=1, le=FILES_PAGE_MAX)
    page: str | None = None
