"""Standard Webhooks signatures, as the Managed Agents API signs its deliveries.

A delivery carries three headers: ``webhook-id`` (the message id, the same on every retry),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``:
``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, several separated by spaces while a
secret is rotated. A signing secret is ``whsec_`` followed by the base64 of the key bytes.

- :func:`verify` is the receiver's check. It uses the ``standardwebhooks`` package (the
  reference implementation of the spec, MIT, no dependencies of its own, and what the official
  SDK's ``beta.webhooks.unwrap()`` calls too) rather than code of our own: constant-time
  comparison, several signatures per header and the five-minute timestamp tolerance are its
  job, and it is maintained against the spec.
- :func:`sign` is a dozen lines of stdlib for the senders this package has (the emulator and the
  watchers' hand-over, neither of which should need an optional extra); the tests check that
  ``standardwebhooks`` and the SDK's ``unwrap()`` accept what it signs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_managed_agents.hooks.wire import Secret

SECRET_PREFIX = "whsec_"
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
TOLERANCE_SECONDS = 300  # fixed by standardwebhooks (and the SDK's unwrap): five minutes either way


class SignatureRejected(Exception):
    """A delivery that is not provably from the holder of the secret: answered with ``status``
    and ``reason`` (which never quotes the secret, the signature or the body)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def new_secret() -> str:
    """A fresh signing secret (``whsec_`` + 32 random bytes in base64), as a console shows once."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret; ValueError (naming no part of it) when malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a signing secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :] + "==", validate=False)
    except (binascii.Error, ValueError):
        raise ValueError(f"a signing secret is {SECRET_PREFIX!r} followed by base64") from None
    if not key:
        raise ValueError("the signing secret is empty")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three headers of one delivery attempt, signed now (or at ``timestamp``)."""
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, msg_id, stamp, body),
        "content-type": "application/json",
    }


def verify(secrets_: Sequence[Secret], body: bytes, headers: Mapping[str, str]) -> None:
    """Check that ``body`` was signed by the holder of one of ``secrets_`` (the current one, and
    the previous one while rotating) within the tolerance. Raises :class:`SignatureRejected`:
    400 for missing headers, 401 for a stale or future timestamp or a signature that matches
    no secret."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    lowered = {key.lower(): value for key, value in headers.items()}
    missing = [name for name in HEADERS if not lowered.get(name)]
    if missing:
        raise SignatureRejected(400, f"missing header(s): {', '.join(missing)}")
    for secret in secrets_:
        try:
            Webhook(secret_key(secret.reveal())).verify(body, lowered, json_parse=False)
            return
        except WebhookVerificationError as exc:
            message = str(exc)
            if "timestamp" in message or "Invalid Signature Headers" in message:
                # The same for every secret: the attempt is too old, too new or unreadable.
                raise SignatureRejected(
                    401, f"webhook-timestamp outside the {TOLERANCE_SECONDS // 60}-minute tolerance or unreadable"
                ) from None
    raise SignatureRejected(401, "webhook-signature matches no signing secret")
