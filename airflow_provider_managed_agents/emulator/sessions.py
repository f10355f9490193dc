"""Sessions in the emulator: every successful run creates one, which then plays a script on the
emulator's clock, so that each ending a pipeline must handle can be produced on demand.

A session starts ``idle`` (as the API's do), with the deployment's initial events recorded. Its
script then unrolls as timed steps: ``session.status_running``, a model request span with usage,
the agent's message, outcome evaluation spans (``needs_revision`` between iterations, then the
scripted result), ``session.usage``, and the ending: ``session.status_idle`` with the scripted
stop reason, or ``session.error`` + ``session.status_terminated``. Optional: a ``rescheduling``
episode, retrying errors before ``retries_exhausted``. Steps become events only when the clock
passes them, so a frozen clock shows a test every intermediate state.

``user.interrupt`` ends a running turn at once (``end_turn``; an unfinished outcome becomes
``interrupted``); ``user.message`` on an idle session starts a new turn. Objects are plain dicts
(the state file stores them as JSON); every response validates strictly against the official
SDK's models.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_managed_agents.emulator import actions
from airflow_provider_managed_agents.models.base import format_timestamp, parse_timestamp

STOP_REASONS = ("end_turn", "requires_action", "retries_exhausted", "budget_reached", "refusal")
# The webhook event of each status a session moves to (the stream's status_idle is status_idled).
STATUS_WEBHOOKS = {
    "running": "session.status_run_started",
    "idle": "session.status_idled",
    "rescheduling": "session.status_rescheduled",
    "terminated": "session.status_terminated",
}
OUTCOME_RESULTS = ("satisfied", "failed", "max_iterations_reached", "interrupted")
MODEL = "claude-sonnet-4-6"
_sequence = itertools.count(1)


def _event_id() -> str:
    return f"sevt_{next(_sequence):012d}"


@dataclass
class SessionScript:
    """How a session plays out. ``ending``: a stop reason (also an unknown one) or
    ``terminated``. ``outcome_result`` is what each defined outcome ends with after
    ``iterations`` evaluations (``needs_revision`` before)."""

    ending: str = "end_turn"
    outcome_result: str = "satisfied"
    iterations: int = 1
    start_delay: float = 0.5
    turn_seconds: float = 2.0
    final_text: str | None = None
    input_tokens: int = 1200
    output_tokens: int = 300
    list_cost: str = "12"
    error_type: str = "model_overloaded_error"
    error_message: str = "the model is overloaded"
    rescheduling: bool = False
    refusal_category: str = "cyber"
    refusal_explanation: str = "the request asks for harmful code"
    # What the agent writes (emulator/files.py): [{"filename", "content" | "size", "mime_type"?}].
    files: list[dict[str, Any]] = field(default_factory=list)
    # Rounds of tool calls the agent waits on, and how a denial changes the ending (emulator/actions.py).
    actions: list[list[dict[str, Any]]] = field(default_factory=list)
    when_denied: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SessionScript:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise ValueError(f"unknown session script fields {unknown}; known: {sorted(known)}")
        script = cls(**body)
        if script.outcome_result not in OUTCOME_RESULTS:
            raise ValueError(f"outcome_result must be one of {list(OUTCOME_RESULTS)}")
        if script.iterations < 1 or script.turn_seconds < 0 or script.start_delay < 0:
            raise ValueError("iterations must be >= 1, turn_seconds and start_delay >= 0")
        from airflow_provider_managed_agents.emulator.files import checked_script_files

        script.files = checked_script_files(script.files)
        actions.check_script(script.actions, script.when_denied)
        return script


@dataclass
class _Step:
    at: str
    event: dict[str, Any] | None = None
    status: str | None = None
    evaluation: dict[str, Any] | None = None  # {outcome_id, iteration, ...fields to set}
    usage: dict[str, int] | None = None


def _agent_snapshot(agent: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "agent",
        "id": agent["id"],
        "version": agent["version"],
        "name": agent["id"],
        "model": {"id": MODEL},
        "execution_identity": {"type": "service_account"},
        "mcp_servers": [],
        "skills": [],
        "tools": [],
    }


def _first_text(events: list[dict[str, Any]]) -> str:
    for event in events:
        if event.get("type") == "user.message":
            for block in event.get("content", []):
                if block.get("type") == "text":
                    return str(block.get("text", ""))
    return ""


class Sessions:
    """The emulator's sessions and their scripts."""

    def __init__(self, notify: Callable[[str, str], object] | None = None) -> None:
        # Told of each webhook event type and session id as it happens.
        self.notify = notify or (lambda event_type, object_id: None)
        self.by_id: dict[str, dict[str, Any]] = {}
        self.scripts: dict[str, SessionScript] = {}  # per deployment
        self.next_scripts: list[SessionScript] = []  # for the next sessions, any deployment
        self.default_script = SessionScript()  # for deployments without a script of their own

    # --- creating and playing ------------------------------------------------------------

    def script_for(self, deployment_id: str) -> SessionScript:
        if self.next_scripts:
            return self.next_scripts.pop(0)
        return self.scripts.get(deployment_id) or self.default_script

    def create(
        self,
        session_id: str,
        deployment: dict[str, Any],
        run_id: str,
        now: datetime,
        agent: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A session of ``deployment``; ``agent`` is the snapshot of its pinned agent version
        (else one made up from the pin)."""
        script = self.script_for(deployment["id"])
        stamp = format_timestamp(now)
        session: dict[str, Any] = {
            "id": session_id,
            "type": "session",
            "status": "idle",
            "agent": agent if agent is not None else _agent_snapshot(deployment["agent"]),
            "environment_id": deployment["environment_id"],
            "deployment_id": deployment["id"],
            "title": deployment["name"],
            "metadata": {"deployment_run_id": run_id},
            "outcome_evaluations": [],
            "resources": [_session_resource(r) for r in deployment["resources"]],
            "vault_ids": list(deployment["vault_ids"]),
            "usage": {},
            "stats": {"active_seconds": 0.0, "duration_seconds": 0.0},
            "archived_at": None,
            "created_at": stamp,
            "updated_at": stamp,
            "_events": [],
            "_steps": [],
            "_script": asdict(script),
            "_started": stamp,
        }
        if "budget" in deployment:
            session["budget"] = deployment["budget"]
        for initial in deployment["initial_events"]:
            event = {**initial, "id": _event_id(), "processed_at": stamp}
            if initial["type"] == "user.define_outcome":
                outcome_id = f"outc_{event['id'][5:]}"
                event["outcome_id"] = outcome_id
                session["outcome_evaluations"].append(
                    {
                        "type": "outcome_evaluation",
                        "outcome_id": outcome_id,
                        "description": initial.get("description", ""),
                        "iteration": 0,
                        "result": "pending",
                        "explanation": None,
                        "completed_at": None,
                    }
                )
            session["_events"].append(event)
        text = script.final_text if script.final_text is not None else self._default_text(deployment)
        if script.actions:
            session["_steps"] = [asdict(s) for s in actions.round_steps(session, script, now, 0)]
        else:
            session["_steps"] = [asdict(s) for s in _plan(session, script, now, text)]
        self.by_id[session_id] = session
        self.notify("session.created", session_id)
        return session

    @staticmethod
    def _default_text(deployment: dict[str, Any]) -> str:
        asked = _first_text(deployment["initial_events"])
        return f"Done: {asked}" if asked else "Done."

    def advance(self, session: dict[str, Any], now: datetime) -> None:
        """Let every step the clock has passed happen."""
        steps = session["_steps"]
        while steps and parse_timestamp(steps[0]["at"]) <= now:
            self.apply_step(session, _Step(**steps.pop(0)))
        if session["status"] in ("running", "rescheduling"):
            started = parse_timestamp(session["_started"])
            session["stats"] = {"active_seconds": (now - started).total_seconds(), "duration_seconds": 0.0}

    def advance_all(self, now: datetime) -> None:
        for session in self.by_id.values():
            if session["_steps"]:
                self.advance(session, now)

    def apply_step(self, session: dict[str, Any], step: _Step) -> None:
        if step.event is not None:
            session["_events"].append({**step.event, "processed_at": step.at})
        changed = step.status is not None and step.status != session["status"]
        if step.status is not None:
            session["status"] = step.status
            if step.status == "terminated":
                started = parse_timestamp(session["_started"])
                duration = (parse_timestamp(step.at) - started).total_seconds()
                session["stats"] = {"active_seconds": duration, "duration_seconds": duration}
        if step.evaluation is not None:
            # One evaluation per defined outcome, moving through its iterations.
            target = dict(step.evaluation)
            outcome_id = target.pop("outcome_id")
            for evaluation in session["outcome_evaluations"]:
                if evaluation["outcome_id"] == outcome_id:
                    evaluation.update(target)
            if target.get("result") not in (None, "pending", "running", "evaluating"):
                self.notify("session.outcome_evaluation_ended", session["id"])
        if changed and step.status is not None:
            self.notify(STATUS_WEBHOOKS.get(step.status, f"session.status_{step.status}"), session["id"])
        if step.usage is not None:
            usage = session["usage"]
            for key, value in step.usage.items():
                usage[key] = usage.get(key, 0) + value
            usage["cache_read_input_tokens"] = usage.get("cache_read_input_tokens", 0)
            usage["list_cost"] = {"amount": str(_cost(usage)), "currency": "USD"}
        session["updated_at"] = step.at

    # --- what users may send -------------------------------------------------------------

    def interrupt(self, session: dict[str, Any], now: datetime) -> dict[str, Any]:
        event = {"type": "user.interrupt", "id": _event_id(), "processed_at": format_timestamp(now)}
        session["_events"].append(event)
        actions.interrupt_pending(session, now, self.apply_step)
        if session["status"] in ("running", "rescheduling"):
            session["_steps"] = []
            stamp = format_timestamp(now + timedelta(milliseconds=1))
            for evaluation in session["outcome_evaluations"]:
                if evaluation["result"] in ("pending", "running", "evaluating"):
                    evaluation.update(result="interrupted", completed_at=stamp, explanation="interrupted by the user")
            self.apply_step(
                session,
                _Step(
                    at=stamp,
                    event={"type": "session.status_idle", "id": _event_id(), **_stop("end_turn")},
                    status="idle",
                ),
            )
        return event

    def message(self, session: dict[str, Any], event: dict[str, Any], now: datetime) -> dict[str, Any]:
        recorded = {**event, "id": _event_id(), "processed_at": format_timestamp(now)}
        session["_events"].append(recorded)
        if session["status"] == "idle" and not session["_steps"]:
            script = SessionScript(**session["_script"])
            reply = SessionScript(turn_seconds=script.turn_seconds, start_delay=0.0)
            text = f"Re: {_first_text([event])}"
            session["_steps"] = [asdict(s) for s in _plan(session, reply, now, text, with_outcomes=False)]
        return recorded

    # --- reading ---------------------------------------------------------------------------

    @staticmethod
    def render(session: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in session.items() if not k.startswith("_")}

    @staticmethod
    def events(session: dict[str, Any]) -> list[dict[str, Any]]:
        return list(session["_events"])


def time_key(stamp: str) -> float:
    """A timestamp as a number: RFC 3339 strings of mixed precision do not sort as text."""
    return parse_timestamp(stamp).timestamp()


def _session_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """A deployment's resource as a session reports it (ids and mount paths filled in)."""
    kind = resource["type"]
    if kind == "github_repository":
        name = resource["url"].rstrip("/").rsplit("/", 1)[-1]
        return {
            "type": kind,
            "id": f"sesrsc_{abs(hash(resource['url'])) % 10**12:012d}",
            "url": resource["url"],
            "mount_path": resource.get("mount_path") or f"/workspace/{name}",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
    return dict(resource)


def _cost(usage: dict[str, Any]) -> int:
    """List cost in cents: a made-up but stable price (input 0.3, output 1.5 per 1,000 tokens)."""
    return round(usage.get("input_tokens", 0) * 0.0003 * 100 + usage.get("output_tokens", 0) * 0.0015 * 100)


def _stop(reason: str, **extra: Any) -> dict[str, Any]:
    return {"stop_reason": {"type": reason, **extra}}


def _plan(
    session: dict[str, Any], script: SessionScript, start: datetime, text: str, *, with_outcomes: bool = True
) -> list[_Step]:
    """The timed steps of one turn (and its outcome iterations), from ``start``."""
    steps: list[_Step] = []

    def at(seconds: float) -> str:
        return format_timestamp(start + timedelta(seconds=seconds))

    def span_usage() -> dict[str, int]:
        return {
            "input_tokens": script.input_tokens,
            "output_tokens": script.output_tokens,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }

    outcomes = [e["outcome_id"] for e in session["outcome_evaluations"]] if with_outcomes else []
    rounds = script.iterations if outcomes else 1
    turn = script.turn_seconds
    t = script.start_delay
    steps.append(
        _Step(
            at(t),
            event={"type": "session.status_running", "id": _event_id()},
            status="running",
            evaluation=None,
        )
    )
    for outcome_id in outcomes:
        steps.append(_Step(at(t), evaluation={"outcome_id": outcome_id, "iteration": 0, "result": "running"}))
    for i in range(rounds):
        base = t + i * turn
        if script.rescheduling and i == 0:
            error = {"type": script.error_type, "message": script.error_message, "retry_status": {"type": "retrying"}}
            steps.append(
                _Step(at(base + 0.2 * turn), event={"type": "session.error", "id": _event_id(), "error": error})
            )
            steps.append(
                _Step(
                    at(base + 0.2 * turn),
                    event={"type": "session.status_rescheduled", "id": _event_id()},
                    status="rescheduling",
                )
            )
            steps.append(
                _Step(
                    at(base + 0.3 * turn), event={"type": "session.status_running", "id": _event_id()}, status="running"
                )
            )
        start_id = _event_id()
        steps.append(_Step(at(base + 0.35 * turn), event={"type": "span.model_request_start", "id": start_id}))
        steps.append(
            _Step(
                at(base + 0.5 * turn),
                event={
                    "type": "span.model_request_end",
                    "id": _event_id(),
                    "model_request_start_id": start_id,
                    "model_usage": span_usage(),
                },
                usage={"input_tokens": script.input_tokens, "output_tokens": script.output_tokens},
            )
        )
        last = i == rounds - 1
        message = text if last else f"Draft {i + 1}: {text}"
        steps.append(
            _Step(
                at(base + 0.6 * turn),
                event={"type": "agent.message", "id": _event_id(), "content": [{"type": "text", "text": message}]},
            )
        )
        for outcome_id in outcomes:
            eval_start = _event_id()
            steps.append(
                _Step(
                    at(base + 0.7 * turn),
                    event={
                        "type": "span.outcome_evaluation_start",
                        "id": eval_start,
                        "outcome_id": outcome_id,
                        "iteration": i,
                    },
                    evaluation={"outcome_id": outcome_id, "iteration": i, "result": "evaluating"},
                )
            )
            result = script.outcome_result if last else "needs_revision"
            explanation = f"iteration {i}: {'meets the rubric' if result == 'satisfied' else result.replace('_', ' ')}"
            steps.append(
                _Step(
                    at(base + 0.8 * turn),
                    event={
                        "type": "span.outcome_evaluation_end",
                        "id": _event_id(),
                        "outcome_id": outcome_id,
                        "iteration": i,
                        "outcome_evaluation_start_id": eval_start,
                        "result": result,
                        "explanation": explanation,
                        "usage": span_usage(),
                    },
                    evaluation={"outcome_id": outcome_id, "iteration": i, "result": result, "explanation": explanation}
                    | ({"completed_at": at(base + 0.8 * turn)} if last else {}),
                )
            )
            if not last:  # needs revision: the agent works on, in the next iteration
                steps.append(
                    _Step(
                        at(base + 0.8 * turn),
                        evaluation={"outcome_id": outcome_id, "iteration": i + 1, "result": "running"},
                    )
                )
        if last and outcomes and script.outcome_result == "max_iterations_reached":
            # One last agent turn after the final evaluation, then idle.
            steps.append(
                _Step(
                    at(base + 0.9 * turn),
                    event={"type": "agent.message", "id": _event_id(), "content": [{"type": "text", "text": text}]},
                )
            )
    end = t + rounds * turn
    steps.append(_Step(at(end - 0.01), event={"type": "session.usage", "id": _event_id(), "usage": {}}))
    steps.extend(_ending(script, at(end)))
    steps.sort(key=lambda s: s.at)
    return steps


def _ending(script: SessionScript, stamp: str) -> list[_Step]:
    error = {"type": script.error_type, "message": script.error_message}
    if script.ending == "terminated":
        return [
            _Step(
                stamp,
                event={
                    "type": "session.error",
                    "id": _event_id(),
                    "error": {**error, "retry_status": {"type": "terminal"}},
                },
            ),
            _Step(stamp, event={"type": "session.status_terminated", "id": _event_id()}, status="terminated"),
        ]
    steps: list[_Step] = []
    extra: dict[str, Any] = {}
    stop_details: dict[str, Any] | None = None
    if script.ending == "requires_action":
        tool_use = _event_id()
        steps.append(
            _Step(
                stamp, event={"type": "agent.tool_use", "id": tool_use, "name": "bash", "input": {"command": "deploy"}}
            )
        )
        extra["event_ids"] = [tool_use]
    elif script.ending == "retries_exhausted":
        for status in ("retrying", "exhausted"):
            steps.append(
                _Step(
                    stamp,
                    event={
                        "type": "session.error",
                        "id": _event_id(),
                        "error": {**error, "retry_status": {"type": status}},
                    },
                )
            )
    elif script.ending == "refusal":
        stop_details = {
            "type": "refusal",
            "category": script.refusal_category,
            "explanation": script.refusal_explanation,
        }
    idle: dict[str, Any] = {"type": "session.status_idle", "id": _event_id(), **_stop(script.ending, **extra)}
    if stop_details is not None:
        idle["stop_details"] = stop_details
    steps.append(_Step(stamp, event=idle, status="idle"))
    return steps


# --- listing ---------------------------------------------------------------------------------


def encode_cursor(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, TypeError):
        raise ValueError("page: invalid or expired page cursor") from None
    if not isinstance(payload, dict):
        raise ValueError("page: invalid or expired page cursor")
    return payload


@dataclass
class Listing:
    """A page cut out of an ordered list, with cursors that remember the order and the way."""

    items: list[dict[str, Any]]
    key: Any
    order: str
    limit: int
    page: str | None
    both_ways: bool = False

    def cut(self) -> dict[str, Any]:
        descending = self.order == "desc"
        ordered = sorted(self.items, key=self.key, reverse=descending)
        keys = [list(self.key(item)) for item in ordered]
        start = 0
        if self.page:
            cursor = decode_cursor(self.page)
            if cursor.get("order") != self.order:
                raise ValueError("page: this cursor was made for another order")
            if cursor.get("after") is not None:
                # The first item past the cursor's, by comparison: items made since do not shift it.
                after = cursor["after"]
                start = next((i for i, k in enumerate(keys) if (k < after if descending else k > after)), len(keys))
            elif cursor.get("before") is not None:
                before = cursor["before"]
                end = next((i for i, k in enumerate(keys) if (k <= before if descending else k >= before)), len(keys))
                start = max(end - self.limit, 0)
        chunk = ordered[start : start + self.limit]
        more = start + self.limit < len(ordered)
        page: dict[str, Any] = {
            "data": chunk,
            "next_page": encode_cursor({"order": self.order, "after": keys[start + len(chunk) - 1]})
            if more and chunk
            else None,
        }
        if self.both_ways:
            page["prev_page"] = (
                encode_cursor({"order": self.order, "before": keys[start]}) if start > 0 and chunk else None
            )
        return page
