"""An Airflow retry of a task whose first try wrote but never recorded it adopts that write.

The first try's create (or run) lands at the emulator; the task then dies before XCom, so
Airflow retries it with ``try_number`` 2. The retry must find what the first try made instead
of making a second deployment or a second session.
"""

from __future__ import annotations

from typing import Any

import pendulum
import pytest
from campaign import CampaignTI  # type: ignore[import-not-found]

from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)


@pytest.fixture
def hook(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> ManagedAgentsHook:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    return ManagedAgentsHook()


def attempt(ti: CampaignTI, try_number: int, dag_run_start: Any) -> dict[str, Any]:
    ti.try_number = try_number
    return {"ti": ti, "dag_run": type("DagRun", (), {"start_date": dag_run_start})()}


def test_a_retried_create_adopts_the_deployment_its_first_try_made(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    ti, started = CampaignTI(1), pendulum.now("UTC")

    def create(try_number: int) -> str:
        op = ManagedAgentsCreateDeploymentOperator(
            task_id=ti.task_id, agent="agent_demo", environment_id="env_demo", name="retried", message="go"
        )
        op.__dict__["hook"] = hook
        return op.execute(attempt(ti, try_number, started))  # type: ignore[arg-type]

    first = create(1)  # landed; the task died before its XCom counted
    counts = managed_agents_emulator.request_counts()["by_endpoint"]
    assert create(2) == first
    deployments = managed_agents_emulator.state()["deployments"]
    assert [d["id"] for d in deployments] == [first]
    after = managed_agents_emulator.request_counts()["by_endpoint"]
    assert counts["POST /v1/deployments"] == after["POST /v1/deployments"] == 1  # no second create sent


def test_a_retried_run_adopts_the_session_its_first_try_started(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    started = pendulum.now("UTC")
    deployment = hook.create_deployment(
        {
            "agent": "agent_demo",
            "environment_id": "env_demo",
            "name": "retried run",
            "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
        }
    )
    ti = CampaignTI(2)

    def run(try_number: int) -> str:
        op = ManagedAgentsRunDeploymentOperator(task_id="run", deployment_id=deployment.id)
        op.__dict__["hook"] = hook
        return op.execute(attempt(ti, try_number, started))  # type: ignore[arg-type]

    first = run(1)
    assert run(2) == first
    runs = [r for r in managed_agents_emulator.state()["runs"] if r["deployment_id"] == deployment.id]
    assert [r["id"] for r in runs] == [first]
    assert ti.xcom["session_id"] == runs[0]["session_id"]


def test_a_retry_with_nothing_to_adopt_sends_once(hook: ManagedAgentsHook, managed_agents_emulator: Any) -> None:
    """The first try failed before its request landed: the retry looks, finds nothing, sends."""
    ti = CampaignTI(3)
    op = ManagedAgentsCreateDeploymentOperator(
        task_id=ti.task_id, agent="agent_demo", environment_id="env_demo", name="first lands on retry", message="go"
    )
    op.__dict__["hook"] = hook
    made = op.execute(attempt(ti, 2, pendulum.now("UTC")))  # type: ignore[arg-type]
    assert [d["id"] for d in managed_agents_emulator.state()["deployments"]] == [made]
