"""The webhook connection: the signing secret the receiver trusts, and where the receiver is.

One Airflow connection (default id ``managed_agents_webhook_default``; another with
``[managed_agents] webhook_conn_id``) configures both ends on every Airflow component:

- password: the endpoint's signing secret (``whsec_...``); while rotating, the new and the old
  one separated by a space (either verifies);
- extra ``managed_agents_conn_id``: the API connection the receiver reads runs and sessions with
  (default ``managed_agents_default``);
- extra ``max_body_bytes``: the largest delivery accepted (default 64 KiB; payloads are < 1 KiB);
- host (optional): the receiver's URL as the triggerer reaches it, for watchers that hand their
  runs over (``delivery="both"``); default ``[api] base_url`` + :data:`URL_PREFIX`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
from airflow_provider_managed_agents.get_provider_info import DEFAULT_CONN_ID
from airflow_provider_managed_agents.hooks.wire import Secret
from airflow_provider_managed_agents.webhooks import EVENTS_PATH, URL_PREFIX, WATCHER_PATH
from airflow_provider_managed_agents.webhooks.signing import secret_key

DEFAULT_WEBHOOK_CONN_ID = "managed_agents_webhook_default"
CONFIG_SECTION = "managed_agents"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
MAX_BODY_BYTES_LIMIT = 1024 * 1024
__all__ = ["EVENTS_PATH", "URL_PREFIX", "WATCHER_PATH", "WebhookSettings", "receiver_url", "settings_from_connection"]


@dataclass(frozen=True)
class WebhookSettings:
    secrets: tuple[Secret, ...]
    managed_agents_conn_id: str = DEFAULT_CONN_ID
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    receiver_url: str | None = None


def webhook_conn_id() -> str:
    """The webhook connection's id: ``[managed_agents] webhook_conn_id`` or the default."""
    from airflow_provider_managed_agents.compat import conf

    return str(conf.get(CONFIG_SECTION, "webhook_conn_id", fallback=DEFAULT_WEBHOOK_CONN_ID) or DEFAULT_WEBHOOK_CONN_ID)


def settings_from_connection(conn: Any, extra: dict[str, Any] | None = None) -> WebhookSettings:
    """Read and check the webhook connection. A bad field raises
    :class:`ManagedAgentsValidationError` naming the connection and the field, never its value."""
    extra = (conn.extra_dejson if extra is None else extra) or {}
    what = f"connection {conn.conn_id!r}"
    problems: list[tuple[str, str]] = []
    secrets = tuple(Secret(part) for part in (conn.password or "").split())
    if not secrets:
        problems.append(("password", "the signing secret (whsec_...) is empty"))
    for number, secret in enumerate(secrets, 1):
        try:
            secret_key(secret.reveal())
        except ValueError as exc:
            problems.append(("password", f"secret {number}: {exc}"))
    api_conn_id = extra.get("managed_agents_conn_id") or DEFAULT_CONN_ID
    if not isinstance(api_conn_id, str):
        problems.append(("extra.managed_agents_conn_id", "must be a connection id"))
    max_body = extra.get("max_body_bytes")
    max_body = DEFAULT_MAX_BODY_BYTES if max_body in (None, "") else max_body
    try:
        max_body = int(max_body)
    except (TypeError, ValueError):
        max_body = -1
    if not 1024 <= max_body <= MAX_BODY_BYTES_LIMIT:
        problems.append(("extra.max_body_bytes", f"must be an integer from 1024 to {MAX_BODY_BYTES_LIMIT}"))
    if problems:
        raise ManagedAgentsValidationError(what, problems)
    host = (conn.host or "").strip() or None
    if host is not None and "://" not in host:
        host = f"{conn.schema or 'http'}://{host}" + (f":{conn.port}" if conn.port else "")
    return WebhookSettings(secrets, str(api_conn_id), max_body, host)


def receiver_url(settings: WebhookSettings) -> str:
    """The receiver's base URL for a watcher's hand-over: the connection's host, else
    ``[api] base_url`` + :data:`URL_PREFIX`."""
    if settings.receiver_url:
        return settings.receiver_url.rstrip("/")
    from airflow_provider_managed_agents.compat import conf

    base = str(conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")
    return base + URL_PREFIX
