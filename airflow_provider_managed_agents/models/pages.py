"""List responses: ``{"data": [...], "next_page": cursor | null}``."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a list endpoint: ``data`` and the opaque ``next_page`` cursor (None on the last page)."""

    model_config = ConfigDict(extra="allow")

    data: list[ItemT]
    next_page: str | None = None
