"""The hook on the wire (httpx MockTransport): headers, requests, pagination, retries, errors."""

from __future__ import annotations

import asyncio
import email.utils
import gc
import json
import time
import weakref
from collections.abc import Callable
from typing import Any

import api_samples
import httpx
import pytest
from airflow.sdk import Connection

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.compat import AirflowFailException
from airflow_provider_managed_agents.hooks import loop_pool as loop_pool_module
from airflow_provider_managed_agents.hooks.budget import budget_for
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook, settings_from_connection
from airflow_provider_managed_agents.hooks.wire import (
    MANAGED_AGENTS_BETA,
    Secret,
    Settings,
    backoff_seconds,
    retry_after_seconds,
)

KEY = "sk-ant-test-key-123"
NOW = api_samples.NOW
DEPLOYMENT = api_samples.deployment_json(
    agent={"type": "agent", "id": "a", "version": 1}, environment_id="e", initial_events=[]
)
RUN = api_samples.run_json(agent={"type": "agent", "id": "a", "version": 1})
CREATE = {
    "agent": "a",
    "environment_id": "e",
    "name": "n",
    "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "x"}]}],
}

Responder = Callable[[httpx.Request], httpx.Response]


class Wire:
    def __init__(self, responder: Responder):
        self.responder = responder
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responder(request)


def make_hook(responder: Responder, **settings: Any) -> tuple[ManagedAgentsHook, Wire, list[float]]:
    wire = Wire(responder)
    hook = ManagedAgentsHook()
    hook._settings = Settings(api_key=Secret(KEY), base_url="http://api.test", **settings)
    hook.__dict__["client"] = httpx.Client(transport=httpx.MockTransport(wire), **hook._settings.client_options())
    # The connection's budget reads the same clock the hook's sleeps advance: a sleep that is only
    # recorded must still count as time passed, or a learnt pace would wait for it again.
    clock = [time.monotonic()]
    budget_for(hook.managed_agents_conn_id).monotonic = lambda: clock[0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    hook._sleep = sleep  # type: ignore[method-assign]
    return hook, wire, slept


def ok(body: Any) -> Responder:
    return lambda request: httpx.Response(200, json=body)


def sequence(*responses: httpx.Response | Exception) -> Responder:
    queue = list(responses)

    def respond(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return respond


def error(status: int, error_type: str = "api_error", headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"type": "error", "error": {"type": error_type, "message": f"status {status}"}, "request_id": "req_b"}
    return httpx.Response(status, json=body, headers={"request-id": "req_h", **(headers or {})})


# --- headers and requests ------------------------------------------------------------------


def test_every_request_carries_the_api_headers() -> None:
    hook, wire, _ = make_hook(
        ok(DEPLOYMENT),
        betas=("files-api-2025-04-14", MANAGED_AGENTS_BETA, "files-api-2025-04-14"),
        workspace_id="wrkspc_1",
    )
    hook.get_deployment("depl_1")
    headers = wire.requests[0].headers
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == f"files-api-2025-04-14,{MANAGED_AGENTS_BETA}"
    assert headers["anthropic-workspace-id"] == "wrkspc_1"
    assert headers["user-agent"].startswith("airflow-provider-managed-agents/")


@pytest.mark.parametrize(
    ("call", "method", "path", "body", "response"),
    [
        (lambda h: h.create_deployment(CREATE), "POST", "/v1/deployments", CREATE, DEPLOYMENT),
        (lambda h: h.get_deployment("depl_1"), "GET", "/v1/deployments/depl_1", None, DEPLOYMENT),
        (
            lambda h: h.update_deployment("depl_1", {"schedule": None, "metadata": {"a": None}}),
            "POST",
            "/v1/deployments/depl_1",
            {"schedule": None, "metadata": {"a": None}},
            DEPLOYMENT,
        ),
        (lambda h: h.update_deployment("depl_1", {}), "POST", "/v1/deployments/depl_1", {}, DEPLOYMENT),
        (lambda h: h.archive_deployment("depl_1"), "POST", "/v1/deployments/depl_1/archive", None, DEPLOYMENT),
        (lambda h: h.pause_deployment("depl_1"), "POST", "/v1/deployments/depl_1/pause", None, DEPLOYMENT),
        (lambda h: h.unpause_deployment("depl_1"), "POST", "/v1/deployments/depl_1/unpause", None, DEPLOYMENT),
        (lambda h: h.get_deployment_run("drun_1"), "GET", "/v1/deployment_runs/drun_1", None, RUN),
    ],
)
def test_each_method_sends_what_the_api_expects(
    call: Callable[[ManagedAgentsHook], Any], method: str, path: str, body: Any, response: dict[str, Any]
) -> None:
    hook, wire, _ = make_hook(ok(response))
    call(hook)
    (request,) = wire.requests
    assert (request.method, request.url.path) == (method, path)
    if body is None:
        assert request.content == b""
    else:
        assert json.loads(request.content) == body


def test_list_queries_use_the_wire_names() -> None:
    hook, wire, _ = make_hook(ok({"data": [], "next_page": None}))
    list(
        hook.list_deployment_runs(
            deployment_id="depl_1",
            has_error=False,
            trigger_type="schedule",
            created_at_gte="2026-01-01T00:00:00Z",
            created_at_lt="2026-02-01T00:00:00+01:00",
            limit=1000,
        )
    )
    query = dict(wire.requests[0].url.params)
    assert query == {
        "deployment_id": "depl_1",
        "has_error": "false",
        "trigger_type": "schedule",
        "created_at[gte]": "2026-01-01T00:00:00Z",
        "created_at[lt]": "2026-01-31T23:00:00Z",
        "limit": "1000",
    }
    list(hook.list_deployments(include_archived=True, agent_id="a", limit=100))
    assert dict(wire.requests[1].url.params) == {"agent_id": "a", "include_archived": "true", "limit": "100"}


def test_list_filters_are_validated_before_sending() -> None:
    hook, wire, _ = make_hook(ok({"data": []}))
    with pytest.raises(errors.ManagedAgentsValidationError, match="limit"):
        list(hook.list_deployment_runs(limit=1001))
    with pytest.raises(errors.ManagedAgentsValidationError, match="include_archived"):
        list(hook.list_deployments(status="paused", include_archived=True))
    with pytest.raises(errors.ManagedAgentsValidationError, match="deployment_id"):
        hook.get_deployment("")
    assert wire.requests == []


def test_pagination_is_lazy_and_follows_cursors() -> None:
    pages = {None: (["drun_1", "drun_2"], "c2"), "c2": (["drun_3"], "c3"), "c3": (["drun_4"], None)}

    def respond(request: httpx.Request) -> httpx.Response:
        ids, cursor = pages[request.url.params.get("page")]
        return httpx.Response(200, json={"data": [{**RUN, "id": i} for i in ids], "next_page": cursor})

    hook, wire, _ = make_hook(respond)
    runs = hook.list_deployment_runs(deployment_id="depl_1")
    assert wire.requests == []
    assert next(runs).id == "drun_1"
    assert len(wire.requests) == 1
    assert [r.id for r in runs] == ["drun_2", "drun_3", "drun_4"]
    assert [r.url.params.get("page") for r in wire.requests] == [None, "c2", "c3"]
    assert all(r.url.params["deployment_id"] == "depl_1" for r in wire.requests)


def test_a_consumed_page_is_freed_at_once_not_left_to_the_cyclic_collector() -> None:
    """httpx ties a response to its stream in a reference cycle; the pager must not hold every
    page's raw body until the collector runs."""
    responses: list[weakref.ref[httpx.Response]] = []

    def respond(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page") or 0)
        next_page = str(page + 1) if page < 9 else None
        response = httpx.Response(200, json={"data": [{**RUN, "id": f"drun_{page}"}], "next_page": next_page})
        responses.append(weakref.ref(response))
        return response

    hook, _, _ = make_hook(respond)
    gc.collect()
    gc.disable()
    try:
        alive_while_iterating = [sum(r() is not None for r in responses) for _ in hook.list_deployment_runs()]
    finally:
        gc.enable()
    assert len(alive_while_iterating) == 10
    assert max(alive_while_iterating) == 0


def async_hook(
    monkeypatch: pytest.MonkeyPatch, responder: Responder, **settings: Any
) -> tuple[ManagedAgentsHook, Wire]:
    """A hook whose async path answers from ``responder``, with the loop pool's real lifecycle."""
    wire = Wire(responder)
    fixed = Settings(api_key=Secret(KEY), base_url="http://api.test", **settings)

    async def load(self: ManagedAgentsHook) -> Settings:
        return fixed

    monkeypatch.setattr(ManagedAgentsHook, "_aload_settings", load)
    monkeypatch.setattr(
        loop_pool_module,
        "new_async_client",
        lambda s: httpx.AsyncClient(transport=httpx.MockTransport(wire), **s.client_options()),
    )
    return ManagedAgentsHook(), wire


def test_async_methods_share_the_request_and_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    hook, wire = async_hook(
        monkeypatch,
        lambda request: httpx.Response(
            200,
            json=RUN
            if "drun_" in request.url.path
            else ({"data": [RUN]} if "runs" in request.url.path else DEPLOYMENT),
        ),
    )

    async def go() -> tuple[Any, Any, Any]:
        return (
            await hook.aget_deployment("depl_1"),
            await hook.alist_deployment_runs_page(deployment_id="depl_1"),
            await hook.aget_deployment_run("drun_1"),
        )

    deployment, page, run = asyncio.run(go())
    assert deployment.id == "depl_1" and page.data[0].id == "drun_1" and run.session_id == "sesn_1"
    assert [f"{r.method} {r.url.path}" for r in wire.requests] == [
        "GET /v1/deployments/depl_1",
        "GET /v1/deployment_runs",
        "GET /v1/deployment_runs/drun_1",
    ]
    assert wire.requests[0].headers["x-api-key"] == KEY


# --- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 529])
def test_reads_are_retried_on_transient_statuses(status: int) -> None:
    hook, wire, slept = make_hook(sequence(error(status), error(status), httpx.Response(200, json=DEPLOYMENT)))
    assert hook.get_deployment("depl_1").id == "depl_1"
    assert len(wire.requests) == 3 and len(slept) == 2


def test_retries_stop_at_max_retries_with_the_typed_error() -> None:
    hook, wire, _ = make_hook(sequence(*[error(503)] * 5), max_retries=2)
    with pytest.raises(errors.ManagedAgentsServerError) as caught:
        hook.get_deployment("depl_1")
    assert len(wire.requests) == 3
    assert caught.value.status == 503 and caught.value.request_id == "req_h"


def test_reads_are_retried_after_connection_errors() -> None:
    hook, _, _ = make_hook(
        sequence(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(200, json=DEPLOYMENT))
    )
    assert hook.get_deployment("depl_1").id == "depl_1"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ],
)
def test_server_requested_delays_are_honoured(headers: dict[str, str], expected: float) -> None:
    hook, _, slept = make_hook(sequence(error(429, "rate_limit_error", headers), httpx.Response(200, json=DEPLOYMENT)))
    hook.get_deployment("depl_1")
    assert slept == [expected]


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.5 <= (retry_after_seconds({"retry-after": when}) or 0) <= 5.0


def test_a_retry_after_beyond_the_cap_is_not_slept_through() -> None:
    hook, wire, slept = make_hook(sequence(error(429, "rate_limit_error", {"retry-after": "600"})))
    with pytest.raises(errors.ManagedAgentsRateLimitError):
        hook.get_deployment("depl_1")
    assert slept == [] and len(wire.requests) == 1


def test_x_should_retry_overrides_the_status() -> None:
    hook, wire, _ = make_hook(sequence(error(503, headers={"x-should-retry": "false"})))
    with pytest.raises(errors.ManagedAgentsServerError):
        hook.get_deployment("depl_1")
    assert len(wire.requests) == 1
    hook, wire, _ = make_hook(
        sequence(error(400, "invalid_request_error", {"x-should-retry": "true"}), httpx.Response(200, json=DEPLOYMENT))
    )
    hook.get_deployment("depl_1")
    assert len(wire.requests) == 2


def test_x_should_retry_cannot_make_an_ambiguous_write_resendable() -> None:
    hook, wire, _ = make_hook(sequence(error(500, headers={"x-should-retry": "true"}), httpx.Response(200, json=RUN)))
    with pytest.raises(errors.ManagedAgentsServerError):
        hook.create_deployment(CREATE)
    assert len(wire.requests) == 1


@pytest.mark.parametrize("status", [501, 505, 520])
def test_reads_are_retried_on_any_5xx(status: int) -> None:
    hook, wire, _ = make_hook(sequence(error(status), httpx.Response(200, json=DEPLOYMENT)))
    assert hook.get_deployment("depl_1").id == "depl_1"
    assert len(wire.requests) == 2


def test_backoff_grows_with_jitter_taken_off() -> None:
    import random

    rng = random.Random(1)
    for n, (low, high) in enumerate([(0.375, 0.5), (0.75, 1.0), (1.5, 2.0), (3.0, 4.0), (6.0, 8.0), (6.0, 8.0)]):
        for _ in range(50):
            assert low <= backoff_seconds(n, rng) <= high


AMBIGUOUS = [error(500), error(503), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped")]
AMBIGUOUS_IDS = ["500", "503", "read-timeout", "dropped"]


@pytest.mark.parametrize("failure", AMBIGUOUS, ids=AMBIGUOUS_IDS)
def test_a_create_without_a_key_is_not_resent_after_an_ambiguous_failure(failure: Any) -> None:
    hook, wire, _ = make_hook(sequence(failure, httpx.Response(200, json=DEPLOYMENT)))
    with pytest.raises(errors.ManagedAgentsError):
        hook.create_deployment(CREATE)
    assert len(wire.requests) == 1


def page(*runs: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"data": list(runs), "next_page": None})


def test_a_run_notes_the_manual_runs_already_there_then_sends() -> None:
    hook, wire, _ = make_hook(sequence(page(), httpx.Response(200, json=RUN)))
    sends: list[Any] = []
    assert hook.run_deployment("depl_1", on_send=sends.append).id == "drun_1"
    assert [f"{r.method} {r.url.path}" for r in wire.requests] == [
        "GET /v1/deployment_runs",
        "POST /v1/deployments/depl_1/run",
    ]
    noted = wire.requests[0].url.params
    assert noted["deployment_id"] == "depl_1" and noted["trigger_type"] == "manual" and "created_at[gte]" in noted
    assert wire.requests[1].content == b""
    assert [s.deployment_id for s in sends] == ["depl_1"] and sends[0].before == ()


@pytest.mark.parametrize("failure", AMBIGUOUS, ids=AMBIGUOUS_IDS)
def test_a_run_is_resent_after_an_ambiguous_failure_only_once_nothing_landed(failure: Any) -> None:
    hook, wire, _ = make_hook(sequence(page(), failure, page(), httpx.Response(200, json=RUN)))
    assert hook.run_deployment("depl_1").id == "drun_1"
    assert [f"{r.method} {r.url.path}" for r in wire.requests] == [
        "GET /v1/deployment_runs",
        "POST /v1/deployments/depl_1/run",
        "GET /v1/deployment_runs",
        "POST /v1/deployments/depl_1/run",
    ]
    lookup = wire.requests[2].url.params
    assert lookup["deployment_id"] == "depl_1" and lookup["trigger_type"] == "manual" and "created_at[gte]" in lookup


def test_a_run_that_landed_despite_the_failure_is_adopted_not_sent_again() -> None:
    hook, wire, _ = make_hook(sequence(page(), httpx.RemoteProtocolError("dropped"), page(RUN)))
    assert hook.run_deployment("depl_1").id == "drun_1"
    assert [r.method for r in wire.requests] == ["GET", "POST", "GET"]


def test_a_run_made_just_before_the_send_is_never_taken_for_its_own() -> None:
    """Two manual runs of one deployment within a second and one plain 503: the send that got
    the 503 made nothing, so it is sent again, whatever the clocks say (issue: a task reported
    a run it did not make)."""
    earlier = {**RUN, "id": "drun_earlier"}
    made = {**RUN, "id": "drun_mine"}
    hook, wire, _ = make_hook(sequence(page(earlier), error(503), page(earlier), httpx.Response(200, json=made)))
    assert hook.run_deployment("depl_1").id == "drun_mine"
    assert [r.method for r in wire.requests] == ["GET", "POST", "GET", "POST"]


@pytest.mark.parametrize(
    "failure",
    [error(429, "rate_limit_error"), error(529, "overloaded_error"), httpx.ConnectError("refused")],
    ids=["429", "529", "connect-error"],
)
def test_writes_are_resent_when_they_provably_did_not_land(failure: Any) -> None:
    hook, wire, _ = make_hook(sequence(page(), failure, httpx.Response(200, json=RUN)))
    assert hook.run_deployment("depl_1").id == "drun_1"
    assert [r.method for r in wire.requests] == ["GET", "POST", "POST"]


def test_an_idempotency_key_adopts_what_an_ambiguous_create_made() -> None:
    made = {**DEPLOYMENT, "metadata": {"airflow_idempotency_key": "k1"}}

    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            raise httpx.RemoteProtocolError("dropped after commit")
        return httpx.Response(200, json={"data": [made], "next_page": None})

    hook, wire, _ = make_hook(respond)
    assert hook.create_deployment(CREATE, idempotency_key="k1").id == "depl_1"
    assert [r.method for r in wire.requests] == ["POST", "GET"]
    assert json.loads(wire.requests[0].content)["metadata"] == {"airflow_idempotency_key": "k1"}
    lookup = wire.requests[1].url.params
    assert lookup["agent_id"] == "a" and "created_at[gte]" in lookup  # only what was made since the send


def test_resends_and_transport_retries_share_one_budget() -> None:
    """Every send failing ambiguously, every lookup empty: max_retries + 1 sends, not its square."""

    def respond(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return error(503)
        return httpx.Response(200, json={"data": [], "next_page": None})

    hook, wire, _ = make_hook(respond, max_retries=2)
    with pytest.raises(errors.ManagedAgentsServerError):
        hook.create_deployment(CREATE, idempotency_key="k1")
    assert [r.method for r in wire.requests] == ["POST", "GET", "POST", "GET", "POST"]


def test_an_explicit_key_is_looked_for_before_the_first_send() -> None:
    held = {**DEPLOYMENT, "id": "depl_kept", "metadata": {"airflow_idempotency_key": "x-2026-05-01"}}
    hook, wire, _ = make_hook(ok({"data": [DEPLOYMENT, held], "next_page": None}))
    found = hook.create_deployment(CREATE, idempotency_key="x-2026-05-01", look_first=True)
    assert found.id == "depl_kept"
    assert [f"{r.method} {r.url.path}" for r in wire.requests] == ["GET /v1/deployments"]
    assert "created_at[gte]" not in wire.requests[0].url.params


def test_exactly_once_options_that_would_be_ignored_are_refused() -> None:
    hook, wire, _ = make_hook(ok(DEPLOYMENT))
    with pytest.raises(errors.ManagedAgentsValidationError, match="look_first: needs an idempotency_key"):
        hook.create_deployment(CREATE, look_first=True)
    conflicting = {**CREATE, "metadata": {"airflow_idempotency_key": "theirs"}}
    with pytest.raises(errors.ManagedAgentsValidationError, match=r"metadata\.airflow_idempotency_key"):
        hook.create_deployment(conflicting, idempotency_key="mine")
    full = {**CREATE, "metadata": {f"k{i}": "v" for i in range(16)}}
    with pytest.raises(errors.ManagedAgentsValidationError, match="no room for the idempotency marker"):
        hook.create_deployment(full, idempotency_key="mine")
    assert wire.requests == []


def test_fields_as_keywords_send_the_same_request_as_a_params_object() -> None:
    hook, wire, _ = make_hook(ok(DEPLOYMENT))
    hook.create_deployment(CREATE)
    hook.create_deployment(**CREATE)
    assert json.loads(wire.requests[0].content) == json.loads(wire.requests[1].content) == CREATE
    hook.update_deployment("depl_1", schedule=None, name="renamed")
    assert json.loads(wire.requests[2].content) == {"schedule": None, "name": "renamed"}
    with pytest.raises(errors.ManagedAgentsValidationError, match="not both"):
        hook.create_deployment(CREATE, name="x")
    with pytest.raises(errors.ManagedAgentsValidationError, match="environment_id"):
        hook.create_deployment(name="x", agent="a", initial_events=CREATE["initial_events"])
    assert len(wire.requests) == 3


# --- errors and secrets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.ManagedAgentsBadRequestError),
        (401, errors.ManagedAgentsAuthenticationError),
        (403, errors.ManagedAgentsPermissionError),
        (404, errors.ManagedAgentsNotFoundError),
        (409, errors.ManagedAgentsConflictError),
        (413, errors.ManagedAgentsRequestTooLargeError),
        (422, errors.ManagedAgentsUnprocessableEntityError),
        (418, errors.ManagedAgentsAPIError),
    ],
)
def test_error_statuses_map_to_their_classes(status: int, cls: type[Exception]) -> None:
    hook, _, _ = make_hook(lambda request: error(status, "some_error"))
    with pytest.raises(cls) as caught:
        hook.get_deployment("depl_1")
    assert type(caught.value) is cls
    # What no retry can fix fails the task at once; conflicts, rate limits and 5xx stay retryable.
    assert isinstance(caught.value, AirflowFailException) is (status in {400, 401, 403, 404, 413, 422})
    assert caught.value.error_type == "some_error"  # type: ignore[attr-defined]
    assert "GET /v1/deployments/depl_1" in str(caught.value) and "req_h" in str(caught.value)


def test_a_non_json_error_body_is_tolerated() -> None:
    hook, _, _ = make_hook(lambda request: httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(errors.ManagedAgentsServerError, match="bad gateway"):
        hook.get_deployment("depl_1")


def test_the_api_key_never_shows() -> None:
    hook, _, _ = make_hook(
        sequence(httpx.ConnectError("refused"), httpx.ConnectError("refused"), httpx.ConnectError("refused"))
    )
    with pytest.raises(errors.ManagedAgentsConnectionError) as caught:
        hook.get_deployment("depl_1")
    assert caught.value.request_sent is False
    for text in (str(caught.value), repr(caught.value), repr(hook), repr(hook.settings), str(hook.settings)):
        assert KEY not in text


def test_settings_from_a_connection() -> None:
    conn = Connection(
        conn_id="c",
        conn_type="managed_agents",
        host="127.0.0.1",
        port=8765,
        schema="http",
        password=KEY,
        extra=json.dumps({"betas": "a-1, b-2", "timeout": "12", "max_retries": 4, "workspace_id": "wrkspc_9"}),
    )
    settings = settings_from_connection(conn)
    assert settings.base_url == "http://127.0.0.1:8765"
    assert settings.betas == ("a-1", "b-2") and settings.timeout == 12.0 and settings.max_retries == 4
    assert settings.workspace_id == "wrkspc_9" and settings.api_key.reveal() == KEY
    blank = settings_from_connection(
        Connection(
            conn_id="b",
            conn_type="managed_agents",
            password=KEY,
            extra=json.dumps({"timeout": "", "max_retries": None, "workspace_id": ""}),
        )
    )
    assert blank.timeout == 60.0 and blank.max_retries == 2 and blank.workspace_id is None
    zero = settings_from_connection(
        Connection(conn_id="z", conn_type="managed_agents", password=KEY, extra=json.dumps({"max_retries": 0}))
    )
    assert zero.max_retries == 0
    default = settings_from_connection(Connection(conn_id="d", conn_type="managed_agents", password=KEY))
    assert default.base_url == "https://api.anthropic.com" and default.max_retries == 2
    with_scheme = settings_from_connection(
        Connection(conn_id="e", conn_type="managed_agents", host="https://proxy.example/v", password=KEY)
    )
    assert with_scheme.base_url == "https://proxy.example/v"
    with pytest.raises(errors.ManagedAgentsValidationError, match="password"):
        settings_from_connection(Connection(conn_id="f", conn_type="managed_agents"))


def test_test_connection_reports_a_bad_key_clearly() -> None:
    hook, _, _ = make_hook(sequence(error(401, "authentication_error")))
    good, message = hook.test_connection()
    assert not good and "401" in message and "API key" in message
    hook, _, _ = make_hook(ok({"data": [DEPLOYMENT], "next_page": None}))
    assert hook.test_connection()[0]


def test_a_missing_connection_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")
    hook = ManagedAgentsHook(managed_agents_conn_id="does_not_exist")
    assert hook.settings.api_key.reveal() == KEY and hook.settings.base_url == "http://127.0.0.1:1"


@pytest.mark.parametrize("password", ["", "   ", None])
def test_an_empty_api_key_is_refused_naming_the_connection_and_the_variable(password: str | None) -> None:
    """`airflow connections add ... --conn-password "$ANTHROPIC_API_KEY"` with the variable unset
    stores an empty key: using the connection says so, before any request."""
    conn = Connection(conn_id="my_agents", conn_type="managed_agents", password=password)
    with pytest.raises(errors.ManagedAgentsValidationError) as caught:
        settings_from_connection(conn)
    message = str(caught.value)
    assert "'my_agents'" in message and "password" in message and "ANTHROPIC_API_KEY" in message


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_connection_and_no_key_in_the_environment_names_both(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    from airflow_provider_managed_agents.compat import AirflowNotFoundException

    if value is None:
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    else:
        monkeypatch.setenv("ANTHROPIC_API_KEY", value)
    with pytest.raises(AirflowNotFoundException, match=r"'nowhere' is not defined and ANTHROPIC_API_KEY is not set"):
        ManagedAgentsHook(managed_agents_conn_id="nowhere").settings  # noqa: B018


def test_a_connection_error_names_the_url_it_tried() -> None:
    """A wrong base URL shows in the error (without the query: ids only, never the key)."""
    hook, _, _ = make_hook(sequence(*[httpx.ConnectError("refused")] * 3))
    with pytest.raises(errors.ManagedAgentsConnectionError) as caught:
        list(hook.list_deployment_runs(deployment_id="depl_1"))
    assert "GET http://api.test/v1/deployment_runs: ConnectError: refused" in str(caught.value)
    assert "deployment_id" not in str(caught.value)


def test_concurrent_async_hooks_share_one_connection_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """A triggerer runs hundreds of triggers on one connection: one lookup serves them all,
    a caller cancelled mid-lookup does not fail the others, and a failed lookup is retried."""
    lookups: list[str] = []
    fail_next = [False]

    async def aget_connection(conn_id: str) -> Connection:
        lookups.append(conn_id)
        await asyncio.sleep(0.05)
        if fail_next[0]:
            fail_next[0] = False
            raise RuntimeError("secrets backend down")
        return Connection(conn_id=conn_id, conn_type="managed_agents", host="127.0.0.1", password=KEY)

    monkeypatch.setattr(ManagedAgentsHook, "aget_connection", staticmethod(aget_connection), raising=False)

    async def scenario() -> None:
        hooks = [ManagedAgentsHook() for _ in range(50)]
        cancelled = asyncio.create_task(hooks[0].asettings())
        others = asyncio.gather(*(h.asettings() for h in hooks[1:]))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        settings = await others
        assert len(lookups) == 1 and {s.base_url for s in settings} == {"https://127.0.0.1"}

        monkeypatch.setattr(loop_pool_module, "SETTINGS_TTL_SECONDS", 0.0)  # expired: looked up again
        fail_next[0] = True
        with pytest.raises(RuntimeError, match="secrets backend down"):
            await ManagedAgentsHook().asettings()
        assert (await ManagedAgentsHook().asettings()).api_key.reveal() == KEY
        assert len(lookups) == 3

    asyncio.run(scenario())
