"""Custom tools the ``agent_with_approval`` example answers in Python. A plain module beside the
example (its folder is on the worker's import path), named by dotted path in ``custom_tools`` so
that it is imported where the task runs, after any deferral too."""

from __future__ import annotations


def row_count(table: str) -> str:
    """The agent's ``row_count`` custom tool: how many rows a table holds (a stand-in query)."""
    counts = {"orders": 1200, "orders_tmp": 0, "customers": 310}
    if table not in counts:
        raise LookupError(f"no table {table!r}")  # sent to the agent as an error result
    return f"{table}: {counts[table]} rows"
