"""The web UI in headless Chromium (Debian's, driven by Playwright): log in, create a Managed
Agents connection through the form, press Test (a good key and a bad one), open a finished DAG run
and follow the operator's extra link. Screenshots go to tests/system/artifacts/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling out, which this machine refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def check_ui(
    base: str,
    user: str,
    password: str,
    emulator: Any,
    dag_id: str,
    run_id: str,
    deployment_id: str,
    artifacts: Path,
    failures: list[str],
    check: Callable[[bool, str, list[str]], None],
) -> None:
    from playwright.sync_api import sync_playwright

    artifacts.mkdir(parents=True, exist_ok=True)
    emulator_url = urlparse(emulator.base_url)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            page.goto(f"{base}/")
            page.get_by_label("Username").fill(user)
            page.get_by_label("Password").fill(password)
            page.screenshot(path=artifacts / "01-login.png")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "login" not in url)

            for conn_id, key in (("managed_agents_ui", emulator.api_key), ("managed_agents_bad_key", "wrong-key")):
                page.goto(f"{base}/connections")
                page.get_by_role("button", name="Add Connection").click()
                page.locator("input[role=combobox]").first.click()
                page.keyboard.type("Anthropic Managed")
                page.get_by_role("option", name="Anthropic Managed Agents").click()
                labels = page.locator("label").all_inner_texts()
                check(
                    all(
                        any(name in label for label in labels)
                        for name in (
                            "Base URL",
                            "API key",
                            "Workspace ID",
                            "Extra betas",
                            "Timeout",
                            "Max retries",
                            "Console base URL",
                        )
                    ),
                    f"the form shows the Managed Agents fields: {labels}",
                    failures,
                )
                check(
                    page.get_by_label("API key").get_attribute("type") == "password",
                    "the API key is a password field",
                    failures,
                )
                check(
                    page.get_by_label("Base URL").get_attribute("placeholder") == "https://api.anthropic.com",
                    "the base URL shows its default as placeholder",
                    failures,
                )
                page.get_by_label("Connection ID").fill(conn_id)
                page.get_by_label("Base URL").fill(f"{emulator_url.scheme}://{emulator_url.hostname}")
                page.get_by_label("Port (optional)").fill(str(emulator_url.port))
                page.get_by_label("API key").fill(key)
                page.screenshot(path=artifacts / f"02-form-{conn_id}.png")
                page.get_by_role("button", name="Save").click()
                page.get_by_text(conn_id).wait_for()

            page.goto(f"{base}/connections")
            rows = {"managed_agents_ui": "Connected to", "managed_agents_bad_key": "API key was rejected"}
            for conn_id, expected in rows.items():
                row = page.get_by_role("row").filter(has_text=conn_id)
                with page.expect_response(lambda r: "connections/test" in r.url) as answer:
                    row.get_by_role("button", name="Test Connection").click()
                body = answer.value.json()
                page.wait_for_timeout(500)
                page.screenshot(path=artifacts / f"03-test-{conn_id}.png")
                check(expected in str(body.get("message")), f"Test on {conn_id}: {body}", failures)

            page.goto(f"{base}/dags/{dag_id}/runs/{run_id}/tasks/create_deployment/details")
            page.get_by_text("Extra Links").wait_for()
            page.screenshot(path=artifacts / "04-task-details.png")
            with page.context.expect_page() as opened:
                page.get_by_text("Managed Agents deployment", exact=True).click()
            console = opened.value
            console.wait_for_load_state()
            console.screenshot(path=artifacts / "05-extra-link-target.png")
            shown = console.locator("#deployment-id").inner_text()
            check(
                shown == deployment_id and f"/deployments/{deployment_id}" in console.url,
                f"the extra link opened {console.url} showing {shown}",
                failures,
            )
        finally:
            browser.close()
