"""An Airflow retry carries on with what an earlier try of the same task made, and only that.

A create is exactly-once through its idempotency key. A run has no key: a retry adopts only a
run that an earlier try of this task sent and never learned the outcome of (the run journal),
never a run after a definite answer, and never one another task made.
"""

from __future__ import annotations

from typing import Any

import pytest
from campaign import CampaignTI  # type: ignore[import-not-found]
from fakes import TaskStateStore

from airflow_provider_managed_agents.exceptions import SessionRateLimitedRunError
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)

PARAMS = {
    "agent": "agent_demo",
    "environment_id": "env_demo",
    "name": "retried run",
    "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
}


class WorkerDied(BaseException):
    """The worker process going away mid-task: nothing after it runs."""


@pytest.fixture
def hook(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> ManagedAgentsHook:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    return ManagedAgentsHook()


def attempt(ti: CampaignTI, try_number: int, store: TaskStateStore | None = None) -> dict[str, Any]:
    ti.try_number = try_number
    return {"ti": ti, "dag_run": None, "task_state_store": store if store is not None else TaskStateStore()}


def test_a_retried_create_adopts_the_deployment_its_first_try_made(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    ti = CampaignTI(1)

    def create(try_number: int) -> str:
        op = ManagedAgentsCreateDeploymentOperator(
            task_id=ti.task_id, agent="agent_demo", environment_id="env_demo", name="retried", message="go"
        )
        op.__dict__["hook"] = hook
        return op.execute(attempt(ti, try_number))  # type: ignore[arg-type]

    first = create(1)  # landed; the task died before its XCom counted
    counts = managed_agents_emulator.request_counts()["by_endpoint"]
    assert create(2) == first
    deployments = managed_agents_emulator.state()["deployments"]
    assert [d["id"] for d in deployments] == [first]
    after = managed_agents_emulator.request_counts()["by_endpoint"]
    assert counts["POST /v1/deployments"] == after["POST /v1/deployments"] == 1  # no second create sent


def run_op(hook: ManagedAgentsHook, deployment_id: str) -> ManagedAgentsRunDeploymentOperator:
    op = ManagedAgentsRunDeploymentOperator(task_id="run", deployment_id=deployment_id)
    op.__dict__["hook"] = hook
    return op


def test_a_retry_adopts_the_run_its_first_try_sent_and_never_learned_of(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = hook.create_deployment(PARAMS)
    ti, store = CampaignTI(2), TaskStateStore()
    dying = run_op(hook, deployment.id)

    def die(*args: Any) -> None:
        raise WorkerDied

    monkeypatch.setattr(dying, "_publish_run", die)  # the run landed; the worker died before it knew
    with pytest.raises(WorkerDied):
        dying.execute(attempt(ti, 1, store))  # type: ignore[arg-type]
    (landed,) = [r for r in managed_agents_emulator.state()["runs"] if r["deployment_id"] == deployment.id]

    assert run_op(hook, deployment.id).execute(attempt(ti, 2, store)) == landed["id"]  # type: ignore[arg-type]
    runs = [r for r in managed_agents_emulator.state()["runs"] if r["deployment_id"] == deployment.id]
    assert [r["id"] for r in runs] == [landed["id"]]
    assert ti.xcom["session_id"] == landed["session_id"]
    assert store.values == {}  # settled: the next retry (or a clear) starts afresh


def test_a_retry_after_a_definite_answer_sends_a_new_run_and_never_adopts_another_tasks(
    hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    """The DAG of the issue, in-process: smoke's run exists; real's first try is answered with
    session_rate_limited_error; its retry must start a new run, not adopt smoke's."""
    deployment = hook.create_deployment(PARAMS)
    smoke = run_op(hook, deployment.id).execute(attempt(CampaignTI(3), 1))  # type: ignore[arg-type]
    managed_agents_emulator.force_next_run_error(deployment.id, "session_rate_limited_error")
    ti, store = CampaignTI(4), TaskStateStore()
    with pytest.raises(SessionRateLimitedRunError):
        run_op(hook, deployment.id).execute(attempt(ti, 1, store))  # type: ignore[arg-type]
    retried = run_op(hook, deployment.id).execute(attempt(ti, 2, store))  # type: ignore[arg-type]
    runs = [r for r in managed_agents_emulator.state()["runs"] if r["deployment_id"] == deployment.id]
    assert len(runs) == 3 and retried not in (smoke, runs[1]["id"]) and retried == runs[2]["id"]
    assert runs[1]["error"]["type"] == "session_rate_limited_error" and runs[2]["session_id"]


def test_a_retry_with_nothing_to_adopt_sends_once(hook: ManagedAgentsHook, managed_agents_emulator: Any) -> None:
    """The first try failed before its request landed: the retry looks, finds nothing, sends."""
    ti = CampaignTI(3)
    op = ManagedAgentsCreateDeploymentOperator(
        task_id=ti.task_id, agent="agent_demo", environment_id="env_demo", name="first lands on retry", message="go"
    )
    op.__dict__["hook"] = hook
    made = op.execute(attempt(ti, 2))  # type: ignore[arg-type]
    assert [d["id"] for d in managed_agents_emulator.state()["deployments"]] == [made]
