"""Secrets stay secret: run DAGs with a sentinel API key and a sentinel GitHub token, then look
for them everywhere a user or an attacker could: task logs, XCom, rendered template fields,
exception text, and what the service stored and returns."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, TEST_DAGS  # type: ignore[import-not-found]

from airflow_provider_managed_agents.emulator.server import run_emulator

API_KEY = "sk-ant-SENTINEL-API-KEY-7f3a9c"
GITHUB_TOKEN = "ghp_SENTINEL_GITHUB_TOKEN_51d2"
VAULT_TOKEN = "ghp_SENTINEL_VAULT_CREDENTIAL_9e41"
SENTINELS = (API_KEY, GITHUB_TOKEN, VAULT_TOKEN)


def occurrences(text: str) -> int:
    return sum(text.count(s) for s in SENTINELS)


def found_in_airflow(home: Path, dag_id: str) -> dict[str, int]:
    """Sentinel occurrences in the task log files, the DAG's XComs and its rendered fields."""
    logs = [p.read_text(errors="replace") for p in (home / "logs").rglob("*") if p.is_file()]
    with sqlite3.connect(home / "airflow.db") as db:
        xcom = db.execute("select value from xcom where dag_id = ?", (dag_id,)).fetchall()
        rendered = db.execute(
            "select rendered_fields from rendered_task_instance_fields where dag_id = ?", (dag_id,)
        ).fetchall()
    assert rendered, "rendered fields were recorded"
    return {
        "task log files": occurrences("\n".join(logs)),
        "XCom": occurrences(json.dumps([str(v) for (v,) in xcom])),
        "rendered template fields": occurrences(json.dumps([str(v) for (v,) in rendered])),
    }


@pytest.mark.timeout(400)
def test_sentinels_appear_nowhere(airflow_db: Path, tmp_path: Path) -> None:
    home = Path(os.environ["AIRFLOW_HOME"])
    found: dict[str, int] = {}
    with run_emulator(api_key=API_KEY) as emulator:
        env = dict(os.environ)
        env.update(
            AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT=emulator.connection_json(),
            AIRFLOW_VAR_GITHUB_TOKEN=GITHUB_TOKEN,
            AIRFLOW__CORE__DAGS_FOLDER=str(TEST_DAGS),
        )
        outputs = []
        for dag_id in ("private_repo",):
            proc = subprocess.run(
                [str(BIN / "airflow"), "dags", "test", dag_id], env=env, capture_output=True, text=True, timeout=240
            )
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
            outputs.append(proc.stdout + proc.stderr)
        # A failing run too: its exception text must be clean as well.
        emulator.control("POST", "organization", {"disabled": True})
        proc = subprocess.run(
            [str(BIN / "airflow"), "dags", "test", "private_repo"], env=env, capture_output=True, text=True, timeout=240
        )
        assert proc.returncode != 0
        assert "OrganizationDisabledRunError" in proc.stdout + proc.stderr
        outputs.append(proc.stdout + proc.stderr)
        found["task output and exception text"] = occurrences("\n".join(outputs))

        state = emulator.state()
        found["emulator stored state"] = occurrences(json.dumps(state))
        deployment = state["deployments"][0]
        assert deployment["resources"][0]["type"] == "github_repository"
        assert "authorization_token" not in deployment["resources"][0]
        os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
        try:
            from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

            returned = ManagedAgentsHook().get_deployment(deployment["id"])
            found["API responses"] = occurrences(returned.model_dump_json())
        finally:
            del os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"]

    found.update(found_in_airflow(home, "private_repo"))
    print("\nsentinel occurrences:", found)
    assert found == dict.fromkeys(found, 0)


def test_reprs_and_errors_hide_the_token_and_key() -> None:
    from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
    from airflow_provider_managed_agents.hooks.wire import Secret, Settings
    from airflow_provider_managed_agents.models.params import CreateDeploymentParams, validate_params

    settings = Settings(api_key=Secret(API_KEY))
    assert API_KEY not in repr(settings) and API_KEY not in str(settings)
    params: dict[str, Any] = {
        "agent": "a",
        "environment_id": "e",
        "name": "n",
        "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "x"}]}],
        "resources": [{"type": "github_repository", "url": "u", "authorization_token": GITHUB_TOKEN}],
    }
    model = validate_params(CreateDeploymentParams, params, "p")
    assert GITHUB_TOKEN not in repr(model) and GITHUB_TOKEN not in str(model)
    assert GITHUB_TOKEN not in model.model_dump_json()
    assert model.to_body()["resources"][0]["authorization_token"] == GITHUB_TOKEN  # only on the wire
    bad = {**params, "name": ""}
    with pytest.raises(ManagedAgentsValidationError) as caught:
        validate_params(CreateDeploymentParams, bad, "p")
    assert GITHUB_TOKEN not in str(caught.value)


@pytest.mark.timeout(500)
def test_a_vault_credentials_secret_appears_nowhere(airflow_db: Path) -> None:
    """The provisioning example reads the credential's token from an Airflow connection: it
    reaches the API (the emulator keeps only its hash) and nothing else, on a first run, a
    re-run, and a run whose rotated token is sent again."""
    home = Path(os.environ["AIRFLOW_HOME"])
    found: dict[str, int] = {}
    with run_emulator(api_key=API_KEY) as emulator:
        env = dict(os.environ)
        env.update(AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT=emulator.connection_json())
        outputs = []
        for token in (VAULT_TOKEN, VAULT_TOKEN, VAULT_TOKEN + "-rotated"):
            env["AIRFLOW_CONN_GITHUB_MCP_TOKEN"] = json.dumps({"conn_type": "generic", "password": token})
            proc = subprocess.run(
                [str(BIN / "airflow"), "dags", "test", "provision_agent_environment"],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
            outputs.append(proc.stdout + proc.stderr)
        found["task output"] = occurrences("\n".join(outputs))
        state = emulator.state()
        found["emulator stored state"] = occurrences(json.dumps(state))
        (credential,) = [c for c in state["vault_credentials"] if c["archived_at"] is None]
        assert credential["auth"]["type"] == "static_bearer"
        os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
        try:
            from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

            returned = ManagedAgentsHook().get_credential(credential["vault_id"], credential["id"])
            found["API responses"] = occurrences(returned.model_dump_json())
        finally:
            del os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"]
    found.update(found_in_airflow(home, "provision_agent_environment"))
    print("\nsentinel occurrences:", found)
    assert found == dict.fromkeys(found, 0)


def test_credential_errors_and_reprs_hide_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
    from airflow_provider_managed_agents.operators.provisioning import ManagedAgentsEnsureVaultCredentialOperator

    monkeypatch.setenv("AIRFLOW_CONN_GITHUB_MCP_TOKEN", json.dumps({"conn_type": "generic", "password": VAULT_TOKEN}))
    operator = ManagedAgentsEnsureVaultCredentialOperator(
        task_id="credential",
        vault_id="vlt_1",
        auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/"},
        secrets={"token": "connection:github_mcp_token"},
        display_name="x" * 1000,
    )
    with pytest.raises(ManagedAgentsValidationError) as caught:
        operator.declared()
    assert "display_name" in str(caught.value)
    assert VAULT_TOKEN not in str(caught.value) and VAULT_TOKEN not in repr(caught.value)
    good = ManagedAgentsEnsureVaultCredentialOperator(
        task_id="credential",
        vault_id="vlt_1",
        auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/"},
        secrets={"token": "connection:github_mcp_token"},
    )
    declared = good.declared()
    assert VAULT_TOKEN not in repr(declared) and VAULT_TOKEN not in declared.model_dump_json()
    assert VAULT_TOKEN not in repr(good.__dict__)
    assert declared.to_body()["auth"]["token"] == VAULT_TOKEN  # only on the wire
    with pytest.raises(ManagedAgentsValidationError) as refused:
        ManagedAgentsEnsureVaultCredentialOperator(
            task_id="inline",
            vault_id="vlt_1",
            auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/", "token": VAULT_TOKEN},
            secrets={"token": "connection:github_mcp_token"},
        ).declared()
    assert "auth.token" in str(refused.value) and VAULT_TOKEN not in str(refused.value)
