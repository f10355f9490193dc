"""Operators without a server: argument handling, validation before any request, XCom content,
and which run errors let Airflow retry. The emulator-backed DAG tests cover the rest."""

from __future__ import annotations

import json
from typing import Any

import api_samples
import httpx
import pytest
from fakes import FakeTI, context

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.compat import AirflowFailException
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import Secret, Settings
from airflow_provider_managed_agents.models.params import METADATA_MAX_PAIRS
from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsArchiveDeploymentOperator,
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsPauseDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
    ManagedAgentsUpdateDeploymentOperator,
)

NOW = api_samples.NOW
NO_RUNS = {"data": [], "next_page": None}
SECRET_TOKEN = "ghp_SENTINEL_TOKEN_123"


def deployment_json(**overrides: Any) -> dict[str, Any]:
    nightly = {
        "name": "nightly",
        "agent": {"type": "agent", "id": "agent_1", "version": 2},
        "schedule": {
            "type": "cron",
            "expression": "0 20 * * 5",
            "timezone": "America/New_York",
            "last_run_at": None,
            "upcoming_runs_at": ["2026-05-09T00:00:00Z", "2026-05-16T00:00:00Z"],
        },
        "created_at": NOW,
        "updated_at": NOW,
    }
    return api_samples.deployment_json(**{**nightly, **overrides})


def run_json(error: str | None = None) -> dict[str, Any]:
    return api_samples.run_json(
        agent={"type": "agent", "id": "agent_1", "version": 2},
        created_at=NOW,
        session_id=None if error else "sesn_1",
        error={"type": error, "message": "nope"} if error else None,
    )


class FakeApi:
    """Answers every request from a route table and records what was sent."""

    def __init__(self, routes: dict[str, Any]):
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes[f"{request.method} {request.url.path}"]
        return httpx.Response(200, json=answer() if callable(answer) else answer)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.content]


def wire(operator: Any, api: FakeApi) -> None:
    hook = ManagedAgentsHook()
    settings = Settings(api_key=Secret("sk-test"), base_url="http://api.test", console_url="https://console.test")
    hook._settings = settings
    hook.__dict__["client"] = httpx.Client(transport=httpx.MockTransport(api), **settings.client_options())
    operator.__dict__["hook"] = hook


def create_op(**kwargs: Any) -> ManagedAgentsCreateDeploymentOperator:
    args: dict[str, Any] = {"task_id": "create", "agent": "agent_1", "environment_id": "env_1", "name": "nightly"}
    args.update(kwargs)
    return ManagedAgentsCreateDeploymentOperator(**args)


def test_create_sends_the_api_fields_and_publishes_the_deployment() -> None:
    api = FakeApi({"POST /v1/deployments": deployment_json()})
    op = create_op(
        message="Summarise the day",
        metadata={"team": "data"},
        resources=[{"type": "github_repository", "url": "https://github.com/o/r", "authorization_token": SECRET_TOKEN}],
        schedule='{"type": "cron", "expression": "0 20 * * 5", "timezone": "America/New_York"}',
    )
    wire(op, api)
    ti = FakeTI()
    assert op.execute(context(ti)) == "depl_1"
    body = api.bodies()[0]
    assert body["initial_events"] == [
        {"type": "user.message", "content": [{"type": "text", "text": "Summarise the day"}]}
    ]
    assert body["schedule"] == {"type": "cron", "expression": "0 20 * * 5", "timezone": "America/New_York"}
    assert body["resources"][0]["authorization_token"] == SECRET_TOKEN
    assert body["metadata"]["team"] == "data"
    assert "airflow_dag_id" in body["metadata"]
    assert body["metadata"]["airflow_task_id"] == "create"
    assert len(body["metadata"]["airflow_idempotency_key"]) == 32
    assert ti.xcom["deployment"]["id"] == "depl_1"
    assert ti.xcom["deployment_url"] == "https://console.test/workspaces/default/deployments/depl_1"
    assert SECRET_TOKEN not in json.dumps(ti.xcom)


def test_labels_never_overwrite_the_authors_keys_and_leave_room_for_the_marker() -> None:
    api = FakeApi({"POST /v1/deployments": deployment_json()})
    mine = {f"k{i}": "v" for i in range(METADATA_MAX_PAIRS - 2)} | {"airflow_task_id": "mine"}
    op = create_op(message="go", metadata=mine)
    wire(op, api)
    op.execute(context(FakeTI()))
    sent = api.bodies()[0]["metadata"]
    assert len(sent) == METADATA_MAX_PAIRS
    assert sent["airflow_task_id"] == "mine"
    assert len(sent["airflow_idempotency_key"]) == 32
    assert "airflow_dag_id" not in sent


def test_a_full_metadata_bag_is_refused_before_sending_not_created_without_exactly_once() -> None:
    api = FakeApi({})
    op = create_op(message="go", metadata={f"k{i}": "v" for i in range(METADATA_MAX_PAIRS)})
    wire(op, api)
    with pytest.raises(errors.ManagedAgentsValidationError, match="metadata: no room for the idempotency marker"):
        op.execute(context(FakeTI()))
    assert api.requests == []


def test_a_marker_of_the_authors_own_that_disagrees_with_the_key_is_refused() -> None:
    api = FakeApi({})
    op = create_op(message="go", metadata={"airflow_idempotency_key": "mine"}, idempotency_key="other")
    wire(op, api)
    with pytest.raises(errors.ManagedAgentsValidationError, match=r"metadata\.airflow_idempotency_key"):
        op.execute(context(FakeTI()))
    assert api.requests == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (
            {"message": "go", "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "x"}]}]},
            "message",
        ),
        ({}, "initial_events"),
        ({"message": "go", "name": ""}, "name"),
        ({"message": "go", "vault_ids": ["v"] * 51}, "vault_ids"),
        (
            {"message": "go", "schedule": {"type": "cron", "expression": "0 0 * *", "timezone": "UTC"}},
            "schedule.expression",
        ),
        ({"message": "go", "schedule": "{not json: [yaml"}, "schedule"),
        ({"message": "go", "agent": {"type": "agent", "id": "a", "version": 0}}, "agent.version"),
    ],
)
def test_bad_arguments_fail_at_once_without_a_request(kwargs: dict[str, Any], field: str) -> None:
    api = FakeApi({})
    op = create_op(**kwargs)
    wire(op, api)
    with pytest.raises(errors.ManagedAgentsValidationError, match=field) as caught:
        op.execute(context(FakeTI()))
    assert isinstance(caught.value, AirflowFailException)  # no Airflow retries for bad input
    assert api.requests == []


def test_secret_never_reaches_a_validation_error() -> None:
    op = create_op(
        message="go", resources=[{"type": "github_repository", "url": "", "authorization_token": SECRET_TOKEN}]
    )
    wire(op, FakeApi({}))
    with pytest.raises(errors.ManagedAgentsValidationError) as caught:
        op.execute(context(FakeTI()))
    assert SECRET_TOKEN not in str(caught.value)


def test_update_sends_only_what_the_author_set() -> None:
    api = FakeApi({"POST /v1/deployments/depl_1": deployment_json()})
    op = ManagedAgentsUpdateDeploymentOperator(
        task_id="update",
        deployment_id="depl_1",
        schedule=None,
        metadata={"old": None, "new": "x"},
        agent={"type": "agent", "id": "agent_1", "version": 2},
    )
    assert op.given_fields == ["agent", "metadata", "schedule"]
    assert op.name is None and op.deployment_resources is None  # rendered fields show None, not a sentinel
    wire(op, api)
    assert op.execute(context(FakeTI())) == "depl_1"
    assert api.bodies() == [
        {
            "agent": {"type": "agent", "id": "agent_1", "version": 2},
            "metadata": {"old": None, "new": "x"},
            "schedule": None,
        }
    ]


def test_update_refuses_to_clear_a_required_field() -> None:
    api = FakeApi({})
    op = ManagedAgentsUpdateDeploymentOperator(task_id="update", deployment_id="depl_1", name=None)
    wire(op, api)
    with pytest.raises(errors.ManagedAgentsValidationError, match="name: cannot be cleared"):
        op.execute(context(FakeTI()))
    assert api.requests == []


def test_pausing_a_paused_deployment_succeeds_without_a_write(capsys: pytest.CaptureFixture[str]) -> None:
    paused = deployment_json(status="paused", paused_reason={"type": "manual"})
    api = FakeApi({"GET /v1/deployments/depl_1": paused})
    op = ManagedAgentsPauseDeploymentOperator(task_id="pause", deployment_id="depl_1")
    wire(op, api)
    assert op.execute(context(FakeTI())) == "depl_1"
    assert [f"{r.method} {r.url.path}" for r in api.requests] == ["GET /v1/deployments/depl_1"]
    assert "already paused" in capsys.readouterr().out


def test_archiving_an_archived_deployment_succeeds() -> None:
    archived = deployment_json(archived_at=NOW)
    api = FakeApi({"GET /v1/deployments/depl_1": archived})
    op = ManagedAgentsArchiveDeploymentOperator(task_id="archive", deployment_id="depl_1")
    wire(op, api)
    assert op.execute(context(FakeTI())) == "depl_1"
    assert len(api.requests) == 1


def test_pausing_an_archived_deployment_fails_without_retries() -> None:
    api = FakeApi({"GET /v1/deployments/depl_1": deployment_json(archived_at=NOW)})
    op = ManagedAgentsPauseDeploymentOperator(task_id="pause", deployment_id="depl_1")
    wire(op, api)
    with pytest.raises(AirflowFailException, match="archived"):
        op.execute(context(FakeTI()))


def test_run_success_returns_the_run_id_and_pushes_the_session() -> None:
    api = FakeApi({"GET /v1/deployment_runs": NO_RUNS, "POST /v1/deployments/depl_1/run": run_json()})
    op = ManagedAgentsRunDeploymentOperator(task_id="run", deployment_id="depl_1")
    wire(op, api)
    ti = FakeTI()
    assert op.execute(context(ti)) == "drun_1"
    assert ti.xcom["session_id"] == "sesn_1"
    assert ti.xcom["deployment_run"]["id"] == "drun_1"
    assert ti.xcom["deployment_url"] == "https://console.test/workspaces/default/deployments/depl_1"
    assert ti.xcom["session_url"] == "https://console.test/workspaces/default/sessions/sesn_1"


@pytest.mark.parametrize(
    ("error_type", "cls", "terminal"),
    [
        ("session_rate_limited_error", errors.SessionRateLimitedRunError, False),
        ("environment_archived_error", errors.EnvironmentArchivedRunError, True),
        ("environment_not_found_error", errors.EnvironmentNotFoundRunError, True),
        ("organization_disabled_error", errors.OrganizationDisabledRunError, True),
        ("session_creation_rejected_error", errors.SessionCreationRejectedRunError, True),
        ("unknown_error", errors.UnknownRunError, False),
        ("brand_new_error", errors.UnknownRunError, False),
    ],
)
def test_run_errors_raise_their_class_and_only_terminal_ones_skip_retries(
    error_type: str, cls: type[Exception], terminal: bool
) -> None:
    api = FakeApi({"GET /v1/deployment_runs": NO_RUNS, "POST /v1/deployments/depl_1/run": run_json(error_type)})
    op = ManagedAgentsRunDeploymentOperator(task_id="run", deployment_id="depl_1")
    wire(op, api)
    ti = FakeTI()
    with pytest.raises(cls) as caught:
        op.execute(context(ti))
    assert isinstance(caught.value, AirflowFailException) is terminal
    assert caught.value.error_type == error_type  # type: ignore[attr-defined]
    assert ti.xcom["deployment_run"]["error"]["type"] == error_type
    assert ti.xcom["session_id"] is None


def test_template_fields_cover_every_api_field() -> None:
    fields = set(ManagedAgentsCreateDeploymentOperator.template_fields)
    assert {
        "agent",
        "environment_id",
        "initial_events",
        "message",
        "name",
        "description",
        "metadata",
        "deployment_resources",
        "schedule",
        "vault_ids",
    } <= fields


def test_initial_events_from_a_yaml_file_beside_the_dag(tmp_path: Any) -> None:
    from airflow.sdk import DAG

    (tmp_path / "events.yaml").write_text(
        "- type: user.message\n  content:\n    - type: text\n      text: Hello {{ params.who }}\n"
    )
    with DAG("d", schedule=None, template_searchpath=[str(tmp_path)], params={"who": "team"}) as dag:
        op = create_op(initial_events="events.yaml")
    api = FakeApi({"POST /v1/deployments": deployment_json()})
    wire(op, api)
    op.render_template_fields({"params": dag.params, "ti": FakeTI()})  # type: ignore[arg-type]
    op.execute(context(FakeTI()))
    assert api.bodies()[0]["initial_events"][0]["content"][0]["text"] == "Hello team"


def test_only_a_whole_events_or_schedule_value_names_a_file(tmp_path: Any) -> None:
    """A message or an event text that merely ends in ".json" is text, not a template file."""
    from airflow.sdk import DAG

    (tmp_path / "schedule.json").write_text('{"type": "cron", "expression": "0 6 * * *", "timezone": "UTC"}')
    with DAG("d", schedule=None, template_searchpath=[str(tmp_path)]) as dag:
        by_message = create_op(task_id="by_message", message="Summarise out/report.json", schedule="schedule.json")
        by_events = create_op(
            task_id="by_events",
            initial_events=[{"type": "user.message", "content": [{"type": "text", "text": "read in.yaml"}]}],
        )
    api = FakeApi({"POST /v1/deployments": deployment_json()})
    for op in (by_message, by_events):
        wire(op, api)
        op.render_template_fields({"params": dag.params, "ti": FakeTI()})  # type: ignore[arg-type]
        op.execute(context(FakeTI()))
    first, second = api.bodies()
    assert first["initial_events"][0]["content"][0]["text"] == "Summarise out/report.json"
    assert first["schedule"] == {"type": "cron", "expression": "0 6 * * *", "timezone": "UTC"}
    assert second["initial_events"][0]["content"][0]["text"] == "read in.yaml"


@pytest.mark.parametrize(("hears", "warned"), [(True, False), (False, True)])
def test_deferring_says_when_this_airflow_cannot_stop_the_session_on_kill(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], hears: bool, warned: bool
) -> None:
    """Before Airflow 3.3 a trigger never hears its task was killed: the task says so as it defers."""
    import pendulum

    from airflow_provider_managed_agents import compat
    from airflow_provider_managed_agents.following import TimeLimit

    monkeypatch.setattr(compat, "triggers_hear_kills", lambda: hears)
    operator = ManagedAgentsRunDeploymentOperator(task_id="run", deployment_id="depl_1", wait_for_session_end=True)
    now = pendulum.now("UTC")
    trigger = operator._session_trigger("sesn_1", TimeLimit(now.add(minutes=1), 60.0), now, run_id="drun_1")
    assert trigger.on_kill_session == "interrupt" and trigger.run_id == "drun_1"
    assert ("leaves session sesn_1 running" in capsys.readouterr().out) is warned


def test_a_cron_string_as_schedule_is_refused_with_the_shape_to_write() -> None:
    api = FakeApi({"POST /v1/deployments": deployment_json()})
    op = create_op(message="go", schedule="0 3 * * *")
    wire(op, api)
    with pytest.raises(
        errors.ManagedAgentsValidationError, match=r'schedule: a schedule is \{"type": "cron"'
    ) as caught:
        op.execute(context(FakeTI()))
    assert "timezone" in str(caught.value) and api.requests == []
