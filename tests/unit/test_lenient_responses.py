"""Responses parse leniently (Postel), requests strictly: every documented response shape the
official SDK reads, the hook reads too, keeping unknown enum values as strings; a body that
truly cannot be read is a typed error naming the field and the request-id."""

from __future__ import annotations

import copy
from typing import Any

import api_samples
import httpx
import pytest

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import Secret, Settings
from airflow_provider_managed_agents.models.params import CreateDeploymentParams, validate_params

NOW = api_samples.NOW
DEPLOYMENT: dict[str, Any] = api_samples.deployment_json(
    schedule={"type": "cron", "expression": "0 * * * *", "timezone": "UTC", "upcoming_runs_at": [NOW]}
)
OUTCOME = {"type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "r"}}
MEMORY = {"type": "memory_store", "memory_store_id": "memstore_1"}


def odd(path: str, value: Any) -> dict[str, Any]:
    """DEPLOYMENT with one field replaced by a shape requests may not have but responses do."""
    data = copy.deepcopy(DEPLOYMENT)
    target: Any = data
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    target[keys[-1]] = value
    return data


# (name, response body, how to read the odd value back from the parsed deployment)
ODD_SHAPES: list[tuple[str, dict[str, Any], Any]] = [
    ("max_iterations 0", odd("initial_events", [{**OUTCOME, "max_iterations": 0}]), 0),
    ("max_iterations 25", odd("initial_events", [{**OUTCOME, "max_iterations": 25}]), 25),
    ("empty content", odd("initial_events", [{"type": "user.message", "content": []}]), []),
    (
        "rubric over 262,144 characters",
        odd("initial_events", [{**OUTCOME, "rubric": {"type": "text", "content": "r" * 262_145}}]),
        262_145,
    ),
    ("instructions over 4,096", odd("resources", [{**MEMORY, "instructions": "i" * 4_097}]), 4_097),
    ("unknown memory access", odd("resources", [{**MEMORY, "access": "admin"}]), "admin"),
    ("non-USD currency", odd("budget", {"type": "limit", "max_list_cost": {"amount": "10", "currency": "EUR"}}), "EUR"),
    (
        "non-integer amount",
        odd("budget", {"type": "limit", "max_list_cost": {"amount": "12.5", "currency": "USD"}}),
        "12.5",
    ),
    ("upcoming_runs_at null", odd("schedule.upcoming_runs_at", None), []),
    ("metadata null", odd("metadata", None), {}),
    ("unknown deployment type", odd("type", "deployment_v2"), "deployment_v2"),
    (
        "non-text block in a system.message",
        odd(
            "initial_events",
            [
                {"type": "user.message", "content": [{"type": "text", "text": "go"}]},
                {"type": "system.message", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]},
            ],
        ),
        "image",
    ),
]


def read_back(name: str, deployment: Any) -> Any:
    if name.startswith("max_iterations"):
        return deployment.initial_events[0].max_iterations
    if name == "empty content":
        return deployment.initial_events[0].content
    if name.startswith("rubric"):
        return len(deployment.initial_events[0].rubric.content)
    if name.startswith("instructions"):
        return len(deployment.resources[0].instructions)
    if name == "unknown memory access":
        return deployment.resources[0].access
    if name == "non-USD currency":
        return deployment.budget.max_list_cost.currency
    if name == "non-integer amount":
        return deployment.budget.max_list_cost.amount
    if name == "metadata null":
        return deployment.metadata
    if name == "unknown deployment type":
        return deployment.type
    if name.startswith("non-text block"):
        return deployment.initial_events[1].content[0].type
    return deployment.schedule.upcoming_runs_at


def hook_answering(body: Any, request_id: str = "req_odd") -> ManagedAgentsHook:
    hook = ManagedAgentsHook()
    hook._settings = Settings(api_key=Secret("sk-test"), base_url="http://api.test")
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body, headers={"request-id": request_id}))
    hook.__dict__["client"] = httpx.Client(transport=transport, **hook._settings.client_options())
    return hook


@pytest.mark.parametrize(("name", "body", "expected"), ODD_SHAPES, ids=[n for n, _, _ in ODD_SHAPES])
def test_every_documented_response_shape_parses_alone_and_in_a_page(
    name: str, body: dict[str, Any], expected: Any
) -> None:
    assert read_back(name, hook_answering(body).get_deployment("depl_1")) == expected
    page = {"data": [DEPLOYMENT, body], "next_page": None}
    listed = list(hook_answering(page).list_deployments())
    assert len(listed) == 2 and read_back(name, listed[1]) == expected


@pytest.mark.parametrize(("name", "body", "expected"), ODD_SHAPES, ids=[n for n, _, _ in ODD_SHAPES])
def test_the_official_sdk_reads_the_same_shapes(name: str, body: dict[str, Any], expected: Any) -> None:
    """The oracle: the SDK's own client reads each of these bodies without an error."""
    anthropic = pytest.importorskip("anthropic")
    httpx2 = pytest.importorskip("httpx2")
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=body))
    client = anthropic.Anthropic(
        api_key="sk-test", base_url="http://api.test", http_client=httpx2.Client(transport=transport)
    )
    assert client.beta.deployments.retrieve("depl_1").id == "depl_1"


def test_request_limits_still_apply_to_requests() -> None:
    for body in (ODD_SHAPES[0][1], ODD_SHAPES[2][1], ODD_SHAPES[4][1], ODD_SHAPES[6][1]):
        request = {k: body[k] for k in ("agent", "environment_id", "initial_events", "name", "resources")}
        request["agent"] = "agent_1"
        if "budget" in body:
            request["budget"] = body["budget"]
        with pytest.raises(errors.ManagedAgentsValidationError):
            validate_params(CreateDeploymentParams, request, "create")


def test_a_response_that_truly_cannot_be_read_names_the_field_and_the_request_id() -> None:
    broken = {**DEPLOYMENT, "created_at": "not a time"}
    with pytest.raises(errors.ManagedAgentsResponseError) as caught:
        hook_answering(broken, request_id="req_broken").get_deployment("depl_1")
    message = str(caught.value)
    assert "created_at" in message and "req_broken" in message and "GET /v1/deployments/depl_1" in message
    assert caught.value.request_id == "req_broken" and caught.value.field == "created_at"
    with pytest.raises(errors.ManagedAgentsResponseError, match=r"data\.1\.id"):
        list(hook_answering({"data": [DEPLOYMENT, {**DEPLOYMENT, "id": None}]}).list_deployments())
    assert "not a time" not in message  # the body itself never reaches the message (it may hold secrets)
