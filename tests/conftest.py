"""Test-wide set-up: an isolated Airflow home under the repo, before Airflow is imported."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# One home per Airflow and Python (make test-matrix runs several against this checkout; their
# metadata databases must not meet).
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
# pytest-xdist workers (make test runs two) each get their own home too: one SQLite database each.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
AIRFLOW_HOME = REPO / ".airflow" / f"test-af{version('apache-airflow-core')}-py{PYTHON}" / WORKER
AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)

os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "example_dags")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
# Never let a developer's real key leak into a test run.
os.environ.pop("ANTHROPIC_API_KEY", None)
os.environ.pop("ANTHROPIC_BASE_URL", None)


import pytest  # noqa: E402 - after the environment Airflow reads on import


@pytest.fixture(autouse=True)
def fresh_request_budgets() -> None:
    """Each test meets the API afresh: a 429 an earlier test heard in this process (the budgets
    are process-wide, as in a worker or triggerer) does not pause it."""
    from airflow_provider_managed_agents.hooks.budget import forget_budgets

    forget_budgets()


@pytest.fixture
def emulator(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The emulator as the default connection, its clock frozen: a test moves time itself (a
    test module may define its own ``emulator`` where time should run)."""
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    managed_agents_emulator.freeze_clock(True)
    return managed_agents_emulator


@pytest.fixture
def hook(emulator: Any) -> Any:
    """A hook on that default connection."""
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

    return ManagedAgentsHook()


@pytest.fixture
def time(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The provider's clock driven by the emulator's (a test moves both), the emulator as the
    default connection."""
    from fakes import EmulatorClock, use_clock

    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    return use_clock(monkeypatch, EmulatorClock(managed_agents_emulator))
