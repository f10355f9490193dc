"""ManagedAgentsSessionFilesOperator: deliver the files a session wrote to object storage, where
the next tasks read them.

The agent writes its outputs under ``/mnt/session/outputs/``; the Files API lists them by the
session's id (``scope_id``). This task streams each one into an Airflow ``ObjectStoragePath``
(``file://`` locally, ``s3://``, ``gs://`` or any fsspec scheme the deployment configures): never
more than one chunk of a file in memory.

**Re-runs are cheap.** Next to each file the task keeps a small JSON record of what it wrote
(the file's id and size) in a hidden ``.managed-agents/`` folder of the destination, written only
once the file's bytes are all there. A file already at the destination with the same size and a
record of the same id is not downloaded again; anything else (a missing or older record, another
size, an interrupted earlier download) is. Why a record and not the object's own metadata:
local files have none, and object stores each have their own kind (and S3 changes it only by
copying the object), while a record file works the same on every fsspec scheme.

On the DAG-parse path: only ``airflow.sdk`` and light modules at module level.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

from airflow_provider_managed_agents.links import SESSION_URL_KEY, ManagedAgentsSessionLink
from airflow_provider_managed_agents.operators.base import ManagedAgentsBaseOperator

if TYPE_CHECKING:
    import logging

    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.models.files import FileMetadata

RECORDS_FOLDER = ".managed-agents"


@dataclass
class Delivered:
    """One file of the session at the destination: written by this task now, or already there."""

    path: str
    file_id: str
    filename: str
    size_bytes: int
    written: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "file_id": self.file_id,
            "filename": self.filename,
            "size_bytes": self.size_bytes,
            "written": self.written,
        }


@dataclass
class Delivery:
    """What a delivery did, file by file (``not_downloadable``: files the API will not serve)."""

    files: list[Delivered] = field(default_factory=list)
    not_downloadable: list[str] = field(default_factory=list)

    @property
    def written(self) -> list[str]:
        return [f.path for f in self.files if f.written]

    @property
    def skipped(self) -> list[str]:
        return [f.path for f in self.files if not f.written]


def relative_name(metadata: FileMetadata) -> str:
    """The file's name as a path under the destination; a name that would leave the destination
    (absolute, ``..``) or touch the records folder is refused, naming the file."""
    from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

    parts = metadata.filename.split("/")
    if metadata.filename.startswith("/") or any(p in ("", ".", "..") for p in parts) or parts[0] == RECORDS_FOLDER:
        raise ManagedAgentsValidationError(
            "session files",
            [(f"{metadata.id}.filename", "must be a relative path inside the destination (no '..', no leading '/')")],
        )
    return metadata.filename


def newest_by_name(files: list[FileMetadata], log: logging.Logger | Any) -> dict[str, FileMetadata]:
    """One file per name: when the agent wrote a name twice, its newest file."""
    chosen: dict[str, FileMetadata] = {}
    for metadata in sorted(files, key=lambda f: (f.created_at, f.id)):
        name = relative_name(metadata)
        if name in chosen:
            log.info("%s was written again (%s); delivering the newer file %s", name, chosen[name].id, metadata.id)
        chosen[name] = metadata
    return chosen


def _record_of(root: ObjectStoragePath, name: str) -> ObjectStoragePath:
    return root / RECORDS_FOLDER / f"{name}.json"


def _already_there(target: ObjectStoragePath, record: ObjectStoragePath, metadata: FileMetadata) -> bool:
    """The same file (id and size) is at ``target``, completely: its record says so."""
    try:
        if not target.exists() or target.stat().st_size != metadata.size_bytes:
            return False
        kept = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    return kept.get("file_id") == metadata.id and kept.get("size_bytes") == metadata.size_bytes


def deliver_session_files(
    hook: ManagedAgentsHook,
    session_id: str,
    root: ObjectStoragePath,
    *,
    pattern: str | None = None,
    chunk_size: int | None = None,
    log: logging.Logger | Any,
) -> Delivery:
    """Stream every file ``session_id`` wrote (whose name matches the glob ``pattern``) to
    ``root``, skipping those already there with the same id and size. ``chunk_size``: the most
    bytes of a file held at once (default: the hook's, 1 MiB).

    Every name is checked before the first byte is written. A file's record is removed before
    its bytes are written and written after them: an interrupted download is never taken for a
    complete one.
    """
    from airflow_provider_managed_agents.exceptions import ManagedAgentsResponseError

    listed = [f for f in hook.list_files(scope_id=session_id, limit=1000)]
    matching = [f for f in listed if pattern is None or fnmatch.fnmatchcase(f.filename, pattern)]
    delivery = Delivery()
    chosen = newest_by_name(matching, log)
    log.info("Session %s wrote %d file(s); %d match %s", session_id, len(listed), len(chosen), pattern or "(no filter)")
    for name, metadata in sorted(chosen.items()):
        if metadata.downloadable is False:
            log.warning("%s (%s) cannot be downloaded (the API says so): not delivered", name, metadata.id)
            delivery.not_downloadable.append(metadata.id)
            continue
        target, record = root / name, _record_of(root, name)
        entry = Delivered(str(target), metadata.id, name, metadata.size_bytes, written=False)
        if _already_there(target, record, metadata):
            log.info("%s is already at %s (file %s, same size): not downloaded again", name, target, metadata.id)
            delivery.files.append(entry)
            continue
        if record.exists():
            record.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            if chunk_size is None:
                written = hook.download_file(metadata.id, out)
            else:
                written = hook.download_file(metadata.id, out, chunk_size=chunk_size)
        if written != metadata.size_bytes:
            target.unlink()
            raise ManagedAgentsResponseError(
                f"Downloading file {metadata.id} ({name}) gave {written} bytes; its metadata says {metadata.size_bytes}"
            )
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(
            json.dumps(
                {
                    "file_id": metadata.id,
                    "size_bytes": metadata.size_bytes,
                    "filename": metadata.filename,
                    "mime_type": metadata.mime_type,
                    "session_id": session_id,
                    "created_at": metadata.created_at.isoformat(),
                }
            )
        )
        log.info("Wrote %s to %s (file %s, %d bytes)", name, target, metadata.id, written)
        entry.written = True
        delivery.files.append(entry)
    return delivery


def object_storage_path(destination: Any) -> ObjectStoragePath:
    """The destination as an ``ObjectStoragePath`` (a URL string is one too: ``s3://conn@bucket/x``)."""
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

    if isinstance(destination, ObjectStoragePath):
        return destination
    if not isinstance(destination, str) or not destination.strip():
        raise ManagedAgentsValidationError(
            "arguments", [("destination", "must be an ObjectStoragePath or a URL such as file:///tmp/out/")]
        )
    return ObjectStoragePath(destination)


class ManagedAgentsSessionFilesOperator(ManagedAgentsBaseOperator):
    """Deliver the files a session wrote to an object storage destination.

    :param destination: the folder the files go to: an ``ObjectStoragePath`` or its URL
        (``"file:///data/reports/{{ ds }}/"``, ``"s3://aws_default@bucket/reports/"``); a file's
        name is its path under it.
    :param session_id: the session whose files to deliver. Default: the ``session_id`` XCom of
        the upstream task that ran or followed a session (``ManagedAgentsRunDeploymentOperator``,
        ``ManagedAgentsDeploymentRunSensor``, ``ManagedAgentsSessionSensor``): the one directly
        upstream, else the one among all upstream tasks; two of them is an error (give it).
    :param filename_pattern: only files whose name matches this glob (``"*.md"``, ``"reports/*"``).
    :param chunk_size: the most bytes of a file held in memory at once (default 1 MiB).
    :param managed_agents_conn_id: the ``managed_agents`` connection.

    Returns the path (URL) of every matching file at the destination, written now or already
    there from an earlier run; XCom ``written`` (this try wrote them), ``skipped`` (already there:
    same id and size) and ``files`` (each with its ``file_id``, ``filename``, ``size_bytes``).
    """

    template_fields: Sequence[str] = ("session_id", "destination", "filename_pattern", "managed_agents_conn_id")
    operator_extra_links: Collection[BaseOperatorLink] = (ManagedAgentsSessionLink(),)

    def __init__(
        self,
        *,
        destination: Any,
        session_id: str | None = None,
        filename_pattern: str | None = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.destination = destination
        self.session_id = session_id
        self.filename_pattern = filename_pattern
        self.chunk_size = chunk_size

    def execute(self, context: Context) -> list[str]:
        from airflow_provider_managed_agents.models.params import checked_id
        from airflow_provider_managed_agents.reporting import session_console_url

        session_id = checked_id(self._session_id(context), "session_id")
        root = object_storage_path(self.destination)
        self._note_lineage(session_id=session_id, destination=str(root))
        ti = context["ti"]
        ti.xcom_push(key=SESSION_URL_KEY, value=session_console_url(self.hook.settings, session_id))
        delivery = deliver_session_files(
            self.hook, session_id, root, pattern=self.filename_pattern or None, chunk_size=self.chunk_size, log=self.log
        )
        self._note_lineage(delivered=[f.to_dict() for f in delivery.files])
        ti.xcom_push(key="written", value=delivery.written)
        ti.xcom_push(key="skipped", value=delivery.skipped)
        ti.xcom_push(key="files", value=[f.to_dict() for f in delivery.files])
        self.log.info(
            "Delivered %d file(s) to %s: %d written, %d already there",
            len(delivery.files),
            root,
            len(delivery.written),
            len(delivery.skipped),
        )
        return [f.path for f in delivery.files]

    def _session_id(self, context: Context) -> Any:
        """The session: as given, else the ``session_id`` XCom of the upstream task that ran or
        followed a session (a direct upstream one, else the one among all upstream tasks)."""
        from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
        from airflow_provider_managed_agents.following import SessionFollower

        if self.session_id:
            return self.session_id
        for relatives in (self.upstream_list, self.get_flat_relatives(upstream=True)):
            followers = sorted(t.task_id for t in relatives if isinstance(t, SessionFollower))
            if len(followers) == 1:
                return context["ti"].xcom_pull(task_ids=followers[0], key="session_id")
            if followers:
                break
        found = ", ".join(followers) or "none"
        raise ManagedAgentsValidationError(
            "arguments",
            [("session_id", f"not given, and not one upstream task that ran or followed a session ({found})")],
        )
