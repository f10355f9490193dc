"""Shared building blocks of the API models: the base class, timestamps, and tagged unions
that stay readable when the API adds a variant this client does not know yet."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

import pendulum
from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer


class ApiModel(BaseModel):
    """Base of every API object.

    Unknown fields are kept (``extra="allow"``) so that a newer API adds data without breaking
    parsing, and round-trips it unchanged.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _aware(value: datetime) -> datetime:
    # The API speaks RFC 3339; a zone-less value is read as UTC, as the service does.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _as_pendulum(value: datetime) -> pendulum.DateTime:
    value = _aware(value)
    return value if isinstance(value, pendulum.DateTime) else pendulum.instance(value)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix, the form the API itself writes."""
    utc = pendulum.instance(value).in_timezone("UTC")
    return utc.isoformat().replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    AfterValidator(_aware),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]
"""An aware timestamp (stdlib ``datetime`` in UTC, cheap to parse by the thousand; wrap it with
``pendulum.instance`` for calendar arithmetic) written back as RFC 3339."""


def tag_or_fallback(known: Iterable[str], fallback: str) -> Callable[[Any], str]:
    """A pydantic ``Discriminator`` callable: the value's ``type`` when this client knows it,
    otherwise ``fallback`` so that a new variant from the API parses instead of raising."""
    known_tags = frozenset(known)

    def discriminate(value: Any) -> str:
        tag = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        return tag if tag in known_tags else fallback

    return discriminate


def parse_timestamp(value: str | datetime) -> pendulum.DateTime:
    """An RFC 3339 string or a datetime as an aware pendulum DateTime (zone-less = UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return _as_pendulum(value)
