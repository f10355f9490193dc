"""Shared by the benchmarks: repeated timing, summary statistics, the table and the JSON file.

Every figure is reported next to a baseline measured in the same run, as a ratio.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PYTHON = sys.executable


@dataclass
class Sample:
    name: str
    values: list[float]
    unit: str = "s"

    @property
    def minimum(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def maximum(self) -> float:
        return max(self.values)


def repeat(fn: Callable[[], float], times: int) -> list[float]:
    return [fn() for _ in range(times)]


def time_subprocess(code: str, env: dict[str, str] | None = None) -> float:
    """Wall time of a fresh interpreter running ``code``."""
    started = time.perf_counter()
    subprocess.run([PYTHON, "-c", code], check=True, env=env, capture_output=True)
    return time.perf_counter() - started


def time_import_in_fresh_interpreter(setup: str, imports: str, env: dict[str, str] | None = None) -> float:
    """Seconds ``imports`` takes in a fresh interpreter that already ran ``setup``: the cost a DAG
    file pays for those modules, free of interpreter start-up noise."""
    code = f"{setup}\nimport time\n_t = time.perf_counter()\n{imports}\nprint(time.perf_counter() - _t)"
    out = subprocess.run([PYTHON, "-c", code], check=True, env=env, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in header]] + [[f"{c:.4f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n## {title}")
    for n, row in enumerate(cells):
        print("| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def _jsonable(value: object) -> object:
    return asdict(value) if hasattr(value, "__dataclass_fields__") else str(value)  # type: ignore[call-overload]


def write_results(name: str, payload: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "python": platform.python_version(), "machine": platform.machine(), **payload}
    path.write_text(
        json.dumps(payload, indent=2, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o))
    )
    print(f"(written to {path.relative_to(RESULTS.parent.parent)})")
    return path
