"""Which of the provider's modules one deferred ``ManagedAgentsRunDeploymentOperator(
wait_for_session_end=True)`` passes through, from ``execute()`` to its XCom: every function
call counted (imports are not the flow), the emulator left out.

    .venv/bin/python scripts/flow_modules.py

Keeps ARCHITECTURE.md's "one deferred follow, end to end" honest: a new module on this path
should be a new concept, not a seam.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="flow-modules-"))


def main() -> None:
    import airflow_provider_managed_agents as package
    from airflow_provider_managed_agents.compat import TaskDeferred
    from airflow_provider_managed_agents.emulator.server import run_emulator

    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".emulator" not in info.name:
            importlib.import_module(info.name)
    from fakes import FakeTI, context

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.operators.runs import ManagedAgentsRunDeploymentOperator

    root = str(Path(package.__file__).parent)
    seen: set[str] = set()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        name = frame.f_code.co_filename
        if event == "call" and name.startswith(root) and "/emulator/" not in name:
            seen.add(os.path.relpath(name, REPO))

    with run_emulator() as emulator:
        os.environ["AIRFLOW_CONN_MANAGED_AGENTS_DEFAULT"] = emulator.connection_json()
        message = {"type": "user.message", "content": [{"type": "text", "text": "count"}]}
        deployment_id = (
            ManagedAgentsHook()
            .create_deployment(name="flow", agent="agent_demo", environment_id="env_demo", initial_events=[message])
            .id
        )
        emulator.session_script(deployment_id, turn_seconds=0.5, start_delay=0)
        task = ManagedAgentsRunDeploymentOperator(
            task_id="run", deployment_id=deployment_id, wait_for_session_end=True, deferrable=True, poll_interval=1
        )
        ctx = context(FakeTI())
        sys.setprofile(profile)
        try:
            task.execute(ctx)
        except TaskDeferred as deferred:
            trigger = type(deferred.trigger)(**deferred.trigger.serialize()[1])
            event = asyncio.run(anext(aiter(trigger.run())))
            task.resume_execution(deferred.method_name, {"event": event.payload}, ctx)
        finally:
            sys.setprofile(None)
    print(f"{len(seen)} modules")
    for module in sorted(seen):
        print(f"  {module}")


if __name__ == "__main__":
    main()
