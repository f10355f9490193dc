"""When the agent asks: a task that follows a session answers what the session waits for.

By default a session that stops with ``requires_action`` fails the task with
``SessionRequiresActionError`` (an autonomous pipeline has nobody to answer). Two opt-in
arguments of the run operator (``wait_for_session_end=True``) and ``ManagedAgentsSessionSensor``
change that, and the task then answers, as many rounds as the session asks:

- ``custom_tools={"row_count": "my_pkg.tools.row_count"}``: the agent's custom tool calls are
  answered by Python. The dotted path is imported on the worker (so it survives a deferral) and
  called with the tool's input as keyword arguments; its return value is sent as the
  ``user.custom_tool_result`` (a string as it is, anything else as JSON), an exception as an
  error result (``is_error``), logged, and the session goes on.
- ``approve_tools_with="hitl"``: tool calls held for a confirmation (an ``always_ask`` policy) are
  put to a person through Airflow's human-in-the-loop (Airflow >= 3.1): a request in the UI's
  Required Actions names the agent, the session and each pending call with its input (masked,
  cut), with the options Allow and Deny and a field for a deny message. The task waits without a
  worker slot: in the ``awaiting_input`` state on Airflow 3.3 (no trigger), deferred to the
  standard provider's ``HITLTrigger`` on 3.1 and 3.2. On the answer it sends one
  ``user.tool_confirmation`` per pending call, logs who answered, and follows the session again.
  ``approval_timeout`` bounds each wait for a person; then ``approval_default`` (``deny`` unless
  told otherwise) applies. Below Airflow 3.1, or without ``apache-airflow-providers-standard`` on
  3.1 and 3.2, the argument is refused when the DAG is parsed.

Anything else it waits for (a custom tool without a callable, a tool call waiting for a
self-hosted result, a confirmation without ``approve_tools_with``) fails the task with
``SessionRequiresActionError`` as before, and nothing is sent. The session's ``timeout`` counts
the following, not a person's wait: each stretch of following after an answer starts it afresh.

XCom: ``actions`` (every answer: round, call id, tool, input summary, decision ``allow`` /
``deny`` / ``result`` / ``error``, who and when) and, while a person is asked,
``pending_actions`` (the session, the round and its calls; null once answered). A task killed
while a person is asked applies ``on_kill_session`` to the session (through the provider's
listener, :mod:`airflow_provider_managed_agents.listeners`: nothing of the task runs then).

On the DAG-parse path only through its light module-level imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook
    from airflow_provider_managed_agents.waiting.actions import PendingCall
    from airflow_provider_managed_agents.waiting.sessions import SessionVerdict

APPROVE_WITH = ("hitl",)
APPROVAL_DEFAULTS = ("deny", "allow")
ACTIONS_KEY = "actions"
PENDING_KEY = "pending_actions"
# The method a task resumes in once a person answered (Airflow calls it by name).
ANSWERED_METHOD = "actions_answered"


def check_answer_arguments(
    approve_tools_with: str | None,
    approval_timeout: timedelta | float | None,
    approval_default: str,
    custom_tools: Mapping[str, str] | None,
) -> tuple[str | None, timedelta | None, str, dict[str, str]]:
    """The answering arguments, checked when the DAG is parsed: a clear error naming the
    argument (and, for ``approve_tools_with``, what this Airflow lacks)."""
    from airflow_provider_managed_agents.compat import human_in_the_loop
    from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

    problems: list[tuple[str, str]] = []
    if approve_tools_with is not None:
        if approve_tools_with not in APPROVE_WITH:
            problems.append(("approve_tools_with", f"must be one of {list(APPROVE_WITH)} or None"))
        else:
            mode, missing = human_in_the_loop()
            if mode is None:
                problems.append(("approve_tools_with", missing))
    timeout: timedelta | None = None
    if approval_timeout is not None:
        if isinstance(approval_timeout, bool) or not isinstance(approval_timeout, timedelta | int | float):
            problems.append(("approval_timeout", "must be a timedelta or seconds"))
        else:
            timeout = (
                approval_timeout if isinstance(approval_timeout, timedelta) else timedelta(seconds=approval_timeout)
            )
            if timeout <= timedelta(0):
                problems.append(("approval_timeout", "must be positive"))
    if approval_default not in APPROVAL_DEFAULTS:
        problems.append(("approval_default", f"must be one of {list(APPROVAL_DEFAULTS)}"))
    if approve_tools_with is None and approval_timeout is not None:
        problems.append(("approval_timeout", "applies only with approve_tools_with"))
    tools: dict[str, str] = {}
    if custom_tools is not None and not isinstance(custom_tools, Mapping):
        problems.append(("custom_tools", "must map custom tool names to dotted paths of callables"))
    for name, path in (custom_tools or {}).items() if isinstance(custom_tools, Mapping) else ():
        if not isinstance(name, str) or not name:
            problems.append(("custom_tools", "tool names must be non-empty strings"))
        elif not _is_dotted_path(path):
            problems.append(
                (
                    f"custom_tools[{name!r}]",
                    "must be the dotted path of an importable callable, e.g. 'my_pkg.tools.func'",
                )
            )
        else:
            tools[name] = path
    if problems:
        raise ManagedAgentsValidationError("arguments", problems)
    return approve_tools_with, timeout, approval_default, tools


def _is_dotted_path(path: Any) -> bool:
    if not isinstance(path, str) or "." not in path:
        return False
    return all(part.isidentifier() for part in path.split("."))


def import_callable(path: str) -> Any:
    """The callable a dotted path names (imported on the worker, where it runs)."""
    import importlib

    module, _, name = path.rpartition(".")
    found = getattr(importlib.import_module(module), name)
    if not callable(found):
        raise TypeError(f"{path} is not callable")
    return found


class ActionAnswerer:
    """Mixed into :class:`~airflow_provider_managed_agents.following.SessionFollower`: the
    answering arguments, answering a ``requires_action`` verdict, asking a person, and
    :meth:`actions_answered` (where the task resumes with the person's answer). The task class
    provides ``_follow_on``: follow the session again after an answer."""

    if TYPE_CHECKING:

        @property
        def hook(self) -> ManagedAgentsHook: ...

        def _watch_session(self, session_id: str) -> None: ...

    log: Any
    managed_agents_conn_id: str
    on_kill_session: str
    approve_tools_with: str | None = None
    approval_timeout: timedelta | None = None
    approval_default: str = "deny"
    custom_tools: Mapping[str, str] = MappingProxyType({})

    def _configure_answers(
        self,
        approve_tools_with: str | None,
        approval_timeout: timedelta | float | None,
        approval_default: str,
        custom_tools: Mapping[str, str] | None,
    ) -> None:
        checked = check_answer_arguments(approve_tools_with, approval_timeout, approval_default, custom_tools)
        self.approve_tools_with, self.approval_timeout, self.approval_default, self.custom_tools = checked

    @property
    def answers_actions(self) -> bool:
        """Whether this task answers anything a session waits for (else it fails as before)."""
        return self.approve_tools_with is not None or bool(self.custom_tools)

    def _answering(self, verdict: SessionVerdict) -> bool:
        from airflow_provider_managed_agents.exceptions import SessionRequiresActionError

        return self.answers_actions and isinstance(verdict.error, SessionRequiresActionError)

    def _follow_on(self, context: Context, carry: dict[str, Any]) -> Any:
        """Follow the session (``carry["session_id"]``) again after an answer: defer, or follow
        here until it ends; what the task returns."""
        raise NotImplementedError

    # --- answering a requires_action verdict -----------------------------------------------

    def _answer(self, context: Context, verdict: SessionVerdict, carry: dict[str, Any]) -> Exception | None:
        """Answer what the session of a ``requires_action`` verdict waits for. None when the
        session has its answers (follow it again); the error to fail with when this task cannot
        answer it all (nothing is sent then). Asking a person parks the task: it resumes in
        :meth:`actions_answered`."""
        from airflow_provider_managed_agents.exceptions import SessionRequiresActionError
        from airflow_provider_managed_agents.waiting.actions import PendingCall, sort_out

        error = verdict.error
        assert isinstance(error, SessionRequiresActionError) and verdict.facts is not None
        session_id = verdict.facts.session_id
        calls, answered = self.hook.find_action_events(session_id, error.event_ids)
        waiting = [i for i in error.event_ids if i not in answered]
        if not waiting:
            self.log.info("Session %s has the answers it waited for; following it again", session_id)
            return None
        missing = [i for i in waiting if i not in calls]
        pending = [PendingCall.of(calls[i]) for i in waiting if i in calls]
        found = sort_out(pending, self.custom_tools, self.approve_tools_with is not None)
        why = f"events {', '.join(missing)} are not in the session's tool calls" if missing else found.cannot
        if why is not None:
            facts = {"session_id": error.session_id, "status": error.status, "usage": error.usage}
            return SessionRequiresActionError(
                f"{error}: this task cannot answer it: {why}",
                event_ids=error.event_ids,
                stop_reason=error.stop_reason,
                **facts,
            )
        number = self._answer_round(context)
        if found.custom:
            self._run_custom_tools(context, session_id, found.custom, number)
        if found.confirm:
            self._ask_a_person(context, session_id, found.confirm, number, carry)
        return None

    def _answer_round(self, context: Context) -> int:
        """This round's number: one more than the last answered."""
        return max((int(r.get("round", 0)) for r in self._actions_so_far(context)), default=0) + 1

    def _actions_so_far(self, context: Context) -> list[dict[str, Any]]:
        ti = context["ti"]
        try:
            value = ti.xcom_pull(task_ids=ti.task_id, key=ACTIONS_KEY)
        except Exception:  # none yet (or an XCom backend that cannot say): start a new list
            value = None
        return list(value) if isinstance(value, list) else []

    def _record_actions(self, context: Context, records: list[dict[str, Any]]) -> None:
        from airflow_provider_managed_agents.compat import redact

        so_far = self._actions_so_far(context)
        context["ti"].xcom_push(key=ACTIONS_KEY, value=redact([*so_far, *records]))

    def _run_custom_tools(self, context: Context, session_id: str, calls: list[PendingCall], number: int) -> None:
        """Call each custom tool's callable, send the results in one request, record them."""
        from airflow_provider_managed_agents.compat import redact
        from airflow_provider_managed_agents.waiting import clock
        from airflow_provider_managed_agents.waiting.actions import cut, record, tool_result

        results, records = [], []
        for call in calls:
            path = self.custom_tools[call.name]
            function = import_callable(path)  # a wrong path fails the task: nothing is sent
            try:
                value = function(**call.input)
            except Exception as exc:  # the agent hears of it as an error result; the session goes on
                self.log.warning(
                    "Custom tool %s (%s) raised on call %s of session %s: %s: %s",
                    call.name,
                    path,
                    call.event_id,
                    session_id,
                    type(exc).__name__,
                    exc,
                )
                results.append(tool_result(call, error=exc))
                records.append(record(call, "error", path, clock.now().isoformat(), number))
                continue
            answer = tool_result(call, value)
            self.log.info(
                "Custom tool %s (%s) answered call %s of session %s: %s",
                call.name,
                path,
                call.event_id,
                session_id,
                redact(cut(answer.content[0].text, 200)),
            )
            results.append(answer)
            records.append(record(call, "result", path, clock.now().isoformat(), number))
        self.hook.answer_actions(session_id, results)
        self._record_actions(context, records)

    # --- asking a person ---------------------------------------------------------------------

    def _ask_a_person(
        self, context: Context, session_id: str, calls: list[PendingCall], number: int, carry: dict[str, Any]
    ) -> None:
        """Write the request, then wait for the answer without a worker slot (raises)."""
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        from airflow_provider_managed_agents.compat import human_in_the_loop, redact
        from airflow_provider_managed_agents.reporting import session_console_url
        from airflow_provider_managed_agents.waiting import clock
        from airflow_provider_managed_agents.waiting.actions import OPTIONS, request_text

        default = self.approval_default.capitalize()
        snapshot = self.hook.get_session(session_id).agent
        agent = snapshot.model_dump(mode="json") if snapshot is not None else {}
        url = session_console_url(self.hook.settings, session_id)
        subject, body = (redact(text) for text in request_text(agent, session_id, url, calls, default))
        ti = context["ti"]
        # The request first: writing it clears an earlier round's answer, which must not resume this one.
        upsert_hitl_detail(
            ti_id=ti.id,
            options=list(OPTIONS),
            subject=subject,
            body=body,
            defaults=[default],
            multiple=False,
            params=_deny_message_param(),
        )
        summaries = redact([call.summary() for call in calls])
        asked_at = clock.now().isoformat()
        ti.xcom_push(
            key=PENDING_KEY,
            value={
                "session_id": session_id,
                "round": number,
                "asked_at": asked_at,
                "calls": summaries,
                "managed_agents_conn_id": self.managed_agents_conn_id,
                "on_kill_session": self.on_kill_session,
            },
        )
        for i, summary in enumerate(summaries, 1):
            self.log.info("Pending call %d of round %d: %s %s", i, number, summary["tool"], summary["input"])
        waiting = (
            f"until {clock.now() + self.approval_timeout} (then {self.approval_default})"
            if self.approval_timeout
            else "with no time limit"
        )
        self.log.info(
            "Session %s waits for a person: round %d, %d tool call(s); answer in Airflow's Required Actions%s, %s",
            session_id,
            number,
            len(calls),
            _required_actions_url(ti),
            waiting,
        )
        state = {**carry, "session_id": session_id, "round": number, "calls": summaries, "asked_at": asked_at}
        mode, _ = human_in_the_loop()
        if mode == "awaiting_input":
            from airflow.sdk.exceptions import TaskAwaitingInput

            raise TaskAwaitingInput(method_name=ANSWERED_METHOD, kwargs=state, timeout=self.approval_timeout)
        from airflow.providers.standard.triggers.hitl import HITLTrigger

        deadline = clock.now() + self.approval_timeout if self.approval_timeout is not None else None
        self.defer(  # type: ignore[attr-defined]
            trigger=HITLTrigger(
                ti_id=ti.id,
                options=list(OPTIONS),
                params=_deny_message_param(),  # a fresh dict: the trigger consumes it
                defaults=[default],
                multiple=False,
                timeout_datetime=deadline,
            ),
            method_name=ANSWERED_METHOD,
            kwargs=state,
        )

    def actions_answered(self, context: Context, event: dict[str, Any], **state: Any) -> Any:
        """Back with a person's answer (or the response timeout's default): one
        ``user.tool_confirmation`` per pending call, the answer recorded, then the session
        followed again."""
        from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
        from airflow_provider_managed_agents.models.actions import ToolConfirmationParam
        from airflow_provider_managed_agents.waiting.actions import decision_of, record

        session_id, number, calls = state["session_id"], int(state["round"]), list(state["calls"])
        self._watch_session(session_id)  # a kill from here on stops it again
        try:
            decision = decision_of(event, self.approval_default.capitalize())
        except ValueError as exc:
            raise ManagedAgentsValidationError("human-in-the-loop answer", [("", str(exc))]) from None
        answers = [
            ToolConfirmationParam(
                tool_use_id=call["tool_use_id"],
                result=decision.result,
                deny_message=decision.deny_message,
            )
            for call in calls
        ]
        self.hook.answer_actions(session_id, answers)
        tools = ", ".join(call["tool"] for call in calls)
        self.log.info(
            "Round %d of session %s: %s %s by %s at %s%s",
            number,
            session_id,
            "allowed" if decision.result == "allow" else "denied",
            tools,
            decision.by,
            decision.at,
            f" (deny message: {decision.deny_message})" if decision.deny_message else "",
        )
        extra = {"deny_message": decision.deny_message, "timed_out": decision.timed_out}
        self._record_actions(
            context, [record(call, decision.result, decision.by, decision.at, number, **extra) for call in calls]
        )
        context["ti"].xcom_push(key=PENDING_KEY, value=None)
        carry = {k: v for k, v in state.items() if k not in ("round", "calls", "asked_at")}
        return self._follow_on(context, carry)


def _deny_message_param() -> dict[str, Any]:
    """The request's one field, in the form this Airflow's UI renders (a new dict each time)."""
    from airflow.sdk import Param

    from airflow_provider_managed_agents.compat import hitl_params_serialized
    from airflow_provider_managed_agents.waiting.actions import DENY_MESSAGE_PARAM

    # Optional (null allowed): a required field would hold the Allow button back in the UI.
    param = Param(None, type=["null", "string"], title="Deny message", description="Sent to the agent with Deny")
    return {DENY_MESSAGE_PARAM: param.serialize() if hitl_params_serialized() else None}


def _required_actions_url(ti: Any) -> str:
    """` at URL` of the task's Required Actions page when Airflow knows its base URL."""
    from urllib.parse import quote

    from airflow_provider_managed_agents.compat import conf

    base = conf.get("api", "base_url", fallback=None)
    if not base:
        return ""
    path = f"/dags/{ti.dag_id}/runs/{quote(ti.run_id, safe='')}/tasks/{ti.task_id}/required_actions"
    return f" at {base.rstrip('/')}{path}"
