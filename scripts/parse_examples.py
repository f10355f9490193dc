"""Parse every example DAG as the dag-processor does; exit 1 naming each file that fails.

python scripts/parse_examples.py
"""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"


def main() -> int:
    try:  # Airflow >= 3.1
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(str(EXAMPLES), include_examples=False)
    for path, error in sorted(bag.import_errors.items()):
        print(f"{path}:\n{error}")
    print(f"{len(bag.dag_ids)} DAGs in {len(bag.dagbag_stats)} files; {len(bag.import_errors)} import errors")
    return 1 if bag.import_errors else 0


if __name__ == "__main__":
    sys.exit(main())
