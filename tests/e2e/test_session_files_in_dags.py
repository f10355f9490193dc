"""The files operator in real DAGs (`airflow dags test` against the emulator): a session's files
delivered to a ``file://`` ObjectStoragePath, a second delivery downloading none, a filter, and
the example DAG in which the next task reads the agent's report from object storage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(400)

REPORT = "Publish: no\n\nRow 17 is a duplicate of row 16.\n"
FILES = [
    {"filename": "report.md", "content": REPORT},
    {"filename": "tables/rejected.csv", "content": "row,reason\n17,duplicate\n"},
    {"filename": "trace.bin", "size": 1_500_000},
]
DOWNLOAD = "GET /v1/files/{file_id}/content"


def test_a_second_delivery_of_the_same_session_downloads_none(
    run_dag: Any, managed_agents_emulator: Any, tmp_path: Path
) -> None:
    managed_agents_emulator.control("POST", "sessions/default_script", {"files": FILES, "turn_seconds": 0.5})
    result = run_dag("session_files_twice", test_dags=True, env={"AIRFLOW_VAR_SESSION_FILES_URL": f"file://{tmp_path}"})
    assert result.state == "success", result
    first, again = result.xcom[("deliver", "return_value")], result.xcom[("deliver_again", "return_value")]
    assert sorted(first) == sorted(again) and len(first) == 3
    assert sorted(result.xcom[("deliver", "written")]) == sorted(first)
    assert result.xcom[("deliver_again", "written")] == [] and sorted(
        result.xcom[("deliver_again", "skipped")]
    ) == sorted(first)
    report = Path(next(p for p in first if p.endswith("/report.md")).removeprefix("file://"))
    assert report.read_text() == REPORT
    assert (report.parent / "tables" / "rejected.csv").read_text().startswith("row,reason")
    assert (report.parent / "trace.bin").stat().st_size == 1_500_000
    (markdown,) = result.xcom[("deliver_markdown", "return_value")]
    assert markdown.endswith("/md/report.md") and result.xcom[("deliver_markdown", "written")] == [markdown]
    session_id = result.xcom[("run", "session_id")]
    assert result.xcom[("deliver", "session_url")].endswith(f"/sessions/{session_id}")
    assert {f["file_id"] for f in result.xcom[("deliver", "files")]} == {
        f["file_id"] for f in result.xcom[("deliver_again", "files")]
    }
    # Three files for the first delivery, one for the markdown one, none for the second.
    assert managed_agents_emulator.request_counts()["by_endpoint"][DOWNLOAD] == 4


def test_the_next_task_reads_the_agents_report_from_object_storage(
    run_dag: Any, managed_agents_emulator: Any, tmp_path: Path
) -> None:
    managed_agents_emulator.control("POST", "sessions/default_script", {"files": FILES})
    result = run_dag(
        "agent_report_to_object_storage", env={"AIRFLOW_VAR_MANAGED_AGENTS_REPORTS_URL": f"file://{tmp_path}"}
    )
    assert result.state == "success", result
    read = result.xcom[("read_report", "return_value")]
    assert read["verdict"] == "Publish: no" and read["size"] == len(REPORT.encode())
    (delivered,) = result.xcom[("deliver_report", "return_value")]  # the markdown only
    assert delivered == read["path"] and Path(delivered.removeprefix("file://")).is_relative_to(tmp_path)
    assert result.task_states["archive"] == "success"
    records = list(tmp_path.rglob(".managed-agents/report.md.json"))
    assert (
        len(records) == 1
        and json.loads(records[0].read_text())["session_id"] == result.xcom[("write_report", "session_id")]
    )
