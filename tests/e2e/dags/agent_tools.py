"""Custom tools the approval test DAGs answer with (a plain module on the DAGs folder's path)."""

from __future__ import annotations


def row_count(table: str) -> str:
    """What the agent's ``row_count`` custom tool returns."""
    return f"{table}: 1200 rows"


def broken(table: str) -> str:
    raise LookupError(f"no statistics for {table}")
