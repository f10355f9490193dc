"""A watcher's hand-over to the webhook receiver: how ``delivery="both"`` announces each run once.

With webhooks and the polling watcher both watching a deployment, two processes see each run:
the api-server (the API's webhook) and the triggerer (the watcher's read). Announcing it once
needs one atomic record both can write, and a trigger cannot write Airflow's database (Airflow 3
blocks database access from triggers; its Variables and asset state store are upserts, no
insert-if-absent). So the watcher does not announce: it hands each run it finds to the receiver,
signed with the same secret as the API's deliveries, and the receiver reads it (only when no
path announced it yet: the webhook usually has) and announces it in the same
transaction that records "announced" under the run's id, which the webhook's delivery of that
run finds and skips (and the other way round). The watcher moves its watermark past a run only
after the receiver has answered 2xx, so a run is never lost between the two; a receiver that
cannot be reached is tried again with backoff (the watcher's later runs wait behind it).

The receiver's URL and the secret come from the webhook connection
(:mod:`airflow_provider_managed_agents.webhooks.connection`), read through the triggerer.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import httpx

from airflow_provider_managed_agents.compat import AirflowNotFoundException
from airflow_provider_managed_agents.exceptions import ManagedAgentsError
from airflow_provider_managed_agents.waiting import clock
from airflow_provider_managed_agents.webhooks import WATCHER_PATH
from airflow_provider_managed_agents.webhooks.connection import (
    WebhookSettings,
    receiver_url,
    settings_from_connection,
    webhook_conn_id,
)
from airflow_provider_managed_agents.webhooks.signing import signed_headers

if TYPE_CHECKING:
    from airflow_provider_managed_agents.models.runs import DeploymentRun

log = logging.getLogger(__name__)

RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
TIMEOUT_SECONDS = 30.0
# A rotated secret or a moved receiver reaches a running watcher after at most this long.
SETTINGS_TTL_SECONDS = 300.0


class Handover:
    """Hands runs to the receiver, one at a time, until each is accepted. Close it when done."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._settings: WebhookSettings | None = None
        self._read_at = 0.0

    async def deliver(self, run: DeploymentRun) -> None:
        """Return once the receiver has recorded ``run`` (announced now, or already)."""
        # Only the id: the receiver reads the run itself (see HandedOverRun).
        handed = {"type": "deployment_run", "id": run.id, "deployment_id": run.deployment_id}
        body = json.dumps(handed, separators=(",", ":")).encode()
        attempt = 0
        while True:
            problem = await self._try(run, body)
            if problem is None:
                return
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
            log.warning(
                "Could not hand run %s over to the webhook receiver (%s); trying again in %g s", run.id, problem, delay
            )
            attempt += 1
            await clock.asleep(delay)

    async def _try(self, run: DeploymentRun, body: bytes) -> str | None:
        """One attempt: None when accepted, else what went wrong (never the secret)."""
        try:
            settings = await self._current_settings()
        except (ManagedAgentsError, AirflowNotFoundException) as exc:  # said, and tried again later
            self._settings = None
            return f"webhook connection: {exc}"
        except Exception as exc:  # a malformed definition: its message could quote the secret
            self._settings = None
            return f"webhook connection: could not be read ({type(exc).__name__})"
        url = receiver_url(settings) + WATCHER_PATH
        headers = signed_headers(settings.secrets[0].reveal(), f"watcher_{run.id}", body)
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS)
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{url}: {type(exc).__name__}"
        if response.is_success:
            return None
        if response.status_code in (400, 401, 413):  # our request or secret is wrong: read them again
            self._settings = None
        return f"{url} answered {response.status_code}"

    async def _current_settings(self) -> WebhookSettings:
        now = clock.now().timestamp()
        if self._settings is None or now - self._read_at > SETTINGS_TTL_SECONDS:
            from airflow_provider_managed_agents.compat import BaseHook, aextra_dejson, aget_connection

            conn = await aget_connection(BaseHook(), webhook_conn_id())
            self._settings = settings_from_connection(conn, await aextra_dejson(conn))
            self._read_at = now
        return self._settings

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
