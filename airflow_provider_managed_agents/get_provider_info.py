"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_managed_agents import __version__

PACKAGE = "airflow_provider_managed_agents"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-managed-agents",
        "name": "Anthropic Managed Agents",
        "description": "Create, manage, run and sense Anthropic Managed Agents deployments.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Anthropic Managed Agents",
                "external-doc-url": "https://docs.anthropic.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Anthropic Managed Agents",
                "python-modules": [f"{PACKAGE}.hooks.managed_agents"],
            }
        ],
        "operators": [
            {
                "integration-name": "Anthropic Managed Agents",
                "python-modules": [f"{PACKAGE}.operators.deployments"],
            }
        ],
        "sensors": [
            {
                "integration-name": "Anthropic Managed Agents",
                "python-modules": [f"{PACKAGE}.sensors.deployment_runs"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Anthropic Managed Agents",
                "python-modules": [f"{PACKAGE}.triggers.deployment_runs"],
            }
        ],
        "extra-links": [f"{PACKAGE}.operators.deployments.ManagedAgentsDeploymentLink"],
        "connection-types": [
            {
                "hook-class-name": f"{PACKAGE}.hooks.managed_agents.ManagedAgentsHook",
                "connection-type": "managed_agents",
            }
        ],
    }
