"""Webhooks from the emulator: endpoints registered as in the Console, signed deliveries, retries
and delivery faults on demand.

- ``POST /_emulator/webhooks`` ``{"url", "events", "retry_delays"?, "timeout_seconds"?}``
  registers an endpoint for those event types (``["*"]``: all) and answers its ``id`` and its
  ``signing_secret`` (``whsec_...``), once, as the Console shows it once; ``GET`` lists the
  endpoints without their secrets; ``DELETE /_emulator/webhooks/{id}`` removes one.
- The world calls :meth:`Webhooks.emit` when something happens (a run is recorded: ``started``
  then ``succeeded`` or ``failed``; a session changes status or ends an outcome evaluation; a
  deployment is created, updated, paused, unpaused or archived; ``POST
  /_emulator/webhooks/emit`` ``{"type", "id", "data"?}`` for any other type, ``data`` holding
  the fields it adds, e.g. ``vault_id``). Each event becomes one thin payload
  (``{"type": "event", "id": "wevt_...", "created_at", "data": {"type", "id",
  "organization_id", "workspace_id"}}``) delivered to each endpoint that wants its type, signed
  per Standard Webhooks as the API signs (``webhook-id`` = the event id on every attempt, a fresh
  ``webhook-timestamp`` and signature per attempt).
- Delivery runs in the emulator's event loop as tasks of their own (never in a request's
  handler): at least once, in no guaranteed order, at most ``MAX_IN_FLIGHT`` at a time per
  endpoint; any answer but 2xx (3xx too), a connection error or a timeout is retried after the
  endpoint's ``retry_delays`` (real seconds: they stand for the network, not the world's clock),
  then given up.
- Faults (``POST /_emulator/webhooks/faults`` ``{"kinds", "rate", "count", "delay_ms",
  "events", "seed"}``): ``duplicate`` (delivered twice), ``delay`` (held ``delay_ms`` first),
  ``reorder`` (held until the endpoint's next delivery has been tried, at most ``delay_ms``: a
  later event arrives first), ``drop`` (the first attempt is lost, then retried).
- ``GET /_emulator/webhooks/deliveries`` lists every delivery and its attempts (status, error,
  duration); the signing secrets are never in any answer but the registration's.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from airflow_provider_managed_agents.models.base import format_timestamp
from airflow_provider_managed_agents.webhooks.signing import new_secret, signed_headers

ORGANIZATION_ID = "org_emulator"
WORKSPACE_ID = "default"
DEFAULT_RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
DEFAULT_TIMEOUT_SECONDS = 10.0
MAX_IN_FLIGHT = 16
FAULT_KINDS = ("duplicate", "delay", "reorder", "drop")
USER_AGENT = "managed-agents-emulator-webhooks/1"


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class Endpoint:
    id: str
    url: str
    events: frozenset[str]
    secret: str
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    tried: int = 0  # first attempts made: what a reordered delivery waits on
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": sorted(self.events),
            "retry_delays": list(self.retry_delays),
            "timeout_seconds": self.timeout,
        }


@dataclass
class Delivery:
    id: str
    endpoint_id: str
    event: dict[str, Any]
    fault: str | None = None
    state: str = "pending"  # then "delivered" or "failed"
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "event_id": self.event["id"],
            "type": self.event["data"]["type"],
            "object_id": self.event["data"]["id"],
            "fault": self.fault,
            "state": self.state,
            "attempts": list(self.attempts),
        }


@dataclass
class DeliveryFaults:
    """Which deliveries misbehave, and how (one kind per delivery, drawn from ``kinds``)."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    count: int | None = None
    delay_ms: float = 1000.0
    events: tuple[str, ...] = ("*",)
    injected: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> DeliveryFaults:
        kinds = tuple(str(k) for k in body.get("kinds") or FAULT_KINDS)
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown delivery fault kinds {unknown}; known: {list(FAULT_KINDS)}")
        rate = float(body.get("rate", 1.0))
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        delay_ms = float(body.get("delay_ms", 1000.0))
        if not 0 <= delay_ms <= 600_000:
            raise ValueError("delay_ms must be between 0 and 600000")
        count = body.get("count")
        return cls(
            rate=rate,
            kinds=kinds,
            count=None if count is None else int(count),
            delay_ms=delay_ms,
            events=tuple(body.get("events") or ("*",)),
            rng=random.Random(body.get("seed")),
        )

    def pick(self, event_type: str) -> str | None:
        if self.rate <= 0 or (self.count is not None and self.injected >= self.count):
            return None
        if "*" not in self.events and event_type not in self.events:
            return None
        if self.rng.random() >= self.rate:
            return None
        self.injected += 1
        return self.rng.choice(self.kinds)


def _check_registration(body: dict[str, Any]) -> tuple[str, frozenset[str], tuple[float, ...], float]:
    url = body.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError("url: an http(s) URL is required")
    events = body.get("events")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) and e for e in events):
        raise ValueError('events: a non-empty list of event types is required (["*"] for all)')
    delays = body.get("retry_delays", DEFAULT_RETRY_DELAYS)
    if (
        not isinstance(delays, list | tuple)
        or len(delays) > 50
        or not all(isinstance(d, int | float) and 0 <= d <= 3600 for d in delays)
    ):
        raise ValueError("retry_delays: at most 50 delays, each 0 to 3600 seconds")
    timeout = body.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if not isinstance(timeout, int | float) or not 0.05 <= timeout <= 120:
        raise ValueError("timeout_seconds: 0.05 to 120")
    return url, frozenset(events), tuple(float(d) for d in delays), float(timeout)


class Webhooks:
    """The endpoints, the deliveries and their tasks. Lives on the emulator's event loop."""

    def __init__(self, now: Callable[[], datetime]):
        self.now = now
        self.endpoints: dict[str, Endpoint] = {}
        self.deliveries: list[Delivery] = []
        self.faults = DeliveryFaults()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    # --- the controls ---------------------------------------------------------------------

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        url, events, delays, timeout = _check_registration(body)
        endpoint = Endpoint(_new_id("whep"), url, events, new_secret(), delays, timeout)
        self.endpoints[endpoint.id] = endpoint
        return {**endpoint.public(), "signing_secret": endpoint.secret}

    def remove(self, endpoint_id: str) -> dict[str, Any]:
        endpoint = self.endpoints.pop(endpoint_id, None)
        if endpoint is None:
            raise KeyError(f"no webhook endpoint {endpoint_id!r}")
        return {"id": endpoint_id, "deleted": True}

    def listing(self) -> dict[str, Any]:
        return {"data": [e.public() for e in self.endpoints.values()]}

    def delivery_log(self) -> dict[str, Any]:
        return {"data": [d.public() for d in self.deliveries]}

    async def reset(self) -> None:
        """Forget every endpoint, delivery and fault; stop the deliveries in flight."""
        self.endpoints.clear()
        self.deliveries.clear()
        self.faults = DeliveryFaults()
        await self._cancel_all()

    async def close(self) -> None:
        await self._cancel_all()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- emitting ---------------------------------------------------------------------------

    def emit(self, event_type: str, object_id: str, **more: str) -> dict[str, Any] | None:
        """An event happened: deliver it to every endpoint that wants its type. Called by the
        world, on the event loop; ``more``: the fields some types add to ``data`` (``vault_id``
        of a ``vault_credential.*``, ``session_thread_id`` of a ``session.thread_*``). Returns
        the event (None when no endpoint wants it)."""
        wanted = [e for e in self.endpoints.values() if e.wants(event_type)]
        if not wanted:
            return None
        event = {
            "type": "event",
            "id": _new_id("wevt"),
            "created_at": format_timestamp(self.now()),
            "data": {
                "type": event_type,
                "id": object_id,
                "organization_id": ORGANIZATION_ID,
                "workspace_id": WORKSPACE_ID,
                **more,
            },
        }
        loop = asyncio.get_running_loop()
        for endpoint in wanted:
            delivery = Delivery(_new_id("wdlv"), endpoint.id, event, self.faults.pick(event_type))
            self.deliveries.append(delivery)
            task = loop.create_task(self._deliver(endpoint, delivery), name=f"webhook {delivery.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return event

    # --- delivering -------------------------------------------------------------------------

    async def _deliver(self, endpoint: Endpoint, delivery: Delivery) -> None:
        body = json.dumps(delivery.event, separators=(",", ":")).encode()
        hold = self.faults.delay_ms / 1000
        if delivery.fault == "delay":
            await asyncio.sleep(hold)
        elif delivery.fault == "reorder":
            await self._after_the_next(endpoint, hold)
        attempt = 0
        while True:
            if delivery.fault == "drop" and attempt == 0:
                delivery.attempts.append({"at": time.time(), "status": None, "error": "dropped (fault)"})
                ok = False
            else:
                ok = await self._attempt(endpoint, delivery, body)
            if attempt == 0:
                endpoint.tried += 1
            if ok:
                delivery.state = "delivered"
                if delivery.fault == "duplicate":
                    await self._attempt(endpoint, delivery, body)  # the same event, delivered again
                return
            if attempt >= len(endpoint.retry_delays):
                delivery.state = "failed"
                return
            await asyncio.sleep(endpoint.retry_delays[attempt])
            attempt += 1

    async def _after_the_next(self, endpoint: Endpoint, at_most: float) -> None:
        """Wait until the endpoint's next delivery has been tried (at most ``at_most`` s)."""
        seen = endpoint.tried
        give_up = time.monotonic() + at_most
        while endpoint.tried <= seen and time.monotonic() < give_up:
            await asyncio.sleep(0.01)

    async def _attempt(self, endpoint: Endpoint, delivery: Delivery, body: bytes) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(headers={"user-agent": USER_AGENT}, follow_redirects=False)
        # Signed afresh per attempt, as the API signs: the timestamp is this attempt's.
        async with endpoint.gate:  # the duration is the receiver's, not the wait for a slot
            headers = signed_headers(endpoint.secret, delivery.event["id"], body)
            started = time.monotonic()
            record: dict[str, Any] = {"at": time.time(), "status": None, "error": None}
            try:
                response = await self._client.post(
                    endpoint.url, content=body, headers=headers, timeout=endpoint.timeout
                )
            except httpx.HTTPError as exc:
                record["error"] = type(exc).__name__
            else:
                record["status"] = response.status_code
            record["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        delivery.attempts.append(record)
        status = record["status"]
        return status is not None and 200 <= status < 300
