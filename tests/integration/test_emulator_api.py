"""The emulator over real HTTP, with the project's own hook as the client."""

from __future__ import annotations

import email.utils
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pendulum
import pytest

from airflow_provider_managed_agents import exceptions as errors
from airflow_provider_managed_agents.emulator.server import run_emulator, start_emulator_process
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import API_VERSION, MANAGED_AGENTS_BETA

EVENTS = [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}]


def params(**extra: Any) -> dict[str, Any]:
    return {"agent": "agent_demo", "environment_id": "env_demo", "name": "it", "initial_events": EVENTS, **extra}


def cron(expression: str, timezone: str = "UTC") -> dict[str, str]:
    return {"type": "cron", "expression": expression, "timezone": timezone}


@pytest.fixture
def emulator(managed_agents_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", managed_agents_emulator.connection_json())
    return managed_agents_emulator


@pytest.fixture
def hook(emulator: Any) -> ManagedAgentsHook:
    hook = ManagedAgentsHook()
    hook._sleep = lambda seconds: time.sleep(min(seconds, 0.05))  # type: ignore[method-assign]
    return hook


def raw(emulator: Any, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    base = {"x-api-key": emulator.api_key, "anthropic-version": API_VERSION, "anthropic-beta": MANAGED_AGENTS_BETA}
    return httpx.request(
        method, f"{emulator.base_url}{path}", headers={**base, **(headers or {})}, timeout=10, **kwargs
    )


# --- auth and headers ------------------------------------------------------------------------


def test_auth_version_and_beta_are_enforced(emulator: Any) -> None:
    assert raw(emulator, "GET", "/v1/deployments").status_code == 200
    bearer = raw(
        emulator,
        "GET",
        "/v1/deployments?beta=true",
        headers={"x-api-key": "", "authorization": f"Bearer {emulator.api_key}"},
    )
    assert bearer.status_code == 200
    wrong = raw(emulator, "GET", "/v1/deployments", headers={"x-api-key": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    assert wrong.headers["request-id"].startswith("req_")
    no_beta = raw(emulator, "GET", "/v1/deployments", headers={"anthropic-beta": "other-beta"})
    assert no_beta.status_code == 400 and MANAGED_AGENTS_BETA in no_beta.json()["error"]["message"]
    no_version = raw(emulator, "GET", "/v1/deployments", headers={"anthropic-version": ""})
    assert no_version.status_code == 400


def test_unknown_paths_and_methods_answer_in_the_error_envelope(emulator: Any) -> None:
    for method, path, status, error_type in [
        ("GET", "/v1/no_such_thing", 404, "not_found_error"),
        ("DELETE", "/v1/deployments", 405, "invalid_request_error"),
    ]:
        response = raw(emulator, method, path)
        assert response.status_code == status
        assert response.json()["error"]["type"] == error_type
        assert response.headers["request-id"].startswith("req_")


def test_the_hook_surfaces_a_bad_key(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", emulator.connection_json().replace(emulator.api_key, "wrong-key")
    )
    with pytest.raises(errors.ManagedAgentsAuthenticationError):
        ManagedAgentsHook().get_deployment("depl_x")
    assert ManagedAgentsHook().test_connection()[0] is False


def test_an_anthropic_providers_connection_works_as_is(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """apache-airflow-providers-anthropic's connection (type ``anthropic``: password = key, host =
    base URL) serves this provider when its id is given, sync and async."""
    import asyncio
    import json

    anthropic_conn = {"conn_type": "anthropic", "host": emulator.base_url, "password": emulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_ANTHROPIC_DEFAULT", json.dumps(anthropic_conn))
    monkeypatch.delenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", raising=False)
    hook = ManagedAgentsHook(managed_agents_conn_id="anthropic_default")
    assert hook.test_connection()[0] is True
    made = hook.create_deployment(params())
    assert (
        asyncio.run(ManagedAgentsHook(managed_agents_conn_id="anthropic_default").aget_deployment(made.id)).id
        == made.id
    )


# --- deployments -----------------------------------------------------------------------------


def test_create_resolves_the_agent_version_and_validates_references(hook: ManagedAgentsHook, emulator: Any) -> None:
    created = hook.create_deployment(params(schedule=cron("0 9 * * 1-5")))
    assert created.id.startswith("depl_") and created.agent.version == 1
    assert created.status == "active" and created.paused_reason is None
    assert len(created.schedule.upcoming_runs_at) == 5  # type: ignore[union-attr]
    emulator.control("POST", "agents/agent_demo/versions", {})
    assert hook.create_deployment(params()).agent.version == 2
    pinned = hook.create_deployment(params(agent={"type": "agent", "id": "agent_demo", "version": 1}))
    assert pinned.agent.version == 1
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.create_deployment(params(agent="agent_missing"))
    emulator.control("POST", "environments/env_demo/archive", {})
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="archived"):
        hook.create_deployment(params())
    assert hook.get_deployment(created.id) == created.model_copy(
        update={"schedule": hook.get_deployment(created.id).schedule}
    )


def test_update_preserves_clears_replaces_and_patches(hook: ManagedAgentsHook) -> None:
    created = hook.create_deployment(
        params(description="d", metadata={"a": "1", "b": "2"}, vault_ids=["v1"], schedule=cron("0 9 * * *"))
    )
    same = hook.update_deployment(created.id, {})
    assert (same.description, same.metadata, same.vault_ids) == ("d", {"a": "1", "b": "2"}, ["v1"])
    updated = hook.update_deployment(
        created.id,
        {
            "description": None,
            "schedule": None,
            "vault_ids": ["v2", "v3"],
            "metadata": {"a": None, "c": "3"},
            "name": "renamed",
        },
    )
    assert updated.description is None and updated.schedule is None
    assert updated.vault_ids == ["v2", "v3"] and updated.metadata == {"b": "2", "c": "3"}
    assert updated.name == "renamed"
    full = {f"k{i}": "v" for i in range(15)}
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="metadata"):
        hook.update_deployment(created.id, {"metadata": full})  # 2 + 15 > 16 pairs after the merge


def test_pause_unpause_archive_and_what_archive_forbids(hook: ManagedAgentsHook) -> None:
    created = hook.create_deployment(params(schedule=cron("*/5 * * * *")))
    paused = hook.pause_deployment(created.id)
    assert paused.status == "paused" and paused.paused_reason is not None and paused.paused_reason.type == "manual"
    assert paused.schedule is not None and paused.schedule.upcoming_runs_at  # what would happen if unpaused
    assert hook.pause_deployment(created.id).status == "paused"  # idempotent
    assert hook.run_deployment(created.id).trigger_type == "manual"  # manual runs allowed while paused
    active = hook.unpause_deployment(created.id)
    assert active.status == "active" and active.paused_reason is None
    archived = hook.archive_deployment(created.id)
    assert archived.archived_at is not None and archived.schedule is not None
    assert archived.schedule.upcoming_runs_at == []
    assert hook.archive_deployment(created.id).archived_at == archived.archived_at
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="archived"):
        hook.update_deployment(created.id, {"name": "x"})
    with pytest.raises(errors.ManagedAgentsBadRequestError, match="archived"):
        hook.run_deployment(created.id)
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.get_deployment("depl_missing")


def test_list_filters_and_pagination(hook: ManagedAgentsHook, emulator: Any) -> None:
    emulator.control("POST", "agents", {"id": "agent_other"})
    ids = [hook.create_deployment(params()).id for _ in range(5)]
    other = hook.create_deployment(params(agent="agent_other")).id
    hook.pause_deployment(ids[0])
    hook.archive_deployment(ids[1])
    listed = [d.id for d in hook.list_deployments(limit=2)]
    assert len(listed) == 5 and ids[1] not in listed and listed[0] == other  # newest first
    assert emulator.request_counts()["by_endpoint"]["GET /v1/deployments"] == 3  # 2 + 2 + 1
    assert {d.id for d in hook.list_deployments(include_archived=True)} == {*ids, other}
    assert [d.id for d in hook.list_deployments(status="paused")] == [ids[0]]
    assert ids[0] not in {d.id for d in hook.list_deployments(status="active")}
    assert [d.id for d in hook.list_deployments(agent_id="agent_other")] == [other]
    future = pendulum.now("UTC").add(minutes=5)
    assert list(hook.list_deployments(created_at_gte=future)) == []
    assert len(list(hook.list_deployments(created_at_lte=future))) == 5
    both = raw(emulator, "GET", "/v1/deployments", params={"status": "paused", "include_archived": "true"})
    assert both.status_code == 400
    too_many = raw(emulator, "GET", "/v1/deployments", params={"limit": "101"})
    assert too_many.status_code == 400 and "limit" in too_many.json()["error"]["message"]
    assert raw(emulator, "GET", "/v1/deployments", params={"page": "not-a-cursor!"}).status_code == 400


# --- runs ------------------------------------------------------------------------------------


def test_runs_list_filters_and_pages(hook: ManagedAgentsHook, emulator: Any) -> None:
    deployment = hook.create_deployment(params(schedule=cron("0 3 * * *"))).id
    before = pendulum.now("UTC")
    emulator.control("POST", f"deployments/{deployment}/seed_runs", {"count": 25})
    emulator.control("POST", f"deployments/{deployment}/next_run_error", {"type": "session_rate_limited_error"})
    failed = hook.run_deployment(deployment)
    fired = emulator.fire(deployment)["run"]
    all_runs = list(hook.list_deployment_runs(deployment_id=deployment, limit=10))
    assert len(all_runs) == 27 and len({r.id for r in all_runs}) == 27
    assert all((r.session_id is None) != (r.error is None) for r in all_runs)
    assert [r.id for r in hook.list_deployment_runs(deployment_id=deployment, has_error=True)] == [failed.id]
    assert len(list(hook.list_deployment_runs(deployment_id=deployment, has_error=False))) == 26
    assert [r.id for r in hook.list_deployment_runs(deployment_id=deployment, trigger_type="schedule")] == [fired["id"]]
    assert len(list(hook.list_deployment_runs(deployment_id=deployment, created_at_gte=before))) == 27
    assert list(hook.list_deployment_runs(deployment_id=deployment, created_at_lt=before)) == []
    assert list(hook.list_deployment_runs(deployment_id="depl_unknown")) == []
    assert hook.get_deployment_run(failed.id).error.type == "session_rate_limited_error"  # type: ignore[union-attr]
    with pytest.raises(errors.ManagedAgentsNotFoundError):
        hook.get_deployment_run("drun_missing")
    assert raw(emulator, "GET", "/v1/deployment_runs", params={"limit": "1001"}).status_code == 400


@pytest.mark.parametrize(
    ("break_it", "error_type"),
    [
        (lambda e, d: e.control("POST", "environments/env_demo/archive", {}), "environment_archived_error"),
        (lambda e, d: e.control("DELETE", "environments/env_demo"), "environment_not_found_error"),
        (lambda e, d: e.control("POST", "organization", {"disabled": True}), "organization_disabled_error"),
        (lambda e, d: e.control("POST", "workspace", {"archived": True}), "workspace_archived_error"),
        (lambda e, d: e.control("POST", "rate_limit", {"sessions_per_minute": 0}), "session_rate_limited_error"),
        (lambda e, d: e.force_next_run_error(d, "mcp_egress_blocked_error"), "mcp_egress_blocked_error"),
        (lambda e, d: e.force_next_run_error(d, "session_creation_rejected_error"), "session_creation_rejected_error"),
        (
            lambda e, d: e.force_next_run_error(d, "self_hosted_resources_unsupported_error"),
            "self_hosted_resources_unsupported_error",
        ),
        (lambda e, d: e.force_next_run_error(d, "brand_new_error"), "brand_new_error"),
    ],
)
def test_run_failures_are_typed_and_scheduled_ones_auto_pause(
    hook: ManagedAgentsHook, emulator: Any, break_it: Any, error_type: str
) -> None:
    deployment = hook.create_deployment(params(schedule=cron("0 3 * * *"))).id
    break_it(emulator, deployment)
    if error_type.startswith(("mcp", "session_creation", "self_hosted", "brand")):
        break_it(emulator, deployment)  # one forced error for the manual run, one for the fire
    manual = hook.run_deployment(deployment)
    assert manual.error is not None and manual.error.type == error_type
    assert hook.get_deployment(deployment).status == "active"  # manual runs never pause
    fired = emulator.fire(deployment)["run"]
    assert fired["error"]["type"] == error_type and fired["session_id"] is None
    after = hook.get_deployment(deployment)
    if error_type in ("session_rate_limited_error", "session_creation_rejected_error"):
        assert after.status == "active"
    else:
        assert after.status == "paused"
        assert after.paused_reason.error.type == error_type  # type: ignore[union-attr]
    assert after.schedule is not None and after.schedule.last_run_at is not None


@pytest.mark.parametrize(
    ("kind", "resource", "action", "error_type"),
    [
        ("vaults", None, "DELETE", "vault_not_found_error"),
        ("vaults", None, "archive", "vault_archived_error"),
        ("files", {"type": "file", "file_id": "file_x"}, "DELETE", "file_not_found_error"),
        (
            "memory_stores",
            {"type": "memory_store", "memory_store_id": "memstore_x"},
            "archive",
            "memory_store_archived_error",
        ),
        (
            "memory_stores",
            {"type": "memory_store", "memory_store_id": "memstore_x"},
            "DELETE",
            "session_resource_not_found_error",
        ),
        ("skills", None, "DELETE", "skill_not_found_error"),
    ],
)
def test_referenced_resources_that_disappear_fail_runs(
    hook: ManagedAgentsHook, emulator: Any, kind: str, resource: dict[str, Any] | None, action: str, error_type: str
) -> None:
    ident = {"vaults": "vlt_x", "files": "file_x", "memory_stores": "memstore_x", "skills": "skill_x"}[kind]
    emulator.control("POST", kind, {"id": ident})
    extra: dict[str, Any] = {}
    if kind == "vaults":
        extra["vault_ids"] = [ident]
    if resource:
        extra["resources"] = [resource]
    if kind == "skills":
        emulator.control("POST", "agents", {"id": "agent_skilled", "skills": [ident]})
        extra["agent"] = "agent_skilled"
    deployment = hook.create_deployment(params(**extra)).id
    assert hook.run_deployment(deployment).session_id is not None
    if action == "DELETE":
        emulator.control("DELETE", f"{kind}/{ident}")
    else:
        emulator.control("POST", f"{kind}/{ident}/archive", {})
    assert hook.run_deployment(deployment).error.type == error_type  # type: ignore[union-attr]


def test_an_archived_agent_archives_the_deployment_without_a_run(hook: ManagedAgentsHook, emulator: Any) -> None:
    deployment = hook.create_deployment(params(schedule=cron("0 3 * * *"))).id
    emulator.control("POST", "agents/agent_demo/archive", {})
    assert emulator.fire(deployment)["run"] is None
    assert hook.get_deployment(deployment).is_archived
    assert list(hook.list_deployment_runs(deployment_id=deployment)) == []


def test_the_github_token_is_write_only(hook: ManagedAgentsHook, emulator: Any) -> None:
    token = "ghp_write_only_secret"
    created = hook.create_deployment(
        params(resources=[{"type": "github_repository", "url": "https://github.com/o/r", "authorization_token": token}])
    )
    assert token not in created.model_dump_json()
    stored = emulator.state()
    assert "authorization_token" not in stored["deployments"][0]["resources"][0]
    assert token not in str(stored)


# --- schedules -------------------------------------------------------------------------------


def test_upcoming_fires_follow_dst_in_new_york(hook: ManagedAgentsHook, emulator: Any) -> None:
    now = pendulum.now("UTC")
    # Jump the emulator's clock to 2027-03-13 12:00 UTC, the day before spring forward.
    emulator.advance_clock((pendulum.datetime(2027, 3, 13, 12) - now).total_seconds())
    spring = hook.create_deployment(params(schedule=cron("30 2 * * *", "America/New_York")))
    fires = [t.isoformat() for t in spring.schedule.upcoming_runs_at]  # type: ignore[union-attr]
    # 2:30 does not exist on 2027-03-14 (spring forward), so the 15th comes next, at EDT.
    assert fires[:2] == ["2027-03-15T06:30:00+00:00", "2027-03-16T06:30:00+00:00"]
    emulator.advance_clock((pendulum.datetime(2027, 11, 6, 12) - pendulum.datetime(2027, 3, 13, 12)).total_seconds())
    fall = hook.create_deployment(params(schedule=cron("30 1 * * *", "America/New_York")))
    fires = [t.isoformat() for t in fall.schedule.upcoming_runs_at]  # type: ignore[union-attr]
    assert fires[:3] == ["2027-11-07T05:30:00+00:00", "2027-11-07T06:30:00+00:00", "2027-11-08T06:30:00+00:00"]


def test_the_scheduler_fires_within_the_jitter_and_never_while_paused(hook: ManagedAgentsHook, emulator: Any) -> None:
    """On a frozen clock the test decides every instant the scheduler sees: no wall-clock race."""
    emulator.freeze_clock(True)
    every_minute = hook.create_deployment(params(schedule=cron("* * * * *")))
    paused = hook.create_deployment(params(schedule=cron("* * * * *")))
    hook.pause_deployment(paused.id)
    due = every_minute.schedule.upcoming_runs_at[0]  # type: ignore[union-attr]
    now = pendulum.parse(emulator.state()["now"])
    assert emulator.advance_clock((due - now).total_seconds() - 0.01) == 0  # not yet due
    assert emulator.advance_clock(1.01) == 1  # max_jitter is 1 s in tests: due by now
    (run,) = hook.list_deployment_runs(deployment_id=every_minute.id)
    assert run.trigger_context.scheduled_at == due  # type: ignore[union-attr]
    assert timedelta(0) <= run.created_at - due <= timedelta(seconds=1)
    assert hook.get_deployment(every_minute.id).schedule.last_run_at == run.created_at  # type: ignore[union-attr]
    assert list(hook.list_deployment_runs(deployment_id=paused.id)) == []
    # Unpausing does not backfill the fire missed while paused; the next one fires.
    hook.unpause_deployment(paused.id)
    assert emulator.advance_clock(0) == 0
    assert list(hook.list_deployment_runs(deployment_id=paused.id)) == []
    assert emulator.advance_clock(60) == 2  # the next minute: both deployments
    assert len(list(hook.list_deployment_runs(deployment_id=paused.id))) == 1


def test_archiving_a_paused_deployment_reports_it_active_and_unpaused(hook: ManagedAgentsHook) -> None:
    deployment = hook.create_deployment(params(schedule=cron("0 3 * * *")))
    assert hook.pause_deployment(deployment.id).status == "paused"
    archived = hook.archive_deployment(deployment.id)
    assert archived.archived_at is not None
    assert archived.status == "active" and archived.paused_reason is None  # the API's status enum has no "archived"
    assert archived.schedule is not None and archived.schedule.upcoming_runs_at == []


def test_one_run_per_scheduled_slot(hook: ManagedAgentsHook, emulator: Any) -> None:
    deployment = hook.create_deployment(params(schedule=cron("0 3 * * *"))).id
    first, second = emulator.fire(deployment)["run"], emulator.fire(deployment)["run"]
    assert first["trigger_context"]["scheduled_at"] != second["trigger_context"]["scheduled_at"]


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "529", "500", "503", "latency"])
def test_reads_ride_out_status_and_latency_faults(hook: ManagedAgentsHook, emulator: Any, kind: str) -> None:
    created = hook.create_deployment(params())
    emulator.inject_faults(
        rate=1.0,
        kinds=[kind],
        endpoints=["GET /v1/deployments/{deployment_id}"],
        count=2,
        retry_after=0.05,
        latency_ms=50,
    )
    assert hook.get_deployment(created.id).id == created.id
    counts = emulator.request_counts()
    assert counts["by_endpoint"]["GET /v1/deployments/{deployment_id}"] == (1 if kind == "latency" else 3)


def test_a_dropped_create_did_not_happen_and_is_not_resent(hook: ManagedAgentsHook, emulator: Any) -> None:
    emulator.inject_faults(rate=1.0, kinds=["drop"], endpoints=["POST /v1/deployments"], count=1)
    with pytest.raises(errors.ManagedAgentsConnectionError):
        hook.create_deployment(params())
    assert emulator.state()["deployments"] == []


def test_a_committed_then_dropped_create_happened(hook: ManagedAgentsHook, emulator: Any) -> None:
    emulator.inject_faults(rate=1.0, kinds=["commit_then_drop"], endpoints=["POST /v1/deployments"], count=1)
    with pytest.raises(errors.ManagedAgentsConnectionError):
        hook.create_deployment(params())
    assert len(emulator.state()["deployments"]) == 1
    # With an idempotency key the same failure is invisible: the deployment is adopted.
    emulator.inject_faults(rate=1.0, kinds=["commit_then_drop"], endpoints=["POST /v1/deployments"], count=1)
    adopted = hook.create_deployment(params(), idempotency_key="once")
    assert len(emulator.state()["deployments"]) == 2
    assert adopted.metadata["airflow_idempotency_key"] == "once"


def test_answers_are_dated_by_the_emulator_clock(emulator: Any) -> None:
    emulator.freeze_clock(True)
    now = pendulum.parse(emulator.control("POST", "clock", {"advance_seconds": 3600})["now"])
    stated = email.utils.parsedate_to_datetime(raw(emulator, "GET", "/v1/deployments").headers["date"])
    assert stated == now.replace(microsecond=0)  # type: ignore[union-attr]


def test_a_lost_run_answer_adopts_the_new_run_not_one_made_seconds_before(
    hook: ManagedAgentsHook, emulator: Any
) -> None:
    """Both runs fall inside the clock allowance of the lookup; the service's ``date`` header
    tells which one the failed send can have made."""
    emulator.freeze_clock(True)
    deployment = hook.create_deployment(params())
    earlier = hook.run_deployment(deployment.id)
    emulator.advance_clock(3)
    hook.get_deployment(deployment.id)  # the hook hears the service's time
    emulator.inject_faults(
        rate=1.0, kinds=["commit_then_drop"], endpoints=["POST /v1/deployments/{deployment_id}/run"], count=1
    )
    adopted = hook.run_deployment(deployment.id)
    runs = hook.list_deployment_runs_page(deployment_id=deployment.id).data
    assert len(runs) == 2 and adopted.id != earlier.id
    assert adopted.created_at > earlier.created_at


# --- process, CLI and persistence ------------------------------------------------------------


def test_the_cli_starts_prints_the_world_and_stops_cleanly_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_managed_agents.emulator", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    world = process.stdout.readline()
    assert "agent_demo" in world and "env_demo" in world
    listening = process.stdout.readline()
    assert listening.startswith("listening on http://127.0.0.1:")
    base = listening.split()[-1]
    answer = httpx.get(
        f"{base}/v1/deployments",
        headers={"x-api-key": "any-key", "anthropic-version": API_VERSION, "anthropic-beta": MANAGED_AGENTS_BETA},
        timeout=10,
    )
    assert answer.status_code == 200
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_a_state_file_survives_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_file = tmp_path / "emulator.sqlite"
    first = start_emulator_process(state_file=state_file)
    try:
        monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", first.connection_json())
        hook = ManagedAgentsHook()
        created = hook.create_deployment(params())
        run = hook.run_deployment(created.id)
    finally:
        first.stop()
    with run_emulator(state_file=state_file) as second:
        monkeypatch.setenv("AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT", second.connection_json())
        hook = ManagedAgentsHook()
        assert hook.get_deployment(created.id).name == "it"
        assert hook.get_deployment_run(run.id).session_id == run.session_id
    assert os.path.getsize(state_file) > 0


def test_a_port_in_use_is_a_one_line_error_not_a_traceback() -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "airflow_provider_managed_agents.emulator", "--port", str(port)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    # Only the emulator's own lines (Airflow 3.1.0 logs its plugins at import, to stderr).
    assert [line for line in done.stderr.splitlines() if line.startswith("emulator:")] == [
        f"emulator: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(another process has it; --port 0 picks a free one)"
    ]


def test_the_cli_help_shows_every_default() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "airflow_provider_managed_agents.emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    shown = " ".join(shown.split())
    for default in ("127.0.0.1)", "(default: 8765)", "(default: any non-empty key)", "(default: none)", "10.0)"):
        assert default in shown, shown
    assert "listening on http://HOST:PORT" in shown
