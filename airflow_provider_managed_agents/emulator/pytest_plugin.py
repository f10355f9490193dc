"""Pytest fixture ``managed_agents_emulator``: a running emulator, fresh for every test.

Loaded automatically (entry point ``pytest11``) where this provider is installed. One server
serves the whole session and is reset before each test, which keeps tests fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def _managed_agents_emulator_server() -> Iterator[Any]:
    from airflow_provider_managed_agents.emulator.server import run_emulator

    with run_emulator() as handle:
        yield handle


@pytest.fixture
def managed_agents_emulator(_managed_agents_emulator_server: Any) -> Any:
    """An :class:`~airflow_provider_managed_agents.emulator.server.EmulatorHandle` in a fresh
    default world (agent ``agent_demo``, environment ``env_demo``); ``connection_json()`` gives
    the ``AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT`` value for it."""
    _managed_agents_emulator_server.reset()
    return _managed_agents_emulator_server
