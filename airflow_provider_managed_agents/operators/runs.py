"""ManagedAgentsRunDeploymentOperator: start a manual run now, and gate on it or on its
session's end.

On the DAG-parse path: imports only ``airflow.sdk`` and light modules at module level.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

from airflow_provider_managed_agents.compat import default_deferrable
from airflow_provider_managed_agents.following import SessionFollower, TimeLimit
from airflow_provider_managed_agents.links import ManagedAgentsDeploymentLink, ManagedAgentsSessionLink
from airflow_provider_managed_agents.operators.base import ManagedAgentsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.models.runs import DeploymentRun
    from airflow_provider_managed_agents.operators.run_journal import RunAttempt, RunJournal


# A run's session is made with it: the triggerer lists working sessions from this long before the run.
SESSION_CREATION_SLACK = timedelta(minutes=1)


class ManagedAgentsRunDeploymentOperator(SessionFollower, ManagedAgentsBaseOperator):
    """Start a manual run of a deployment now and gate on its outcome, or on its session's end.

    :param deployment_id: the deployment to run.
    :param wait_for_session_end: after the run created its session, follow the session until
        the agent's turn is over: success only when it ended with ``end_turn`` (and any defined
        outcome is ``satisfied``); every other ending raises its ``SessionError`` class.
    :param deferrable: follow the session in the triggerer (default
        ``[operators] default_deferrable``); only with ``wait_for_session_end``.
    :param poll_interval: seconds between looks at the session while it runs (one request each).
    :param timeout: seconds to wait for the session's end before ``AirflowSensorTimeout``.
    :param final_message_max_chars: how much of the agent's final message goes to XCom.
    :param on_kill_session: what this task does to the session it started when it gives up on
        it (its ``timeout``, Airflow's ``execution_timeout``, a kill, also while a person is
        asked): ``interrupt`` (default), ``archive`` or ``none`` (leave it running; a retry then
        re-attaches to it).
    :param approve_tools_with: ``"hitl"``: tool calls the session holds for a confirmation are
        put to a person through Airflow's human-in-the-loop (Airflow >= 3.1; refused when the
        DAG is parsed below that); default None: such a session fails the task with
        ``SessionRequiresActionError``. See :mod:`~airflow_provider_managed_agents.answering`.
    :param approval_timeout: how long a person has to answer each round (a ``timedelta`` or
        seconds; default: no limit); then ``approval_default`` applies.
    :param approval_default: ``deny`` (default) or ``allow``: the answer when nobody answers in time.
    :param custom_tools: custom tool name -> dotted path of a callable that answers it (called
        with the tool's input as keyword arguments; its return value is the tool's result).

    Success (a session was created) returns the run id and pushes ``session_id``,
    ``session_url`` and ``deployment_run``; with ``wait_for_session_end`` also what the session
    did (``session_status``, ``stop_reason``, ``stop_details``, ``final_message``, ``outcome``,
    ``usage``, on failure too), and when it answered what the session waited for ``actions``
    (and ``pending_actions`` while a person is asked). A run error raises its typed exception
    (:mod:`airflow_provider_managed_agents.exceptions`): ``SessionRateLimitedRunError`` lets
    Airflow's task retries apply; terminal errors (archived, not found, disabled, rejected...)
    fail the task without retries. A retry starts a new run, except when an earlier try of this
    task sent one and never learned its outcome, or was following its session and left it
    running: that run is adopted (see :mod:`~airflow_provider_managed_agents.operators.run_journal`).
    """

    template_fields: Sequence[str] = ("deployment_id", "managed_agents_conn_id")
    operator_extra_links: Collection[BaseOperatorLink] = (ManagedAgentsDeploymentLink(), ManagedAgentsSessionLink())
    # What starts the runs of this task, for lineage (also after a deferral, when the run is gone).
    lineage_trigger_type = "manual"

    def __init__(
        self,
        *,
        deployment_id: str,
        wait_for_session_end: bool = False,
        deferrable: bool = default_deferrable(),
        poll_interval: float = 30.0,
        timeout: float = 86_400.0,
        final_message_max_chars: int = 100_000,
        on_kill_session: str = "interrupt",
        approve_tools_with: str | None = None,
        approval_timeout: timedelta | float | None = None,
        approval_default: str = "deny",
        custom_tools: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment_id = deployment_id
        self.wait_for_session_end = wait_for_session_end
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.final_message_max_chars = final_message_max_chars
        self.on_kill_session = self._check_on_kill(on_kill_session)
        self._configure_answers(approve_tools_with, approval_timeout, approval_default, custom_tools)
        if self.answers_actions and not wait_for_session_end:
            from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

            what = "approve_tools_with" if approve_tools_with is not None else "custom_tools"
            raise ManagedAgentsValidationError("arguments", [(what, "needs wait_for_session_end=True")])
        self._journal: RunJournal | None = None

    def execute(self, context: Context) -> str:
        import dataclasses

        from airflow_provider_managed_agents.exceptions import exception_for_run
        from airflow_provider_managed_agents.models.params import checked_id
        from airflow_provider_managed_agents.operators.run_journal import RunJournal

        deployment_id = checked_id(self.deployment_id, "deployment_id")
        journal = self._journal = RunJournal.for_task(context)
        earlier = journal.read()
        run = self._adopt(earlier, deployment_id)
        if run is None:
            run, earlier = self._send(journal, deployment_id, context["ti"].try_number)
        self._publish_run(context, run)
        error = exception_for_run(run)
        self._note_error(error)
        if error is not None or not self.wait_for_session_end or run.session_id is None:
            journal.forget()
            if error is not None:
                raise error
            return run.id
        # A retry of this task re-attaches to this run's session, never starts another.
        if earlier is not None:
            journal.write(dataclasses.replace(earlier, run_id=run.id, state="following"))
        else:
            self.log.warning("No record of the send of run %s: a retry of this task cannot re-attach to it", run.id)
        limit = TimeLimit.nearest(self.timeout, self.execution_timeout, _started(context))
        carry = {
            "session_id": run.session_id,
            "run_id": run.id,
            "deployment_id": run.deployment_id,
            # Bounds the sessions feed's list (a session is created after its run, never long before).
            "created_after": (run.created_at - SESSION_CREATION_SLACK).isoformat(),
        }
        return self._follow_session(context, carry, limit)

    def _follow_session(self, context: Context, carry: dict[str, Any], limit: TimeLimit) -> str:
        """Follow the run's session to its end (deferred, or here) and publish it."""
        from datetime import timedelta

        from airflow_provider_managed_agents.waiting import clock

        session_id, run_id = carry["session_id"], carry["run_id"]
        # A session this task just started (or answered) is idle until it runs: the first look is a poll later.
        first_look = min(clock.now() + timedelta(seconds=self.poll_interval), limit.deadline)
        self._watch_session(session_id)
        if self.deferrable:
            self.defer(
                trigger=self._session_trigger(
                    session_id,
                    limit,
                    first_look,
                    run_id=run_id,
                    deployment_id=carry.get("deployment_id"),
                    created_after=_created_after(carry),
                ),
                method_name="execute_complete",
                timeout=clock.deferral_timeout(limit.deadline),
            )
        verdict = self._follow_answering_here(context, session_id, limit, first_look, carry)
        return self._session_settled(run_id, self._publish_session(context, session_id, verdict, limit=limit.which))

    def _follow_on(self, context: Context, carry: dict[str, Any]) -> str:
        """After an answer: follow the session again, its ``timeout`` counted afresh (the time a
        person took is not the session's), ``execution_timeout`` from this resumption."""
        from airflow_provider_managed_agents.operators.run_journal import RunJournal
        from airflow_provider_managed_agents.waiting import clock

        self._journal = RunJournal.for_task(context)
        return self._follow_session(
            context, carry, TimeLimit.nearest(self.timeout, self.execution_timeout, clock.now())
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Back from the triggerer with the session's end."""
        from airflow_provider_managed_agents.assets import announce
        from airflow_provider_managed_agents.exceptions import MalformedTriggerEventError
        from airflow_provider_managed_agents.operators.run_journal import RunJournal

        self._journal = RunJournal.for_task(context)
        ended, error = self._session_resumed(context, event)
        if ended.run_id is None:
            raise MalformedTriggerEventError("The session trigger's event has no 'run_id' for a run task")
        if ended.deployment_id is not None:
            self._link_to(context, ended.deployment_id)
        # Asset events set before deferring are gone: the resumed task announces again.
        ids = {"deployment_id": ended.deployment_id, "session_id": ended.session_id}
        announce(context, self.outlets, deployment_run_id=ended.run_id, **ids)
        return self._session_settled(ended.run_id, error)

    def _session_settled(self, run_id: str, error: BaseException | None) -> str:
        """The session's end is published: the journal forgets the run unless a retry must
        re-attach to a session left running; then the run id, or the error raised."""
        if self.session_left_running is None and self._journal is not None:
            self._journal.forget()
        if error is not None:
            raise error
        return run_id

    def on_kill(self) -> None:
        """Killed, or out of ``execution_timeout``: stop the session this task started (as
        ``on_kill_session`` says), then close the client."""
        if self._give_up_on_session() and self._journal is not None:
            self._journal.forget()  # stopped: a retry starts a new run
        super().on_kill()

    def _adopt(self, earlier: RunAttempt | None, deployment_id: str) -> DeploymentRun | None:
        """The run an earlier try of this task made, when this try must carry on with it."""
        from airflow_provider_managed_agents.reporting import describe_run

        if earlier is None or earlier.deployment_id != deployment_id:
            return None
        if earlier.state == "following" and earlier.run_id:
            run = self.hook.get_deployment_run(earlier.run_id)
            self.log.info("Adopted run %s, started by try %d of this task", run.id, earlier.try_number)
            return run
        found = self.hook.find_run_made_by(earlier.send)
        if found is None:
            self.log.info("Try %d of this task sent no run that landed; sending one", earlier.try_number)
            return None
        if found.error is not None:
            self.log.info(
                "Try %d of this task made run %s, which failed (%s); sending a new one",
                earlier.try_number,
                found.id,
                found.error.type,
            )
            return None
        self.log.info(
            "Adopted run %s, sent by try %d of this task, which never learned its outcome: %s",
            found.id,
            earlier.try_number,
            describe_run(found),
        )
        return found

    def _send(
        self, journal: RunJournal, deployment_id: str, try_number: int
    ) -> tuple[DeploymentRun, RunAttempt | None]:
        """Start the run, with the journal holding the send while its outcome is unknown; the
        run, and the journal's record of its send."""
        from airflow_provider_managed_agents.exceptions import ManagedAgentsError
        from airflow_provider_managed_agents.hooks.managed_agents import RUN_CLOCK_ALLOWANCE
        from airflow_provider_managed_agents.hooks.wire import is_ambiguous
        from airflow_provider_managed_agents.operators.run_journal import RunAttempt
        from airflow_provider_managed_agents.reporting import describe_run
        from airflow_provider_managed_agents.waiting import clock

        attempts: list[RunAttempt] = []

        def note(send: Any) -> None:
            attempts.append(RunAttempt(send, try_number))
            journal.write(attempts[-1])

        try:
            run = self.hook.run_deployment(deployment_id, on_send=note)
        except ManagedAgentsError as exc:
            if attempts and is_ambiguous(exc):
                ended = attempts[-1].send.ended_at(clock.now(), RUN_CLOCK_ALLOWANCE)
                journal.write(RunAttempt(ended, try_number))
            else:
                journal.forget()
            raise
        self.log.info("%s", describe_run(run))
        return run, attempts[-1] if attempts else None

    def _publish_run(self, context: Context, run: DeploymentRun) -> None:
        from airflow_provider_managed_agents.assets import announce

        ti = context["ti"]
        ti.xcom_push(key="deployment_run", value=run.model_dump(mode="json"))
        self._note_lineage(
            run=run.model_dump(mode="json"),
            deployment_id=run.deployment_id,
            deployment_run_id=run.id,
            session_id=run.session_id,
        )
        ti.xcom_push(key="session_id", value=run.session_id)
        self._link_to(context, run.deployment_id)
        if run.session_id is not None:
            self._publish_session_url(context, run.session_id)
        announce(
            context, self.outlets, deployment_id=run.deployment_id, deployment_run_id=run.id, session_id=run.session_id
        )


def _started(context: Context) -> datetime | None:
    """When this try started (execution_timeout counts from there)."""
    from airflow_provider_managed_agents.models.base import parse_timestamp

    start = getattr(context["ti"], "start_date", None)
    return parse_timestamp(start) if start else None


def _created_after(carry: dict[str, Any]) -> datetime | None:
    """The lower bound of the session's creation the carry holds (none in a carry from before it did)."""
    from airflow_provider_managed_agents.models.base import parse_timestamp

    value = carry.get("created_after")
    return parse_timestamp(value) if value else None
