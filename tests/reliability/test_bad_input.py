"""Bad input never leaves the machine: each invalid payload is refused by the client, naming the
field, with zero requests sent; the emulator refuses the same payload with 400 when sent raw."""

from __future__ import annotations

import copy
import string
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import API_VERSION, MANAGED_AGENTS_BETA
from airflow_provider_managed_agents.models.cron import CronError, parse_cron
from airflow_provider_managed_agents.models.params import check_metadata

VALID: dict[str, Any] = {
    "agent": "agent_demo",
    "environment_id": "env_demo",
    "name": "bad input matrix",
    "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
}
EVENT = VALID["initial_events"][0]
SYSTEM = {"type": "system.message", "content": [{"type": "text", "text": "be brief"}]}


def with_(**changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(VALID)
    payload.update(changes)
    return payload


def schedule(expression: str, timezone: str = "UTC") -> dict[str, Any]:
    return {"type": "cron", "expression": expression, "timezone": timezone}


def outcome(**extra: Any) -> dict[str, Any]:
    return {"type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "r"}, **extra}


# (payload, the field path the error must name)
MATRIX: list[tuple[dict[str, Any], str]] = [
    (with_(initial_events=[]), "initial_events"),
    (with_(initial_events=[EVENT] * 51), "initial_events"),
    (with_(initial_events=[{"type": "user.message", "content": []}]), "initial_events[0].content"),
    (with_(initial_events=[{"type": "user.mesage", "content": [{"type": "text", "text": "x"}]}]), "initial_events[0]"),
    (with_(initial_events=[outcome(max_iterations=0)]), "initial_events[0].max_iterations"),
    (with_(initial_events=[outcome(max_iterations=21)]), "initial_events[0].max_iterations"),
    (
        with_(initial_events=[outcome(rubric={"type": "text", "content": "x" * 262_145})]),
        "initial_events[0].rubric.content",
    ),
    (with_(metadata={f"k{i}": "v" for i in range(17)}), "metadata"),
    (with_(metadata={"k" * 65: "v"}), "metadata"),
    (with_(metadata={"k": "v" * 513}), "metadata"),
    (with_(metadata={"": "v"}), "metadata"),
    (with_(resources=[{"type": "file", "file_id": "f"}] * 501), "resources"),
    (
        with_(resources=[{"type": "memory_store", "memory_store_id": "m", "instructions": "x" * 4097}]),
        "resources[0].instructions",
    ),
    (
        with_(resources=[{"type": "memory_store", "memory_store_id": "m", "access": "write_only"}]),
        "resources[0].access",
    ),
    (with_(vault_ids=[f"vlt_{i}" for i in range(51)]), "vault_ids"),
    (with_(agent={"type": "agent", "id": "agent_demo", "version": 0}), "agent.version"),
    (with_(agent=""), "agent"),
    (with_(name=""), "name"),
    (with_(name="   "), "name"),
    (with_(environment_id=""), "environment_id"),
    (with_(schedule=schedule("* * * *")), "schedule.expression"),
    (with_(schedule=schedule("0 * * * * *")), "schedule.expression"),
    (with_(schedule=schedule("@daily")), "schedule.expression"),
    (with_(schedule=schedule("0 0 L * *")), "schedule.expression"),
    (with_(schedule=schedule("0 0 * * 1#2")), "schedule.expression"),
    (with_(schedule=schedule("0 0 ? * *")), "schedule.expression"),
    (with_(schedule=schedule("0 0 * * 8")), "schedule.expression"),
    (with_(schedule=schedule("60 * * * *")), "schedule.expression"),
    (with_(schedule=schedule("0 5-1 * * *")), "schedule.expression"),
    (with_(schedule=schedule("*/0 * * * *")), "schedule.expression"),
    (with_(schedule=schedule("0 9 * * *", "Mars/Olympus_Mons")), "schedule.timezone"),
    (with_(schedule=schedule("0 9 * * *", "")), "schedule.timezone"),
    (
        with_(budget={"type": "limit", "max_list_cost": {"amount": "012", "currency": "USD"}}),
        "budget.max_list_cost.amount",
    ),
    (with_(unknown_field=1), "unknown_field"),
    (with_(initial_events=[EVENT, SYSTEM, SYSTEM]), "initial_events"),
    (with_(initial_events=[SYSTEM, EVENT]), "initial_events"),
    (with_(initial_events=[outcome(), SYSTEM]), "initial_events"),
    (with_(schedule=schedule("0 9 * * *", "localtime")), "schedule.timezone"),
]

# Every limit exactly at its edge: accepted by the client and by the emulator.
FULL_METADATA = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
FULL_RESOURCES = [{"type": "file", "file_id": f"file_{i}"} for i in range(499)] + [
    {"type": "memory_store", "memory_store_id": "memstore_1", "instructions": "x" * 4096}
]
LONGEST_RUBRIC = {"type": "text", "content": "r" * 262_144}
EDGES: list[tuple[str, dict[str, Any]]] = [
    ("50 initial events", with_(initial_events=[EVENT] * 49 + [SYSTEM])),
    ("16 metadata pairs, 64-char keys, 512-char values", with_(metadata=FULL_METADATA)),
    ("500 resources, 4,096-char instructions", with_(resources=FULL_RESOURCES)),
    ("50 vault ids", with_(vault_ids=[f"vlt_{i}" for i in range(50)])),
    (
        "max_iterations 1 and 20, a 262,144-char rubric",
        with_(initial_events=[EVENT, outcome(max_iterations=1), outcome(max_iterations=20, rubric=LONGEST_RUBRIC)]),
    ),
]


def test_the_matrix_covers_at_least_25_inputs() -> None:
    assert len(MATRIX) >= 25


@pytest.mark.parametrize(("payload", "field"), MATRIX, ids=[f for _, f in MATRIX])
def test_client_refuses_before_sending_and_emulator_refuses_raw(
    managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch, payload: dict[str, Any], field: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    with pytest.raises(ManagedAgentsValidationError) as refused:
        ManagedAgentsHook().create_deployment(payload)
    assert f"{field}:" in str(refused.value)
    assert managed_agents_emulator.request_counts()["total"] == 0

    raw = httpx.post(
        f"{managed_agents_emulator.base_url}/v1/deployments",
        json=payload,
        headers={
            "x-api-key": managed_agents_emulator.api_key,
            "anthropic-version": API_VERSION,
            "anthropic-beta": MANAGED_AGENTS_BETA,
        },
        timeout=30,
    )
    assert raw.status_code == 400, raw.text
    assert raw.json()["error"]["type"] == "invalid_request_error"
    assert field.split("[")[0].split(".")[0] in raw.json()["error"]["message"]


@pytest.mark.parametrize(("edge", "payload"), EDGES, ids=[e for e, _ in EDGES])
def test_every_limit_at_its_edge_is_accepted(
    managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch, edge: str, payload: dict[str, Any]
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    created = ManagedAgentsHook().create_deployment(payload)
    assert created.id.startswith("depl_")
    assert managed_agents_emulator.request_counts()["by_endpoint"]["POST /v1/deployments"] == 1


CRON_FIELDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


@st.composite
def cron_field(draw: st.DrawFn, low: int, high: int) -> str:
    kind = draw(st.sampled_from(["star", "value", "range", "step", "list"]))
    if kind == "star":
        return "*"
    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    if kind == "value":
        return str(a)
    if kind == "range":
        return f"{a}-{b}"
    if kind == "step":
        return f"*/{draw(st.integers(1, high - low + 1))}"
    return ",".join(str(v) for v in sorted(set(draw(st.lists(st.integers(low, high), min_size=1, max_size=4)))))


@settings(max_examples=200, deadline=None)
@given(st.tuples(*(cron_field(low, high) for low, high in CRON_FIELDS)))
def test_every_well_formed_cron_expression_parses(fields: tuple[str, ...]) -> None:
    parsed = parse_cron(" ".join(fields))
    assert all(0 <= m <= 59 for m in parsed.minutes)
    assert parsed.days_of_week <= set(range(7))


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(*(cron_field(low, high) for low, high in CRON_FIELDS)),
    st.integers(0, 4),
    st.sampled_from(["L", "W", "#", "?", "@"]),
)
def test_a_forbidden_character_is_always_refused(fields: tuple[str, ...], where: int, char: str) -> None:
    broken = list(fields)
    broken[where] = f"{broken[where]}{char}"
    with pytest.raises(CronError):
        parse_cron(" ".join(broken))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=70), st.text(max_size=520), max_size=20))
def test_metadata_is_accepted_exactly_within_the_limits(metadata: dict[str, str]) -> None:
    within = len(metadata) <= 16 and all(len(k) <= 64 and len(v) <= 512 for k, v in metadata.items())
    if within:
        assert check_metadata(metadata) == metadata
    else:
        with pytest.raises(ValueError):
            check_metadata(metadata)
