"""String enums of the API, kept free of pydantic so that light modules (exceptions) can use them."""

from __future__ import annotations

from enum import StrEnum


class RunErrorType(StrEnum):
    """The 16 run error types of the API."""

    ENVIRONMENT_ARCHIVED = "environment_archived_error"
    AGENT_ARCHIVED = "agent_archived_error"
    ENVIRONMENT_NOT_FOUND = "environment_not_found_error"
    VAULT_NOT_FOUND = "vault_not_found_error"
    VAULT_ARCHIVED = "vault_archived_error"
    FILE_NOT_FOUND = "file_not_found_error"
    MEMORY_STORE_ARCHIVED = "memory_store_archived_error"
    SKILL_NOT_FOUND = "skill_not_found_error"
    SESSION_RESOURCE_NOT_FOUND = "session_resource_not_found_error"
    WORKSPACE_ARCHIVED = "workspace_archived_error"
    ORGANIZATION_DISABLED = "organization_disabled_error"
    SESSION_RATE_LIMITED = "session_rate_limited_error"
    SESSION_CREATION_REJECTED = "session_creation_rejected_error"
    UNKNOWN = "unknown_error"
    SELF_HOSTED_RESOURCES_UNSUPPORTED = "self_hosted_resources_unsupported_error"
    MCP_EGRESS_BLOCKED = "mcp_egress_blocked_error"

    @classmethod
    def resolve(cls, raw: str) -> RunErrorType:
        """The known type named ``raw``, or the documented fallback ``UNKNOWN`` for a newer one."""
        try:
            return cls(raw)
        except ValueError:
            return cls.UNKNOWN
