"""Error answers in the API's envelope, raised by the emulator's rules."""

from __future__ import annotations

from typing import Any


class ApiProblem(Exception):
    """An error answer in the API's envelope (``details`` as ``error.details``, ``headers`` on
    the response, e.g. ``x-should-retry: false`` where a retry cannot help)."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.details = details
        self.headers = headers


def bad_request(message: str) -> ApiProblem:
    return ApiProblem(400, "invalid_request_error", message)


def not_found(what: str, ident: str) -> ApiProblem:
    return ApiProblem(404, "not_found_error", f"{what} {ident!r} not found")


def conflict(message: str) -> ApiProblem:
    return ApiProblem(409, "conflict_error", message)
