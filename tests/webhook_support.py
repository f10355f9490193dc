"""Shared by the webhook tests, the system test and the bench: assets fed by webhooks in a real
Airflow metadata database, signed deliveries, the receiver on a real port, and the plugin's
entry point where the installed distribution predates it."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_managed_agents.webhooks import EVENTS_PATH, URL_PREFIX
from airflow_provider_managed_agents.webhooks.signing import signed_headers

PLUGIN = "airflow_provider_managed_agents.webhooks.plugin:ManagedAgentsWebhooksPlugin"


def event(event_type: str, object_id: str, event_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "event",
        "id": event_id or f"wevt_{secrets.token_hex(8)}",
        "created_at": "2026-05-01T12:00:00Z",
        "data": {"type": event_type, "id": object_id, "organization_id": "org_test", "workspace_id": "default"},
    }


def signed(secret: str, body: dict[str, Any] | bytes, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg_id = json.loads(raw)["id"] if not isinstance(body, bytes) else "wevt_raw"
    return raw, signed_headers(secret, msg_id, raw, timestamp)


def feed(name_uri: tuple[str, str], delivery: str | None = "webhook") -> int:
    """An active asset as a DAG file would define it (``delivery=None``: a polled one, no extra)."""
    from airflow.models.asset import AssetActive, AssetModel
    from airflow.utils.session import create_session

    from airflow_provider_managed_agents.assets import DELIVERY_EXTRA_KEY

    name, uri = name_uri
    with create_session() as session:
        extra = {DELIVERY_EXTRA_KEY: delivery} if delivery else {}
        asset = AssetModel(name=name, uri=uri, extra=extra, group="asset")
        session.add(asset)
        session.flush()
        session.add(AssetActive.for_asset(asset))
        return int(asset.id)


def asset_events(asset_id: int) -> list[dict[str, Any]]:
    """The extras of an asset's events, oldest first."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset_id).order_by(AssetEvent.id))
        return [dict(row.extra) for row in rows]


def recorded_event(event_id: str) -> dict[str, Any] | None:
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_provider_managed_agents.webhooks import records

    with create_session() as session:
        row = session.execute(select(records.events).where(records.events.c.event_id == event_id)).first()
        return dict(row._mapping) if row is not None else None


@contextmanager
def serve(app: Any, port: int) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:``port`` in a thread; yields the events URL."""
    import uvicorn
    from fastapi import FastAPI

    root = FastAPI()
    root.mount(URL_PREFIX, app)
    server = uvicorn.Server(
        uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="webhook-receiver", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}{URL_PREFIX}{EVENTS_PATH}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_until(condition: Any, what: str, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def deliveries(emulator: Any) -> list[dict[str, Any]]:
    return list(emulator.control("GET", "webhooks/deliveries")["data"])


def settled(emulator: Any) -> bool:
    """Every delivery has ended (delivered or given up)."""
    return all(d["state"] != "pending" for d in deliveries(emulator))


def plugin_path(where: Path) -> Path | None:
    """A directory to put on PYTHONPATH so that Airflow finds the plugin's entry point, when the
    installed distribution of this package was installed before the entry point existed (an old
    editable install); None when it declares it already. The directory holds nothing but a
    distribution's metadata naming the same entry point as pyproject.toml."""
    if any(ep.value == PLUGIN for ep in entry_points(group="airflow.plugins")):
        return None
    info = where / "managed_agents_webhooks_entry_point-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: managed-agents-webhooks-entry-point\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[airflow.plugins]\nmanaged_agents_webhooks = {PLUGIN}\n")
    return where


def post(url: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=raw, headers=headers, timeout=30)
