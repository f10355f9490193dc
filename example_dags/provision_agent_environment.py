"""Environment provisioning: everything an agent runs on, declared in one DAG, safe to re-run.

environment -> vault + a credential whose secret comes from an Airflow connection -> memory
store -> agent -> deployment pinned to that agent version -> rollout -> smoke run -> the work.

Each ``ManagedAgentsEnsure*Operator`` makes its resource look as declared: created the first
time, left alone when nothing changed (a re-run sends no write at all), updated when the
declaration changed (a changed prompt in ``prompts/data_reviewer.md`` makes exactly one new agent
version). The rollout then moves the deployment onto that version behind a smoke run and puts it
back if the smoke fails; a new deployment gets a smoke run of its own. Every id flows by XCom.

The GitHub token is the password of the Airflow connection ``github_mcp_token`` (any connection
type; a secrets backend works too): it is read when the credential task runs, masked in every
log, and never rendered or stored in XCom.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import XComArg, dag, task

from airflow_provider_managed_agents.operators.deployments import (
    ManagedAgentsCreateDeploymentOperator,
    ManagedAgentsRunDeploymentOperator,
)
from airflow_provider_managed_agents.operators.provisioning import (
    ManagedAgentsEnsureAgentOperator,
    ManagedAgentsEnsureEnvironmentOperator,
    ManagedAgentsEnsureMemoryStoreOperator,
    ManagedAgentsEnsureVaultCredentialOperator,
    ManagedAgentsEnsureVaultOperator,
)
from airflow_provider_managed_agents.operators.rollout import ManagedAgentsRolloutDeploymentOperator

GITHUB_MCP = "https://api.githubcopilot.com/mcp/"


@dag(
    dag_id="provision_agent_environment",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["managed-agents", "example", "provisioning"],
)
def provision_agent_environment():
    environment = ManagedAgentsEnsureEnvironmentOperator(
        task_id="environment",
        name="data-review",
        config={
            "type": "cloud",
            "networking": {"type": "limited", "allowed_hosts": ["api.github.com"], "allow_package_managers": True},
            "packages": {"pip": ["pandas==2.2.2"]},
        },
    )
    vault = ManagedAgentsEnsureVaultOperator(task_id="vault", display_name="data-review secrets")
    credential = ManagedAgentsEnsureVaultCredentialOperator(
        task_id="github_credential",
        vault_id=vault.output,
        display_name="GitHub MCP",
        auth={"type": "static_bearer", "mcp_server_url": GITHUB_MCP},
        secrets={"token": "connection:github_mcp_token"},
    )
    memory = ManagedAgentsEnsureMemoryStoreOperator(
        task_id="memory_store", name="data-review notes", description="What earlier reviews found."
    )
    agent = ManagedAgentsEnsureAgentOperator(
        task_id="agent",
        name="Data reviewer",
        model="claude-sonnet-4-6",
        system="prompts/data_reviewer.md",
        tools=[{"type": "agent_toolset_20260401"}, {"type": "mcp_toolset", "mcp_server_name": "github"}],
        mcp_servers=[{"type": "url", "name": "github", "url": GITHUB_MCP}],
    )
    deployment = ManagedAgentsCreateDeploymentOperator(
        task_id="deployment",
        name="Data review",
        idempotency_key="provisioned-data-review",
        agent=XComArg(agent, key="agent_pin"),
        environment_id=environment.output,
        vault_ids=[vault.output],
        resources=[{"type": "memory_store", "memory_store_id": memory.output, "access": "read_write"}],
        message="Review today's load: publish or hold?",
    )
    rollout = ManagedAgentsRolloutDeploymentOperator(
        task_id="rollout",
        deployment_id=deployment.output,
        agent=XComArg(agent, key="agent_pin"),
        deferrable=True,
        poll_interval=10,
    )

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def new_deployment(action: str) -> bool:
        """A deployment made by this run gets a smoke run; an existing one had it already."""
        return action == "created"

    smoke = ManagedAgentsRunDeploymentOperator(
        task_id="smoke_run",
        deployment_id=deployment.output,
        wait_for_session_end=True,
        deferrable=True,
        poll_interval=10,
    )

    @task(trigger_rule="none_failed")
    def the_work(deployment_id: str) -> str:
        print(f"Deployment {deployment_id} is provisioned and proven; the pipeline goes on.")
        return deployment_id

    credential >> deployment
    rollout >> new_deployment(XComArg(deployment, key="action")) >> smoke >> the_work(deployment.output)


provision_agent_environment()
