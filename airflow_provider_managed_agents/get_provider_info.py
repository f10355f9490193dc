"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_managed_agents import __version__

PACKAGE = "airflow_provider_managed_agents"
CONN_TYPE = "managed_agents"
# The connection every hook, operator, sensor, trigger and asset uses unless told otherwise
# (ManagedAgentsHook.default_conn_name), in this light module so the DAG-parse path can name it.
DEFAULT_CONN_ID = "managed_agents_default"
DOCUMENTATION_URL = "https://github.com/airflow-provider-managed-agents/airflow-provider-managed-agents#readme"

# The connection form, declared once: Airflow >= 3.2 reads these from the provider info, older
# versions through the hook's get_ui_field_behaviour / get_connection_form_widgets.
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    # Port stays visible: Airflow 3.3's connection list sends port 0 for an empty port when
    # testing, which its API then refuses; a stored port avoids that.
    "hidden-fields": ["schema", "login"],
    "relabeling": {"host": "Base URL", "password": "API key", "port": "Port (optional)"},
    "placeholders": {"host": "https://api.anthropic.com", "password": "sk-ant-..."},
}
CONN_FIELDS: dict[str, Any] = {
    "workspace_id": {
        "label": "Workspace ID",
        "description": "Sent as anthropic-workspace-id, for keys that span several workspaces.",
        "schema": {"type": ["string", "null"], "examples": ["wrkspc_..."]},
    },
    "betas": {
        "label": "Extra betas",
        "description": "Comma-separated beta flags; managed-agents-2026-04-01 is always sent.",
        "schema": {"type": ["string", "null"]},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Per request; connecting is limited to 5 s.",
        "schema": {"type": ["number", "null"], "default": 60, "minimum": 1},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries of transient failures (429, 5xx, 529, connection errors).",
        "schema": {"type": ["integer", "null"], "default": 2, "minimum": 0},
    },
    "reads_per_minute": {
        "label": "Reads a minute (cap)",
        "description": "Space this process's GET requests on the connection to at most this many a minute. "
        "Empty: no cap (a 429 still pauses every read of the process until its retry-after).",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "writes_per_minute": {
        "label": "Writes a minute (cap)",
        "description": "The same for every other request (creates, updates, runs, actions).",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
    },
    "console_url": {
        "label": "Console base URL",
        "description": "Base of the operators' extra link to the deployment.",
        "schema": {"type": ["string", "null"], "default": "https://platform.claude.com"},
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-managed-agents",
        "name": "Anthropic Managed Agents",
        "description": "Create, manage, run and sense Anthropic Managed Agents deployments.",
        "documentation-url": DOCUMENTATION_URL,
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
                "python-modules": [
                    f"{PACKAGE}.operators.deployments",
                    f"{PACKAGE}.operators.runs",
                    f"{PACKAGE}.operators.provisioning",
                    f"{PACKAGE}.operators.rollout",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Anthropic Managed Agents",
                "python-modules": [f"{PACKAGE}.sensors.deployment_runs", f"{PACKAGE}.sensors.sessions"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Anthropic Managed Agents",
                "python-modules": [
                    f"{PACKAGE}.triggers.deployment_runs",
                    f"{PACKAGE}.triggers.sessions",
                    f"{PACKAGE}.triggers.deployment_run_events",
                ],
            }
        ],
        # The scheme of deployment_runs_asset() and of the operators' announcing outlets.
        "asset-uris": [{"schemes": ["managed-agents"], "handler": None}],
        "extra-links": [
            f"{PACKAGE}.links.ManagedAgentsDeploymentLink",
            f"{PACKAGE}.links.ManagedAgentsSessionLink",
        ],
        "connection-types": [
            {
                "hook-class-name": f"{PACKAGE}.hooks.managed_agents.ManagedAgentsHook",
                "connection-type": CONN_TYPE,
                "hook-name": "Anthropic Managed Agents",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONN_FIELDS,
            }
        ],
    }
