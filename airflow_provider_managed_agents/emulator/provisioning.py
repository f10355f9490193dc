"""The provisioning API's records: agents (with every version), environments, vaults and their
credentials, memory stores; and the rules that change them.

Records are plain dicts in the API's response shape (the state file stores them as JSON); keys
starting with ``_`` are the emulator's own and never leave it. A credential's secrets are never
kept: only the SHA-256 of each (``_secret_sha256``), so that a later update can be seen to have
replaced one. Request bodies arrive validated by the provider's own request models; what those
leave open (tool configs, unknown fields inside nested objects) is checked here, so that every
answer validates strictly with the official SDK's models.
"""

from __future__ import annotations

import copy
import hashlib
import secrets
import string
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, SecretStr

from airflow_provider_managed_agents.emulator.problems import ApiProblem, bad_request, not_found
from airflow_provider_managed_agents.emulator.sessions import Listing, time_key
from airflow_provider_managed_agents.models.agents import (
    AgentListFilters,
    AgentModelParam,
    AgentVersionListFilters,
    CreateAgentParams,
    CustomToolParam,
    McpToolsetParam,
    ToolsetParam,
    UpdateAgentParams,
)
from airflow_provider_managed_agents.models.base import format_timestamp, parse_timestamp
from airflow_provider_managed_agents.models.environments import (
    PACKAGE_MANAGERS,
    CreateEnvironmentParams,
    EnvironmentListFilters,
    LimitedNetworking,
    UpdateEnvironmentParams,
)
from airflow_provider_managed_agents.models.memory_stores import (
    CreateMemoryStoreParams,
    MemoryStoreListFilters,
    UpdateMemoryStoreParams,
)
from airflow_provider_managed_agents.models.params import apply_metadata_patch
from airflow_provider_managed_agents.models.vaults import (
    CreateCredentialParams,
    CreateVaultParams,
    EnvironmentVariableAuth,
    EnvironmentVariableUpdate,
    LimitedEgress,
    McpOAuthAuth,
    McpOAuthUpdate,
    StaticBearerAuth,
    StaticBearerUpdate,
    UpdateCredentialParams,
    UpdateVaultParams,
    VaultListFilters,
)

RECORD_KINDS = ("agents", "environments", "vaults", "memory_stores")
PREFIXES = {
    "agents": "agent",
    "environments": "env",
    "vaults": "vlt",
    "memory_stores": "memstore",
    "files": "file",
    "skills": "skill",
}
NAMES = {"agents": "agent", "environments": "environment", "vaults": "vault", "memory_stores": "memory store"}
DELETED_TYPES = {
    "agents": "agent_deleted",
    "environments": "environment_deleted",
    "vaults": "vault_deleted",
    "memory_stores": "memory_store_deleted",
}
DEFAULT_AGENT = "agent_demo"
DEFAULT_ENVIRONMENT = "env_demo"
DEFAULT_MODEL = "claude-sonnet-4-6"
DEFAULT_EFFORT = "high"
DEFAULT_PAGE = 20
EFFORTS = ("low", "medium", "high", "xhigh", "max")
POLICIES = ("always_allow", "always_ask", "auto")
TOOL_NAMES = ("bash", "edit", "read", "write", "glob", "grep", "web_fetch", "web_search")
TOOL_EXTRAS = {
    "web_fetch": ("allowed_domains", "blocked_domains", "max_content_tokens", "url_sources"),
    "web_search": ("allowed_domains", "blocked_domains", "user_location"),
}
DOMAINS_MAX = 64
URL_SOURCE_KEYS = ("user_input", "client_tool_results", "server_tool_results")
# What a session snapshots of its agent (the SDK's BetaManagedAgentsSessionAgent).
SESSION_AGENT_KEYS = (
    "type",
    "id",
    "version",
    "name",
    "description",
    "model",
    "system",
    "tools",
    "mcp_servers",
    "skills",
    "execution_identity",
    "multiagent",
)

# In ASCII order, so that ids sort as their time part does.
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_last_stamp = 0


def new_id(prefix: str) -> str:
    """``prefix_01`` + a time part (microseconds, strictly increasing) + a random part: ids made
    in the same instant of the world's clock still sort in the order they were made."""
    global _last_stamp
    _last_stamp = stamp = max(time.time_ns() // 1000, _last_stamp + 1)
    digits = ""
    for _ in range(10):
        stamp, digit = divmod(stamp, 62)
        digits = _ALPHABET[digit] + digits
    return f"{prefix}_01{digits}" + "".join(secrets.choice(_ALPHABET) for _ in range(12))


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A record as the API returns it: without the emulator's own keys."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _sha256(secret: SecretStr) -> str:
    return hashlib.sha256(secret.get_secret_value().encode()).hexdigest()


def _invalid_metadata(exc: ValueError) -> ApiProblem:
    return ApiProblem(400, "invalid_request_error", f"metadata: {exc}", details={"error_code": "invalid_metadata"})


def _patched(current: dict[str, str], patch: dict[str, str | None], *, empty_deletes: bool = False) -> dict[str, str]:
    if empty_deletes:
        patch = {k: (None if v == "" else v) for k, v in patch.items()}
    try:
        return apply_metadata_patch(current, patch)
    except ValueError as exc:
        raise _invalid_metadata(exc) from None


def _no_extras(value: Any, path: str) -> None:
    """Refuse fields the API does not have anywhere in a request (nested request objects keep
    unknown keys rather than refusing them; the API refuses them)."""
    if isinstance(value, BaseModel):
        for key in value.model_extra or {}:
            raise bad_request(f"{path}.{key}: unknown field" if path else f"{key}: unknown field")
        for name in type(value).model_fields:
            _no_extras(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_extras(item, f"{path}[{i}]")


def _created_within(record: dict[str, Any], filters: Any) -> bool:
    moment = parse_timestamp(record["created_at"])
    gte, lte = getattr(filters, "created_at_gte", None), getattr(filters, "created_at_lte", None)
    return (gte is None or moment >= gte) and (lte is None or moment <= lte)


def _page(
    items: list[dict[str, Any]],
    limit: int | None,
    page: str | None,
    key: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Newest first, ties broken by id; the cursor is the last item's sort key."""
    try:
        listed = Listing(
            items, key or (lambda i: (time_key(i["created_at"]), i["id"])), "desc", limit or DEFAULT_PAGE, page
        ).cut()
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    listed["data"] = [public(item) for item in listed["data"]]
    return listed


# --- agents: resolving what a request gives into what a response holds ----------------------


def _policy(value: Any, default: dict[str, Any], path: str) -> dict[str, Any]:
    if value is None:
        return dict(default)
    kind = value.get("type") if isinstance(value, dict) else value
    if kind not in POLICIES or (isinstance(value, dict) and set(value) - {"type"}):
        raise bad_request(f"{path}: a permission policy is one of {[{'type': p} for p in POLICIES]}")
    return {"type": kind}


def _default_config(value: dict[str, Any] | None, policy: str, path: str) -> dict[str, Any]:
    given = value or {}
    unknown = sorted(set(given) - {"enabled", "permission_policy"})
    if unknown:
        raise bad_request(f"{path}.{unknown[0]}: unknown field")
    enabled = given.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise bad_request(f"{path}.enabled: must be a boolean")
    return {
        "enabled": True if enabled is None else enabled,
        "permission_policy": _policy(given.get("permission_policy"), {"type": policy}, f"{path}.permission_policy"),
    }


def _url_filter(value: Any, path: str, tool_key: bool) -> dict[str, Any]:
    kind = value.get("type") if isinstance(value, dict) else value
    if kind in ("all", "none") and (not isinstance(value, dict) or set(value) == {"type"}):
        return {"type": kind}
    if tool_key and kind in ("only", "except") and isinstance(value, dict) and set(value) == {"type", "tools"}:
        tools = value["tools"]
        valid = isinstance(tools, list) and 1 <= len(tools) <= 128
        valid = valid and all(
            isinstance(t, dict) and t.get("type") == "tool_reference" and isinstance(t.get("name"), str) and t["name"]
            for t in tools
        )
        if valid:
            return {"type": kind, "tools": [{"type": "tool_reference", "name": t["name"]} for t in tools]}
        raise bad_request(f"{path}.tools: 1-128 {{'type': 'tool_reference', 'name'}} entries")
    allowed = '"all", "none"' + (', {"type": "only"|"except", "tools"}' if tool_key else "")
    raise bad_request(f"{path}: one of {allowed}")


def _tool_extra(name: str, key: str, value: Any, path: str) -> Any:
    if key in ("allowed_domains", "blocked_domains"):
        if not isinstance(value, list) or not 1 <= len(value) <= DOMAINS_MAX:
            raise bad_request(f"{path}: 1-{DOMAINS_MAX} domains")
        if not all(isinstance(d, str) and d.strip() for d in value):
            raise bad_request(f"{path}: domains are non-empty strings")
        return list(value)
    if key == "max_content_tokens":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad_request(f"{path}: a positive integer")
        return value
    if key == "url_sources":
        if not isinstance(value, dict) or set(value) - set(URL_SOURCE_KEYS):
            raise bad_request(f"{path}: an object with {', '.join(URL_SOURCE_KEYS)}")
        return {k: _url_filter(v, f"{path}.{k}", k != "user_input") for k, v in value.items() if v is not None}
    # user_location
    fields = {"type", "city", "country", "region", "timezone"}
    if not isinstance(value, dict) or value.get("type") != "approximate" or set(value) - fields:
        raise bad_request(f"{path}: {{'type': 'approximate', 'city'?, 'country'?, 'region'?, 'timezone'?}}")
    if not all(isinstance(v, str) for k, v in value.items() if v is not None):
        raise bad_request(f"{path}: city, country, region and timezone are strings")
    return {k: v for k, v in value.items() if v is not None}


def _toolset_config(config: Any, default: dict[str, Any], path: str) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise bad_request(f"{path}: a tool config object")
    name = config.get("name")
    if name not in TOOL_NAMES:
        raise bad_request(f"{path}.name: one of {list(TOOL_NAMES)}")
    if config.get("type", name) not in (name, None):
        raise bad_request(f"{path}.type: must equal the name ({name!r})")
    extras = TOOL_EXTRAS.get(name, ())
    unknown = sorted(set(config) - {"name", "type", "enabled", "permission_policy", *extras})
    if unknown:
        raise bad_request(f"{path}.{unknown[0]}: unknown field for the {name} tool")
    enabled = config.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise bad_request(f"{path}.enabled: must be a boolean")
    resolved: dict[str, Any] = {
        "type": name,
        "name": name,
        "enabled": default["enabled"] if enabled is None else enabled,
        "permission_policy": _policy(
            config.get("permission_policy"), default["permission_policy"], f"{path}.permission_policy"
        ),
    }
    if config.get("allowed_domains") and config.get("blocked_domains"):
        raise bad_request(f"{path}: allowed_domains and blocked_domains are mutually exclusive")
    for key in extras:
        if config.get(key) is not None:
            resolved[key] = _tool_extra(name, key, config[key], f"{path}.{key}")
    return resolved


def _mcp_config(config: Any, default: dict[str, Any], path: str) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise bad_request(f"{path}: a tool config object")
    name = config.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 128:
        raise bad_request(f"{path}.name: 1-128 characters")
    unknown = sorted(set(config) - {"name", "enabled", "permission_policy"})
    if unknown:
        raise bad_request(f"{path}.{unknown[0]}: unknown field")
    enabled = config.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise bad_request(f"{path}.enabled: must be a boolean")
    return {
        "name": name,
        "enabled": default["enabled"] if enabled is None else enabled,
        "permission_policy": _policy(
            config.get("permission_policy"), default["permission_policy"], f"{path}.permission_policy"
        ),
    }


def resolve_tools(tools: Iterable[Any]) -> list[dict[str, Any]]:
    """Tools as a response holds them: toolsets with every config and a default config."""
    resolved: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        if isinstance(tool, ToolsetParam):
            default = _default_config(tool.default_config, "always_allow", f"{path}.default_config")
            configs = [_toolset_config(c, default, f"{path}.configs[{j}]") for j, c in enumerate(tool.configs or [])]
            names = [c["name"] for c in configs]
            if len(names) != len(set(names)):
                raise bad_request(f"{path}.configs: one config per tool")
            resolved.append({"type": tool.type, "default_config": default, "configs": configs})
        elif isinstance(tool, McpToolsetParam):
            default = _default_config(tool.default_config, "always_ask", f"{path}.default_config")
            configs = [_mcp_config(c, default, f"{path}.configs[{j}]") for j, c in enumerate(tool.configs or [])]
            server = tool.mcp_server_name
            resolved.append(
                {"type": tool.type, "mcp_server_name": server, "default_config": default, "configs": configs}
            )
        elif isinstance(tool, CustomToolParam):
            schema = tool.input_schema
            if not isinstance(schema.get("properties", {}), dict) or not isinstance(schema.get("required", []), list):
                raise bad_request(f"{path}.input_schema: properties is an object, required a list")
            resolved.append(
                {"type": "custom", "name": tool.name, "description": tool.description, "input_schema": schema}
            )
        else:  # refused by the request model already
            raise bad_request(f"{path}: unsupported tool")
    toolsets = [t["type"] for t in resolved if t["type"] == "agent_toolset_20260401"]
    if len(toolsets) > 1:
        raise bad_request("tools: at most one agent_toolset_20260401")
    customs = [t["name"] for t in resolved if t["type"] == "custom"]
    if len(customs) != len(set(customs)):
        raise bad_request("tools: custom tool names must be unique")
    return resolved


def resolve_model(value: Any, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """``model`` as a response holds it: an object with the effort resolved (a bare id takes
    the stored effort, else the default one) and the speed and region spelled out."""
    if isinstance(value, str):
        value = AgentModelParam(id=value)
    effort = value.effort
    if effort is None:
        kind = (stored or {}).get("effort", {}).get("type", DEFAULT_EFFORT)
    else:
        kind = effort if isinstance(effort, str) else effort.type
    if kind not in EFFORTS:
        raise bad_request(f"model.effort: one of {list(EFFORTS)}")
    speed = value.speed or "standard"
    return {"id": value.id, "effort": {"type": kind}, "speed": speed, "inference_geo": value.inference_geo}


def _skills(skills: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"type": s.type, "skill_id": s.skill_id, "version": s.version or "latest"} for s in skills]


def _servers(servers: Iterable[Any]) -> list[dict[str, Any]]:
    return [{"type": "url", "name": s.name, "url": s.url} for s in servers]


def _check_servers(agent: dict[str, Any]) -> None:
    names = [s["name"] for s in agent["mcp_servers"]]
    if len(names) != len(set(names)):
        raise bad_request("mcp_servers: names must be unique")
    used = {t["mcp_server_name"] for t in agent["tools"] if t["type"] == "mcp_toolset"}
    if unused := sorted(set(names) - used):
        raise bad_request(f"mcp_servers: {', '.join(unused)} not used by any mcp_toolset in tools")
    if unknown := sorted(used - set(names)):
        raise bad_request(f"tools: mcp_toolset names {', '.join(unknown)}, which mcp_servers does not define")


# What makes one version differ from another (a no-op update makes no version).
_AGENT_CONTENT = ("name", "model", "system", "description", "tools", "mcp_servers", "skills", "metadata")


# --- environments ---------------------------------------------------------------------------


def _networking(value: Any, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    if value is None:
        return dict(stored) if stored else {"type": "unrestricted"}
    if not isinstance(value, LimitedNetworking):
        return {"type": "unrestricted"}
    base = stored if stored and stored["type"] == "limited" else {}
    given = value.model_fields_set
    return {
        "type": "limited",
        "allowed_hosts": list(value.allowed_hosts or [])
        if "allowed_hosts" in given
        else list(base.get("allowed_hosts", [])),
        "allow_mcp_servers": bool(value.allow_mcp_servers)
        if "allow_mcp_servers" in given
        else base.get("allow_mcp_servers", False),
        "allow_package_managers": bool(value.allow_package_managers)
        if "allow_package_managers" in given
        else base.get("allow_package_managers", False),
    }


def _packages(value: Any, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    packages: dict[str, Any] = {"type": "packages"}
    for manager in PACKAGE_MANAGERS:
        if value is not None and manager in value.model_fields_set:
            packages[manager] = list(getattr(value, manager) or [])
        else:
            packages[manager] = list((stored or {}).get(manager, []))
    return packages


def resolve_config(value: Any, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """``config`` as a response holds it, complete; on update merged into ``stored``."""
    value_type = "cloud" if value is None else value.type
    if stored is not None and value_type != stored["type"]:
        raise ApiProblem(
            400,
            "invalid_request_error",
            f"config.type: an environment's config type cannot change ({stored['type']} to {value_type})",
            details={"error_code": "invalid_config_type_change"},
        )
    if value_type == "self_hosted":
        return {"type": "self_hosted"}
    given = value.model_fields_set if value is not None else set()
    before = stored or {}
    config: dict[str, Any] = {
        "type": "cloud",
        "networking": _networking(value.networking if "networking" in given else None, before.get("networking")),
        "packages": _packages(value.packages if "packages" in given else None, before.get("packages")),
    }
    networking = config["networking"]
    blocked = networking["type"] == "limited" and not networking["allow_package_managers"]
    if blocked and any(config["packages"][m] for m in PACKAGE_MANAGERS):
        raise bad_request("config.packages: under limited networking, packages need allow_package_managers: true")
    return config


# --- credentials ----------------------------------------------------------------------------


def _injection(value: Any, stored: dict[str, bool] | None = None) -> dict[str, bool]:
    base = stored or {"header": True, "body": False}
    location = {
        "header": base["header"] if value is None or value.header is None else value.header,
        "body": base["body"] if value is None or value.body is None else value.body,
    }
    if not (location["header"] or location["body"]):
        raise bad_request("auth.injection_location: header or body must stay true")
    return location


def _egress(value: Any) -> dict[str, Any]:
    if isinstance(value, LimitedEgress):
        return {"type": "limited", "allowed_hosts": list(value.allowed_hosts)}
    return {"type": "unrestricted"}


class Provisioning:
    """The records the provisioning endpoints make, and ids deleted (runs tell a deleted one
    from one the emulator was never told about)."""

    def __init__(self, now: Callable[[], datetime]):
        self.now = now
        self.agents: dict[str, list[dict[str, Any]]] = {}  # every version, oldest first
        self.environments: dict[str, dict[str, Any]] = {}
        self.vaults: dict[str, dict[str, Any]] = {}
        self.credentials: dict[str, dict[str, Any]] = {}
        self.memory_stores: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, list[str]] = {kind: [] for kind in RECORD_KINDS}

    def _stamp(self) -> str:
        return format_timestamp(self.now())

    # --- the default world and the controls ----------------------------------------------

    def seed(self) -> None:
        self.add("agents", DEFAULT_AGENT)
        self.add("environments", DEFAULT_ENVIRONMENT)

    def add(self, kind: str, ident: str | None = None, skills: Iterable[str] = ()) -> dict[str, Any]:
        """A record made by the controls (plausible fields; ``ident`` as given)."""
        ident = ident or new_id(PREFIXES[kind])
        stamp = self._stamp()
        if ident in self.deleted[kind]:
            self.deleted[kind].remove(ident)
        if kind == "agents":
            record: dict[str, Any] = {
                "id": ident,
                "type": "agent",
                "name": "Demo agent" if ident == DEFAULT_AGENT else ident,
                "model": resolve_model(DEFAULT_MODEL),
                "system": "You complete the task you are given and report what you did.",
                "description": "The emulator's default agent" if ident == DEFAULT_AGENT else None,
                "tools": resolve_tools([ToolsetParam()]),
                "mcp_servers": [],
                "skills": [{"type": "custom", "skill_id": s, "version": "latest"} for s in skills],
                "metadata": {},
                "execution_identity": {"type": "service_account"},
                "multiagent": None,
                "version": 1,
                "created_at": stamp,
                "updated_at": stamp,
                "archived_at": None,
            }
            self.agents[ident] = [record]
            return record
        if kind == "environments":
            name = "Demo environment" if ident == DEFAULT_ENVIRONMENT else ident
            record = self._environment(ident, name, None, resolve_config(None), {}, "organization", stamp)
        elif kind == "vaults":
            record = self._vault(ident, ident, {}, stamp)
        else:
            record = self._store(ident, ident, "", {}, stamp)
        getattr(self, kind)[ident] = record
        return record

    def mint_version(self, agent_id: str) -> dict[str, Any]:
        """The control's new version: the latest, one version up."""
        versions = self._agent_versions(agent_id)
        minted = {**copy.deepcopy(versions[-1]), "version": len(versions) + 1, "updated_at": self._stamp()}
        versions.append(minted)
        return minted

    def archive(self, kind: str, ident: str) -> dict[str, Any]:
        return {
            "agents": self.archive_agent,
            "environments": self.archive_environment,
            "vaults": self.archive_vault,
            "memory_stores": self.archive_memory_store,
        }[kind](ident)

    def delete(self, kind: str, ident: str) -> dict[str, Any]:
        if kind == "agents":  # the API has no agent delete; the controls do
            self._agent_versions(ident)
            del self.agents[ident]
            self.deleted[kind].append(ident)
            return {"id": ident, "type": DELETED_TYPES[kind]}
        return {
            "environments": self.delete_environment,
            "vaults": self.delete_vault,
            "memory_stores": self.delete_memory_store,
        }[kind](ident)

    def status(self, kind: str, ident: str) -> str:
        """``live``, ``archived``, ``deleted`` or ``unknown`` (never made, never deleted)."""
        if kind == "agents":
            record = self.agents[ident][-1] if ident in self.agents else None
        else:
            record = getattr(self, kind).get(ident)
        if record is None:
            return "deleted" if ident in self.deleted[kind] else "unknown"
        return "archived" if record["archived_at"] is not None else "live"

    # --- agents ----------------------------------------------------------------------------

    def _agent_versions(self, agent_id: str) -> list[dict[str, Any]]:
        found = self.agents.get(agent_id)
        if found is None:
            raise not_found("agent", agent_id)
        return found

    def agent_version(self, agent_id: str, version: int | None = None) -> dict[str, Any]:
        versions = self._agent_versions(agent_id)
        if version is None:
            return versions[-1]
        if not 1 <= version <= len(versions):
            raise not_found(f"agent {agent_id!r} version", str(version))
        return versions[version - 1]

    def session_agent(self, agent_id: str, version: int) -> dict[str, Any] | None:
        """What a session snapshots of the agent at ``version`` (None if it has no record)."""
        versions = self.agents.get(agent_id)
        if versions is None or not 1 <= version <= len(versions):
            return None
        record = versions[version - 1]
        return copy.deepcopy({key: record[key] for key in SESSION_AGENT_KEYS})

    def create_agent(self, params: CreateAgentParams) -> dict[str, Any]:
        _no_extras(params, "")
        stamp = self._stamp()
        agent: dict[str, Any] = {
            "id": new_id("agent"),
            "type": "agent",
            "name": params.name,
            "model": resolve_model(params.model),
            "system": params.system or None,
            "description": params.description or None,
            "tools": resolve_tools(params.tools or []),
            "mcp_servers": _servers(params.mcp_servers or []),
            "skills": _skills(params.skills or []),
            "metadata": dict(params.metadata or {}),
            "execution_identity": {"type": "service_account"},
            "multiagent": None,
            "version": 1,
            "created_at": stamp,
            "updated_at": stamp,
            "archived_at": None,
        }
        _check_servers(agent)
        self.agents[agent["id"]] = [agent]
        return agent

    def update_agent(self, agent_id: str, params: UpdateAgentParams) -> dict[str, Any]:
        _no_extras(params, "")
        versions = self._agent_versions(agent_id)
        current = versions[-1]
        if current["archived_at"] is not None:
            raise bad_request(f"agent {agent_id!r} is archived; archived agents cannot be updated")
        if params.version is not None and params.version != current["version"]:
            raise ApiProblem(
                409,
                "conflict_error",
                f"version: agent {agent_id!r} is at version {current['version']}, not {params.version}",
                headers={"x-should-retry": "false"},
            )
        given = params.model_fields_set
        changed = copy.deepcopy(current)
        if "name" in given:
            changed["name"] = params.name
        if "model" in given:
            changed["model"] = resolve_model(params.model, current["model"])
        if "system" in given:
            changed["system"] = params.system or None
        if "description" in given:
            changed["description"] = params.description or None
        if "tools" in given:
            changed["tools"] = resolve_tools(params.tools or [])
        if "mcp_servers" in given:
            changed["mcp_servers"] = _servers(params.mcp_servers or [])
        if "skills" in given:
            changed["skills"] = _skills(params.skills or [])
        if "metadata" in given and params.metadata is not None:
            changed["metadata"] = _patched(current["metadata"], params.metadata)
        _check_servers(changed)
        if all(changed[key] == current[key] for key in _AGENT_CONTENT):
            return current  # nothing changed: no new version
        changed.update(version=current["version"] + 1, updated_at=self._stamp())
        versions.append(changed)
        return changed

    def list_agents(self, filters: AgentListFilters) -> dict[str, Any]:
        latest = [versions[-1] for versions in self.agents.values()]
        items = [
            a for a in latest if (filters.include_archived or a["archived_at"] is None) and _created_within(a, filters)
        ]
        return _page(items, filters.limit, filters.page)

    def list_agent_versions(self, agent_id: str, filters: AgentVersionListFilters) -> dict[str, Any]:
        return _page(self._agent_versions(agent_id), filters.limit, filters.page, key=lambda a: (a["version"],))

    def archive_agent(self, agent_id: str) -> dict[str, Any]:
        versions = self._agent_versions(agent_id)
        if versions[-1]["archived_at"] is None:
            stamp = self._stamp()
            for version in versions:
                version["archived_at"] = stamp
            versions[-1]["updated_at"] = stamp
        return versions[-1]

    # --- environments ----------------------------------------------------------------------

    @staticmethod
    def _environment(
        ident: str,
        name: str,
        description: str | None,
        config: dict[str, Any],
        metadata: dict[str, str],
        scope: str,
        stamp: str,
    ) -> dict[str, Any]:
        return {
            "id": ident,
            "type": "environment",
            "name": name,
            "description": description,
            "config": config,
            "metadata": metadata,
            "scope": scope,
            "created_at": stamp,
            "updated_at": stamp,
            "archived_at": None,
        }

    @staticmethod
    def _scope(scope: str | None) -> str:
        if scope == "account":
            raise bad_request("scope: API organizations support only 'organization'")
        return "organization"

    def environment(self, environment_id: str) -> dict[str, Any]:
        found = self.environments.get(environment_id)
        if found is None:
            raise not_found("environment", environment_id)
        return found

    def create_environment(self, params: CreateEnvironmentParams) -> dict[str, Any]:
        _no_extras(params, "")
        record = self._environment(
            new_id("env"),
            params.name,
            params.description,
            resolve_config(params.config),
            dict(params.metadata or {}),
            self._scope(params.scope),
            self._stamp(),
        )
        self.environments[record["id"]] = record
        return record

    def update_environment(self, environment_id: str, params: UpdateEnvironmentParams) -> dict[str, Any]:
        _no_extras(params, "")
        environment = self.environment(environment_id)
        if environment["archived_at"] is not None:
            raise ApiProblem(
                400,
                "invalid_request_error",
                f"environment {environment_id!r} is archived; archived environments cannot be updated",
                details={"error_code": "environment_archived"},
            )
        given = params.model_fields_set
        changes: dict[str, Any] = {}
        if "config" in given:
            changes["config"] = resolve_config(params.config, environment["config"])
        if "name" in given:
            changes["name"] = params.name
        if "description" in given:
            changes["description"] = params.description
        if "scope" in given and params.scope is not None:
            changes["scope"] = self._scope(params.scope)
        if "metadata" in given and params.metadata is not None:
            changes["metadata"] = _patched(environment["metadata"], params.metadata, empty_deletes=True)
        environment.update(changes, updated_at=self._stamp())
        return environment

    def list_environments(self, filters: EnvironmentListFilters) -> dict[str, Any]:
        items = [e for e in self.environments.values() if filters.include_archived or e["archived_at"] is None]
        return _page(items, filters.limit, filters.page)

    def archive_environment(self, environment_id: str) -> dict[str, Any]:
        return self._archive(self.environment(environment_id))

    def delete_environment(self, environment_id: str) -> dict[str, Any]:
        self.environment(environment_id)
        del self.environments[environment_id]
        self.deleted["environments"].append(environment_id)
        return {"id": environment_id, "type": "environment_deleted"}

    def _archive(self, record: dict[str, Any]) -> dict[str, Any]:
        if record["archived_at"] is None:
            stamp = self._stamp()
            record.update(archived_at=stamp, updated_at=stamp)
        return record

    # --- vaults ----------------------------------------------------------------------------

    @staticmethod
    def _vault(ident: str, display_name: str, metadata: dict[str, str], stamp: str) -> dict[str, Any]:
        return {
            "id": ident,
            "type": "vault",
            "display_name": display_name,
            "metadata": metadata,
            "created_at": stamp,
            "updated_at": stamp,
            "archived_at": None,
        }

    def vault(self, vault_id: str) -> dict[str, Any]:
        found = self.vaults.get(vault_id)
        if found is None:
            raise not_found("vault", vault_id)
        return found

    def create_vault(self, params: CreateVaultParams) -> dict[str, Any]:
        _no_extras(params, "")
        record = self._vault(new_id("vlt"), params.display_name, dict(params.metadata or {}), self._stamp())
        self.vaults[record["id"]] = record
        return record

    def update_vault(self, vault_id: str, params: UpdateVaultParams) -> dict[str, Any]:
        _no_extras(params, "")
        vault = self.vault(vault_id)
        if vault["archived_at"] is not None:
            raise bad_request(f"vault {vault_id!r} is archived; archived vaults cannot be updated")
        given = params.model_fields_set
        changes: dict[str, Any] = {}
        if "display_name" in given and params.display_name is not None:
            changes["display_name"] = params.display_name
        if "metadata" in given and params.metadata is not None:
            changes["metadata"] = _patched(vault["metadata"], params.metadata)
        vault.update(changes, updated_at=self._stamp())
        return vault

    def list_vaults(self, filters: VaultListFilters) -> dict[str, Any]:
        items = [v for v in self.vaults.values() if filters.include_archived or v["archived_at"] is None]
        return _page(items, filters.limit, filters.page)

    def archive_vault(self, vault_id: str) -> dict[str, Any]:
        return self._archive(self.vault(vault_id))

    def delete_vault(self, vault_id: str) -> dict[str, Any]:
        self.vault(vault_id)
        del self.vaults[vault_id]
        for credential_id in [c["id"] for c in self.credentials.values() if c["vault_id"] == vault_id]:
            del self.credentials[credential_id]
        self.deleted["vaults"].append(vault_id)
        return {"id": vault_id, "type": "vault_deleted"}

    # --- credentials -----------------------------------------------------------------------

    def credential(self, vault_id: str, credential_id: str) -> dict[str, Any]:
        self.vault(vault_id)
        found = self.credentials.get(credential_id)
        if found is None or found["vault_id"] != vault_id:
            raise not_found("credential", credential_id)
        return found

    def _future(self, moment: datetime | None, path: str) -> str | None:
        if moment is None:
            return None
        if moment <= self.now():
            raise bad_request(f"{path}: must be in the future")
        return format_timestamp(moment)

    def _auth(self, auth: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """The response's ``auth`` (no secret) and the SHA-256 of each secret."""
        if isinstance(auth, StaticBearerAuth):
            return {"type": auth.type, "mcp_server_url": auth.mcp_server_url}, {"token": _sha256(auth.token)}
        if isinstance(auth, EnvironmentVariableAuth):
            resolved: dict[str, Any] = {
                "type": auth.type,
                "secret_name": auth.secret_name,
                "injection_location": _injection(auth.injection_location),
                "networking": _egress(auth.networking),
            }
            return resolved, {"secret_value": _sha256(auth.secret_value)}
        if isinstance(auth, McpOAuthAuth):
            hashes = {"access_token": _sha256(auth.access_token)}
            refresh = None
            if auth.refresh is not None:
                endpoint_auth = auth.refresh.token_endpoint_auth
                if (endpoint_auth.type == "none") != (endpoint_auth.client_secret is None):
                    raise bad_request(
                        "auth.refresh.token_endpoint_auth: client_secret_basic and client_secret_post take a "
                        "client_secret, none takes none"
                    )
                hashes["refresh_token"] = _sha256(auth.refresh.refresh_token)
                if endpoint_auth.client_secret is not None:
                    hashes["client_secret"] = _sha256(endpoint_auth.client_secret)
                refresh = {
                    "client_id": auth.refresh.client_id,
                    "token_endpoint": auth.refresh.token_endpoint,
                    "token_endpoint_auth": {"type": endpoint_auth.type},
                    "resource": auth.refresh.resource,
                    "scope": auth.refresh.scope,
                }
            resolved = {
                "type": auth.type,
                "mcp_server_url": auth.mcp_server_url,
                "expires_at": self._future(auth.expires_at, "auth.expires_at"),
                "refresh": refresh,
            }
            return resolved, hashes
        raise bad_request("auth.type: unsupported")  # refused by the request model already

    def create_credential(self, vault_id: str, params: CreateCredentialParams) -> dict[str, Any]:
        _no_extras(params, "")
        vault = self.vault(vault_id)
        if vault["archived_at"] is not None:
            raise bad_request(f"vault {vault_id!r} is archived; no credential can be added to it")
        auth, hashes = self._auth(params.auth)
        stamp = self._stamp()
        record: dict[str, Any] = {
            "id": new_id("vcrd"),
            "type": "vault_credential",
            "vault_id": vault_id,
            "display_name": params.display_name,
            "auth": auth,
            "metadata": dict(params.metadata or {}),
            "created_at": stamp,
            "updated_at": stamp,
            "archived_at": None,
            "_secret_sha256": hashes,
        }
        self.credentials[record["id"]] = record
        return record

    def _update_auth(self, credential: dict[str, Any], update: Any) -> None:
        stored, hashes = credential["auth"], credential["_secret_sha256"]
        for key in update.model_extra or {}:
            fixed = key in ("mcp_server_url", "secret_name")
            raise bad_request(f"auth.{key}: " + ("cannot change" if fixed else "unknown field"))
        if update.type != stored["type"]:
            raise bad_request(f"auth.type: the credential is {stored['type']!r}; its type cannot change")
        _no_extras(update, "auth")
        given = update.model_fields_set
        if isinstance(update, StaticBearerUpdate):
            if update.token is not None:
                hashes["token"] = _sha256(update.token)
        elif isinstance(update, EnvironmentVariableUpdate):
            if update.secret_value is not None:
                hashes["secret_value"] = _sha256(update.secret_value)
            if update.networking is not None:
                stored["networking"] = _egress(update.networking)
            if update.injection_location is not None:
                stored["injection_location"] = _injection(update.injection_location, stored["injection_location"])
        elif isinstance(update, McpOAuthUpdate):
            if update.access_token is not None:
                hashes["access_token"] = _sha256(update.access_token)
            if "expires_at" in given:
                stored["expires_at"] = self._future(update.expires_at, "auth.expires_at")
            if update.refresh is not None:
                self._update_refresh(stored, hashes, update.refresh)

    @staticmethod
    def _update_refresh(stored: dict[str, Any], hashes: dict[str, str], update: Any) -> None:
        refresh = stored.get("refresh")
        if refresh is None:
            raise bad_request("auth.refresh: the credential has no refresh to update")
        if update.refresh_token is not None:
            hashes["refresh_token"] = _sha256(update.refresh_token)
        if "scope" in update.model_fields_set:
            refresh["scope"] = update.scope or None
        endpoint_auth = update.token_endpoint_auth
        if endpoint_auth is not None:
            if endpoint_auth.client_secret is not None:
                hashes["client_secret"] = _sha256(endpoint_auth.client_secret)
            elif "client_secret" not in hashes:
                raise bad_request(f"auth.refresh.token_endpoint_auth: {endpoint_auth.type} needs a client_secret")
            refresh["token_endpoint_auth"] = {"type": endpoint_auth.type}

    def update_credential(self, vault_id: str, credential_id: str, params: UpdateCredentialParams) -> dict[str, Any]:
        credential = self.credential(vault_id, credential_id)
        if credential["archived_at"] is not None:
            raise bad_request(f"credential {credential_id!r} is archived; archived credentials cannot be updated")
        given = params.model_fields_set
        updated = copy.deepcopy(credential)  # nothing changes unless all of it is valid
        if "auth" in given and params.auth is not None:
            self._update_auth(updated, params.auth)
        if "display_name" in given:
            updated["display_name"] = params.display_name
        if "metadata" in given and params.metadata is not None:
            updated["metadata"] = _patched(credential["metadata"], params.metadata)
        updated["updated_at"] = self._stamp()
        credential.update(updated)
        return credential

    def list_credentials(self, vault_id: str, filters: VaultListFilters) -> dict[str, Any]:
        self.vault(vault_id)
        items = [
            c
            for c in self.credentials.values()
            if c["vault_id"] == vault_id and (filters.include_archived or c["archived_at"] is None)
        ]
        return _page(items, filters.limit, filters.page)

    def archive_credential(self, vault_id: str, credential_id: str) -> dict[str, Any]:
        return self._archive(self.credential(vault_id, credential_id))

    def delete_credential(self, vault_id: str, credential_id: str) -> dict[str, Any]:
        self.credential(vault_id, credential_id)
        del self.credentials[credential_id]
        return {"id": credential_id, "type": "vault_credential_deleted"}

    # --- memory stores ---------------------------------------------------------------------

    @staticmethod
    def _store(ident: str, name: str, description: str, metadata: dict[str, str], stamp: str) -> dict[str, Any]:
        return {
            "id": ident,
            "type": "memory_store",
            "name": name,
            "description": description,
            "metadata": metadata,
            "created_at": stamp,
            "updated_at": stamp,
            "archived_at": None,
        }

    def memory_store(self, memory_store_id: str) -> dict[str, Any]:
        found = self.memory_stores.get(memory_store_id)
        if found is None:
            raise not_found("memory store", memory_store_id)
        return found

    def create_memory_store(self, params: CreateMemoryStoreParams) -> dict[str, Any]:
        _no_extras(params, "")
        record = self._store(
            new_id("memstore"), params.name, params.description or "", dict(params.metadata or {}), self._stamp()
        )
        self.memory_stores[record["id"]] = record
        return record

    def update_memory_store(self, memory_store_id: str, params: UpdateMemoryStoreParams) -> dict[str, Any]:
        _no_extras(params, "")
        store = self.memory_store(memory_store_id)
        if store["archived_at"] is not None:
            raise bad_request(f"memory store {memory_store_id!r} is archived; archived stores cannot be updated")
        given = params.model_fields_set
        changes: dict[str, Any] = {}
        if "name" in given and params.name is not None:
            changes["name"] = params.name
        if "description" in given:
            changes["description"] = params.description or ""
        if "metadata" in given and params.metadata is not None:
            changes["metadata"] = _patched(store["metadata"], params.metadata)
        store.update(changes, updated_at=self._stamp())
        return store

    def list_memory_stores(self, filters: MemoryStoreListFilters) -> dict[str, Any]:
        items = [
            s
            for s in self.memory_stores.values()
            if (filters.include_archived or s["archived_at"] is None) and _created_within(s, filters)
        ]
        return _page(items, filters.limit, filters.page)

    def archive_memory_store(self, memory_store_id: str) -> dict[str, Any]:
        return self._archive(self.memory_store(memory_store_id))

    def delete_memory_store(self, memory_store_id: str) -> dict[str, Any]:
        self.memory_store(memory_store_id)
        del self.memory_stores[memory_store_id]
        self.deleted["memory_stores"].append(memory_store_id)
        return {"id": memory_store_id, "type": "memory_store_deleted"}

    # --- inspection and persistence --------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """For ``GET /_emulator/state``: every record (agents with their versions, vaults with
        their credentials, also as one list, with the SHA-256 of each secret, never a secret)."""
        credentials = [{**public(c), "secret_sha256": dict(c["_secret_sha256"])} for c in self.credentials.values()]
        return {
            "agents": [{**public(v[-1]), "versions": [public(x) for x in v]} for v in self.agents.values()],
            "environments": [public(e) for e in self.environments.values()],
            "vaults": [
                {**public(vault), "credentials": [c for c in credentials if c["vault_id"] == vault["id"]]}
                for vault in self.vaults.values()
            ],
            "vault_credentials": credentials,
            "memory_stores": [public(s) for s in self.memory_stores.values()],
            "deleted": {kind: list(ids) for kind, ids in self.deleted.items()},
        }

    def dump(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "environments": self.environments,
            "vaults": self.vaults,
            "credentials": self.credentials,
            "memory_stores": self.memory_stores,
            "deleted": self.deleted,
        }

    def load(self, data: dict[str, Any]) -> None:
        self.agents = data.get("agents", {})
        self.environments = data.get("environments", {})
        self.vaults = data.get("vaults", {})
        self.credentials = data.get("credentials", {})
        self.memory_stores = data.get("memory_stores", {})
        self.deleted = {kind: list(data.get("deleted", {}).get(kind, [])) for kind in RECORD_KINDS}

    def describe(self) -> str:
        agents = ", ".join(f"{ident} (version {len(v)})" for ident, v in self.agents.items())
        return f"agents {agents}; environments {', '.join(self.environments)}"
