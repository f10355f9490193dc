"""The organization's rate limits over real HTTP: the emulator answers 429 with retry-after as the
API does and counts them; the hooks of one process share one budget per connection, so caps under
the limits meet no 429 at all, and without caps every 429 is ridden out."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from airflow_provider_managed_agents.hooks.budget import budget_for
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import API_VERSION, MANAGED_AGENTS_BETA

# A few of these move real seconds (the limits refill in real time): `make test-fast` skips them.
pytestmark = pytest.mark.slow

EVENTS = [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]


def raw(emulator: Any, method: str, path: str) -> httpx.Response:
    headers = {"x-api-key": emulator.api_key, "anthropic-version": API_VERSION, "anthropic-beta": MANAGED_AGENTS_BETA}
    return httpx.request(method, f"{emulator.base_url}{path}", headers=headers, timeout=10)


def limit(emulator: Any, **figures: Any) -> dict[str, Any]:
    return emulator.control("POST", "rate_limit", figures)


def with_caps(emulator: Any, monkeypatch: pytest.MonkeyPatch, **caps: float) -> None:
    connection = {"conn_type": "managed_agents", "host": emulator.base_url, "password": emulator.api_key}
    if caps:
        connection["extra"] = caps
    import json

    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", json.dumps(connection))


def in_threads(count: int, work: Any) -> list[BaseException]:
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            work(index)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return errors


def test_the_emulator_limits_reads_and_writes_apart_with_retry_after(managed_agents_emulator: Any) -> None:
    emulator = managed_agents_emulator
    emulator.freeze_clock()
    assert limit(emulator, reads_per_minute=60, burst=2)["reads_per_minute"] == 60
    assert [raw(emulator, "GET", "/v1/deployments").status_code for _ in range(2)] == [200, 200]
    refused = raw(emulator, "GET", "/v1/deployments")
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["retry-after"] == "1" and refused.headers["retry-after-ms"] == "1000"
    assert raw(emulator, "POST", "/v1/deployments/depl_x/pause").status_code != 429  # writes: no limit
    emulator.advance_clock(1)  # the frozen clock moves: one token comes back
    assert raw(emulator, "GET", "/v1/deployments").status_code == 200
    assert emulator.request_counts()["rate_limited"] == {"reads": 1, "writes": 0}
    limit(emulator, reads_per_minute=None)
    assert [raw(emulator, "GET", "/v1/deployments").status_code for _ in range(5)] == [200] * 5
    with pytest.raises(httpx.HTTPStatusError):
        limit(emulator, writes_per_minute=0)


def test_caps_under_the_limits_meet_no_429(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator = managed_agents_emulator
    with_caps(emulator, monkeypatch)
    deployment = ManagedAgentsHook().create_deployment(
        {"agent": "agent_demo", "environment_id": "env_demo", "name": "capped", "initial_events": EVENTS}
    )
    # The limit: 600 writes a minute, 60 at once. The caps: 360 a minute (60 at once, then one
    # every 1/6 s): never more than the limit's bucket holds, however the threads interleave.
    limit(emulator, writes_per_minute=600, burst=60)
    with_caps(emulator, monkeypatch, writes_per_minute=360)
    emulator.control("DELETE", "requests")

    def pause_repeatedly(index: int) -> None:
        hook = ManagedAgentsHook()
        for _ in range(20):
            hook.pause_deployment(deployment.id)

    assert in_threads(5, pause_repeatedly) == []
    counts = emulator.request_counts()
    assert counts["by_endpoint"]["POST /v1/deployments/{deployment_id}/pause"] == 100
    assert counts["rate_limited"] == {"reads": 0, "writes": 0}
    assert budget_for("managed_agents_default").status("write").waited > 0  # the caps did space them


def test_without_caps_every_429_is_ridden_out_by_pausing_the_whole_class(
    managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = managed_agents_emulator
    with_caps(emulator, monkeypatch)
    deployment = ManagedAgentsHook().create_deployment(
        {"agent": "agent_demo", "environment_id": "env_demo", "name": "uncapped", "initial_events": EVENTS}
    )
    limit(emulator, writes_per_minute=600, burst=5)
    emulator.control("DELETE", "requests")

    def pause_repeatedly(index: int) -> None:
        hook = ManagedAgentsHook()
        for _ in range(5):
            hook.pause_deployment(deployment.id)

    assert in_threads(6, pause_repeatedly) == []  # no call failed: every 429 was waited through
    counts = emulator.request_counts()
    limited = counts["rate_limited"]["writes"]
    assert counts["by_endpoint"]["POST /v1/deployments/{deployment_id}/pause"] == 30 + limited
    assert limited > 0
    # Once a 429 was heard every thread waited for the pause and then went at its pace: a few
    # 429s while the pace is learnt, not one per request (a request alone would meet ~25).
    assert limited <= 18
    assert budget_for("managed_agents_default").status("write").rate_limited == limited
