"""Run the README's Quickstart as written, in a fresh home, with the Airflow already installed in
this interpreter's environment (its first two commands make that environment and install into it:
`make test-matrix` has done that for each cell, the way the README's Install section says).

    python scripts/readme_quickstart.py

Every later command runs verbatim in one bash, ``HOME`` pointing at a temporary directory; the
DAG of the block after it is saved where the Quickstart says. Exits 1 unless the DAG run and every
task succeeded.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
MARK = "# Quickstart: run these in order"
SAVE = "# save the DAG below as "
INSTALLS = 2  # the venv and the pip install


def quickstart() -> tuple[list[str], str]:
    """The Quickstart's commands and the DAG of the Python block after them."""
    text = README.read_text()
    start = text.index(f"```bash\n{MARK}\n")
    commands = text[start:].split("\n```", 1)[0].splitlines()[2:]
    dag = re.search(r"```python\n(.*?)\n```", text[start:], flags=re.DOTALL)
    assert dag is not None, "no DAG after the Quickstart's commands"
    return commands, dag.group(1) + "\n"


def main() -> int:
    commands, dag = quickstart()
    home = Path(tempfile.mkdtemp(prefix="quickstart-"))
    lines = ["set -euo pipefail", f"export HOME={home}", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for command in commands[INSTALLS:]:
        if command.startswith(SAVE):
            target = command[len(SAVE) :].strip()
            lines += [f"cat > \"{target}\" <<'QUICKSTART_DAG'", dag.rstrip("\n"), "QUICKSTART_DAG"]
            # The harness, not the Quickstart: the emulator listens before the DAG runs.
            lines.append('until grep -q "listening on" "$AIRFLOW_HOME/emulator.log"; do sleep 0.2; done')
        else:
            lines.append(command)
    script = "\n".join(lines) + "\n"
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    print(f"Running the README's Quickstart (from `{commands[INSTALLS]}` on) in {home}", flush=True)
    done = subprocess.run(["bash", "-c", script], env=env, cwd=home, timeout=900)
    dag_id = re.search(r"airflow dags test (\w+)", "\n".join(commands))
    assert dag_id is not None
    state, tasks = last_run(home / "managed-agents-quickstart" / "airflow" / "airflow.db", dag_id.group(1))
    print(f"exit {done.returncode}; DAG {dag_id.group(1)}: {state}; tasks {tasks}")
    return 0 if done.returncode == 0 and state == "success" and set(tasks.values()) == {"success"} else 1


def last_run(db: Path, dag_id: str) -> tuple[str | None, dict[str, str]]:
    if not db.exists():
        return None, {}
    with sqlite3.connect(db) as conn:
        row = conn.execute("select run_id, state from dag_run where dag_id = ? order by id desc limit 1", (dag_id,))
        found = row.fetchone()
        if found is None:
            return None, {}
        tasks = conn.execute(
            "select task_id, state from task_instance where dag_id = ? and run_id = ?", (dag_id, found[0])
        )
        return found[1], dict(tasks.fetchall())


if __name__ == "__main__":
    sys.exit(main())
