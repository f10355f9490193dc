"""The emulator's state and the service's rules: deployments, runs, schedules and the world they
depend on (agents, environments, vaults and memory stores: records of the provisioning API, in
:mod:`~airflow_provider_managed_agents.emulator.provisioning`; files and skills, ids only; the
organization).

Everything here runs on the server's event loop (HTTP handlers and the scheduler alike), so no
locking is needed. Request bodies are validated with the package's own parameter models.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from airflow_provider_managed_agents.emulator import actions
from airflow_provider_managed_agents.emulator.problems import bad_request, conflict, not_found
from airflow_provider_managed_agents.emulator.provisioning import (
    DEFAULT_AGENT,
    DEFAULT_ENVIRONMENT,
    PREFIXES,
    RECORD_KINDS,
    Provisioning,
    new_id,
)
from airflow_provider_managed_agents.emulator.sessions import Listing, Sessions, SessionScript, time_key
from airflow_provider_managed_agents.models.base import format_timestamp, parse_timestamp
from airflow_provider_managed_agents.models.cron import fire_times_after
from airflow_provider_managed_agents.models.enums import RunErrorType
from airflow_provider_managed_agents.models.params import (
    CreateDeploymentParams,
    DeploymentListFilters,
    DeploymentRunListFilters,
    UpdateDeploymentParams,
    apply_metadata_patch,
)
from airflow_provider_managed_agents.models.runs import NON_PAUSING_RUN_ERRORS

WORLD_KINDS = ("agents", "environments", "vaults", "files", "memory_stores", "skills")
THING_KINDS = ("files", "skills")  # the others are records of the provisioning API
UPCOMING_COUNT = 5
__all__ = ["DEFAULT_AGENT", "DEFAULT_ENVIRONMENT", "RECORD_KINDS", "THING_KINDS", "WORLD_KINDS", "World", "new_id"]


@lru_cache(maxsize=8192)
def _upcoming(expression: str, timezone: str, minute: datetime) -> tuple[str, ...]:
    return tuple(format_timestamp(t) for t in fire_times_after(expression, timezone, minute, UPCOMING_COUNT))


@dataclass
class Thing:
    """A file or skill a deployment refers to: an id, archived or deleted by the controls."""

    id: str
    archived: bool = False
    deleted: bool = False

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "archived": self.archived, "deleted": self.deleted}


@dataclass
class Clock:
    """Real time plus an adjustable offset, so tests can jump to the next fire; frozen, it
    stands still between jumps, so a test decides every moment the scheduler sees."""

    offset: timedelta = timedelta(0)
    frozen_at: datetime | None = None

    def now(self) -> datetime:
        if self.frozen_at is not None:
            return self.frozen_at + self.offset
        return datetime.now(UTC) + self.offset

    def freeze(self, frozen: bool) -> None:
        if frozen and self.frozen_at is None:
            self.frozen_at = datetime.now(UTC)
        elif not frozen and self.frozen_at is not None:
            # Carry on from the frozen moment: time never runs backwards for the world.
            self.offset += self.frozen_at - datetime.now(UTC)
            self.frozen_at = None


class World:
    """All of the emulator's state and the rules that change it."""

    def __init__(self, *, max_jitter: float = 10.0, state_file: Path | None = None):
        self.max_jitter = max_jitter
        self.state_file = state_file
        self.clock = Clock()
        # Told of each webhook event type and object id as it happens (the emulator's webhooks).
        self.notify: Callable[[str, str], object] = lambda event_type, object_id: None
        self.reset()
        if state_file is not None and state_file.exists():
            self._load()

    # --- lifecycle -----------------------------------------------------------------------

    def reset(self) -> None:
        self.clock = Clock()
        self.things: dict[str, dict[str, Thing]] = {kind: {} for kind in THING_KINDS}
        self.records = Provisioning(lambda: self.clock.now())
        self.records.seed()
        self.organization_disabled = False
        self.workspace_archived = False
        self.sessions_per_minute: int | None = None
        self.deployments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.runs_by_deployment: dict[str, list[str]] = defaultdict(list)
        self.forced_errors: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.next_fire: dict[str, datetime | None] = {}
        # When a schedule was (re)armed: creation, unpause or a new schedule. The next fire is
        # the first occurrence after it, even if the scheduler's next tick comes later.
        self.armed_at: dict[str, datetime] = {}
        # Jitter set by the controls for one deployment, in seconds (else drawn from its id).
        self.jitters: dict[str, float] = {}
        self.session_times: list[datetime] = []
        self.sessions = Sessions(notify=lambda event_type, object_id: self.notify(event_type, object_id))

    def describe(self) -> str:
        return f"default world: {self.records.describe()}"

    # --- persistence (optional) ---------------------------------------------------------

    def save(self) -> None:
        if self.state_file is None:
            return
        snapshot = {
            "things": {k: {i: t.__dict__ for i, t in v.items()} for k, v in self.things.items()},
            "records": self.records.dump(),
            "deployments": self.deployments,
            "runs": self.runs,
            "sessions": self.sessions.by_id,
            "organization_disabled": self.organization_disabled,
            "workspace_archived": self.workspace_archived,
            "sessions_per_minute": self.sessions_per_minute,
            "jitters": self.jitters,
        }
        with sqlite3.connect(self.state_file) as db:
            db.execute("create table if not exists state (key text primary key, value text)")
            db.execute("insert or replace into state values ('world', ?)", (json.dumps(snapshot),))

    def _load(self) -> None:
        assert self.state_file is not None
        with sqlite3.connect(self.state_file) as db:
            db.execute("create table if not exists state (key text primary key, value text)")
            row = db.execute("select value from state where key = 'world'").fetchone()
        if row is None:
            return
        snapshot = json.loads(row[0])
        self.things = {kind: {} for kind in THING_KINDS}
        if "records" in snapshot:
            self.records.load(snapshot["records"])
        for kind, things in snapshot["things"].items():
            for ident, thing in things.items():
                if kind in THING_KINDS:
                    self.things[kind][ident] = Thing(thing["id"], thing["archived"], thing["deleted"])
                elif "records" not in snapshot:  # a state file from before the records: ids only
                    self._load_thing_as_record(kind, thing)
        self.deployments = snapshot["deployments"]
        self.runs = snapshot["runs"]
        self.sessions.by_id = snapshot.get("sessions", {})
        for run in sorted(self.runs.values(), key=lambda r: r["created_at"]):
            self.runs_by_deployment[run["deployment_id"]].append(run["id"])
        self.organization_disabled = snapshot["organization_disabled"]
        self.workspace_archived = snapshot["workspace_archived"]
        self.sessions_per_minute = snapshot["sessions_per_minute"]
        self.jitters = snapshot.get("jitters", {})

    def _load_thing_as_record(self, kind: str, thing: dict[str, Any]) -> None:
        if thing["deleted"]:
            self.records.deleted[kind].append(thing["id"])
            self.records.agents.pop(thing["id"], None)
            getattr(self.records, kind, {}).pop(thing["id"], None)
            return
        self.records.add(kind, thing["id"], thing.get("skills", ()))
        for _ in range(thing.get("version", 1) - 1):
            self.records.mint_version(thing["id"])
        if thing["archived"]:
            self.records.archive(kind, thing["id"])

    # --- the world: the controls' view ---------------------------------------------------

    def add(self, kind: str, ident: str | None = None, skills: Iterable[str] = ()) -> dict[str, Any]:
        """Add an object (the controls): a record of the API's kinds, else an id."""
        if kind in RECORD_KINDS:
            return self.records.add(kind, ident, skills)
        thing = Thing(ident or new_id(PREFIXES[kind]))
        self.things[kind][thing.id] = thing
        return thing.public()

    def _thing(self, kind: str, ident: str) -> Thing:
        found = self.things[kind].get(ident)
        if found is None or found.deleted:
            raise not_found(kind.removesuffix("s"), ident)
        return found

    def archive_object(self, kind: str, ident: str) -> dict[str, Any]:
        if kind in RECORD_KINDS:
            return self.records.archive(kind, ident)
        thing = self._thing(kind, ident)
        thing.archived = True
        return thing.public()

    def delete_object(self, kind: str, ident: str) -> dict[str, Any]:
        if kind in RECORD_KINDS:
            return self.records.delete(kind, ident)
        thing = self._thing(kind, ident)
        thing.deleted = True
        return thing.public()

    # --- deployments ---------------------------------------------------------------------

    def _resolve_agent(self, agent: Any) -> dict[str, Any]:
        agent_id = agent if isinstance(agent, str) else agent.id
        found = self.records.agents.get(agent_id)
        if found is None:
            raise not_found("agent", agent_id)
        latest = found[-1]["version"]
        if found[-1]["archived_at"] is not None:
            raise bad_request(f"agent: agent {agent_id!r} is archived")
        version = latest if isinstance(agent, str) or agent.version is None else agent.version
        if version > latest:
            raise bad_request(f"agent.version: agent {agent_id!r} has no version {version} (latest {latest})")
        return {"type": "agent", "id": agent_id, "version": version}

    def _check_environment(self, environment_id: str) -> None:
        found = self.records.environments.get(environment_id)
        if found is None:
            raise not_found("environment", environment_id)
        if found["archived_at"] is not None:
            raise bad_request(f"environment_id: environment {environment_id!r} is archived")

    @staticmethod
    def _dump(values: Any) -> Any:
        dumped = [v.model_dump(mode="json", exclude_none=True) for v in values]
        for item in dumped:
            item.pop("authorization_token", None)  # write-only: never stored, never returned
        return dumped

    def create_deployment(self, params: CreateDeploymentParams) -> dict[str, Any]:
        agent = self._resolve_agent(params.agent)
        self._check_environment(params.environment_id)
        now = format_timestamp(self.clock.now())
        deployment = {
            "id": new_id("depl"),
            "type": "deployment",
            "name": params.name,
            "description": params.description or None,
            "agent": agent,
            "environment_id": params.environment_id,
            "initial_events": self._dump(params.initial_events),
            "metadata": dict(params.metadata or {}),
            "resources": self._dump(params.resources or []),
            "vault_ids": list(params.vault_ids or []),
            "schedule": self._schedule(params.schedule),
            "status": "active",
            "paused_reason": None,
            "archived_at": None,
            "created_at": now,
            "updated_at": now,
        }
        if params.budget is not None:
            deployment["budget"] = params.budget.model_dump(mode="json")
        self.deployments[deployment["id"]] = deployment
        self.armed_at[deployment["id"]] = self.clock.now()
        self.notify("deployment.created", deployment["id"])
        return deployment

    @staticmethod
    def _schedule(spec: Any) -> dict[str, Any] | None:
        if spec is None:
            return None
        return {"type": "cron", "expression": spec.expression, "timezone": spec.timezone, "last_run_at": None}

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        found = self.deployments.get(deployment_id)
        if found is None:
            raise not_found("deployment", deployment_id)
        return found

    def _modifiable(self, deployment_id: str) -> dict[str, Any]:
        deployment = self.deployment(deployment_id)
        if deployment["archived_at"] is not None:
            raise bad_request(f"deployment {deployment_id!r} is archived; archived deployments cannot be modified")
        return deployment

    def update_deployment(self, deployment_id: str, params: UpdateDeploymentParams) -> dict[str, Any]:
        deployment = self._modifiable(deployment_id)
        changes: dict[str, Any] = {}
        given = params.model_fields_set
        if "agent" in given:
            changes["agent"] = self._resolve_agent(params.agent)
        if "environment_id" in given:
            assert params.environment_id is not None
            self._check_environment(params.environment_id)
            changes["environment_id"] = params.environment_id
        if "initial_events" in given:
            changes["initial_events"] = self._dump(params.initial_events or [])
        if "name" in given:
            changes["name"] = params.name
        if "description" in given:
            changes["description"] = params.description or None
        if "metadata" in given and params.metadata is not None:
            try:
                changes["metadata"] = apply_metadata_patch(deployment["metadata"], params.metadata)
            except ValueError as exc:
                raise bad_request(f"metadata: {exc}") from None
        if "resources" in given:
            changes["resources"] = self._dump(params.resources or [])
        if "vault_ids" in given:
            changes["vault_ids"] = list(params.vault_ids or [])
        if "schedule" in given:
            changes["schedule"] = self._schedule(params.schedule)
            self.next_fire.pop(deployment_id, None)
            self.armed_at[deployment_id] = self.clock.now()
        if "budget" in given:
            if params.budget is None:
                deployment.pop("budget", None)
            else:
                changes["budget"] = params.budget.model_dump(mode="json")
        deployment.update(changes)
        deployment["updated_at"] = format_timestamp(self.clock.now())
        self.notify("deployment.updated", deployment_id)
        return deployment

    def pause(self, deployment_id: str) -> dict[str, Any]:
        deployment = self._modifiable(deployment_id)
        if deployment["status"] != "paused":
            deployment.update(
                status="paused", paused_reason={"type": "manual"}, updated_at=format_timestamp(self.clock.now())
            )
            self.notify("deployment.paused", deployment_id)
        return deployment

    def unpause(self, deployment_id: str) -> dict[str, Any]:
        deployment = self._modifiable(deployment_id)
        if deployment["status"] == "paused":
            deployment.update(status="active", paused_reason=None, updated_at=format_timestamp(self.clock.now()))
            self.next_fire.pop(deployment_id, None)  # resume from the next occurrence: no backfill
            self.armed_at[deployment_id] = self.clock.now()
            self.notify("deployment.unpaused", deployment_id)
        return deployment

    def archive(self, deployment_id: str) -> dict[str, Any]:
        deployment = self.deployment(deployment_id)
        if deployment["archived_at"] is None:
            now = format_timestamp(self.clock.now())
            # The status enum has no "archived": an archived deployment reports active, unpaused.
            deployment.update(archived_at=now, updated_at=now, status="active", paused_reason=None)
            self.next_fire.pop(deployment_id, None)
            self.notify("deployment.archived", deployment_id)
        return deployment

    def render_deployment(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """The deployment as the API returns it, with its schedule's upcoming fires."""
        schedule = deployment["schedule"]
        if schedule is None:
            return deployment
        if deployment["archived_at"] is not None:
            upcoming: tuple[str, ...] = ()
        else:
            minute = self.clock.now().replace(second=0, microsecond=0)
            upcoming = tuple(
                t
                for t in _upcoming(schedule["expression"], schedule["timezone"], minute)
                if parse_timestamp(t) > self.clock.now()
            )
            if len(upcoming) < UPCOMING_COUNT:
                upcoming = _upcoming(schedule["expression"], schedule["timezone"], self.clock.now())
        return {**deployment, "schedule": {**schedule, "upcoming_runs_at": list(upcoming)}}

    # --- listing -------------------------------------------------------------------------

    @staticmethod
    def _page(items: list[dict[str, Any]], limit: int, page: str | None) -> dict[str, Any]:
        """Newest first, ties broken by id; the cursor is the last item's sort key."""
        try:
            return Listing(items, lambda i: (time_key(i["created_at"]), i["id"]), "desc", limit, page).cut()
        except ValueError as exc:
            raise bad_request(str(exc)) from None

    def list_deployments(self, filters: DeploymentListFilters) -> dict[str, Any]:
        def keep(d: dict[str, Any]) -> bool:
            if d["archived_at"] is not None and not filters.include_archived:
                return False
            if filters.status is not None and (d["status"] != filters.status or d["archived_at"] is not None):
                return False
            if filters.agent_id is not None and d["agent"]["id"] != filters.agent_id:
                return False
            created = parse_timestamp(d["created_at"])
            if filters.created_at_gte is not None and created < filters.created_at_gte:
                return False
            return not (filters.created_at_lte is not None and created > filters.created_at_lte)

        page = self._page([d for d in self.deployments.values() if keep(d)], filters.limit or 20, filters.page)
        page["data"] = [self.render_deployment(d) for d in page["data"]]
        return page

    def list_runs(self, filters: DeploymentRunListFilters) -> dict[str, Any]:
        if filters.deployment_id is not None:
            candidates = [self.runs[i] for i in self.runs_by_deployment.get(filters.deployment_id, [])]
        else:
            candidates = list(self.runs.values())

        def keep(r: dict[str, Any]) -> bool:
            if filters.has_error is not None and (r["error"] is not None) != filters.has_error:
                return False
            if filters.trigger_type is not None and r["trigger_context"]["type"] != filters.trigger_type:
                return False
            return _within(r["created_at"], filters)

        return self._page([r for r in candidates if keep(r)], filters.limit or 20, filters.page)

    def run(self, run_id: str) -> dict[str, Any]:
        found = self.runs.get(run_id)
        if found is None:
            raise not_found("deployment run", run_id)
        return found

    # --- runs ----------------------------------------------------------------------------

    def _run_error(self, deployment: dict[str, Any]) -> tuple[str, str] | None:
        """Why a session cannot be created now, as (run error type, message), or None."""
        forced = self.forced_errors.get(deployment["id"])
        if forced:
            error = forced.pop(0)
            return error["type"], error.get("message") or f"forced {error['type']}"
        if self.organization_disabled:
            return RunErrorType.ORGANIZATION_DISABLED, "the organization is disabled"
        if self.workspace_archived:
            return RunErrorType.WORKSPACE_ARCHIVED, "the workspace is archived"
        env_id = deployment["environment_id"]
        environment = self.records.status("environments", env_id)
        if environment in ("unknown", "deleted"):  # an environment must exist: never taken to
            return RunErrorType.ENVIRONMENT_NOT_FOUND, f"environment `{env_id}` not found"
        if environment == "archived":
            return RunErrorType.ENVIRONMENT_ARCHIVED, f"environment `{env_id}` is archived"
        # A vault, file or memory store the world was never told about is taken to exist.
        for vault_id in deployment["vault_ids"]:
            vault = self.records.status("vaults", vault_id)
            if vault == "deleted":
                return RunErrorType.VAULT_NOT_FOUND, f"vault `{vault_id}` no longer exists"
            if vault == "archived":
                return RunErrorType.VAULT_ARCHIVED, f"vault `{vault_id}` is archived"
        for resource in deployment["resources"]:
            if resource["type"] == "file":
                file = self.things["files"].get(resource["file_id"])
                if file is not None and (file.deleted or file.archived):
                    return RunErrorType.FILE_NOT_FOUND, f"file `{resource['file_id']}` no longer exists"
            if resource["type"] == "memory_store":
                store_id = resource["memory_store_id"]
                store = self.records.status("memory_stores", store_id)
                if store == "deleted":
                    return RunErrorType.SESSION_RESOURCE_NOT_FOUND, "a referenced resource no longer exists"
                if store == "archived":
                    return RunErrorType.MEMORY_STORE_ARCHIVED, f"memory store `{store_id}` is archived"
        # Anthropic skills always exist; a custom one must be known to the world (controls).
        pinned = self.records.session_agent(deployment["agent"]["id"], deployment["agent"]["version"]) or {}
        for skill in pinned.get("skills", []):
            skill_id = skill["skill_id"]
            known = self.things["skills"].get(skill_id)
            if skill["type"] == "custom" and (known is None or known.deleted):
                return RunErrorType.SKILL_NOT_FOUND, f"skill `{skill_id}` not found"
        if self.sessions_per_minute is not None:
            window = self.clock.now() - timedelta(minutes=1)
            self.session_times = [t for t in self.session_times if t > window]
            if len(self.session_times) >= self.sessions_per_minute:
                return RunErrorType.SESSION_RATE_LIMITED, "session creation is rate limited"
        return None

    def agent_gone(self, deployment: dict[str, Any]) -> bool:
        return self.records.status("agents", deployment["agent"]["id"]) != "live"

    def attempt(self, deployment: dict[str, Any], trigger_context: dict[str, Any]) -> dict[str, Any] | None:
        """One attempt to start a deployment: the run it records, or None when the agent is gone
        (the deployment is archived in the same operation and no run is recorded)."""
        now = self.clock.now()
        if self.agent_gone(deployment):
            self.archive(deployment["id"])
            return None
        failure = self._run_error(deployment)
        run = {
            "id": new_id("drun"),
            "type": "deployment_run",
            "deployment_id": deployment["id"],
            "agent": dict(deployment["agent"]),
            "created_at": format_timestamp(now),
            "session_id": None,
            "error": None,
            "trigger_context": trigger_context,
        }
        if failure is None:
            agent = self.records.session_agent(deployment["agent"]["id"], deployment["agent"]["version"])
            run["session_id"] = self.sessions.create(new_id("sesn"), deployment, run["id"], now, agent)["id"]
            self.session_times.append(now)
        else:
            run["error"] = {"type": str(failure[0]), "message": failure[1]}
        self.runs[run["id"]] = run
        self.runs_by_deployment[deployment["id"]].append(run["id"])
        self.notify("deployment_run.started", run["id"])
        self.notify("deployment_run.failed" if failure else "deployment_run.succeeded", run["id"])
        if trigger_context["type"] == "schedule":
            deployment["schedule"]["last_run_at"] = run["created_at"]
            if failure is not None and RunErrorType.resolve(failure[0]) not in NON_PAUSING_RUN_ERRORS:
                deployment.update(
                    status="paused",
                    paused_reason={"type": "error", "error": {"type": failure[0]}},
                    updated_at=run["created_at"],
                )
                self.notify("deployment.paused", deployment["id"])
        return run

    def run_now(self, deployment_id: str) -> dict[str, Any]:
        deployment = self.deployment(deployment_id)
        if deployment["archived_at"] is not None:
            raise bad_request(f"deployment {deployment_id!r} is archived and cannot be run")
        run = self.attempt(deployment, {"type": "manual"})
        if run is None:
            raise bad_request(f"the agent of deployment {deployment_id!r} is archived; the deployment was archived")
        return run

    def seed_runs(self, deployment_id: str, count: int, scripts: list[SessionScript] | None = None) -> int:
        """Record ``count`` manual runs at once (for listing benchmarks and pagination tests);
        ``scripts``: how the sessions they start play out, one each, in order."""
        deployment = self.deployment(deployment_id)
        for index in range(count):
            if scripts and index < len(scripts):
                self.sessions.next_scripts.append(scripts[index])
            self.attempt(deployment, {"type": "manual"})
        return len(self.runs_by_deployment[deployment_id])

    # --- the schedule --------------------------------------------------------------------

    def jitter(self, deployment_id: str) -> timedelta:
        """A fixed per-schedule delay in [0, max_jitter], as the service spreads load (or the
        one the controls set)."""
        if deployment_id in self.jitters:
            return timedelta(seconds=self.jitters[deployment_id])
        digest = hashlib.sha256(deployment_id.encode()).digest()
        return timedelta(seconds=self.max_jitter * int.from_bytes(digest[:4], "big") / 2**32)

    def fire(self, deployment_id: str, scheduled_at: datetime | None = None) -> dict[str, Any] | None:
        """Record a scheduled fire now (the control endpoint, or the scheduler)."""
        deployment = self.deployment(deployment_id)
        if deployment["schedule"] is None:
            raise bad_request(f"deployment {deployment_id!r} has no schedule")
        if deployment["archived_at"] is not None:
            raise bad_request(f"deployment {deployment_id!r} is archived")
        slot = scheduled_at or self.clock.now().replace(second=0, microsecond=0)
        taken = {self.runs[i]["trigger_context"].get("scheduled_at") for i in self.runs_by_deployment[deployment_id]}
        while format_timestamp(slot) in taken:  # at most one run per (deployment, scheduled_at)
            slot += timedelta(minutes=1)
        return self.attempt(deployment, {"type": "schedule", "scheduled_at": format_timestamp(slot)})

    def tick(self) -> int:
        """Fire every schedule whose next occurrence (plus its jitter) has come, and play the
        sessions' scripts up to now. Returns fires."""
        now = self.clock.now()
        self.sessions.advance_all(now)
        fired = 0
        for deployment_id, deployment in list(self.deployments.items()):
            schedule = deployment["schedule"]
            if schedule is None or deployment["archived_at"] is not None or deployment["status"] == "paused":
                self.next_fire.pop(deployment_id, None)  # no backfill of what passes while paused
                continue
            if deployment_id not in self.next_fire:
                armed = self.armed_at.pop(deployment_id, now)
                upcoming = fire_times_after(schedule["expression"], schedule["timezone"], armed, 1)
                self.next_fire[deployment_id] = upcoming[0] if upcoming else None
            due = self.next_fire[deployment_id]
            for _ in range(10):  # bounded catch-up after a clock jump
                if due is None or now < due + self.jitter(deployment_id):
                    break
                if self.agent_gone(deployment):
                    self.archive(deployment_id)
                    due = None
                    break
                self.fire(deployment_id, due)
                fired += 1
                nxt = fire_times_after(schedule["expression"], schedule["timezone"], due, 1)
                due = nxt[0] if nxt else None
                if deployment["status"] == "paused":
                    due = None
                    break
            self.next_fire[deployment_id] = due
        return fired

    # --- sessions ------------------------------------------------------------------------

    def session(self, session_id: str) -> dict[str, Any]:
        found = self.sessions.by_id.get(session_id)
        if found is None:
            raise not_found("session", session_id)
        self.sessions.advance(found, self.clock.now())
        return found

    def list_sessions(self, filters: Any) -> dict[str, Any]:
        now = self.clock.now()

        def keep(item: dict[str, Any]) -> bool:
            self.sessions.advance(item, now)
            if item["archived_at"] is not None and not filters.include_archived:
                return False
            if filters.deployment_id is not None and item.get("deployment_id") != filters.deployment_id:
                return False
            if filters.agent_id is not None and item["agent"]["id"] != filters.agent_id:
                return False
            if filters.agent_version is not None and item["agent"]["version"] != filters.agent_version:
                return False
            if filters.statuses and item["status"] not in filters.statuses:
                return False
            return _within(item["created_at"], filters)

        items = [self.sessions.render(s) for s in self.sessions.by_id.values() if keep(s)]
        return self._listing(items, "created_at", filters.order or "desc", filters.limit or 20, filters.page, True)

    def session_events(self, session_id: str, filters: Any) -> dict[str, Any]:
        events = self.sessions.events(self.session(session_id))
        types = set(filters.types or [])
        items = [e for e in events if (not types or e["type"] in types) and _within(e["processed_at"], filters)]
        return self._listing(items, "processed_at", filters.order or "asc", filters.limit or 1000, filters.page)

    def _listing(
        self, items: list[dict[str, Any]], stamp: str, order: str, limit: int, page: str | None, both: bool = False
    ) -> dict[str, Any]:
        try:
            return Listing(items, lambda i: (time_key(i[stamp]), i["id"]), order, limit, page, both).cut()
        except ValueError as exc:
            raise bad_request(str(exc)) from None

    def send_session_events(self, session_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        session = self.session(session_id)
        if session["archived_at"] is not None:
            raise conflict(f"session {session_id!r} is archived")
        if not events:
            raise bad_request("events: at least one event is required")
        now = self.clock.now()
        kinds = [event.get("type") if isinstance(event, dict) else None for event in events]
        accepted = ("user.interrupt", "user.message", *actions.ANSWER_TYPES)
        refused = next((kind for kind in kinds if kind not in accepted), None)
        if refused is not None or None in kinds:
            raise bad_request(f"events: the emulator accepts {', '.join(accepted)}, not {refused!r}")
        answers = [event for event, kind in zip(events, kinds, strict=True) if kind in actions.ANSWER_TYPES]
        # Checked, all or none.
        recorded = actions.answer(session, answers, now, self.sessions.apply_step) if answers else []
        for event, kind in zip(events, kinds, strict=True):
            if kind == "user.interrupt":
                recorded.append(self.sessions.interrupt(session, now))
            elif kind == "user.message":
                recorded.append(self.sessions.message(session, event, now))
        return {"data": recorded}

    def archive_session(self, session_id: str) -> dict[str, Any]:
        session = self.session(session_id)
        if session["status"] in ("running", "rescheduling"):
            raise bad_request(f"session {session_id!r} is running; interrupt it before archiving")
        if session["archived_at"] is None:
            now = format_timestamp(self.clock.now())
            session.update(archived_at=now, updated_at=now, status="terminated", _steps=[])
            self.notify("session.archived", session_id)
        return self.sessions.render(session)

    def delete_session(self, session_id: str) -> dict[str, Any]:
        session = self.session(session_id)
        if session["status"] in ("running", "rescheduling"):
            raise bad_request(f"session {session_id!r} is running; interrupt it before deleting")
        del self.sessions.by_id[session_id]
        self.notify("session.deleted", session_id)
        return {"id": session_id, "type": "session_deleted"}

    def set_session_script(
        self, deployment_id: str | None, body: dict[str, Any], *, default: bool = False
    ) -> dict[str, Any]:
        """The script of every later session of a deployment, or (no deployment) of the next one,
        or (``default``) of every later session of a deployment without a script of its own."""
        script = SessionScript.from_json(body)
        if default:
            self.sessions.default_script = script
        elif deployment_id is None:
            self.sessions.next_scripts.append(script)
        else:
            self.deployment(deployment_id)
            self.sessions.scripts[deployment_id] = script
        return {"script": body, "deployment_id": deployment_id}

    # --- inspection ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.records.snapshot(),
            **{kind: [t.public() for t in things.values()] for kind, things in self.things.items()},
            "organization": {"disabled": self.organization_disabled},
            "workspace": {"archived": self.workspace_archived},
            "sessions_per_minute": self.sessions_per_minute,
            "deployments": [self.render_deployment(d) for d in self.deployments.values()],
            "runs": sorted(self.runs.values(), key=lambda r: (time_key(r["created_at"]), r["id"])),
            "sessions": [
                {**self.sessions.render(self.session(i)), "events": self.sessions.events(self.session(i))}
                for i in list(self.sessions.by_id)
            ],
            "now": format_timestamp(self.clock.now()),
        }


def _within(stamp: str, filters: Any) -> bool:
    """Whether ``stamp`` passes the ``created_at[gt|gte|lt|lte]`` bounds of ``filters``."""
    moment = parse_timestamp(stamp)
    bounds = (
        (getattr(filters, "created_at_gt", None), lambda b: moment > b),
        (getattr(filters, "created_at_gte", None), lambda b: moment >= b),
        (getattr(filters, "created_at_lt", None), lambda b: moment < b),
        (getattr(filters, "created_at_lte", None), lambda b: moment <= b),
    )
    return all(check(bound) for bound, check in bounds if bound is not None)
