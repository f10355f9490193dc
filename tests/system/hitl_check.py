"""`make test-system`, when the agent asks: a person answers in Airflow, with the real scheduler,
triggerer and api-server (Airflow >= 3.1; skipped below, saying why).

Two DAGs (tests/system/dags/approvals.py, copied into the DAGs folder here) run a deployment whose
session asks to run a shell command. In ``approve_in_the_ui`` the request appears in Airflow's
Required Actions (with ``--ui``, headless Chromium screenshots the task's request and the list to
tests/system/artifacts/), the person approves through the REST API, the session finishes and the
task succeeds, recording who approved. Nobody answers ``approval_times_out``: after its
``approval_timeout`` the scheduler applies the request's default (deny), the session ends as the
agent's script says for a denial, and the task succeeds.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from run_system import PASSWORD, Api, defer_exit_seen, print_failed_task_logs, wait_for, wait_for_run
from ui_check import CHROMIUM, CHROMIUM_ARGS

DAGS_FILE = Path(__file__).resolve().parent / "dags" / "approvals.py"
TASK = "clean_up"
SCRIPT = {
    # 15 s turns: a deferred task's trigger fires after the scheduler took in the deferral (#66374).
    "turn_seconds": 15,
    "actions": [[{"tool": "bash", "input": {"command": "psql -c 'DROP TABLE orders_tmp'", "password": "hunter2"}}]],
    "final_text": "Dropped orders_tmp.",
    "when_denied": {"final_text": "Left orders_tmp in place: nobody approved dropping it."},
}
MESSAGE = {"type": "user.message", "content": [{"type": "text", "text": "Drop the empty scratch tables."}]}


def check_hitl(
    api: Api,
    base: str,
    home: Path,
    hook: Any,
    emulator: Any,
    artifacts: Path | None,
    failures: list[str],
    check: Callable[[bool, str, list[str]], None],
) -> None:
    from airflow_provider_managed_agents.compat import human_in_the_loop

    mode, missing = human_in_the_loop()
    if mode is None:
        print(f"  skipped: {missing}")
        return
    shutil.copy(DAGS_FILE, home / "dags" / DAGS_FILE.name)
    wait_for(
        "the approval DAGs to be parsed",
        lambda: (
            {"approve_in_the_ui", "approval_times_out"} <= {d["dag_id"] for d in api.get("/dags", limit=100)["dags"]}
        ),
        180,
    )
    runs = {}
    for dag_id in ("approve_in_the_ui", "approval_times_out"):
        deployment = hook.create_deployment(
            name=dag_id, agent="agent_demo", environment_id="env_demo", initial_events=[MESSAGE]
        )
        emulator.control("POST", f"deployments/{deployment.id}/session_script", SCRIPT)
        runs[dag_id] = api.trigger(dag_id, {"deployment_id": deployment.id})

    # A person approves, through the REST API, what the UI shows.
    dag_id, run_id = "approve_in_the_ui", runs["approve_in_the_ui"]
    detail_path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{TASK}/-1/hitlDetails"
    request = wait_for(
        "the request to wait in Required Actions",
        lambda: (d := api.get(detail_path))["task_instance"]["state"] in ("awaiting_input", "deferred") and d,
        240,
        every=1,
    )
    body = request["body"]
    check(
        request["subject"].startswith("Demo agent asks to use tools in session sesn_")
        and "DROP TABLE orders_tmp" in body
        and "hunter2" not in body
        and request["options"] == ["Allow", "Deny"]
        and request["defaults"] == ["Deny"],
        f"the request names the agent, the session and the call, masked ({request['task_instance']['state']})",
        failures,
    )
    if artifacts is not None:
        screenshot(base, dag_id, run_id, request["subject"], artifacts, failures, check)
    # The task left its worker to wait; the scheduler must have taken that in before it resumes (#66374).
    wait_for("the scheduler to see the task leave", lambda: defer_exit_seen(home, dag_id, TASK, run_id), 120, every=0.5)
    answer = api.client.patch(detail_path, json={"chosen_options": ["Allow"], "params_input": {}})
    check(answer.status_code == 200, f"the answer was recorded: {answer.status_code} {answer.text[:200]}", failures)
    state = wait_for_run(api, dag_id, run_id, 300)
    check(state == "success", f"{dag_id} finished {state} after the approval", failures)
    if state != "success":
        print_failed_task_logs(api, home, dag_id, run_id)
    actions = api.xcom(dag_id, run_id, TASK, "actions")
    check(
        [(a["tool"], a["decision"], a["by"]) for a in actions] == [("bash", "allow", "admin")],
        f"XCom actions records who approved: {actions}",
        failures,
    )
    check(api.xcom(dag_id, run_id, TASK, "final_message") == "Dropped orders_tmp.", "the session finished", failures)

    # Nobody answers: the scheduler's sweep applies the default after approval_timeout.
    dag_id, run_id = "approval_times_out", runs["approval_times_out"]
    state = wait_for_run(api, dag_id, run_id, 300)
    check(state == "success", f"{dag_id} finished {state} after its response timeout", failures)
    if state != "success":
        print_failed_task_logs(api, home, dag_id, run_id)
    actions = api.xcom(dag_id, run_id, TASK, "actions")
    check(
        [(a["decision"], a["timed_out"]) for a in actions] == [("deny", True)]
        and actions[0]["by"].startswith("nobody"),
        f"the response timeout applied the default, deny: {actions}",
        failures,
    )
    final = api.xcom(dag_id, run_id, TASK, "final_message")
    check(final == SCRIPT["when_denied"]["final_text"], f"the denial led to the scripted ending: {final!r}", failures)


def screenshot(
    base: str,
    dag_id: str,
    run_id: str,
    subject: str,
    artifacts: Path,
    failures: list[str],
    check: Callable[[bool, str, list[str]], None],
) -> None:
    """The request as a person sees it: the task's Required Actions review, and the list."""
    from playwright.sync_api import sync_playwright

    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(30_000)
        try:
            page.goto(f"{base}/")
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "login" not in url)
            page.goto(f"{base}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{TASK}/required_actions")
            page.get_by_text(subject).first.wait_for()
            page.get_by_text("DROP TABLE orders_tmp").first.wait_for()
            page.wait_for_timeout(1000)
            page.screenshot(path=artifacts / "07-required-action.png")
            shown = page.locator("body").inner_text()
            check(
                all(text in shown for text in ("Allow", "Deny", "Deny message", "bash")),
                "the UI shows the request: the call, Allow, Deny and the deny message field",
                failures,
            )
            page.goto(f"{base}/required_actions?response_received=false")
            page.get_by_text(subject).first.wait_for()
            page.wait_for_timeout(1000)
            page.screenshot(path=artifacts / "08-required-actions-list.png")
            print(f"  screenshots of the request in {artifacts}")
        finally:
            browser.close()
