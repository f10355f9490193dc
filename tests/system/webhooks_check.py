"""`make test-system`, webhooks: the emulator delivering to the receiver on the real api-server.

A per-minute deployment (paused in the emulator until this step, so that its fires start here)
is watched by ``react_to_pushed_runs`` (``delivery="webhook"``: no watcher polls it) and
``after_pushed_sessions_end`` (its session endings), from example_dags/react_to_pushed_runs.py.

1. Its first real fire starts the DAG through the webhook: the asset has no watcher at all.
2. The api-server is killed (-9) as the emulator delivers a fire, and again before the next
   fire, and restarted each time (duplicated deliveries injected): the emulator's retried
   deliveries start exactly one DAG run per fire.
3. 100 forged deliveries (another secret, a tampered body, a replay ten minutes late, no or a
   garbage signature, and genuine deliveries replayed) about a run nobody announced start
   nothing and record nothing; the genuine delivery of that run then starts the DAG once.
4. Each session that ended started the session-ended DAG once.
5. Figures, beside the polling watcher of the same run: from a run's creation to its asset
   event, API requests per announced run, and a quiet stretch's requests (none).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: webhook_support

from webhook_support import event, plugin_path, signed  # noqa: E402

from airflow_provider_managed_agents.assets import runs_asset_key  # noqa: E402
from airflow_provider_managed_agents.webhooks import EVENTS_PATH, URL_PREFIX  # noqa: E402
from airflow_provider_managed_agents.webhooks.signing import new_secret  # noqa: E402

PUSHED_DAGS = {"react_to_pushed_runs": "report", "after_pushed_sessions_end": "review"}
RUN_READS = "GET /v1/deployment_runs/{deployment_run_id}"
# Long enough to ride out an api-server restart (about 3 minutes in all).
RETRY_DELAYS = [1, 2, 3, *([5] * 35)]
FORGED = 100


class WebhooksCheck:
    """Made before Airflow starts (the deployment's id and the secret go into its environment);
    :meth:`run` once Airflow is up."""

    def __init__(self, emulator: Any, hook: Any, port: int, home: Path):
        self.emulator, self.hook, self.home = emulator, hook, home
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}{URL_PREFIX}{EVENTS_PATH}"
        self.deployment_id = hook.create_deployment(
            name="pushed by webhooks",
            agent="agent_demo",
            environment_id="env_demo",
            initial_events=[{"type": "user.message", "content": [{"type": "text", "text": "pushed review"}]}],
            schedule={"type": "cron", "expression": "* * * * *", "timezone": "UTC"},
        ).id
        hook.pause_deployment(self.deployment_id)  # no fire before the DAGs watch it
        events = ["deployment_run.started", "deployment_run.succeeded", "deployment_run.failed"]
        events += ["session.status_idled", "session.status_terminated", "session.outcome_evaluation_ended"]
        endpoint = emulator.control(
            "POST", "webhooks", {"url": self.url, "events": events, "retry_delays": RETRY_DELAYS, "timeout_seconds": 10}
        )
        self.secret = endpoint["signing_secret"]
        self.figures: dict[str, Any] = {}

    def env(self) -> dict[str, str]:
        env = {
            "MANAGED_AGENTS_PUSHED_DEPLOYMENT_ID": self.deployment_id,
            "AIRFLOW_CONN_MANAGED_AGENTS_WEBHOOK_DEFAULT": json.dumps(
                {"conn_type": "generic", "password": self.secret}
            ),
        }
        extra = plugin_path(self.home / "entry-point")
        if extra is not None:  # an installation older than the plugin's entry point: the same one, declared here
            print(f"  (the installed distribution predates the plugin's entry point; declaring it from {extra})")
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra), os.environ.get("PYTHONPATH", "")) if p)
        return env

    # --- the scenario -----------------------------------------------------------------------

    def run(self, api: Any, env: dict[str, str], processes: dict[str, Any], failures: list[str], check: Any) -> None:
        import run_system as system  # type: ignore[import-not-found]

        self.system, self.api, self.check, self.failures = system, api, check, failures
        self.watched = env.get("MANAGED_AGENTS_WATCHED_DEPLOYMENT_ID", "")
        print("\nWebhooks: the emulator delivers to the api-server's receiver")
        system.wait_for(
            "the webhook DAGs to be parsed",
            lambda: set(PUSHED_DAGS) <= {d["dag_id"] for d in api.get("/dags", limit=100)["dags"]},
            180,
        )
        for dag_id in PUSHED_DAGS:
            api.client.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        health = httpx.get(f"{self.base}{URL_PREFIX}/health", timeout=10)
        check(health.json() == {"configured": True}, f"the receiver is mounted and configured: {health.text}", failures)
        check(self.watchers() == 0, "the pushed asset has no watcher: nothing polls it", failures)

        # 1. A real per-minute fire, pushed.
        self.emulator.control("DELETE", "requests")
        started_at = time.time()
        self.hook.unpause_deployment(self.deployment_id)
        first = system.wait_for("the first per-minute fire", lambda: self.fire_after(started_at), 90, every=0.2)
        self.hook.pause_deployment(self.deployment_id)
        system.wait_for("the first fire to start the DAG", lambda: first["id"] in self.reported(), 120, every=1)
        print(f"  fire {first['id']} started react_to_pushed_runs through its webhook")

        # 2. The api-server killed as the emulator delivers a fire, then before a fire; restarted
        # each time; duplicated deliveries injected. From here on the fires come at our pace.
        self.emulator.control("POST", "webhooks/faults", {"kinds": ["duplicate"], "rate": 0.5, "seed": 11})
        for in_flight in (True, False):
            if in_flight:
                fire = self.fire()  # its deliveries are on their way as the api-server dies
                self.kill(processes["api-server"], "as the emulator delivered " + fire["id"])
            else:
                self.kill(processes["api-server"], "before the next fire")
                fire = self.fire()
            system.wait_for(
                f"the deliveries of {fire['id']} to be tried",
                lambda fire=fire: self.tried(fire["id"]),
                60,
            )
            processes["api-server"] = self.restart(env)
            system.wait_for(f"{fire['id']} to start the DAG", lambda fire=fire: fire["id"] in self.reported(), 240, 2)
        self.emulator.control("DELETE", "webhooks/faults")
        system.wait_for("the retried deliveries", self.settled, 240, every=2)
        fires = self.runs()
        per_dag_run = self.reported_by_dag_run()
        retried = [d for d in self.deliveries() if d["type"].startswith("deployment_run") and len(d["attempts"]) > 1]
        check(
            sorted(per_dag_run) == sorted([r["id"]] for r in fires),
            f"{len(fires)} fires, each started exactly one run of react_to_pushed_runs, alone ({len(per_dag_run)} "
            f"DAG runs; {len(retried)} deliveries retried across two kill -9s of the api-server, duplicates "
            "injected)",
            failures,
        )
        announced = self.asset_events(runs_asset_key(self.deployment_id, "schedule"))
        check(
            sorted(announced) == sorted(r["id"] for r in fires),
            f"one asset event per fire ({len(announced)} for {len(fires)} fires)",
            failures,
        )

        # 3. Forged deliveries about a run nobody announced.
        self.forged(failures)

        # 4. Session endings.
        runs = self.runs()
        ended = {r["session_id"] for r in runs if r["session_id"] and self.session_ended(r["session_id"])}
        system.wait_for("the session-ended DAG", lambda: ended <= set(self.sessions_reported()), 180, every=2)
        reported_sessions = self.sessions_reported()
        check(
            sorted(s for s in reported_sessions if s in ended) == sorted(ended) and len(ended) > 0,
            f"{len(ended)} session endings each started after_pushed_sessions_end exactly once",
            failures,
        )

        # 5. Figures.
        self.measure(runs)

    # --- steps ------------------------------------------------------------------------------

    def forged(self, failures: list[str]) -> None:
        # The next fire's deliveries are held (for ten minutes): its run is announced by nobody.
        self.emulator.control("POST", "webhooks/faults", {"kinds": ["delay"], "delay_ms": 600_000, "count": 2})
        fire = self.fire()
        self.emulator.control("DELETE", "webhooks/faults")
        target = event("deployment_run.succeeded", fire["id"])
        genuine_ids = [d["event_id"] for d in self.deliveries() if d["state"] == "delivered"]
        before = len(self.asset_events(runs_asset_key(self.deployment_id, "schedule")))
        answers: dict[str, list[int]] = {}
        for number in range(FORGED):
            kind = ("other-secret", "tampered", "late-replay", "unsigned", "replayed")[number % 5]
            body = {**target, "id": f"wevt_forged_{number}"}
            if kind == "other-secret":
                raw, headers = signed(new_secret(), body)
            elif kind == "tampered":  # a genuine signature over another body
                raw, headers = signed(self.secret, {**body, "data": {**body["data"], "id": "drun_other"}})
                raw = json.dumps(body).encode()
            elif kind == "late-replay":  # genuinely signed, ten minutes ago
                raw, headers = signed(self.secret, body, int(time.time()) - 600)
            elif kind == "unsigned":
                raw = json.dumps(body).encode()
                headers = {"webhook-id": body["id"], "webhook-timestamp": str(int(time.time()))}
                if number % 2:
                    headers["webhook-signature"] = "v1,Zm9yZ2Vk"
            else:  # a genuine delivery captured and replayed: the same event id, still within the tolerance
                replayed = {**target, "id": genuine_ids[number % len(genuine_ids)]}
                raw, headers = signed(self.secret, replayed)
            answer = httpx.post(self.url, content=raw, headers=headers, timeout=30)
            answers.setdefault(kind, []).append(answer.status_code)
        refused = all(code in (400, 401) for kind, codes in answers.items() if kind != "replayed" for code in codes)
        replays = set(answers["replayed"])
        self.check(
            refused and replays == {200},
            f"{FORGED} forged deliveries: {sum(len(c) for k, c in answers.items() if k != 'replayed')} refused "
            f"(400/401: {sorted({c for k, cs in answers.items() if k != 'replayed' for c in cs})}), "
            f"{len(answers['replayed'])} replays of genuine ones answered {sorted(replays)} as duplicates",
            failures,
        )
        time.sleep(15)  # scheduler loops: nothing may start
        after = self.asset_events(runs_asset_key(self.deployment_id, "schedule"))
        self.check(
            len(after) == before and fire["id"] not in self.reported() and not self.recorded(f"wevt_forged_{0}"),
            f"the forged deliveries recorded nothing and started nothing ({len(after) - before} new asset events)",
            failures,
        )
        # The same run, delivered genuinely: announced, so the forgeries failed for being forged.
        raw, headers = signed(self.secret, {**target, "id": "wevt_genuine_after_forgeries"})
        answer = httpx.post(self.url, content=raw, headers=headers, timeout=30)
        self.system.wait_for("the genuine delivery's DAG run", lambda: fire["id"] in self.reported(), 120, every=1)
        self.check(
            answer.json().get("status") == "announced" and self.reported().count(fire["id"]) == 1,
            f"the genuine delivery of that run was announced and started the DAG once: {answer.text}",
            failures,
        )

    def measure(self, runs: list[dict[str, Any]]) -> None:
        """Latency run created -> asset event, pushed by the emulator, beside the polling
        watcher's of this same system test; API requests per announced run; a quiet stretch."""
        system = self.system
        # The endpoint hears of every deployment's runs, as a workspace's does: the other per-minute
        # deployment (the watchers') is paused meanwhile, so that only this one's runs are counted.
        self.hook.pause_deployment(self.watched)
        self.emulator.control("DELETE", "requests")
        latencies: list[float] = []
        for _ in range(5):
            latencies.append(self.latency(self.fire()))
        reads = self.emulator.request_counts()["by_endpoint"].get(RUN_READS, 0)
        self.emulator.control("DELETE", "requests")
        time.sleep(20)
        quiet = self.emulator.request_counts()["by_endpoint"].get(RUN_READS, 0)
        self.hook.unpause_deployment(self.watched)
        webhook = [self.latency(r) for r in runs[:1]] + latencies
        watched = self.watched
        watched_key = runs_asset_key(watched, "schedule")
        announced = set(self.asset_events(watched_key))
        polled = [
            self.latency(r, watched_key) for r in system.scheduled_runs(self.emulator, watched) if r["id"] in announced
        ]
        self.figures = {
            "webhook_latency_s": {"median": statistics.median(webhook), "max": max(webhook), "n": len(webhook)},
            "watcher_latency_s": {"median": statistics.median(polled), "max": max(polled), "n": len(polled)}
            if polled
            else None,
            "api_requests_per_announced_run": reads / len(latencies),
            "api_requests_in_20s_quiet": quiet,
        }
        print(f"  figures: {json.dumps(self.figures)}")
        self.check(
            statistics.median(webhook) < 1.0 and reads <= len(latencies) and quiet == 0,
            f"run created -> asset event: webhook median {statistics.median(webhook):.2f} s (max {max(webhook):.2f}), "
            f"polling watcher median {statistics.median(polled) if polled else float('nan'):.1f} s; "
            f"{reads / len(latencies):g} API request(s) per announced run; {quiet} while nothing happened",
            self.failures,
        )

    # --- helpers ------------------------------------------------------------------------------

    def fire(self) -> dict[str, Any]:
        """A scheduled fire now (the emulator's control), the deployment paused again after."""
        self.hook.unpause_deployment(self.deployment_id)
        run = self.emulator.control("POST", f"deployments/{self.deployment_id}/fire")["run"]
        self.hook.pause_deployment(self.deployment_id)
        return dict(run)

    def kill(self, process: Any, when: str) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        print(f"  api-server killed (-9) {when} (pid {process.pid})")

    def tried(self, run_id: str) -> bool:
        """Every delivery about the run was tried at least once (refused by a dead server, or
        accepted just before it died)."""
        about = [d for d in self.deliveries() if d["object_id"] == run_id]
        return len(about) == 2 and all(d["attempts"] for d in about)

    def restart(self, env: dict[str, str]) -> Any:
        log = (self.home / "api-server-restarted.log").open("wb")
        process = subprocess.Popen(
            [str(self.system.BIN / "airflow"), "api-server"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.system.wait_for(
            "the restarted api-server",
            lambda: httpx.get(f"{self.base}/api/v2/monitor/health", timeout=5).status_code == 200,
            180,
        )
        print(f"  api-server restarted (pid {process.pid})")
        return process

    def deliveries(self) -> list[dict[str, Any]]:
        return list(self.emulator.control("GET", "webhooks/deliveries")["data"])

    def settled(self) -> bool:
        return all(d["state"] != "pending" for d in self.deliveries())

    def runs(self) -> list[dict[str, Any]]:
        return list(self.system.scheduled_runs(self.emulator, self.deployment_id))

    def fire_after(self, moment: float) -> dict[str, Any] | None:
        return next((r for r in self.runs() if self.system.pendulum_ts(r["created_at"]) >= moment), None)

    def session_ended(self, session_id: str) -> bool:
        sessions = {s["id"]: s for s in self.emulator.state()["sessions"]}
        return sessions.get(session_id, {}).get("status") in ("idle", "terminated") and any(
            e["type"] == "session.status_idle" for e in sessions[session_id]["events"]
        )

    def _reported(self, dag_id: str, key: str) -> list[str]:
        ids: list[str] = []
        for run in self.api.get(f"/dags/{dag_id}/dagRuns", limit=100)["dag_runs"]:
            if run["state"] == "success":
                ids += [item[key] for item in self.api.xcom(dag_id, run["dag_run_id"], PUSHED_DAGS[dag_id])]
        return ids

    def reported(self) -> list[str]:
        return self._reported("react_to_pushed_runs", "deployment_run_id")

    def reported_by_dag_run(self) -> list[list[str]]:
        """The run ids each successful run of react_to_pushed_runs reported."""
        found = []
        for run in self.api.get("/dags/react_to_pushed_runs/dagRuns", limit=100)["dag_runs"]:
            if run["state"] == "success":
                value = self.api.xcom("react_to_pushed_runs", run["dag_run_id"], "report")
                found.append(sorted(item["deployment_run_id"] for item in value))
        return found

    def sessions_reported(self) -> list[str]:
        return self._reported("after_pushed_sessions_end", "session_id")

    def _db(self, query: str, *args: Any) -> list[Any]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            return db.execute(query, args).fetchall()

    def watchers(self) -> int:
        name, _ = runs_asset_key(self.deployment_id, "schedule")
        rows = self._db("select count(*) from asset_watcher w join asset a on a.id = w.asset_id where a.name = ?", name)
        return int(rows[0][0])

    def asset_events(self, key: tuple[str, str]) -> list[str]:
        """The run ids of an asset's events (one entry per event)."""
        rows = self._db("select e.extra from asset_event e join asset a on a.id = e.asset_id where a.name = ?", key[0])
        return [json.loads(extra)["payload"]["deployment_run_id"] for (extra,) in rows]

    def recorded(self, event_id: str) -> bool:
        rows = self._db("select count(*) from managed_agents_webhook_event where event_id = ?", event_id)
        return bool(rows[0][0])

    def latency(self, run: dict[str, Any], key: tuple[str, str] | None = None) -> float:
        """Seconds from the run's creation to its asset event (waits for the event)."""
        name = (key or runs_asset_key(self.deployment_id, "schedule"))[0]

        def stamp() -> float | None:
            for when, extra in self._db(
                "select e.timestamp, e.extra from asset_event e join asset a on a.id = e.asset_id where a.name = ?",
                name,
            ):
                if json.loads(extra)["payload"]["deployment_run_id"] == run["id"]:
                    return self.system.pendulum_ts(str(when).replace(" ", "T") + ("" if "+" in str(when) else "Z"))
            return None

        moment = self.system.wait_for(f"the asset event of {run['id']}", stamp, 120, every=0.05)
        return float(moment) - self.system.pendulum_ts(run["created_at"])
