"""ManagedAgentsSessionSensor: wait for any session (an id from anywhere) to finish its work.

On the DAG-parse path: only ``airflow.sdk`` and light modules at module level.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import BaseOperatorLink, PokeReturnValue

from airflow_provider_managed_agents.links import ManagedAgentsSessionLink
from airflow_provider_managed_agents.sensors.base import ManagedAgentsSensorBase

if TYPE_CHECKING:
    from airflow.sdk import Context


class ManagedAgentsSessionSensor(ManagedAgentsSensorBase):
    """Wait until a session's turn is over: success when it ended with ``end_turn`` (and any
    defined outcome is ``satisfied``); every other ending raises its ``SessionError`` class
    (:mod:`airflow_provider_managed_agents.exceptions`).

    :param session_id: the session to follow (e.g. a run's ``session_id`` XCom).
    :param poll_interval: seconds between looks while it runs (one request each; its events are
        read only when its status says the turn may be over).
    :param approve_tools_with: ``"hitl"``: tool calls the session holds for a confirmation are put
        to a person through Airflow's human-in-the-loop (Airflow >= 3.1); default None: such a
        session fails the sensor with ``SessionRequiresActionError``.
    :param approval_timeout: how long a person has to answer each round; then
        ``approval_default`` (``deny`` unless told ``allow``) applies.
    :param custom_tools: custom tool name -> dotted path of a callable that answers it. See
        :mod:`~airflow_provider_managed_agents.answering` (not with ``mode="reschedule"``).

    Takes the arguments of every provider sensor (``deferrable``, ``final_message_max_chars``,
    ``on_kill_session`` (default ``none``), ``managed_agents_conn_id``, ``timeout``, ``mode``,
    ``soft_fail``...). Returns the session id; XCom as the run operator's with
    ``wait_for_session_end``: ``session_status``, ``stop_reason``, ``stop_details``,
    ``final_message``, ``outcome``, ``usage``, on success and on failure; ``actions`` (and
    ``pending_actions`` while a person is asked) when it answered what the session waited for.
    """

    template_fields: Sequence[str] = ("session_id", "managed_agents_conn_id")
    operator_extra_links: Collection[BaseOperatorLink] = (ManagedAgentsSessionLink(),)

    def __init__(
        self,
        *,
        session_id: str,
        poll_interval: float = 30.0,
        approve_tools_with: str | None = None,
        approval_timeout: timedelta | float | None = None,
        approval_default: str = "deny",
        custom_tools: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(poll_interval=poll_interval, **kwargs)
        self.session_id = session_id
        self._configure_answers(approve_tools_with, approval_timeout, approval_default, custom_tools)
        if self.answers_actions and self.mode == "reschedule":
            from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

            # A reschedule starts the task afresh, which clears its XCom: the answers' record with it.
            what = "approve_tools_with" if approve_tools_with is not None else "custom_tools"
            raise ManagedAgentsValidationError("arguments", [(what, "needs mode='poke' or deferrable=True")])

    def _checked_id(self) -> str:
        from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError
        from airflow_provider_managed_agents.models.params import checked_id

        try:
            return checked_id(self.session_id, "session_id")
        except ManagedAgentsValidationError as exc:
            self._fail(exc)

    def _timed_out(self, context: Context) -> NoReturn:
        session_id = self._checked_id()
        self._conclude_session(context, session_id, self._session_wait(session_id).timed_out(self.timeout))
        raise AssertionError("unreachable: a timeout always raises")

    def poke(self, context: Context) -> bool | PokeReturnValue:
        return self._poke_session(context, self._checked_id(), self._deadline(context), None)

    def execute(self, context: Context) -> Any:
        from airflow_provider_managed_agents.waiting import clock

        if not self.deferrable:
            return self._run_modes(context)
        self._started_at = clock.now()
        return self._follow_session_now(context, self._checked_id(), self._deadline(context), None)
