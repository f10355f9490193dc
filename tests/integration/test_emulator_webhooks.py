"""The emulator's webhooks: endpoints registered as in the Console, deliveries signed as the API
signs them (the official SDK's ``beta.webhooks.unwrap()`` accepts them, its models validate
them strictly), sent from the emulator's own tasks, retried with backoff, and the delivery
faults. A small server on 127.0.0.1 stands in for the receiver and records what arrives."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import pytest
import uvicorn
from anthropic.types.beta import BetaWebhookEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from webhook_support import deliveries, settled, wait_until

from airflow_provider_managed_agents.emulator.server import free_port
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}


@dataclass
class Catcher:
    """What arrived (headers, body, when) and what to answer next (statuses, then 200)."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received]


@pytest.fixture
def catcher() -> Iterator[Catcher]:
    caught = Catcher()

    async def hook(request: Request) -> Response:
        body = await request.body()
        caught.received.append({"headers": dict(request.headers), "body": body, "at": time.monotonic()})
        if caught.delay:
            await asyncio.sleep(caught.delay)
        return Response(status_code=caught.statuses.pop(0) if caught.statuses else 200)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/hook", hook, methods=["POST"])]),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the catcher")
    caught.url = f"http://127.0.0.1:{port}/hook"
    yield caught
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def hook(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ManagedAgentsHook]:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    hook = ManagedAgentsHook()
    yield hook
    hook.close()


def register(emulator: Any, url: str, events: list[str], **options: Any) -> dict[str, Any]:
    return dict(emulator.control("POST", "webhooks", {"url": url, "events": events, **options}))


def new_deployment(hook: ManagedAgentsHook, **extra: Any) -> str:
    fields = {"name": "hooked", "agent": "agent_demo", "environment_id": "env_demo", "initial_events": [MESSAGE]}
    return hook.create_deployment(**fields, **extra).id


def test_an_endpoint_is_registered_with_a_secret_shown_once_and_removed(managed_agents_emulator: Any) -> None:
    made = register(managed_agents_emulator, "https://example.test/hook", ["deployment_run.succeeded"])
    assert made["id"].startswith("whep_") and made["signing_secret"].startswith("whsec_")
    listed = managed_agents_emulator.control("GET", "webhooks")["data"]
    assert [e["id"] for e in listed] == [made["id"]] and "signing_secret" not in json.dumps(listed)
    assert made["signing_secret"] not in json.dumps(managed_agents_emulator.state())
    assert managed_agents_emulator.control("DELETE", f"webhooks/{made['id']}") == {"id": made["id"], "deleted": True}
    assert managed_agents_emulator.control("GET", "webhooks")["data"] == []
    import httpx

    missing = httpx.delete(f"{managed_agents_emulator.base_url}/_emulator/webhooks/{made['id']}")
    assert missing.status_code == 404
    for bad, field_name in (({"events": ["*"]}, "url"), ({"url": "https://x.test"}, "events")):
        refused = httpx.post(f"{managed_agents_emulator.base_url}/_emulator/webhooks", json=bad)
        assert refused.status_code == 400 and field_name in refused.text


def test_runs_and_session_changes_are_delivered_signed_as_the_api_signs(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, catcher: Catcher
) -> None:
    made = register(managed_agents_emulator, catcher.url, ["*"])
    deployment_id = new_deployment(hook)
    managed_agents_emulator.force_next_run_error(deployment_id, "environment_archived_error")
    failed = hook.run_deployment(deployment_id)
    run = hook.run_deployment(deployment_id)
    managed_agents_emulator.advance_clock(5)  # the session plays its script to the end
    hook.pause_deployment(deployment_id)
    wait_until(lambda: settled(managed_agents_emulator), "the deliveries")
    client = anthropic.Anthropic(api_key="unused")
    seen: list[tuple[str, str]] = []
    for arrived in catcher.received:
        unwrapped = client.beta.webhooks.unwrap(
            arrived["body"].decode(), headers=arrived["headers"], key=made["signing_secret"]
        )
        BetaWebhookEvent.model_validate_json(arrived["body"], strict=True)
        assert arrived["headers"]["webhook-id"] == unwrapped.id
        seen.append((unwrapped.data.type, unwrapped.data.id))
    assert seen[:1] == [("deployment.created", deployment_id)]
    assert ("deployment_run.started", failed.id) in seen and ("deployment_run.failed", failed.id) in seen
    assert ("deployment_run.started", run.id) in seen and ("deployment_run.succeeded", run.id) in seen
    session_events = [kind for kind, ident in seen if ident == run.session_id]
    assert session_events == ["session.created", "session.status_run_started", "session.status_idled"]
    assert ("deployment.paused", deployment_id) in seen


def test_a_slow_receiver_does_not_slow_the_api(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, catcher: Catcher
) -> None:
    catcher.delay = 3.0
    register(managed_agents_emulator, catcher.url, ["deployment_run.succeeded"])
    deployment_id = new_deployment(hook)
    started = time.monotonic()
    for _ in range(3):
        hook.run_deployment(deployment_id)
    assert time.monotonic() - started < 2.0  # the deliveries are the emulator's own tasks
    wait_until(lambda: len(catcher.received) == 3, "three deliveries in flight at once", 30)


def test_failures_and_timeouts_are_retried_with_backoff_and_freshly_signed(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, catcher: Catcher
) -> None:
    register(
        managed_agents_emulator,
        catcher.url,
        ["deployment_run.succeeded"],
        retry_delays=[0.2, 0.4, 0.8, 1.6],
        timeout_seconds=0.5,
    )
    catcher.statuses = [500, 302, 429]
    deployment_id = new_deployment(hook)
    hook.run_deployment(deployment_id)
    wait_until(lambda: settled(managed_agents_emulator), "the retried delivery")
    [delivery] = deliveries(managed_agents_emulator)
    assert [a["status"] for a in delivery["attempts"]] == [500, 302, 429, 200]  # a 3xx is a failure too
    assert delivery["state"] == "delivered"
    gaps = [b["at"] - a["at"] for a, b in zip(catcher.received, catcher.received[1:], strict=False)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4 and gaps[2] >= 0.8  # backing off
    assert len({r["headers"]["webhook-id"] for r in catcher.received}) == 1

    catcher.received.clear()
    catcher.delay = 1.0  # beyond the endpoint's timeout: each attempt times out, then it gives up
    hook.run_deployment(deployment_id)
    wait_until(lambda: settled(managed_agents_emulator), "the timed-out delivery to give up", 60)
    timed_out = deliveries(managed_agents_emulator)[-1]
    assert timed_out["state"] == "failed" and len(timed_out["attempts"]) == 5
    assert {a["error"] for a in timed_out["attempts"]} == {"ReadTimeout"}


@pytest.mark.parametrize("fault", ["duplicate", "delay", "reorder", "drop"])
def test_delivery_faults_on_demand(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, catcher: Catcher, fault: str
) -> None:
    register(managed_agents_emulator, catcher.url, ["deployment_run.succeeded"], retry_delays=[0.3])
    deployment_id = new_deployment(hook)
    managed_agents_emulator.control(
        "POST", "webhooks/faults", {"kinds": [fault], "count": 1, "delay_ms": 1500 if fault == "delay" else 3000}
    )
    started = time.monotonic()
    first = hook.run_deployment(deployment_id)
    if fault == "reorder":
        time.sleep(0.2)
    second = hook.run_deployment(deployment_id)
    wait_until(lambda: settled(managed_agents_emulator), "the deliveries")
    arrived = [body["data"]["id"] for body in catcher.bodies()]
    log = {d["object_id"]: d for d in deliveries(managed_agents_emulator)}
    assert log[first.id]["fault"] == fault and log[second.id]["fault"] is None
    if fault == "duplicate":
        assert sorted(arrived) == sorted([first.id, first.id, second.id])
        copies = {
            r["headers"]["webhook-id"] for r in catcher.received if json.loads(r["body"])["data"]["id"] == first.id
        }
        assert len(copies) == 1  # the same event (same id) delivered twice
    elif fault == "delay":
        assert arrived == [second.id, first.id]
        assert catcher.received[1]["at"] - started >= 1.5
    elif fault == "reorder":
        assert arrived == [second.id, first.id]  # held until the next one was sent
    else:
        assert arrived == [second.id, first.id] or arrived == [first.id, second.id]
        assert [a["error"] for a in log[first.id]["attempts"]] == ["dropped (fault)", None]
        assert log[first.id]["state"] == "delivered"


def test_any_event_type_on_demand_and_a_reset_forgets_the_endpoints(
    managed_agents_emulator: Any, catcher: Catcher
) -> None:
    register(managed_agents_emulator, catcher.url, ["vault_credential.refresh_failed"])
    sent = managed_agents_emulator.control(
        "POST",
        "webhooks/emit",
        {"type": "vault_credential.refresh_failed", "id": "vcrd_01", "data": {"vault_id": "vlt_01"}},
    )["event"]
    wait_until(lambda: catcher.received, "the delivery")
    assert catcher.bodies() == [sent]
    BetaWebhookEvent.model_validate_json(catcher.received[0]["body"], strict=True)
    managed_agents_emulator.reset()
    assert managed_agents_emulator.control("GET", "webhooks")["data"] == []
    assert managed_agents_emulator.control("GET", "webhooks/deliveries")["data"] == []
