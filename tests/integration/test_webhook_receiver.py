"""The webhook receiver against the emulator and a real Airflow metadata database (SQLite):
verification before anything is recorded or read, idempotency by event id across receivers
(api-server restarts, two api-servers), one read and one asset event per run whatever the order
and the duplicates, the same asset events as the polling watcher's, session endings, the
emulator's faulty deliveries end to end, webhooks and the watcher together, and the plugin on
Airflow's own api-server app."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from webhook_support import (
    asset_events,
    deliveries,
    event,
    feed,
    recorded_event,
    serve,
    settled,
    signed,
    wait_until,
)

from airflow_provider_managed_agents.assets import run_details, runs_asset_key, sessions_ended_asset_key
from airflow_provider_managed_agents.emulator.server import free_port
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.webhooks import EVENTS_PATH, URL_PREFIX, WATCHER_PATH
from airflow_provider_managed_agents.webhooks.receiver import Receiver, create_app
from airflow_provider_managed_agents.webhooks.signing import new_secret, signed_headers

BIN = Path(sys.executable).parent
MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "go"}]}
RUN_READS = "GET /v1/deployment_runs/{deployment_run_id}"


@pytest.fixture(scope="module")
def metadata_db() -> None:
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], check=True, capture_output=True, timeout=300)


def use_secret(monkeypatch: pytest.MonkeyPatch, secret: str, **extra: Any) -> None:
    conn = {"conn_type": "generic", "password": secret, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_WEBHOOK_DEFAULT", json.dumps(conn))


@pytest.fixture
def hook(
    managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch, metadata_db: None
) -> Iterator[ManagedAgentsHook]:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    hook = ManagedAgentsHook()
    yield hook
    hook.close()


@pytest.fixture
def secret(hook: ManagedAgentsHook, monkeypatch: pytest.MonkeyPatch) -> str:
    secret = new_secret()
    use_secret(monkeypatch, secret)
    return secret


@pytest.fixture
def client(secret: str) -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client


def new_deployment(hook: ManagedAgentsHook, **extra: Any) -> str:
    fields = {"name": "pushed", "agent": "agent_demo", "environment_id": "env_demo", "initial_events": [MESSAGE]}
    return hook.create_deployment(**fields, **extra).id


def deliver(client: TestClient, secret: str, body: dict[str, Any], timestamp: int | None = None) -> Any:
    raw, headers = signed(secret, body, timestamp)
    return client.post(EVENTS_PATH, content=raw, headers=headers)


def run_reads(emulator: Any) -> int:
    return int(emulator.request_counts()["by_endpoint"].get(RUN_READS, 0))


# --- verification: nothing recorded, nothing read ------------------------------------------------


def test_a_signed_delivery_announces_the_run_on_its_fed_asset(
    client: TestClient, secret: str, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = new_deployment(hook)
    asset = feed(runs_asset_key(deployment_id))
    run = hook.run_deployment(deployment_id)
    answer = deliver(client, secret, event("deployment_run.succeeded", run.id))
    assert answer.status_code == 200 and answer.json()["status"] == "announced", answer.text
    [extra] = asset_events(asset)
    assert extra["from_trigger"] is True
    details = run_details(type("E", (), {"extra": extra})())
    assert details["deployment_run_id"] == run.id and details["session_id"] == run.session_id
    assert details["trigger_type"] == "manual" and details["deployment_run"]["id"] == run.id


@pytest.mark.parametrize(
    "forge",
    ["tampered", "stale", "future", "wrong-secret", "no-signature", "no-id", "no-timestamp", "not-an-event"],
)
def test_a_delivery_that_does_not_verify_is_refused_and_leaves_no_trace(
    client: TestClient, secret: str, hook: ManagedAgentsHook, managed_agents_emulator: Any, forge: str
) -> None:
    deployment_id = new_deployment(hook)
    asset = feed(runs_asset_key(deployment_id))
    run = hook.run_deployment(deployment_id)
    body = event("deployment_run.succeeded", run.id)
    managed_agents_emulator.control("DELETE", "requests")
    now = int(time.time())
    raw, headers = signed(secret, body)
    if forge == "tampered":
        raw = raw.replace(b"succeeded", b"failed")
    elif forge in ("stale", "future"):
        raw, headers = signed(secret, body, now - 600 if forge == "stale" else now + 600)
    elif forge == "wrong-secret":
        raw, headers = signed(new_secret(), body)
    elif forge.startswith("no-"):
        del headers[f"webhook-{forge[3:]}"]
    elif forge == "not-an-event":
        raw, headers = signed(secret, {"type": "something", "id": "wevt_x"})
    answer = client.post(EVENTS_PATH, content=raw, headers=headers)
    expected = {"no-signature": 400, "no-id": 400, "no-timestamp": 400, "not-an-event": 400}.get(forge, 401)
    assert answer.status_code == expected, answer.text
    assert secret not in answer.text and headers.get("webhook-signature", "v1,") not in answer.text
    assert asset_events(asset) == []
    assert recorded_event(body["id"]) is None
    assert run_reads(managed_agents_emulator) == 0


def test_an_oversized_body_is_refused_before_it_is_read_or_verified(
    client: TestClient, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = event("deployment_run.succeeded", "drun_big")
    big["padding"] = "x" * (70 * 1024)
    raw, headers = signed(secret, big)
    declared = client.post(EVENTS_PATH, content=raw, headers=headers)
    assert declared.status_code == 413 and "65536 bytes" in declared.text

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        for start in range(0, len(raw), 8192):
            yield raw[start : start + 8192]

    streamed = client.post(EVENTS_PATH, content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert recorded_event(big["id"]) is None


def test_without_a_webhook_connection_the_receiver_answers_503(
    hook: ManagedAgentsHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MANAGED_AGENTS_WEBHOOK_DEFAULT", raising=False)
    with TestClient(create_app()) as client:
        raw, headers = signed(new_secret(), event("deployment_run.succeeded", "drun_x"))
        answer = client.post(EVENTS_PATH, content=raw, headers=headers)
        assert answer.status_code == 503 and client.get("/health").status_code == 503


def test_a_malformed_webhook_connection_is_refused_by_name_never_quoted(
    hook: ManagedAgentsHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_managed_agents.webhooks.receiver import NotConfigured, load_configured

    use_secret(monkeypatch, "whsec-but-not-quite-a-secret", max_body_bytes="a lot")
    with pytest.raises(NotConfigured) as refused:
        load_configured()
    assert "password: secret 1: a signing secret starts with 'whsec_'" in str(refused.value)
    assert "extra.max_body_bytes" in str(refused.value) and "not-quite" not in str(refused.value)
    with TestClient(create_app()) as client:
        raw, headers = signed(new_secret(), event("deployment_run.succeeded", "drun_x"))
        assert client.post(EVENTS_PATH, content=raw, headers=headers).status_code == 503


# --- idempotency and ordering ----------------------------------------------------------------------


def test_a_redelivery_is_a_no_op_across_receivers_and_restarts(
    client: TestClient, secret: str, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = new_deployment(hook)
    asset = feed(runs_asset_key(deployment_id))
    run = hook.run_deployment(deployment_id)
    body = event("deployment_run.succeeded", run.id)
    raw, headers = signed(secret, body)
    managed_agents_emulator.control("DELETE", "requests")
    assert client.post(EVENTS_PATH, content=raw, headers=headers).json()["status"] == "announced"
    # A replay of the very same request (within the tolerance: it verifies) and a redelivery.
    assert client.post(EVENTS_PATH, content=raw, headers=headers).json()["status"] == "duplicate"
    assert deliver(client, secret, body).json()["status"] == "duplicate"
    # Another receiver (an api-server restarted, or a second one behind the balancer): no memory
    # in common but the database.
    with TestClient(create_app(Receiver())) as other:
        assert deliver(other, secret, body).json()["status"] == "duplicate"
    assert len(asset_events(asset)) == 1
    assert run_reads(managed_agents_emulator) == 1
    assert recorded_event(body["id"])["outcome"] == "announced"  # type: ignore[index]


@pytest.mark.parametrize("order", [("started", "succeeded"), ("succeeded", "started")])
def test_one_read_and_one_asset_event_per_run_in_either_order(
    client: TestClient, secret: str, hook: ManagedAgentsHook, managed_agents_emulator: Any, order: tuple[str, str]
) -> None:
    deployment_id = new_deployment(hook)
    asset = feed(runs_asset_key(deployment_id))
    run = hook.run_deployment(deployment_id)
    managed_agents_emulator.control("DELETE", "requests")
    first, second = (deliver(client, secret, event(f"deployment_run.{kind}", run.id)).json() for kind in order)
    assert (first["status"], second["status"]) == ("announced", "already_announced")
    assert len(asset_events(asset)) == 1 and run_reads(managed_agents_emulator) == 1


def test_copies_of_one_event_at_two_receivers_at_once_announce_once(
    secret: str, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = new_deployment(hook)
    asset = feed(runs_asset_key(deployment_id))
    runs = [hook.run_deployment(deployment_id) for _ in range(5)]
    answers: list[str] = []
    with TestClient(create_app(Receiver())) as one, TestClient(create_app(Receiver())) as two:
        bodies = [event("deployment_run.succeeded", run.id) for run in runs]
        threads = [
            threading.Thread(target=lambda c=c, b=b: answers.append(deliver(c, secret, b).json()["status"]))
            for b in bodies
            for c in (one, two, one, two)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert sorted(answers).count("announced") == 5 and len(answers) == 20
    payloads = [e["payload"]["deployment_run_id"] for e in asset_events(asset)]
    assert sorted(payloads) == sorted(run.id for run in runs)


def test_runs_feed_only_the_assets_whose_filters_match_and_never_a_polled_one(
    client: TestClient, secret: str, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = new_deployment(hook)
    every = feed(runs_asset_key(deployment_id))
    failed = feed(runs_asset_key(deployment_id, has_error=True))
    sessions = feed(runs_asset_key(deployment_id, trigger_type="manual", has_error=False))
    scheduled = feed(runs_asset_key(deployment_id, trigger_type="schedule"), delivery="both")
    polled = feed(runs_asset_key(deployment_id, trigger_type="manual"), delivery=None)
    good = hook.run_deployment(deployment_id)
    managed_agents_emulator.force_next_run_error(deployment_id, "environment_archived_error")
    bad = hook.run_deployment(deployment_id)
    for run in (good, bad):
        assert deliver(client, secret, event("deployment_run.started", run.id)).status_code == 200

    def announced(asset: int) -> list[str]:
        return [e["payload"]["deployment_run_id"] for e in asset_events(asset)]

    assert announced(every) == [good.id, bad.id]
    assert announced(failed) == [bad.id]
    assert announced(sessions) == [good.id]
    assert announced(scheduled) == [] and announced(polled) == []


def test_a_failed_read_is_answered_503_records_nothing_and_the_redelivery_announces(
    client: TestClient, secret: str, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = new_deployment(hook)
    asset = feed(runs_asset_key(deployment_id))
    run = hook.run_deployment(deployment_id)
    body = event("deployment_run.succeeded", run.id)
    managed_agents_emulator.inject_faults(kinds=["503"], endpoints=[RUN_READS], count=1)
    answer = deliver(client, secret, body)
    assert answer.status_code == 503 and recorded_event(body["id"]) is None and asset_events(asset) == []
    assert deliver(client, secret, body).json()["status"] == "announced"


def test_a_session_ending_is_announced_once_with_its_facts(
    client: TestClient, secret: str, hook: ManagedAgentsHook, managed_agents_emulator: Any
) -> None:
    deployment_id = new_deployment(hook)
    ended = feed(sessions_ended_asset_key(deployment_id))
    managed_agents_emulator.session_script(deployment_id, ending="refusal", turn_seconds=1)
    run = hook.run_deployment(deployment_id)
    assert run.session_id is not None
    not_yet = deliver(client, secret, event("session.status_idled", run.session_id)).json()
    assert not_yet["status"] == "not_ended"  # a new session is idle before it ran
    managed_agents_emulator.advance_clock(5)
    managed_agents_emulator.control("DELETE", "requests")
    statuses = [
        deliver(client, secret, event(kind, run.session_id)).json()["status"]
        for kind in ("session.status_idled", "session.outcome_evaluation_ended", "session.status_run_started")
    ]
    assert statuses == ["announced", "already_announced", "ignored"]
    [extra] = asset_events(ended)
    assert extra["session_id"] == run.session_id and extra["deployment_id"] == deployment_id
    assert (extra["session_status"], extra["stop_reason"], extra["succeeded"]) == ("idle", "refusal", False)
    assert extra["error_type"] == "SessionRefusedError" and extra["usage"]["output_tokens"] == 300
    counts = managed_agents_emulator.request_counts()["by_endpoint"]
    assert counts == {"GET /v1/sessions/{session_id}": 2, "GET /v1/sessions/{session_id}/events": 2}


# --- the emulator delivering to the receiver on a real port ------------------------------------------


def register(emulator: Any, port: int, monkeypatch: pytest.MonkeyPatch, **options: Any) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{URL_PREFIX}{EVENTS_PATH}"
    endpoint = emulator.control("POST", "webhooks", {"url": url, **options})
    use_secret(monkeypatch, endpoint["signing_secret"])
    return dict(endpoint)


def test_the_emulators_faulty_deliveries_announce_each_run_once(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id = new_deployment(hook)
    asset = feed(runs_asset_key(deployment_id))
    port = free_port()
    register(
        managed_agents_emulator,
        port,
        monkeypatch,
        events=["deployment_run.started", "deployment_run.succeeded"],
        retry_delays=[0.1, 0.2, 0.5, 1.0],
    )
    managed_agents_emulator.control(
        "POST", "webhooks/faults", {"kinds": ["duplicate", "reorder", "drop", "delay"], "delay_ms": 300, "seed": 7}
    )
    with serve(create_app(), port):
        runs = [hook.run_deployment(deployment_id) for _ in range(8)]
        wait_until(lambda: settled(managed_agents_emulator), "every delivery to end")
    log = deliveries(managed_agents_emulator)
    assert len(log) == 16 and all(d["state"] == "delivered" for d in log)
    assert {d["fault"] for d in log} == {"duplicate", "reorder", "drop", "delay"}
    dropped = [d for d in log if d["fault"] == "drop"]
    assert all(d["attempts"][0]["error"] == "dropped (fault)" and d["attempts"][-1]["status"] == 200 for d in dropped)
    duplicated = [d for d in log if d["fault"] == "duplicate"]
    assert all([a["status"] for a in d["attempts"]] == [200, 200] for d in duplicated)
    announced = [e["payload"]["deployment_run_id"] for e in asset_events(asset)]
    assert sorted(announced) == sorted(run.id for run in runs)
    assert run_reads(managed_agents_emulator) == 8


def test_a_receiver_down_then_up_gets_the_retried_deliveries(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment_id = new_deployment(hook)
    asset = feed(runs_asset_key(deployment_id))
    port = free_port()
    register(managed_agents_emulator, port, monkeypatch, events=["deployment_run.succeeded"], retry_delays=[0.2] * 50)
    run = hook.run_deployment(deployment_id)  # nobody listens yet: connection refused, retried
    wait_until(lambda: len(deliveries(managed_agents_emulator)[0]["attempts"]) >= 2, "two failed attempts")
    with serve(create_app(), port):
        wait_until(lambda: settled(managed_agents_emulator), "the retried delivery")
    [delivery] = deliveries(managed_agents_emulator)
    assert delivery["state"] == "delivered" and delivery["attempts"][0]["error"] == "ConnectError"
    assert [e["payload"]["deployment_run_id"] for e in asset_events(asset)] == [run.id]


def test_the_same_payload_the_polling_watcher_announces(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The asset event a webhook makes carries exactly what the watcher's trigger event carries
    (the triggerer stores ``{"from_trigger": True, "payload": <the event's payload>}``)."""
    from airflow_provider_managed_agents.triggers import deployment_run_events as events_module
    from airflow_provider_managed_agents.triggers.deployment_run_events import ManagedAgentsDeploymentRunEventTrigger

    monkeypatch.setattr(events_module, "MIN_POLL_INTERVAL", 0.05)
    deployment_id = new_deployment(hook)
    asset = feed(runs_asset_key(deployment_id))
    port = free_port()
    register(managed_agents_emulator, port, monkeypatch, events=["deployment_run.succeeded"])

    async def watch() -> dict[str, Any]:
        from fakes import AssetStateStore

        trigger = ManagedAgentsDeploymentRunEventTrigger(deployment_id=deployment_id, poll_interval=0.1)
        trigger.asset_state_store = AssetStateStore()
        events = trigger.run()
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(hook.run_deployment, deployment_id)
        announced = await asyncio.wait_for(first, 60)
        await events.aclose()
        return dict(announced.payload)

    with serve(create_app(), port):
        watcher_payload = asyncio.run(watch())
        wait_until(lambda: asset_events(asset), "the webhook's asset event")
    assert asset_events(asset) == [{"from_trigger": True, "payload": watcher_payload}]


def test_webhooks_and_the_watcher_together_announce_each_run_once(
    hook: ManagedAgentsHook, managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``delivery="both"``: some deliveries are lost for good (dropped, no retries), the watcher
    hands every run over too; each run is announced once, by whichever came first."""
    from airflow_provider_managed_agents.triggers import deployment_run_events as events_module
    from airflow_provider_managed_agents.triggers import webhook_handover
    from airflow_provider_managed_agents.triggers.deployment_run_events import ManagedAgentsDeploymentRunEventTrigger

    monkeypatch.setattr(events_module, "MIN_POLL_INTERVAL", 0.05)
    deployment_id = new_deployment(hook)
    asset = feed(runs_asset_key(deployment_id), delivery="both")
    port = free_port()
    register(managed_agents_emulator, port, monkeypatch, events=["deployment_run.succeeded"], retry_delays=[])
    managed_agents_emulator.control("POST", "webhooks/faults", {"kinds": ["drop"], "rate": 0.5, "seed": 3})
    monkeypatch.setenv(
        "AIRFLOW_CONN_MANAGED_AGENTS_WEBHOOK_DEFAULT",
        json.dumps(
            {
                **json.loads(os.environ["AIRFLOW_CONN_MANAGED_AGENTS_WEBHOOK_DEFAULT"]),
                "host": f"http://127.0.0.1:{port}{URL_PREFIX}",
            }
        ),
    )
    assert webhook_handover.RETRY_DELAYS[0] <= 1

    async def watch_while(runs: int) -> list[Any]:
        from fakes import AssetStateStore

        trigger = ManagedAgentsDeploymentRunEventTrigger(
            deployment_id=deployment_id, poll_interval=0.2, delivery="both"
        )
        trigger.asset_state_store = AssetStateStore()
        task = asyncio.ensure_future(_drain(trigger.run()))
        await asyncio.sleep(0.5)
        made = [await asyncio.to_thread(hook.run_deployment, deployment_id) for _ in range(runs)]
        await asyncio.to_thread(
            wait_until, lambda: len(asset_events(asset)) >= runs and settled(managed_agents_emulator), "announcements"
        )
        await asyncio.sleep(1.0)  # the watcher's later hand-overs of the same runs: no-ops
        task.cancel()
        assert await asyncio.gather(task, return_exceptions=True)
        return made

    with serve(create_app(), port):
        runs = asyncio.run(watch_while(6))
    announced = [e["payload"]["deployment_run_id"] for e in asset_events(asset)]
    assert sorted(announced) == sorted(run.id for run in runs)
    from airflow.utils.session import create_session

    from airflow_provider_managed_agents.webhooks import records

    with create_session() as session:
        sources = {
            row.source
            for row in session.execute(
                records.announcements.select().where(records.announcements.c.subject.in_([run.id for run in runs]))
            )
        }
    lost = [d for d in deliveries(managed_agents_emulator) if d["state"] == "failed"]
    assert lost and "watcher" in sources  # the runs whose deliveries were lost came from the watcher


async def _drain(events: Any) -> list[Any]:
    return [event async for event in events]


def test_a_watchers_hand_over_must_be_signed_too(secret: str, client: TestClient, hook: ManagedAgentsHook) -> None:
    deployment_id = new_deployment(hook)
    asset = feed(runs_asset_key(deployment_id), delivery="both")
    run = hook.run_deployment(deployment_id)
    raw = json.dumps({"type": "deployment_run", "id": run.id}).encode()
    forged = client.post(WATCHER_PATH, content=raw, headers=signed_headers(new_secret(), "x", raw))
    assert forged.status_code == 401 and asset_events(asset) == []
    handed = client.post(WATCHER_PATH, content=raw, headers=signed_headers(secret, "x", raw))
    assert handed.json()["status"] == "announced" and len(asset_events(asset)) == 1


# --- the plugin, loaded by Airflow from the entry point -----------------------------------------------

PLUGIN_CHECK = """
import json, sys
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app
client = TestClient(create_app())
print(json.dumps({
    "health": client.get("/managed-agents/webhooks/health").status_code,
    "unsigned": client.post("/managed-agents/webhooks/events", content=b"{}").status_code,
    "airflow_api": client.get("/api/v2/assets").status_code,
}))
"""


def test_airflow_loads_the_plugin_and_mounts_the_receiver_without_airflow_auth(
    metadata_db: None, tmp_path: Path
) -> None:
    from webhook_support import plugin_path

    env = dict(os.environ)
    extra = plugin_path(tmp_path)
    if extra is not None:  # an installation older than the entry point: the same entry point, declared here
        env["PYTHONPATH"] = os.pathsep.join([str(extra), env.get("PYTHONPATH", "")])
    env.pop("AIRFLOW_CONN_MANAGED_AGENTS_WEBHOOK_DEFAULT", None)
    listed = subprocess.run(
        [str(BIN / "airflow"), "plugins", "--output", "json"], env=env, capture_output=True, text=True, timeout=120
    )
    printed = [line for line in listed.stdout.splitlines() if line.startswith("[{")]  # not the log lines
    assert printed, listed.stdout + listed.stderr
    plugins = {p["name"]: p for p in json.loads(printed[-1])}
    assert "managed_agents_webhooks" in plugins, listed.stdout + listed.stderr
    assert URL_PREFIX in json.dumps(plugins["managed_agents_webhooks"])
    checked = subprocess.run([sys.executable, "-c", PLUGIN_CHECK], env=env, capture_output=True, text=True, timeout=120)
    answers = json.loads(checked.stdout.strip().splitlines()[-1])
    # Mounted (503: no webhook connection here) and reachable without a token, unlike Airflow's API.
    assert answers == {"health": 503, "unsigned": 503, "airflow_api": 401}, checked.stderr[-3000:]
