"""Benchmark 5: iterating deployment runs through the lazy pager.

Lists N runs (1,000, 10,000 and 20,000) of one deployment with the biggest page the endpoint
allows: requests must be ceil(N / page size) and peak memory must not grow with N (items are not
kept). The hook unbinds each read response from its stream so a consumed page's raw body is
freed at once; what little httpx still leaves to the cyclic collector makes the first pages
climb slightly before the plateau, so the ratio 20,000 / 10,000 is the flatness figure.
"""

from __future__ import annotations

import math
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, write_results

from airflow_provider_managed_agents.emulator.server import start_emulator_process
from airflow_provider_managed_agents.models.params import DEPLOYMENT_RUNS_PAGE_MAX

SIZES = (1_000, 10_000, 20_000)


def main() -> int:
    emulator = start_emulator_process(api_key="bench-key")
    os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

    hook = ManagedAgentsHook()
    rows, results = [], []
    try:
        for n in SIZES:
            emulator.reset()
            deployment = hook.create_deployment(
                {
                    "agent": "agent_demo",
                    "environment_id": "env_demo",
                    "name": "listing",
                    "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
                }
            )
            emulator.control("POST", f"deployments/{deployment.id}/seed_runs", {"count": n})
            emulator.control("DELETE", "requests")
            tracemalloc.start()
            started = time.perf_counter()
            seen = sum(
                1 for _ in hook.list_deployment_runs(deployment_id=deployment.id, limit=DEPLOYMENT_RUNS_PAGE_MAX)
            )
            seconds = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            requests = emulator.request_counts()["total"]
            expected = math.ceil(n / DEPLOYMENT_RUNS_PAGE_MAX)
            rows.append((n, seen, requests, expected, round(peak / 2**20, 2), round(seconds, 2)))
            results.append(
                {
                    "runs": n,
                    "seen": seen,
                    "requests": requests,
                    "expected_requests": expected,
                    "peak_traced_mb": peak / 2**20,
                    "seconds": seconds,
                }
            )
    finally:
        emulator.stop()
    print_table(
        "Lazy listing of deployment runs (page size 1000)",
        ["runs", "seen", "requests", "ceil(N/page)", "peak traced MB", "seconds"],
        rows,
    )
    plateau = results[2]["peak_traced_mb"] / results[1]["peak_traced_mb"]
    climb = results[1]["peak_traced_mb"] / results[0]["peak_traced_mb"]
    print(f"\npeak memory 20,000 / 10,000 runs = {plateau:.2f} (flat: ~1); 10,000 / 1,000 runs = {climb:.2f}")
    write_results("listing", {"results": results, "peak_ratio_20k_over_10k": plateau, "peak_ratio_10k_over_1k": climb})
    return 0


if __name__ == "__main__":
    sys.exit(main())
