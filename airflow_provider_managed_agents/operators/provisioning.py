"""Operators that make an agent, an environment, a vault, a vault credential or a memory store
look as declared: provisioning DAGs are re-run, so each converges instead of creating.

One shape for all (``ManagedAgentsEnsure<Resource>Operator``), as Terraform or Ansible users
expect from a declaration: the task finds the resource it made before by the idempotency marker
in its metadata (``airflow_idempotency_key``; by default the DAG and task ids, the same for every
DAG run), creates it when there is none, updates it only when the declaration differs from what
it recorded (``airflow_config_sha256``, a fingerprint of the declared fields, kept in metadata,
and the fields the API returns as sent: names, prompt, description), and archives it when asked
(``archive=True``). A re-run with nothing changed sends no write at all (and so mints no agent
version); a changed declaration makes exactly one update (one agent version).

XCom: ``return_value`` = the id; the resource as the API returned it under its kind's key
(``agent``, ``environment``, ``vault``, ``vault_credential``, ``memory_store``; never a secret);
``action``: ``created``, ``updated``, ``unchanged`` or ``archived``; for an agent also
``agent_version`` and ``agent_pin`` (``{"type": "agent", "id", "version"}``, what a deployment
pins).

A credential's secrets come from Airflow by reference (``secrets={"token":
"connection:github_pat"}``: a connection's password or another of its fields, or a Variable),
through whatever secrets backend Airflow has: they are resolved when the task runs, masked in
every log, and never rendered, kept on the operator, pushed to XCom or put in an error message.
The API never returns them, so what the declaration recorded is a slow, salted hash of them
(PBKDF2) in the credential's metadata: a changed secret is sent again, an unchanged one is not.

On the DAG-parse path: imports only ``airflow.sdk`` and light modules at module level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from airflow_provider_managed_agents.operators.base import ManagedAgentsBaseOperator, load_structured

if TYPE_CHECKING:
    from airflow.sdk import Context
    from pydantic import BaseModel

    from airflow_provider_managed_agents.models.agents import Agent
    from airflow_provider_managed_agents.models.environments import Environment
    from airflow_provider_managed_agents.models.memory_stores import MemoryStore
    from airflow_provider_managed_agents.models.vaults import Vault, VaultCredential

ResourceT = TypeVar("ResourceT")

CONFIG_METADATA_KEY = "airflow_config_sha256"
DAG_ID_KEY = "airflow_dag_id"
TASK_ID_KEY = "airflow_task_id"
# PBKDF2 rounds for a secret's fingerprint: slow enough that reading a credential's metadata
# gives no practical way back to a weak secret.
SECRET_FINGERPRINT_ROUNDS = 200_000


class _EnsureOperator(ManagedAgentsBaseOperator, Generic[ResourceT]):
    """Converge one resource to its declaration (see the module docstring).

    :param idempotency_key: the resource's identity across DAG runs (default: DAG and task id,
        and map index).
    :param archive: archive the resource this task manages instead (a teardown of provisioning).
    :param managed_agents_conn_id: the ``managed_agents`` connection.
    """

    kind: ClassVar[str]
    # Fields of the declaration the API returns as sent: a difference there is drift to undo.
    compared: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, idempotency_key: str | None = None, archive: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.idempotency_key = idempotency_key
        self.archive = archive

    # --- what each resource says --------------------------------------------------------------

    def declared(self) -> BaseModel:
        """The create parameters the arguments declare, validated (no request yet)."""
        raise NotImplementedError

    def find(self, key: str) -> ResourceT | None:
        raise NotImplementedError

    def create(self, declared: Any, key: str) -> ResourceT:
        raise NotImplementedError

    def update(self, current: ResourceT, declared: Any, metadata: dict[str, str | None]) -> ResourceT:
        raise NotImplementedError

    def archive_it(self, current: ResourceT) -> ResourceT:
        raise NotImplementedError

    def fingerprint_extra(self, declared: Any, key: str) -> str:
        """What else identifies the declaration beyond its body (a credential's secrets)."""
        return ""

    # --- the convergence ----------------------------------------------------------------------

    def execute(self, context: Context) -> str:
        from airflow_provider_managed_agents.stores import identity_hash, task_identity

        key = self.idempotency_key or task_identity(context["ti"])
        if self.archive:
            return self._archived(context, self.find(key), key)
        declared = self.declared()  # refused before any request
        current = self.find(key)
        body = {k: v for k, v in declared.model_dump(mode="json", exclude_none=True).items() if k != "metadata"}
        fingerprint = identity_hash(_canonical(body) + self.fingerprint_extra(declared, key))
        wanted: dict[str, str] = {**(getattr(declared, "metadata", None) or {}), CONFIG_METADATA_KEY: fingerprint}
        if current is None:
            made = self.create(self._with_labels(declared, wanted), key)
            self.log.info("Created %s %s", self.kind, _id(made))
            return self._publish(context, made, "created")
        drift = self._differences(current, declared, wanted)
        if not drift:
            self.log.info("%s %s is as declared: nothing sent", self.kind.capitalize(), _id(current))
            return self._publish(context, current, "unchanged")
        self.log.info("Updating %s %s: %s differs from the declaration", self.kind, _id(current), ", ".join(drift))
        patch: dict[str, str | None] = dict(wanted)
        return self._publish(context, self.update(current, declared, patch), "updated")

    def _differences(self, current: Any, declared: Any, wanted: dict[str, str]) -> list[str]:
        changed = [f for f in self.compared if _plain(getattr(current, f, None)) != _plain(getattr(declared, f, None))]
        if current.metadata.get(CONFIG_METADATA_KEY) != wanted[CONFIG_METADATA_KEY]:
            changed.append("the declared configuration")
        stale = sorted(k for k, v in wanted.items() if k != CONFIG_METADATA_KEY and current.metadata.get(k) != v)
        changed += [f"metadata.{k}" for k in stale]
        return changed

    def _with_labels(self, declared: Any, wanted: dict[str, str]) -> Any:
        """The declaration's metadata, the fingerprint, then the DAG and task ids while the
        16-pair limit leaves room for the idempotency marker too."""
        from airflow_provider_managed_agents.models.params import METADATA_MAX_PAIRS

        metadata = dict(wanted)
        room = METADATA_MAX_PAIRS - len(metadata) - 1
        for label, value in ((DAG_ID_KEY, self.dag_id), (TASK_ID_KEY, self.task_id)):
            if label not in metadata and room > 0:
                metadata[label] = value
                room -= 1
        return declared.model_copy(update={"metadata": metadata})

    def _archived(self, context: Context, current: Any, key: str) -> str:
        from airflow_provider_managed_agents.compat import AirflowSkipException

        if current is None:
            raise AirflowSkipException(f"No live {self.kind} holds idempotency key {key!r}: nothing to archive")
        archived = self.archive_it(current)
        self.log.info("Archived %s %s", self.kind, _id(archived))
        return self._publish(context, archived, "archived")

    def _publish(self, context: Context, resource: Any, action: str) -> str:
        from airflow_provider_managed_agents.assets import announce

        context["ti"].xcom_push(key=self.kind, value=resource.model_dump(mode="json"))
        context["ti"].xcom_push(key="action", value=action)
        announce(context, self.outlets, **{f"{self.kind}_id": resource.id})
        return str(resource.id)


def _id(resource: Any) -> str:
    return str(resource.id)


def _plain(value: Any) -> Any:
    """A field's value as comparable data (models dumped, "" and None alike)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True)
    return None if value == "" else value


def _canonical(data: Any) -> str:
    import json

    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _validated(model: type[Any], fields: dict[str, Any], what: str) -> Any:
    from airflow_provider_managed_agents.models.params import validate_params

    return validate_params(model, {k: v for k, v in fields.items() if v is not None}, what)


# --- agents ----------------------------------------------------------------------------------


class ManagedAgentsEnsureAgentOperator(_EnsureOperator["Agent"]):
    """Make an agent look as declared; a change makes exactly one new version.

    :param name: the agent's name.
    :param model: a model id (``"claude-sonnet-4-6"``) or ``{"id", "effort", "speed"}``.
    :param system: the system prompt, or a ``.md`` / ``.txt`` file beside the DAG.
    :param description: free text.
    :param tools: the toolsets and custom tools, or a ``.json`` / ``.yaml`` file.
    :param mcp_servers: MCP servers by URL (each used by an ``mcp_toolset`` in ``tools``).
    :param skills: ``[{"type": "anthropic", "skill_id": "xlsx"}, ...]``.
    :param metadata: string pairs (the task adds its marker, fingerprint and labels).
    :param idempotency_key: see :class:`_EnsureOperator`; ``archive``: archive the agent.

    XCom: ``return_value`` = agent id, ``agent``, ``agent_version``, ``agent_pin``.
    """

    kind = "agent"
    compared = ("name", "system", "description")
    template_fields: Sequence[str] = (
        "agent_name",
        "model",
        "system",
        "description",
        "tools",
        "mcp_servers",
        "skills",
        "metadata",
        "idempotency_key",
        "managed_agents_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"tools": "json", "mcp_servers": "json", "skills": "json"}
    file_fields = ("tools", "mcp_servers", "skills")
    text_file_fields = ("system",)

    def __init__(
        self,
        *,
        name: str | None = None,
        model: str | dict[str, Any] | None = None,
        system: str | None = None,
        description: str | None = None,
        tools: list[dict[str, Any]] | str | None = None,
        mcp_servers: list[dict[str, Any]] | str | None = None,
        skills: list[dict[str, Any]] | str | None = None,
        metadata: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.agent_name = name  # BaseOperator has no ``name``, but its mapped form would
        self.model = model
        self.system = system
        self.description = description
        self.tools = tools
        self.mcp_servers = mcp_servers
        self.skills = skills
        self.metadata = metadata

    def declared(self) -> BaseModel:
        from airflow_provider_managed_agents.models.agents import CreateAgentParams

        fields = {
            "name": self.agent_name,
            "model": self.model,
            "system": self.system,
            "description": self.description,
            "metadata": self.metadata,
        }
        fields.update({f: load_structured(getattr(self, f), f) for f in self.file_fields})
        return _validated(CreateAgentParams, fields, "agent arguments")

    def find(self, key: str) -> Agent | None:
        return self.hook.find_agent(key)

    def create(self, declared: Any, key: str) -> Agent:
        return self.hook.create_agent(declared, idempotency_key=key)

    def update(self, current: Agent, declared: Any, metadata: dict[str, str | None]) -> Agent:
        changes = {f: getattr(declared, f) for f in ("name", "model", "system", "description", "tools")}
        changes.update(mcp_servers=declared.mcp_servers, skills=declared.skills)
        changes = {k: (v.model_dump(mode="json") if hasattr(v, "model_dump") else v) for k, v in changes.items()}
        for listed in ("tools", "mcp_servers", "skills"):
            if changes[listed] is not None:
                changes[listed] = [
                    item.model_dump(mode="json", exclude_none=True) for item in getattr(declared, listed)
                ]
        return self.hook.update_agent(current.id, {**changes, "metadata": metadata, "version": current.version})

    def archive_it(self, current: Agent) -> Agent:
        return self.hook.archive_agent(current.id)

    def _differences(self, current: Any, declared: Any, wanted: dict[str, str]) -> list[str]:
        drift = super()._differences(current, declared, wanted)
        model_id = declared.model if isinstance(declared.model, str) else declared.model.id
        if current.model.id != model_id:
            drift.insert(0, "model")
        return drift

    def _publish(self, context: Context, resource: Any, action: str) -> str:
        ti = context["ti"]
        ti.xcom_push(key="agent_version", value=resource.version)
        ti.xcom_push(key="agent_pin", value=resource.pin())
        return super()._publish(context, resource, action)


# --- environments ------------------------------------------------------------------------------


class ManagedAgentsEnsureEnvironmentOperator(_EnsureOperator["Environment"]):
    """Make an environment look as declared.

    :param name: the environment's name.
    :param config: ``{"type": "cloud", "networking": ..., "packages": {"pip": [...]}}`` or
        ``{"type": "self_hosted"}`` (or a ``.json`` / ``.yaml`` file); a config's type cannot
        change once made.
    :param description: free text.
    :param metadata: string pairs.
    :param idempotency_key: see :class:`_EnsureOperator`; ``archive``: archive the environment.

    XCom: ``return_value`` = environment id, ``environment``.
    """

    kind = "environment"
    compared = ("name", "description")
    template_fields: Sequence[str] = (
        "environment_name",
        "config",
        "description",
        "metadata",
        "idempotency_key",
        "managed_agents_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"config": "json"}
    file_fields = ("config",)

    def __init__(
        self,
        *,
        name: str | None = None,
        config: dict[str, Any] | str | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.environment_name = name
        self.config = config
        self.description = description
        self.metadata = metadata

    def declared(self) -> BaseModel:
        from airflow_provider_managed_agents.models.environments import CreateEnvironmentParams

        fields = {
            "name": self.environment_name,
            "config": load_structured(self.config, "config"),
            "description": self.description,
            "metadata": self.metadata,
        }
        return _validated(CreateEnvironmentParams, fields, "environment arguments")

    def find(self, key: str) -> Environment | None:
        return self.hook.find_environment(key)

    def create(self, declared: Any, key: str) -> Environment:
        return self.hook.create_environment(declared, idempotency_key=key)

    def update(self, current: Environment, declared: Any, metadata: dict[str, str | None]) -> Environment:
        changes: dict[str, Any] = {"name": declared.name, "description": declared.description, "metadata": metadata}
        if declared.config is not None:
            changes["config"] = declared.config.model_dump(mode="json", exclude_none=True)
        return self.hook.update_environment(current.id, changes)

    def archive_it(self, current: Environment) -> Environment:
        return self.hook.archive_environment(current.id)


# --- vaults and credentials -----------------------------------------------------------------------


class ManagedAgentsEnsureVaultOperator(_EnsureOperator["Vault"]):
    """Make a vault look as declared (its credentials: :class:`ManagedAgentsEnsureVaultCredentialOperator`).

    :param display_name: the vault's name.
    :param metadata: string pairs.
    :param idempotency_key: see :class:`_EnsureOperator`; ``archive``: archive the vault.

    XCom: ``return_value`` = vault id, ``vault``.
    """

    kind = "vault"
    compared = ("display_name",)
    template_fields: Sequence[str] = ("display_name", "metadata", "idempotency_key", "managed_agents_conn_id")

    def __init__(self, *, display_name: str | None = None, metadata: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.display_name = display_name
        self.metadata = metadata

    def declared(self) -> BaseModel:
        from airflow_provider_managed_agents.models.vaults import CreateVaultParams

        fields = {"display_name": self.display_name, "metadata": self.metadata}
        return _validated(CreateVaultParams, fields, "vault arguments")

    def find(self, key: str) -> Vault | None:
        return self.hook.find_vault(key)

    def create(self, declared: Any, key: str) -> Vault:
        return self.hook.create_vault(declared, idempotency_key=key)

    def update(self, current: Vault, declared: Any, metadata: dict[str, str | None]) -> Vault:
        return self.hook.update_vault(current.id, display_name=declared.display_name, metadata=metadata)

    def archive_it(self, current: Vault) -> Vault:
        return self.hook.archive_vault(current.id)


class ManagedAgentsEnsureVaultCredentialOperator(_EnsureOperator["VaultCredential"]):
    """Make a credential of a vault look as declared, its secrets taken from Airflow.

    :param vault_id: the vault (e.g. an ensure-vault task's ``output``).
    :param auth: the credential without its secrets: ``{"type": "static_bearer",
        "mcp_server_url": ...}``, ``{"type": "environment_variable", "secret_name": ...,
        "networking": ...}`` or ``{"type": "mcp_oauth", "mcp_server_url": ..., "refresh": {...}}``.
    :param secrets: where each secret field comes from, by reference (never the secret itself):
        ``{"token": "connection:github_pat"}`` (a connection's password),
        ``"connection:<conn_id>/<field>"`` (``login``, ``host``, or a key of its extra),
        ``"variable:<key>"``. Fields: ``token`` (static_bearer), ``secret_value``
        (environment_variable), ``access_token``, ``refresh.refresh_token``,
        ``refresh.token_endpoint_auth.client_secret`` (mcp_oauth).
    :param display_name: the credential's name.
    :param metadata: string pairs.
    :param idempotency_key: see :class:`_EnsureOperator`; ``archive``: archive the credential.

    A credential's type, server URL and variable name cannot change: archive it (``archive=True``)
    and ensure a new one under another idempotency key. XCom: ``return_value`` = credential id,
    ``vault_credential`` (without secrets).
    """

    kind = "vault_credential"
    compared = ("display_name",)
    template_fields: Sequence[str] = (
        "vault_id",
        "auth",
        "secrets",
        "display_name",
        "metadata",
        "idempotency_key",
        "managed_agents_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"auth": "json"}

    def __init__(
        self,
        *,
        vault_id: str,
        auth: dict[str, Any],
        secrets: dict[str, str],
        display_name: str | None = None,
        metadata: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vault_id = vault_id
        self.auth = auth
        self.secrets = secrets
        self.display_name = display_name
        self.metadata = metadata

    def declared(self) -> BaseModel:
        from airflow_provider_managed_agents.models.vaults import CreateCredentialParams

        auth = _with_secrets(self.auth, self.secrets)
        fields = {"auth": auth, "display_name": self.display_name, "metadata": self.metadata}
        return _validated(CreateCredentialParams, fields, "vault credential arguments")

    def fingerprint_extra(self, declared: Any, key: str) -> str:
        return secret_fingerprint(declared.auth, key)

    def find(self, key: str) -> VaultCredential | None:
        return self.hook.find_credential(self._vault(), key)

    def create(self, declared: Any, key: str) -> VaultCredential:
        return self.hook.create_credential(self._vault(), declared, idempotency_key=key)

    def update(self, current: VaultCredential, declared: Any, metadata: dict[str, str | None]) -> VaultCredential:
        from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

        auth = declared.auth.model_dump(mode="json", exclude_none=True, context=_REVEAL)
        fixed = [
            f
            for f in ("type", "mcp_server_url", "secret_name")
            if f in auth and current.auth.get(f) not in (None, auth[f])
        ]
        if fixed:
            raise ManagedAgentsValidationError(
                "vault credential arguments",
                [
                    (f"auth.{f}", "cannot change on an existing credential; archive it and ensure a new one")
                    for f in fixed
                ],
            )
        for immutable in ("mcp_server_url", "secret_name"):
            auth.pop(immutable, None)
        if isinstance(auth.get("refresh"), dict):
            auth["refresh"] = {
                k: v for k, v in auth["refresh"].items() if k in ("refresh_token", "scope", "token_endpoint_auth")
            }
        return self.hook.update_credential(
            self._vault(), current.id, auth=auth, display_name=declared.display_name, metadata=metadata
        )

    def archive_it(self, current: VaultCredential) -> VaultCredential:
        return self.hook.archive_credential(self._vault(), current.id)

    def _vault(self) -> str:
        from airflow_provider_managed_agents.models.params import checked_id

        return checked_id(self.vault_id, "vault_id")


_REVEAL = {"reveal_secrets": True}


def _with_secrets(auth: Any, references: Any) -> dict[str, Any]:
    """``auth`` with each secret field filled from its reference (masked from then on)."""
    from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

    if not isinstance(auth, dict):
        raise ManagedAgentsValidationError("vault credential arguments", [("auth", "must be a mapping")])
    if not isinstance(references, dict) or not references:
        raise ManagedAgentsValidationError(
            "vault credential arguments",
            [("secrets", "name where each secret comes from, e.g. {'token': 'connection:id'}")],
        )
    filled: dict[str, Any] = _deep_copy(auth)
    problems = []
    for path, reference in references.items():
        parts = str(path).split(".")
        target: Any = filled
        for part in parts[:-1]:
            target = target.setdefault(part, {}) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            problems.append((f"secrets.{path}", "not a field of auth"))
            continue
        if parts[-1] in target:
            problems.append((f"auth.{path}", "give secrets through `secrets`, never in auth itself"))
            continue
        target[parts[-1]] = resolve_secret(reference, f"secrets.{path}")
    if problems:
        raise ManagedAgentsValidationError("vault credential arguments", problems)
    return filled


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def resolve_secret(reference: Any, field: str) -> str:
    """The secret a reference names, from Airflow (its secrets backends included), masked in
    every log before it is returned. ``connection:<id>`` (the password),
    ``connection:<id>/<field or extra key>``, ``variable:<key>``. Errors name the reference,
    never a value."""
    from airflow_provider_managed_agents.compat import BaseHook, get_connection, mask_secret
    from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

    kind, _, name = str(reference).partition(":")
    value: Any = None
    if kind == "connection" and name:
        conn_id, _, part = name.partition("/")
        conn = get_connection(BaseHook(), conn_id)
        if not part or part == "password":
            value = conn.password
        elif part in ("login", "host", "schema"):
            value = getattr(conn, part)
        else:
            value = (conn.extra_dejson or {}).get(part)
    elif kind == "variable" and name:
        from airflow.sdk import Variable

        value = Variable.get(name, default=None)
    else:
        raise ManagedAgentsValidationError(
            "vault credential arguments",
            [(field, f"{reference!r} is not 'connection:<id>[/<field>]' or 'variable:<key>'")],
        )
    if not isinstance(value, str) or not value:
        raise ManagedAgentsValidationError("vault credential arguments", [(field, f"{reference!r} holds no secret")])
    mask_secret(value)
    return value


def secret_fingerprint(auth: Any, salt: str) -> str:
    """A slow, salted hash of every secret of ``auth`` (PBKDF2-HMAC-SHA256): tells a changed
    secret from an unchanged one, and little else to whoever reads the credential's metadata."""
    import hashlib

    from pydantic import SecretStr

    secrets: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, SecretStr):
            secrets.append(value.get_secret_value())
        elif hasattr(value, "__dict__") and hasattr(type(value), "model_fields"):
            for name in type(value).model_fields:
                collect(getattr(value, name))

    collect(auth)
    if not secrets:
        return ""
    derived = hashlib.pbkdf2_hmac(
        "sha256", "\0".join(secrets).encode(), f"managed-agents:{salt}".encode(), SECRET_FINGERPRINT_ROUNDS
    )
    return derived.hex()


# --- memory stores ---------------------------------------------------------------------------------


class ManagedAgentsEnsureMemoryStoreOperator(_EnsureOperator["MemoryStore"]):
    """Make a memory store look as declared.

    :param name: the store's name (its mount is ``/mnt/memory/<name, slugged>``).
    :param description: what it holds (up to 1,024 characters).
    :param metadata: string pairs.
    :param idempotency_key: see :class:`_EnsureOperator`; ``archive``: archive the store (final).

    XCom: ``return_value`` = memory store id, ``memory_store``.
    """

    kind = "memory_store"
    compared = ("name", "description")
    template_fields: Sequence[str] = (
        "store_name",
        "description",
        "metadata",
        "idempotency_key",
        "managed_agents_conn_id",
    )

    def __init__(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.store_name = name
        self.description = description
        self.metadata = metadata

    def declared(self) -> BaseModel:
        from airflow_provider_managed_agents.models.memory_stores import CreateMemoryStoreParams

        fields = {"name": self.store_name, "description": self.description, "metadata": self.metadata}
        return _validated(CreateMemoryStoreParams, fields, "memory store arguments")

    def find(self, key: str) -> MemoryStore | None:
        return self.hook.find_memory_store(key)

    def create(self, declared: Any, key: str) -> MemoryStore:
        return self.hook.create_memory_store(declared, idempotency_key=key)

    def update(self, current: MemoryStore, declared: Any, metadata: dict[str, str | None]) -> MemoryStore:
        return self.hook.update_memory_store(
            current.id, name=declared.name, description=declared.description or "", metadata=metadata
        )

    def archive_it(self, current: MemoryStore) -> MemoryStore:
        return self.hook.archive_memory_store(current.id)
