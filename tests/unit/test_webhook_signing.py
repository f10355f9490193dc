"""Standard Webhooks signatures: what the emulator and the watchers sign is what the reference
implementation and the official SDK's ``beta.webhooks.unwrap()`` accept, and the receiver's
check refuses everything else (tampered, stale, future, wrong secret, missing headers) with
the right status and a reason that quotes nothing secret. And the webhook connection's checks."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import anthropic
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
from airflow_provider_managed_agents.hooks.wire import Secret
from airflow_provider_managed_agents.webhooks.connection import (
    DEFAULT_MAX_BODY_BYTES,
    settings_from_connection,
)
from airflow_provider_managed_agents.webhooks.signing import (
    SignatureRejected,
    new_secret,
    secret_key,
    sign,
    signed_headers,
    verify,
)

EVENT = {
    "type": "event",
    "id": "wevt_01",
    "created_at": "2026-05-01T12:00:00Z",
    "data": {"type": "deployment_run.succeeded", "id": "drun_01", "organization_id": "org", "workspace_id": "ws"},
}
BODY = json.dumps(EVENT).encode()


def test_what_we_sign_the_reference_implementation_and_the_sdk_accept() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret_key(secret)) == 32
    headers = signed_headers(secret, "wevt_01", BODY)
    assert Webhook(secret).verify(BODY, headers) == EVENT
    unwrapped = anthropic.Anthropic(api_key="unused").beta.webhooks.unwrap(BODY.decode(), headers=headers, key=secret)
    assert unwrapped.id == "wevt_01" and unwrapped.data.type == "deployment_run.succeeded"
    assert type(unwrapped.data).__name__ == "BetaWebhookDeploymentRunSucceededEventData"
    # And the same bytes as the reference implementation's own signer.
    now = int(time.time())
    from datetime import UTC, datetime

    assert sign(secret, "wevt_01", now, BODY) == Webhook(secret).sign("wevt_01", datetime.fromtimestamp(now, UTC), BODY)


def test_a_good_delivery_verifies_with_any_configured_secret_and_header_case() -> None:
    old, new = new_secret(), new_secret()
    headers = {k.upper(): v for k, v in signed_headers(old, "wevt_01", BODY).items()}
    verify([Secret(new), Secret(old)], BODY, headers)  # rotating: the old one still verifies
    # A signature header with several signatures (the sender's rotation) verifies on any match.
    both = signed_headers(new, "wevt_01", BODY)
    both["webhook-signature"] = "v1,bm90IGl0 " + both["webhook-signature"]
    verify([Secret(new)], BODY, both)


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        (lambda h, b: (h, b.replace(b"drun_01", b"drun_02")), 401, "matches no signing secret"),
        (lambda h, b: ({**h, "webhook-id": "wevt_02"}, b), 401, "matches no signing secret"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), 400, "webhook-signature"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), 400, "webhook-id"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-timestamp"}, b), 400, "webhook-timestamp"),
        (lambda h, b: ({**h, "webhook-timestamp": "yesterday"}, b), 401, "tolerance"),
    ],
    ids=["tampered-body", "other-id", "no-signature", "no-id", "no-timestamp", "unreadable-timestamp"],
)
def test_what_was_not_signed_so_is_refused(change, status, reason) -> None:  # type: ignore[no-untyped-def]
    secret = new_secret()
    headers, body = change(signed_headers(secret, "wevt_01", BODY), BODY)
    with pytest.raises(SignatureRejected) as refused:
        verify([Secret(secret)], body, headers)
    assert refused.value.status == status and reason in refused.value.reason
    assert secret not in refused.value.reason and "v1," not in refused.value.reason


@pytest.mark.parametrize("offset", [-301, -3600, 301, 3600])
def test_a_stale_or_future_timestamp_is_refused_though_correctly_signed(offset: int) -> None:
    secret = new_secret()
    headers = signed_headers(secret, "wevt_01", BODY, timestamp=int(time.time()) + offset)
    with pytest.raises(WebhookVerificationError):  # the reference implementation agrees
        Webhook(secret).verify(BODY, headers)
    with pytest.raises(SignatureRejected) as refused:
        verify([Secret(secret)], BODY, headers)
    assert refused.value.status == 401 and "5-minute tolerance" in refused.value.reason


def test_a_delivery_signed_with_another_secret_is_refused() -> None:
    headers = signed_headers(new_secret(), "wevt_01", BODY)
    with pytest.raises(SignatureRejected) as refused:
        verify([Secret(new_secret())], BODY, headers)
    assert refused.value.status == 401


def test_a_replay_within_the_tolerance_verifies_so_dedup_is_the_receivers_job() -> None:
    """The signature proves who sent it, not that it is new: a captured delivery replayed within
    five minutes verifies again; the receiver's record of event ids makes it a no-op (tested in
    the integration tests)."""
    secret = new_secret()
    headers = signed_headers(secret, "wevt_01", BODY, timestamp=int(time.time()) - 200)
    verify([Secret(secret)], BODY, headers)
    verify([Secret(secret)], BODY, headers)


def connection(password: str | None, **extra: object) -> SimpleNamespace:
    return SimpleNamespace(
        conn_id="managed_agents_webhook_default",
        password=password,
        host=None,
        schema=None,
        port=None,
        extra_dejson=dict(extra),
    )


def test_the_webhook_connection_names_each_bad_field_and_never_its_value() -> None:
    settings = settings_from_connection(connection(new_secret() + " " + new_secret()))
    assert len(settings.secrets) == 2 and settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert settings.managed_agents_conn_id == "managed_agents_default"
    assert "whsec_" not in repr(settings)
    with pytest.raises(ManagedAgentsValidationError) as bad:
        settings_from_connection(connection("not-a-whsec-secret-value", max_body_bytes=10**9))
    message = str(bad.value)
    assert "password: secret 1: a signing secret starts with 'whsec_'" in message
    assert "extra.max_body_bytes: must be an integer from 1024 to 1048576" in message
    assert "not-a-whsec-secret-value" not in message
    with pytest.raises(ManagedAgentsValidationError, match="password: the signing secret"):
        settings_from_connection(connection(None))
