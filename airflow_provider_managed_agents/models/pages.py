"""List responses: ``{"data": [...], "next_page": cursor | null}``."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    model_config = ConfigDict(extra="allow")

    data: list[ItemT]
    next_page: str | None = None
