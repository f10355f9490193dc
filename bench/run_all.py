"""`make bench`: every benchmark in turn; each prints its table and writes bench/results/*.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "parse_cost.py",
    "call_overhead.py",
    "waiting_cost.py",
    "triggerer_scale.py",
    "listing.py",
    "session_cost.py",
    "watchers.py",
    "session_scale.py",
    "webhooks.py",
]


def main() -> int:
    failed = [name for name in BENCHMARKS if subprocess.run([sys.executable, str(HERE / name)]).returncode != 0]
    if failed:
        print(f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
