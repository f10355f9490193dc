"""`make test-matrix`: the Airflow and Python versions pyproject.toml claims, each in its own venv.

First the distribution is built (the wheel a pip user installs). Then for each cell: a venv from
a pyenv interpreter already on the machine (never downloaded), that wheel installed with its test
extra as the README tells users to, without Airflow's constraints file: that exact Airflow plus
the pins of ``constraints/`` for its line; then every example DAG parsed (zero import errors), the
unit and integration tests (but the ``slow`` ones), every example DAG that runs offline under
``airflow dags test`` against the emulator, and the README's Quickstart command by command
(``scripts/readme_quickstart.py``).

Cells run two at a time (``MATRIX_LANES``; one per core of CI's machine): most of a cell's time is
``airflow dags test`` waiting on polls, and each cell has its own venv, Airflow home, emulator
and ports. The Quickstart's emulator listens on the README's fixed port, so one cell at a time
runs it. Longest cells start first.

Prints the matrix (Airflow x Python -> result, time) and writes ``.matrix/results.json``. A cell
whose Airflow does not support its Python is listed as such, not run. ``MATRIX_CELLS`` (e.g.
``3.0.0/3.11``) runs a subset.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".matrix"
UV = Path(sys.executable).parent / "uv"
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
LANES = int(os.environ.get("MATRIX_LANES", "2"))
# The README's Quickstart starts its emulator on a fixed port: one cell at a time.
QUICKSTART_PORT = threading.Lock()


@dataclass(frozen=True)
class Cell:
    airflow: str
    python: str
    constraints: str | None = None
    unsupported: str | None = None  # why this Airflow cannot run on this Python
    expected_seconds: int = 0  # about how long it took alone last time: the longest start first

    @property
    def name(self) -> str:
        return f"{self.airflow}/{self.python}"


# Every minor line the README claims, and both ends of Python: 3.0.0 is the floor of
# pyproject.toml's range (the pins cover every 3.0.x); 3.1, 3.2 and 3.3 at their newest patch (what
# `pip install "apache-airflow~=3.N.0"` gives users); 3.3 on the oldest and the newest Python.
CELLS = [
    Cell("3.0.0", "3.11", constraints="airflow-3.0.txt", expected_seconds=270),
    Cell("3.0.0", "3.13", unsupported="Airflow 3.0 requires Python < 3.13"),
    Cell("3.1.8", "3.12", constraints="airflow-3.1.txt", expected_seconds=400),
    Cell("3.2.2", "3.12", constraints="airflow-3.2.txt", expected_seconds=480),
    Cell("3.3.2", "3.11", expected_seconds=390),
    Cell("3.3.2", "3.13", expected_seconds=400),
]


def interpreter(version: str) -> Path:
    """A pyenv interpreter of this minor version on this machine (the newest patch found)."""
    found = sorted(
        (p for p in (PYENV_ROOT / "versions").glob(f"{version}.*") if (p / "bin" / "python").exists()),
        key=lambda p: [int(part) for part in p.name.split(".") if part.isdigit()],
    )
    if not found:
        on_path = shutil.which(f"python{version}")
        if on_path:
            return Path(on_path)
        raise SystemExit(f"no Python {version} on this machine (looked in {PYENV_ROOT / 'versions'} and PATH)")
    return found[-1] / "bin" / "python"


def step(
    cell: Cell, what: str, command: list[str], log: Path, env: dict[str, str] | None = None, timeout: float = 900
) -> bool:
    started = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        try:
            code = subprocess.run(
                command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            code = -1
            out.write(f"timed out after {timeout:.0f} s\n")
    outcome = "ok" if code == 0 else f"FAILED (exit {code})"
    print(f"  [{cell.name}] {what}: {outcome} in {time.monotonic() - started:.0f} s")
    return code == 0


def build_wheel() -> Path:
    """The distribution a pip user installs, built from this checkout."""
    dist = WORK / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    subprocess.run([str(UV), "build", "--wheel", "--quiet", "--out-dir", str(dist)], cwd=REPO, check=True)
    (wheel,) = dist.glob("airflow_provider_managed_agents-*.whl")
    return wheel


def run_cell(cell: Cell, wheel: Path) -> dict[str, object]:
    home = WORK / f"af{cell.airflow}-py{cell.python}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    log = home / "log.txt"
    venv = home / "venv"
    python, bin_dir = venv / "bin" / "python", venv / "bin"
    started = time.monotonic()
    print(f"  [{cell.name}] Airflow {cell.airflow} on Python {cell.python} (log: {log.relative_to(REPO)})")
    # As the README's Install section: that Airflow, the provider, the pins of its line.
    install = [str(UV), "pip", "install", "--quiet", "--python", str(python), f"apache-airflow=={cell.airflow}"]
    install.append(f"{wheel}[test]")
    if cell.constraints:
        install += ["--constraint", str(REPO / "constraints" / cell.constraints)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["AIRFLOW_HOME"] = str(home / "airflow")
    env["PIP_CONSTRAINT"] = ""  # a machine-wide pip constraint is not this cell's
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    # The installed wheel, not this checkout's source, is what the tests and DAGs import: pytest
    # runs as a script (no current directory on the path).
    pytest = [str(bin_dir / "pytest"), "-q", "-p", "no:cacheprovider"]
    ok = (
        step(cell, "venv", [str(UV), "venv", "--quiet", "--python", str(interpreter(cell.python)), str(venv)], log, env)
        and step(cell, "install", install, log, env)
        and step(cell, "versions", [str(python), "-c", VERSIONS], log, env)
        and step(cell, "example DAGs parse", [str(python), "scripts/parse_examples.py"], log, env)
        and step(
            cell,
            "unit + integration tests",
            [*pytest, "-n", "2", "-m", "not slow", "tests/unit", "tests/integration"],
            log,
            env,
        )
        and step(
            cell,
            "every offline example DAG with airflow dags test",
            [str(python), "scripts/demo.py", "--home", str(home / "demo"), "--all"],
            log,
            env,
            timeout=1800,  # a hang guard: about 300 s alone, over 900 s beside a loaded neighbour
        )
    )
    if ok:
        with QUICKSTART_PORT:
            quickstart = [str(python), "scripts/readme_quickstart.py"]
            ok = step(cell, "the README's Quickstart, as written", quickstart, log, env)
    elapsed = time.monotonic() - started
    return {"airflow": cell.airflow, "python": cell.python, "result": "pass" if ok else "FAIL", "seconds": elapsed}


VERSIONS = (
    "import sys, airflow, pydantic, httpx; "
    "print('python', sys.version.split()[0], 'airflow', airflow.__version__, "
    "'pydantic', pydantic.VERSION, 'httpx', httpx.__version__)"
)


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows as it happens
    wanted = {c.strip() for c in os.environ.get("MATRIX_CELLS", "").split(",") if c.strip()}
    cells = [c for c in CELLS if not wanted or c.name in wanted]
    WORK.mkdir(exist_ok=True)
    started = time.monotonic()
    print(f"test-matrix: {len(cells)} cell(s), {LANES} at a time")
    wheel = build_wheel()
    print(f"  built {wheel.relative_to(REPO)}")
    results: dict[Cell, dict[str, object]] = {}
    for cell in cells:
        if cell.unsupported:
            print(f"  Airflow {cell.airflow} on Python {cell.python}: not run ({cell.unsupported})")
            results[cell] = {"airflow": cell.airflow, "python": cell.python, "result": "n/a", "why": cell.unsupported}
    runnable = sorted((c for c in cells if not c.unsupported), key=lambda c: -c.expected_seconds)
    with ThreadPoolExecutor(max_workers=max(LANES, 1)) as lanes:
        for cell, result in zip(runnable, lanes.map(lambda c: run_cell(c, wheel), runnable), strict=True):
            results[cell] = result
    ordered = [results[c] for c in cells]
    print("\n| Airflow | Python | result | time |\n| --- | --- | --- | --- |")
    for r in ordered:
        seconds = r.get("seconds")
        took = f"{seconds:.0f} s" if isinstance(seconds, float) else "-"
        result = f"{r['result']} ({r['why']})" if "why" in r else r["result"]
        print(f"| {r['airflow']} | {r['python']} | {result} | {took} |")
    print(f"\n{len(runnable)} cell(s) in {time.monotonic() - started:.0f} s, {LANES} at a time")
    (WORK / "results.json").write_text(json.dumps(ordered, indent=2))
    return 1 if any(r["result"] == "FAIL" for r in ordered) else 0


if __name__ == "__main__":
    sys.exit(main())
