"""Benchmark 1: what this provider adds to every DAG parse.

(a) The import cost of the operator and sensor modules on top of ``import airflow.sdk``, in fresh
    interpreters, next to the same for the Anthropic provider's agent operator and the dbt Cloud
    provider's operators and sensors (installed by the ``bench`` extra).
(b) Parsing a DAG file of 50 of our tasks against one of 50 ``EmptyOperator`` tasks.

Run: ``make bench`` (or ``python bench/parse_cost.py --repeat 7``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    Sample,
    print_table,
    repeat,
    time_import_in_fresh_interpreter,
    time_subprocess,
    write_results,
)

BASE = "import airflow.sdk; from airflow.sdk import BaseOperator, BaseSensorOperator"
# name -> (modules a DAG file imports, package that must be installed)
CANDIDATES = {
    "airflow-provider-managed-agents": (
        "import airflow_provider_managed_agents.operators.deployments, "
        "airflow_provider_managed_agents.sensors.deployment_runs",
        "airflow_provider_managed_agents",
    ),
    "providers-anthropic (agent operator)": (
        "import airflow.providers.anthropic.operators.agent",
        "airflow.providers.anthropic",
    ),
    "providers-dbt-cloud (operators + sensors)": (
        "import airflow.providers.dbt.cloud.operators.dbt, airflow.providers.dbt.cloud.sensors.dbt",
        "airflow.providers.dbt.cloud",
    ),
    "airflow.providers.standard EmptyOperator (reference)": (
        "import airflow.providers.standard.operators.empty",
        "airflow.providers.standard",
    ),
}

DAG_TEMPLATE = """
import pendulum
from airflow.sdk import DAG
{imports}

with DAG("bench_{kind}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
    for i in range(50):
        {task}
"""
OUR_DAG = DAG_TEMPLATE.format(
    kind="ours",
    imports="from airflow_provider_managed_agents.operators.deployments import ManagedAgentsRunDeploymentOperator",
    task='ManagedAgentsRunDeploymentOperator(task_id=f"run_{i}", deployment_id="depl_x")',
)
EMPTY_DAG = DAG_TEMPLATE.format(
    kind="empty",
    imports="from airflow.providers.standard.operators.empty import EmptyOperator",
    task='EmptyOperator(task_id=f"empty_{i}")',
)
PARSE = (
    "from airflow.dag_processing.dagbag import DagBag; b = DagBag({path!r}); "
    "assert not b.import_errors, b.import_errors"
)


def installed(module: str | None) -> bool:
    if module is None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))

    # Warm the bytecode caches so that the first sample is not a compile.
    for imports, module in CANDIDATES.values():
        if installed(module):
            time_import_in_fresh_interpreter(BASE, imports, env)

    samples = {
        name: Sample(name, repeat(lambda i=imports: time_import_in_fresh_interpreter(BASE, i, env), args.repeat))
        for name, (imports, module) in CANDIDATES.items()
        if installed(module)
    }
    ours_sample = samples["airflow-provider-managed-agents"]
    rows = [(name, s.minimum, s.median, s.maximum, s.median / ours_sample.median) for name, s in samples.items()]
    print_table(
        "Import cost on top of `import airflow.sdk` (fresh interpreter each sample, seconds)",
        ["modules", "min", "median", "max", "x ours"],
        rows,
    )
    ours_added = ours_sample.median

    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for kind, text in (("50 ManagedAgentsRunDeploymentOperator", OUR_DAG), ("50 EmptyOperator", EMPTY_DAG)):
            path = Path(tmp) / f"{kind.split()[1]}.py"
            path.write_text(text)
            paths[kind] = str(path)
        for path in paths.values():
            time_subprocess(PARSE.format(path=path), env)
        dag_samples = {
            kind: Sample(kind, repeat(lambda p=path: time_subprocess(PARSE.format(path=p), env), args.repeat))
            for kind, path in paths.items()
        }
    empty = dag_samples["50 EmptyOperator"]
    ours = dag_samples["50 ManagedAgentsRunDeploymentOperator"]
    print_table(
        "Parsing a DAG file of 50 tasks (fresh interpreter incl. imports, seconds)",
        ["DAG file", "min", "median", "max", "x EmptyOperator"],
        [(s.name, s.minimum, s.median, s.maximum, s.median / empty.median) for s in dag_samples.values()],
    )
    verdict = {
        "ours_added_import_seconds": ours_added,
        "goal_added_import_seconds": 0.05,
        "dag_parse_ratio_vs_empty": ours.median / empty.median,
        "goal_dag_parse_ratio": 1.10,
    }
    print(
        f"\nours adds {ours_added * 1000:.1f} ms (goal <= 50 ms); "
        f"50-task DAG parse = {ours.median / empty.median:.3f} x EmptyOperator (goal <= 1.10)"
    )
    write_results("parse_cost", {"imports": list(samples.values()), "dag_parse": list(dag_samples.values()), **verdict})
    return 0


if __name__ == "__main__":
    sys.exit(main())
