"""Parse every example DAG as the dag-processor does; exit 1 naming each file that fails.

python scripts/parse_examples.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"


def main() -> int:
    # Only ours: Airflow's bundled examples are not this provider's to parse (3.0's break on some
    # pins). A setting, not DagBag's include_examples, which Airflow 3.3 no longer takes.
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    try:  # Airflow >= 3.1
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(str(EXAMPLES))
    for path, error in sorted(bag.import_errors.items()):
        print(f"{path}:\n{error}")
    print(f"{len(bag.dag_ids)} DAGs in {len(bag.dagbag_stats)} files; {len(bag.import_errors)} import errors")
    return 1 if bag.import_errors else 0


if __name__ == "__main__":
    sys.exit(main())
