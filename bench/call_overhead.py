"""Benchmark 2: the hook's cost per call, next to raw httpx and the official SDK, same emulator.

Each client does the same two requests (get a deployment; list a deployment's runs) against one
emulator process, with keep-alive, many times; the table gives the median per call and the
ratio to raw httpx measured in the same run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Sample, print_table, write_results

from airflow_provider_managed_agents.emulator.server import start_emulator_process
from airflow_provider_managed_agents.hooks.wire import API_VERSION, MANAGED_AGENTS_BETA


def per_call(fn: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    # httpx logs every request at INFO under Airflow's logging set-up: a line per call would be
    # timed too, and bury the table.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    emulator = start_emulator_process(api_key="bench-key")
    try:
        os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
        from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

        hook = ManagedAgentsHook()
        deployment = hook.create_deployment(
            {
                "agent": "agent_demo",
                "environment_id": "env_demo",
                "name": "bench",
                "initial_events": [{"type": "user.message", "content": [{"type": "text", "text": "go"}]}],
                "schedule": {"type": "cron", "expression": "0 9 * * 1-5", "timezone": "UTC"},
            }
        )
        emulator.control("POST", f"deployments/{deployment.id}/seed_runs", {"count": 20})
        raw = httpx.Client(
            base_url=emulator.base_url,
            headers={"x-api-key": "bench-key", "anthropic-version": API_VERSION, "anthropic-beta": MANAGED_AGENTS_BETA},
        )
        clients: dict[str, dict[str, Callable[[], object]]] = {
            "raw httpx (baseline)": {
                "get_deployment": lambda: raw.get(f"/v1/deployments/{deployment.id}").json(),
                "list_deployment_runs": lambda: raw.get(
                    "/v1/deployment_runs", params={"deployment_id": deployment.id}
                ).json(),
            },
            "ManagedAgentsHook": {
                "get_deployment": lambda: hook.get_deployment(deployment.id),
                "list_deployment_runs": lambda: hook.list_deployment_runs_page(deployment_id=deployment.id),
            },
        }
        try:
            import anthropic

            sdk = anthropic.Anthropic(api_key="bench-key", base_url=emulator.base_url)
            clients["anthropic SDK"] = {
                "get_deployment": lambda: sdk.beta.deployments.retrieve(deployment.id),
                "list_deployment_runs": lambda: sdk.beta.deployment_runs.list(deployment_id=deployment.id),
            }
        except Exception as exc:  # the bench extra is not installed
            print(f"(anthropic SDK skipped: {type(exc).__name__}: {exc})")

        results: dict[str, dict[str, Sample]] = {}
        for operations in clients.values():
            for fn in operations.values():
                per_call(fn, 20)  # warm up: connection, caches
        for operation in ("get_deployment", "list_deployment_runs"):
            for client, operations in clients.items():
                values = [per_call(operations[operation], args.calls) for _ in range(args.repeat)]
                results.setdefault(operation, {})[client] = Sample(f"{client} {operation}", values)
        rows = []
        for operation, by_client in results.items():
            base = by_client["raw httpx (baseline)"].median
            for client, sample in by_client.items():
                rows.append(
                    (
                        operation,
                        client,
                        sample.minimum * 1e6,
                        sample.median * 1e6,
                        sample.maximum * 1e6,
                        sample.median / base,
                    )
                )
        print_table(
            "Per-call round trip against the emulator (microseconds)",
            ["operation", "client", "min", "median", "max", "x raw httpx"],
            rows,
        )
        ratios = {op: by["ManagedAgentsHook"].median / by["raw httpx (baseline)"].median for op, by in results.items()}
        print(f"\nhook / raw httpx: {', '.join(f'{k} {v:.3f}' for k, v in ratios.items())} (goal <= 1.15)")
        write_results(
            "call_overhead",
            {"samples": {op: list(by.values()) for op, by in results.items()}, "hook_over_raw": ratios, "goal": 1.15},
        )
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
