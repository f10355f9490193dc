"""OpenLineage for the provider's tasks: facets, datasets and the agent session's own events.

Imported only by the three methods of :mod:`airflow_provider_managed_agents.lineage`, which
Airflow's OpenLineage listener calls (never on the DAG-parse path: this module imports the
OpenLineage client and provider at its top).

What a task's events carry:

- run facet ``managedAgents_session`` (:class:`ManagedAgentsSessionRunFacet`, schema shipped in
  ``schemas/`` and published at :data:`SCHEMA_URL`): the deployment, run and session ids, the
  Console links, the agent and its version, the environment, how the session ended (status, stop
  reason, outcome result and evaluations), its usage and list cost, and the typed error of a
  failed task;
- run facet ``externalQuery``: the session id (else the run's), its source the session's Console
  page;
- job facet ``tags``: deployment id, agent id and version, environment id (Airflow replaces a
  task's tags facet with the DAG's tags when the DAG has any; the session's own job keeps them);
- inputs: the session's resources, as datasets (GitHub repositories: namespace
  ``https://github.com``, name ``owner/repo``; uploaded files and memory stores: namespace the
  API's origin, name ``files/<id>`` / ``memory_stores/<id>``);
- outputs: the files the session wrote (when the task saw the session end) and the memory stores
  it could write (``read_write``); a files task: the objects it delivered (OpenLineage's naming:
  ``file`` + path, ``s3://bucket`` + key, ...), with the session's files as its inputs.

Airflow's adapter always replaces a task's ``jobType`` facet (``AIRFLOW``/``TASK``). The agent
session is therefore also its own job, as dbt Cloud's and Databricks' providers do for their
work: when a task saw a session end, it emits that session's START and COMPLETE (or FAIL) with
job ``<dag_id>.<task_id>.agent_session``, ``jobType`` integration ``ANTHROPIC_MANAGED_AGENTS``,
the tags, the same run facets, and a ``parent`` facet pointing at the task's run.

Reads the notes lack (the session's resources, the files it wrote) go through a hook with a
short deadline (:data:`READ_TIMEOUT_SECONDS` per request, no retries, at most two requests):
the listener kills this child process after ``[openlineage] execution_timeout`` (10 s). A read
that fails leaves its part out; it never loses the event.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.openlineage.extractors import OperatorLineage
from attrs import define, field
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    documentation_dataset,
    error_message_run,
    external_query_run,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    tags_job,
)

from airflow_provider_managed_agents import __version__
from airflow_provider_managed_agents.lineage import LineageNotes

if TYPE_CHECKING:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.hooks.wire import Settings

log = logging.getLogger(__name__)

FACET_KEY = "managedAgents_session"
SCHEMA_FILE = "schemas/ManagedAgentsSessionRunFacet.json"
SCHEMA_URL = (
    "https://raw.githubusercontent.com/airflow-provider-managed-agents/airflow-provider-managed-agents/"
    f"v{__version__}/airflow_provider_managed_agents/{SCHEMA_FILE}#/$defs/ManagedAgentsSessionRunFacet"
)
INTEGRATION = "ANTHROPIC_MANAGED_AGENTS"
SESSION_JOB_TYPE = "AGENT_SESSION"
SESSION_JOB_SUFFIX = "agent_session"
TAG_SOURCE = "MANAGED_AGENTS"
READ_TIMEOUT_SECONDS = 3.0
FILES_PAGE = 1000
ENDED = ("idle", "terminated")


@define
class ManagedAgentsSessionRunFacet(RunFacet):
    """An Anthropic Managed Agents deployment run and its session, as an Airflow task saw them
    (every field optional: a task knows what its kind of work tells it). Fields are camelCase, as
    OpenLineage's own facets'; ``usage`` keeps the API's keys."""

    deploymentId: str | None = field(default=None)
    deploymentRunId: str | None = field(default=None)
    triggerType: str | None = field(default=None)
    sessionId: str | None = field(default=None)
    sessionUrl: str | None = field(default=None)
    deploymentUrl: str | None = field(default=None)
    agentId: str | None = field(default=None)
    agentVersion: int | None = field(default=None)
    environmentId: str | None = field(default=None)
    sessionStatus: str | None = field(default=None)
    stopReason: str | None = field(default=None)
    outcomeResult: str | None = field(default=None)
    outcomes: list[dict[str, Any]] | None = field(default=None)
    usage: dict[str, Any] | None = field(default=None)
    listCost: dict[str, str] | None = field(default=None)
    error: dict[str, Any] | None = field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL


# --- datasets: OpenLineage's naming (namespace = scheme://authority, name = the path) ----------


def api_namespace(base_url: str) -> str:
    """The API's origin (``https://api.anthropic.com``): where files and memory stores live."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    return f"{parts.scheme or 'https'}://{host}{f':{parts.port}' if parts.port else ''}"


def repository_dataset(url: str) -> tuple[str, str] | None:
    """A repository URL as (``https://github.com``, ``owner/repo``), without credentials or ``.git``."""
    parts = urlsplit(url)
    name = parts.path.strip("/").removesuffix(".git")
    if not parts.hostname or not name:
        return None
    return f"{parts.scheme or 'https'}://{parts.hostname}{f':{parts.port}' if parts.port else ''}", name


def storage_dataset(url: str) -> tuple[str, str]:
    """An object storage URL as OpenLineage names it: ``file`` + path, ``s3://bucket`` + key."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return "file", parts.path
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}", parts.path.lstrip("/")


def resource_datasets(
    resources: list[dict[str, Any]], namespace: str
) -> tuple[list[InputDataset], list[OutputDataset]]:
    """A session's (or deployment's) resources: every one read, writable memory stores written."""
    inputs: list[InputDataset] = []
    outputs: list[OutputDataset] = []
    for resource in resources:
        kind = resource.get("type")
        if kind == "github_repository" and isinstance(resource.get("url"), str):
            named = repository_dataset(resource["url"])
            if named is not None:
                inputs.append(InputDataset(*named))
        elif kind == "file" and resource.get("file_id"):
            inputs.append(InputDataset(namespace, f"files/{resource['file_id']}"))
        elif kind == "memory_store" and resource.get("memory_store_id"):
            name = f"memory_stores/{resource['memory_store_id']}"
            inputs.append(InputDataset(namespace, name))
            if resource.get("access") == "read_write":
                outputs.append(OutputDataset(namespace, name))
    return inputs, outputs


def written_file_dataset(metadata: dict[str, Any], namespace: str, session_id: str | None) -> OutputDataset:
    """A file the session wrote."""
    by = f", written by session {session_id}" if session_id else ""
    return OutputDataset(
        namespace,
        f"files/{metadata['id']}",
        facets={
            "documentation": documentation_dataset.DocumentationDatasetFacet(
                description=f"{metadata.get('filename')} ({metadata.get('mime_type')}){by}"
            )
        },
        outputFacets={
            "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                size=metadata.get("size_bytes"), fileCount=1
            )
        },
    )


# --- what the task knows, and what it reads to complete it ------------------------------------


class _Known:
    """The facts about a task's work, from its notes, its arguments and (at the end) reads."""

    def __init__(self, task: Any, notes: LineageNotes):
        self.notes = notes
        self.deployment_id = notes.deployment_id or _argument(task, "deployment_id")
        self.session_id = notes.session_id or _argument(task, "session_id")
        run = notes.run or {}
        self.deployment_run_id = notes.deployment_run_id or run.get("id") or _argument(task, "deployment_run_id")
        self.trigger_type = (run.get("trigger_context") or {}).get("type") or getattr(
            task, "lineage_trigger_type", None
        )
        deployment = notes.deployment or {}
        agent = deployment.get("agent") or run.get("agent") or {}
        self.agent_id: str | None = agent.get("id")
        self.agent_version: int | None = agent.get("version")
        self.environment_id: str | None = deployment.get("environment_id")
        self.resources: list[dict[str, Any]] = list(deployment.get("resources") or [])
        self.session_created_at: datetime | None = None
        self.files_written: list[dict[str, Any]] | None = None

    @property
    def ended(self) -> bool:
        return self.notes.session_end is not None and self.notes.session_end.get("status") in ENDED

    def read_the_rest(self, hook: ManagedAgentsHook) -> None:
        """The session (its agent, environment and resources) and the files it wrote, or the
        deployment when no session is known: at most two requests, each with a short deadline."""
        reader = hook.bounded(timeout=READ_TIMEOUT_SECONDS)
        try:
            if self.session_id:
                self._take(reader.get_session(self.session_id).model_dump(mode="json"))
            elif self.deployment_id and self.notes.deployment is None:
                self._take(reader.get_deployment(self.deployment_id).model_dump(mode="json"))
            if self.session_id and self.ended:
                page = reader.list_files_page(scope_id=self.session_id, limit=FILES_PAGE)
                self.files_written = [f.model_dump(mode="json") for f in page.data]
        except Exception as exc:  # a lineage read never fails the event: its part is left out
            log.warning(
                "OpenLineage: could not read what %s used and wrote: %s", self.session_id or self.deployment_id, exc
            )
        finally:
            reader.close()

    def _take(self, thing: dict[str, Any]) -> None:
        agent = thing.get("agent") or {}
        self.agent_id = self.agent_id or agent.get("id")
        self.agent_version = self.agent_version or agent.get("version")
        self.environment_id = self.environment_id or thing.get("environment_id")
        self.deployment_id = self.deployment_id or thing.get("deployment_id")
        self.resources = list(thing.get("resources") or self.resources)
        if thing.get("type") == "session" and thing.get("created_at"):
            self.session_created_at = datetime.fromisoformat(str(thing["created_at"]).replace("Z", "+00:00"))


def _argument(task: Any, name: str) -> str | None:
    """A rendered id argument (None, or a template that was not rendered, is not an id)."""
    value = getattr(task, name, None)
    return value if isinstance(value, str) and value and "{{" not in value else None


def _settings(task: Any) -> Settings | None:
    try:
        return task.hook.settings
    except Exception as exc:  # no connection: ids only
        log.warning("OpenLineage: the connection of %s cannot be read: %s", getattr(task, "task_id", "?"), exc)
        return None


def session_facet(known: _Known, settings: Settings | None) -> ManagedAgentsSessionRunFacet:
    from airflow_provider_managed_agents.reporting import console_url, session_console_url
    from airflow_provider_managed_agents.waiting.sessions import SessionFacts, newest_evaluations

    end = SessionFacts.from_dict(known.notes.session_end) if known.notes.session_end else None
    evaluations = newest_evaluations(end) if end is not None else []
    usage = dict(end.usage) if end is not None and end.usage else None
    list_cost = (usage or {}).pop("list_cost", None)
    return ManagedAgentsSessionRunFacet(
        deploymentId=known.deployment_id,
        deploymentRunId=known.deployment_run_id,
        triggerType=known.trigger_type,
        sessionId=known.session_id,
        sessionUrl=session_console_url(settings, known.session_id) if settings and known.session_id else None,
        deploymentUrl=console_url(settings, known.deployment_id) if settings and known.deployment_id else None,
        agentId=known.agent_id,
        agentVersion=known.agent_version,
        environmentId=known.environment_id,
        sessionStatus=end.status if end is not None else None,
        stopReason=end.stop_reason if end is not None else None,
        outcomeResult=_overall(evaluations),
        outcomes=[
            {
                "outcomeId": e.get("outcome_id"),
                "description": e.get("description"),
                "result": e.get("result"),
                "iteration": e.get("iteration"),
            }
            for e in evaluations
        ]
        or None,
        usage=usage,
        listCost={"amount": str(list_cost["amount"]), "currency": str(list_cost.get("currency") or "USD")}
        if isinstance(list_cost, dict) and "amount" in list_cost
        else None,
        error=known.notes.error,
    )


def _overall(evaluations: list[dict[str, Any]]) -> str | None:
    if not evaluations:
        return None
    unmet = next((e.get("result") for e in evaluations if e.get("result") != "satisfied"), None)
    return str(unmet) if unmet else "satisfied"


def job_tags(known: _Known) -> tags_job.TagsJobFacet | None:
    pairs = [
        ("deployment_id", known.deployment_id),
        ("agent_id", known.agent_id),
        ("agent_version", None if known.agent_version is None else str(known.agent_version)),
        ("environment_id", known.environment_id),
    ]
    tags = [tags_job.TagsJobFacetFields(key=k, value=v, source=TAG_SOURCE) for k, v in pairs if v]
    return tags_job.TagsJobFacet(tags=tags) if tags else None


# --- the task's lineage ---------------------------------------------------------------------


def task_lineage(task: Any, task_instance: Any, moment: str) -> OperatorLineage:
    """The task's facets and datasets at ``moment`` (``start``, ``complete``, ``failure``); at
    the end also the session's own events, emitted. Empty when the task knows no id yet (a
    create before it ran)."""
    notes = task.lineage_notes
    if notes.delivered is not None:
        return _files_task_lineage(task, notes)
    known = _Known(task, notes)
    if not (known.deployment_id or known.session_id or known.deployment_run_id):
        return OperatorLineage()
    settings = _settings(task) if moment != "start" else None
    if settings is not None:
        known.read_the_rest(task.hook)
    facet = session_facet(known, settings)
    run_facets: dict[str, RunFacet] = {FACET_KEY: facet}
    external_id = known.session_id or known.deployment_run_id
    if external_id:
        run_facets["externalQuery"] = external_query_run.ExternalQueryRunFacet(
            externalQueryId=external_id, source=facet.sessionUrl or facet.deploymentUrl or INTEGRATION
        )
    tags = job_tags(known)
    inputs: list[InputDataset] = []
    outputs: list[OutputDataset] = []
    if settings is not None:
        namespace = api_namespace(settings.base_url)
        inputs, outputs = resource_datasets(known.resources, namespace)
        outputs += [written_file_dataset(f, namespace, known.session_id) for f in known.files_written or []]
    if moment != "start" and task_instance is not None and known.session_id and (known.ended or notes.error):
        _emit_session_events(task_instance, known, facet, run_facets, tags, failed=moment == "failure")
    return OperatorLineage(
        inputs=inputs,
        outputs=outputs,
        run_facets=run_facets,
        job_facets={"tags": tags} if tags else {},
    )


def _files_task_lineage(task: Any, notes: LineageNotes) -> OperatorLineage:
    """A files task read the session's files and wrote objects."""
    settings = _settings(task)
    delivered = notes.delivered or []
    namespace = api_namespace(settings.base_url) if settings else None
    inputs = [InputDataset(namespace, f"files/{f['file_id']}") for f in delivered] if namespace else []
    outputs = [
        OutputDataset(
            *storage_dataset(f["path"]),
            outputFacets={
                "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    size=f["size_bytes"], fileCount=1
                )
            },
        )
        for f in delivered
    ]
    known = _Known(task, notes)
    return OperatorLineage(
        inputs=inputs, outputs=outputs, run_facets={FACET_KEY: session_facet(known, settings)}, job_facets={}
    )


# --- the session as its own job ---------------------------------------------------------------


def _emit_session_events(
    task_instance: Any,
    known: _Known,
    facet: ManagedAgentsSessionRunFacet,
    run_facets: dict[str, RunFacet],
    tags: tags_job.TagsJobFacet | None,
    *,
    failed: bool,
) -> None:
    """START and COMPLETE (or FAIL) of the agent session, a child of the task's run."""
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
    from airflow.providers.openlineage.plugins.macros import (
        lineage_job_name,
        lineage_job_namespace,
        lineage_run_id,
    )
    from openlineage.client.uuid import generate_static_uuid

    try:
        namespace, parent_name = lineage_job_namespace(), lineage_job_name(task_instance)
        parent = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=lineage_run_id(task_instance)),
            job=parent_run.Job(namespace=namespace, name=parent_name),
            root=_root(task_instance),
        )
        now = datetime.now(UTC)
        started = known.session_created_at or now
        run_id = str(generate_static_uuid(started, f"managed-agents:{parent_name}:{known.session_id}".encode()))
        job_facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration=INTEGRATION, jobType=SESSION_JOB_TYPE
            )
        }
        if tags is not None:
            job_facets["tags"] = tags
        job = Job(namespace=namespace, name=f"{parent_name}.{SESSION_JOB_SUFFIX}", facets=job_facets)
        facets: dict[str, RunFacet] = {**run_facets, "parent": parent}
        end_facets = dict(facets)
        if failed and facet.error:
            end_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=str(facet.error.get("message")), programmingLanguage="python"
            )
        adapter = get_openlineage_listener().adapter
        for state, when, these in (
            (RunState.START, started, facets),
            (RunState.FAIL if failed else RunState.COMPLETE, now, end_facets),
        ):
            adapter.emit(
                RunEvent(eventType=state, eventTime=when.isoformat(), run=Run(runId=run_id, facets=these), job=job)
            )
    except Exception as exc:  # the task's own event goes out whatever happens here
        log.warning("OpenLineage: could not emit the events of session %s: %s", known.session_id, exc)


def _root(task_instance: Any) -> parent_run.Root | None:
    """The DAG run the task belongs to (providers before the root macros: none)."""
    try:
        from airflow.providers.openlineage.plugins.macros import (
            lineage_root_job_name,
            lineage_root_job_namespace,
            lineage_root_run_id,
        )

        return parent_run.Root(
            run=parent_run.RootRun(runId=lineage_root_run_id(task_instance)),
            job=parent_run.RootJob(
                namespace=lineage_root_job_namespace(task_instance), name=lineage_root_job_name(task_instance)
            ),
        )
    except Exception:
        return None
