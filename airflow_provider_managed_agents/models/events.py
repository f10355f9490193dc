"""Initial events: what every session created by a deployment receives first.

These classes read responses, so they are lenient: any shape the API documents parses, and a
variant this client does not know keeps its ``type``. The request-side limits (rubric length,
max_iterations, non-empty content) live in :mod:`~airflow_provider_managed_agents.models.params`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Tag

from airflow_provider_managed_agents.models.base import ApiModel, tag_or_fallback


class UnknownObject(ApiModel):
    """A variant this client does not know yet: kept whole, with its original ``type``."""

    type: str


# --- sources -------------------------------------------------------------------------------


class Base64Source(ApiModel):
    """Inline base64 data of an image or document block."""

    type: Literal["base64"] = "base64"
    data: str
    media_type: str


class UrlSource(ApiModel):
    """An image or document fetched from a URL."""

    type: Literal["url"] = "url"
    url: str


class FileSource(ApiModel):
    """An image or document uploaded with the Files API."""

    type: Literal["file"] = "file"
    file_id: str


class PlainTextSource(ApiModel):
    """Inline plain text of a document block."""

    type: Literal["text"] = "text"
    data: str
    media_type: Literal["text/plain"] = "text/plain"


ImageSource = Annotated[
    Annotated[Base64Source, Tag("base64")]
    | Annotated[UrlSource, Tag("url")]
    | Annotated[FileSource, Tag("file")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback({"base64", "url", "file"}, "unknown")),
]
DocumentSource = Annotated[
    Annotated[Base64Source, Tag("base64")]
    | Annotated[PlainTextSource, Tag("text")]
    | Annotated[UrlSource, Tag("url")]
    | Annotated[FileSource, Tag("file")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback({"base64", "text", "url", "file"}, "unknown")),
]

# --- content blocks ------------------------------------------------------------------------


class TextBlock(ApiModel):
    """Text content of a message."""

    type: Literal["text"] = "text"
    text: str


class ImageBlock(ApiModel):
    """An image in a user message."""

    type: Literal["image"] = "image"
    source: ImageSource


class DocumentBlock(ApiModel):
    """A document in a user message."""

    type: Literal["document"] = "document"
    source: DocumentSource
    title: str | None = None
    context: str | None = None


class RedactedBlock(ApiModel):
    """Returned in place of content the API withholds."""

    type: Literal["redacted"] = "redacted"


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[DocumentBlock, Tag("document")]
    | Annotated[RedactedBlock, Tag("redacted")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback({"text", "image", "document", "redacted"}, "unknown")),
]

# --- rubrics -------------------------------------------------------------------------------


class TextRubric(ApiModel):
    """An outcome rubric written inline."""

    type: Literal["text"] = "text"
    content: str


class FileRubric(ApiModel):
    """An outcome rubric held in an uploaded file."""

    type: Literal["file"] = "file"
    file_id: str


Rubric = Annotated[
    Annotated[TextRubric, Tag("text")] | Annotated[FileRubric, Tag("file")] | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback({"text", "file"}, "unknown")),
]

# --- events --------------------------------------------------------------------------------


class UserMessageEvent(ApiModel):
    """A ``user.message`` initial event."""

    type: Literal["user.message"] = "user.message"
    content: list[ContentBlock]

    @classmethod
    def text(cls, text: str) -> UserMessageEvent:
        """The common case: one user message holding one text block."""
        return cls(content=[TextBlock(text=text)])


class DefineOutcomeEvent(ApiModel):
    """A ``user.define_outcome`` initial event: what success looks like, and how hard to try."""

    type: Literal["user.define_outcome"] = "user.define_outcome"
    description: str
    rubric: Rubric
    max_iterations: int | None = None


class SystemMessageEvent(ApiModel):
    """A ``system.message`` initial event."""

    type: Literal["system.message"] = "system.message"
    # Requests allow text only (models.params); a response keeps any block it holds.
    content: list[ContentBlock]


InitialEvent = Annotated[
    Annotated[UserMessageEvent, Tag("user.message")]
    | Annotated[DefineOutcomeEvent, Tag("user.define_outcome")]
    | Annotated[SystemMessageEvent, Tag("system.message")]
    | Annotated[UnknownObject, Tag("unknown")],
    Discriminator(tag_or_fallback({"user.message", "user.define_outcome", "system.message"}, "unknown")),
]
