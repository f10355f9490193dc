"""The files a session writes, over real HTTP: the emulator writes a session's scripted files when
its agent speaks, serves them as the official SDK reads them (strictly valid metadata, the same
bytes to its client), and the hook lists, reads and streams them (sync and async); delivering
them to an ``ObjectStoragePath`` writes each file once, and a re-run downloads none."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_managed_agents.emulator.files import generated_bytes
from airflow_provider_managed_agents.exceptions import (
    ManagedAgentsConnectionError,
    ManagedAgentsNotFoundError,
    ManagedAgentsValidationError,
)
from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
from airflow_provider_managed_agents.hooks.wire import API_VERSION
from airflow_provider_managed_agents.operators.session_files import RECORDS_FOLDER, deliver_session_files

REPORT = "# Load review\n\nPublish: yes. 3 rows rejected (duplicates).\n"
THREE_FILES = [
    {"filename": "report.md", "content": REPORT},
    {"filename": "data/rejected.csv", "content": "row,reason\n17,duplicate\n"},
    {"filename": "dump.bin", "size": 300_000},
]
DOWNLOAD = "GET /v1/files/{file_id}/content"
WRITE = {"type": "user.message", "content": [{"type": "text", "text": "Write the review"}]}


class Log:
    """Collects what a delivery logs."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)

    warning = info


def session_writing(hook: ManagedAgentsHook, emulator: Any, files: list[dict[str, Any]], *, play: bool = True) -> str:
    """A session whose script writes ``files``, played to its end (unless ``play`` is False)."""
    deployment = hook.create_deployment(name="f", agent="agent_demo", environment_id="env_demo", initial_events=[WRITE])
    emulator.control("POST", f"deployments/{deployment.id}/session_script", {"files": files})
    session_id = hook.run_deployment(deployment.id).session_id
    assert session_id is not None
    if play:
        emulator.advance_clock(10)
    return session_id


def content_requests(emulator: Any) -> int:
    return int(emulator.request_counts()["by_endpoint"].get(DOWNLOAD, 0))


def expected_bytes(file: dict[str, Any], file_id: str) -> bytes:
    if "content" in file:
        return str(file["content"]).encode()
    return b"".join(generated_bytes(file_id, file["size"]))


def test_a_session_writes_its_scripted_files_when_its_agent_speaks(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = session_writing(hook, emulator, THREE_FILES, play=False)
    assert list(hook.list_files(scope_id=session_id)) == []  # nothing written before the agent's message
    emulator.advance_clock(10)
    files = {f.filename: f for f in hook.list_files(scope_id=session_id)}
    assert set(files) == {"report.md", "data/rejected.csv", "dump.bin"}
    assert files["report.md"].size_bytes == len(REPORT.encode()) and files["report.md"].mime_type == "text/markdown"
    assert files["dump.bin"].size_bytes == 300_000
    assert all(f.scope is not None and f.scope.id == session_id and f.scope.type == "session" for f in files.values())
    assert hook.get_file_metadata(files["report.md"].id) == files["report.md"]
    other = session_writing(hook, emulator, [{"filename": "other.txt", "content": "x"}])
    assert [f.filename for f in hook.list_files(scope_id=other)] == ["other.txt"]
    assert len(list(hook.list_files())) == 4  # without a scope: every file


def test_the_official_sdk_reads_the_files_strictly_and_gets_the_same_bytes(
    hook: ManagedAgentsHook, emulator: Any
) -> None:
    anthropic = pytest.importorskip("anthropic")
    httpx2 = pytest.importorskip("httpx2")
    from anthropic.types.beta import BetaFileMetadata

    session_id = session_writing(hook, emulator, THREE_FILES)
    headers = {"x-api-key": emulator.api_key, "anthropic-version": API_VERSION}
    page = httpx.get(f"{emulator.base_url}/v1/files", params={"scope_id": session_id}, headers=headers).json()
    assert set(page) == {"data", "next_page"} and page["next_page"] is None
    for item in page["data"]:
        BetaFileMetadata.model_validate_json(json.dumps(item), strict=True)
        one = httpx.get(f"{emulator.base_url}/v1/files/{item['id']}", headers=headers)
        BetaFileMetadata.model_validate_json(one.content, strict=True)

    client = anthropic.Anthropic(api_key=emulator.api_key, base_url=emulator.base_url, http_client=httpx2.Client())
    listed = {f.filename: f for f in client.beta.files.list(scope_id=session_id)}  # no beta: the SDK's default
    assert set(listed) == {"report.md", "data/rejected.csv", "dump.bin"}
    for file in THREE_FILES:
        metadata = listed[file["filename"]]
        theirs = client.beta.files.download(metadata.id, betas=["managed-agents-2026-04-01"]).read()
        ours = io.BytesIO()
        assert hook.download_file(metadata.id, ours) == metadata.size_bytes
        assert ours.getvalue() == theirs == expected_bytes(file, metadata.id)


def test_pages_of_files_walk_every_file_once(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = session_writing(hook, emulator, [{"filename": f"part-{i}.txt", "content": str(i)} for i in range(5)])
    first = hook.list_files_page(scope_id=session_id, limit=2)
    assert len(first.data) == 2 and first.next_page
    walked = [f.filename for f in hook.list_files(scope_id=session_id, limit=2)]
    assert sorted(walked) == [f"part-{i}.txt" for i in range(5)]
    assert emulator.request_counts()["by_endpoint"]["GET /v1/files"] == 1 + 3


def test_sync_and_async_downloads_stream_the_same_bytes(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = session_writing(hook, emulator, [{"filename": "big.bin", "size": 3 * 1024 * 1024 + 7}])
    (metadata,) = hook.list_files(scope_id=session_id)
    with hook.stream_file(metadata.id, chunk_size=64 * 1024) as chunks:
        sync_digest, sync_sizes = hashlib.sha256(), []
        for chunk in chunks:
            sync_digest.update(chunk)
            sync_sizes.append(len(chunk))
    assert max(sync_sizes) <= 64 * 1024 and sum(sync_sizes) == metadata.size_bytes

    async def streamed() -> tuple[str, Any]:
        digest = hashlib.sha256()
        async with hook.astream_file(metadata.id, chunk_size=64 * 1024) as chunks:
            async for chunk in chunks:
                digest.update(chunk)
        return digest.hexdigest(), await hook.aget_file_metadata(metadata.id)

    async_digest, async_metadata = asyncio.run(streamed())
    expected = hashlib.sha256(b"".join(generated_bytes(metadata.id, metadata.size_bytes))).hexdigest()
    assert sync_digest.hexdigest() == async_digest == expected
    assert async_metadata == metadata


def test_a_download_that_fails_to_start_is_retried(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = session_writing(hook, emulator, [{"filename": "r.md", "content": REPORT}])
    (metadata,) = hook.list_files(scope_id=session_id)
    emulator.inject_faults(kinds=["503"], endpoints=[DOWNLOAD], count=1)
    out = io.BytesIO()
    assert hook.download_file(metadata.id, out) == len(REPORT.encode())
    assert out.getvalue() == REPORT.encode()
    assert content_requests(emulator) == 2  # the 503, then the download


def test_a_download_cut_mid_stream_raises_the_connection_error(hook: ManagedAgentsHook, emulator: Any) -> None:
    session_id = session_writing(hook, emulator, [{"filename": "r.md", "content": REPORT}])
    (metadata,) = hook.list_files(scope_id=session_id)
    # The answer starts (200, a length) and the connection is cut: bytes were lost, so the hook
    # raises rather than re-sending behind the caller's back (it may have written some).
    emulator.inject_faults(kinds=["drop"], endpoints=[DOWNLOAD])
    with pytest.raises(ManagedAgentsConnectionError, match="/content"):
        hook.download_file(metadata.id, io.BytesIO())
    assert content_requests(emulator) == 1


def test_unknown_files_and_bad_scripts_are_refused(hook: ManagedAgentsHook, emulator: Any) -> None:
    with pytest.raises(ManagedAgentsNotFoundError):
        hook.get_file_metadata("file_nope")
    with pytest.raises(ManagedAgentsNotFoundError):
        hook.download_file("file_nope", io.BytesIO())
    for bad, named in [
        ({"files": [{"filename": "a", "content": "x", "size": 1}]}, "files[0] needs either content"),
        ({"files": [{"filename": "", "size": 1}]}, "files[0].filename"),
        ({"files": [{"filename": "a", "size": -1}]}, "files[0].size"),
        ({"files": [{"filename": "a", "size": 1, "path": "/x"}]}, "unknown fields ['path']"),
    ]:
        response = httpx.post(f"{emulator.base_url}/_emulator/sessions/next_script", json=bad, timeout=10)
        assert response.status_code == 400 and named in response.json()["error"]["message"], response.text
    with pytest.raises(ManagedAgentsValidationError, match="scope_id"):
        hook.list_files_page(scope_id="")


# --- delivering them to object storage --------------------------------------------------------


def test_three_files_are_delivered_and_a_rerun_downloads_none(
    hook: ManagedAgentsHook, emulator: Any, tmp_path: Path
) -> None:
    from airflow.sdk import ObjectStoragePath

    session_id = session_writing(hook, emulator, THREE_FILES)
    root = ObjectStoragePath(f"file://{tmp_path}/out/")
    first = deliver_session_files(hook, session_id, root, log=Log())
    assert sorted(Path(p.removeprefix("file://")).relative_to(tmp_path / "out").as_posix() for p in first.written) == [
        "data/rejected.csv",
        "dump.bin",
        "report.md",
    ]
    assert first.skipped == []
    assert content_requests(emulator) == 3
    ids = {f.filename: f.file_id for f in first.files}
    for file in THREE_FILES:
        assert (tmp_path / "out" / file["filename"]).read_bytes() == expected_bytes(file, ids[file["filename"]])
    record = json.loads((tmp_path / "out" / RECORDS_FOLDER / "report.md.json").read_text())
    assert record["file_id"] == ids["report.md"] and record["session_id"] == session_id

    log = Log()
    again = deliver_session_files(hook, session_id, root, log=log)
    assert again.written == [] and sorted(again.skipped) == sorted(first.written)
    assert content_requests(emulator) == 3  # none downloaded again
    assert sum("not downloaded again" in line for line in log.lines) == 3


def test_a_changed_or_half_written_file_is_downloaded_again(
    hook: ManagedAgentsHook, emulator: Any, tmp_path: Path
) -> None:
    from airflow.sdk import ObjectStoragePath

    root = ObjectStoragePath(f"file://{tmp_path}/")
    first = session_writing(hook, emulator, [{"filename": "report.md", "content": REPORT}])
    deliver_session_files(hook, first, root, log=Log())
    # Another session writes a file of the same name and size: another id, so it is delivered.
    second = session_writing(hook, emulator, [{"filename": "report.md", "content": REPORT.upper()}])
    assert deliver_session_files(hook, second, root, log=Log()).written
    assert (tmp_path / "report.md").read_text() == REPORT.upper()
    # An earlier download cut short (its record gone, as the delivery removes it first) is redone.
    (tmp_path / RECORDS_FOLDER / "report.md.json").unlink()
    assert deliver_session_files(hook, second, root, log=Log()).written
    assert content_requests(emulator) == 3


def test_a_name_filter_and_a_name_leaving_the_destination(
    hook: ManagedAgentsHook, emulator: Any, tmp_path: Path
) -> None:
    from airflow.sdk import ObjectStoragePath

    root = ObjectStoragePath(f"file://{tmp_path}/")
    session_id = session_writing(hook, emulator, THREE_FILES)
    only_md = deliver_session_files(hook, session_id, root, pattern="*.md", log=Log())
    assert [f.filename for f in only_md.files] == ["report.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [RECORDS_FOLDER, "report.md"]

    escaping = session_writing(
        hook, emulator, [{"filename": "ok.txt", "content": "x"}, {"filename": "../x", "content": "y"}]
    )
    before = content_requests(emulator)
    with pytest.raises(ManagedAgentsValidationError, match="filename: must be a relative path"):
        deliver_session_files(hook, escaping, root, log=Log())
    assert content_requests(emulator) == before and not (tmp_path / "ok.txt").exists()  # checked before any write


MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys, tracemalloc
    from airflow.sdk import ObjectStoragePath
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.operators.session_files import deliver_session_files

    class Log:
        def info(self, *args): pass
        warning = info

    session_id, destination = sys.argv[1], sys.argv[2]
    hook = ManagedAgentsHook()
    root = ObjectStoragePath(destination)
    hook.list_files_page(scope_id=session_id)  # connection, imports and client warmed up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    delivery = deliver_session_files(hook, session_id, root, log=Log())
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"written": delivery.written, "peak_before_kib": before, "peak_after_kib": after,
                      "python_peak_bytes": traced_peak}))
    """
)


def test_a_200_mb_file_streams_with_flat_memory(hook: ManagedAgentsHook, emulator: Any, tmp_path: Path) -> None:
    size = 200 * 1024 * 1024
    session_id = session_writing(hook, emulator, [{"filename": "big.bin", "size": size}])
    env = {**os.environ, "AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT": emulator.connection_json()}
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, session_id, f"file://{tmp_path}/"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    grown_mib = (probe["peak_after_kib"] - probe["peak_before_kib"]) / 1024
    python_peak_mib = probe["python_peak_bytes"] / 2**20
    print(
        f"200 MiB delivered: peak RSS grew {grown_mib:.1f} MiB, Python allocations peaked at {python_peak_mib:.1f} MiB"
    )
    assert (tmp_path / "big.bin").stat().st_size == size
    assert grown_mib < 32, f"peak memory grew by {grown_mib:.0f} MiB while streaming a 200 MiB file"
    assert python_peak_mib < 32, f"{python_peak_mib:.0f} MiB held at once while streaming a 200 MiB file"
    (metadata,) = hook.list_files(scope_id=session_id)
    written, served = hashlib.sha256(), hashlib.sha256()
    with (tmp_path / "big.bin").open("rb") as out:
        while chunk := out.read(1024 * 1024):
            written.update(chunk)
    for block in generated_bytes(metadata.id, size):
        served.update(block)
    assert written.hexdigest() == served.hexdigest()
