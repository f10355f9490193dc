"""ManagedAgentsRolloutDeploymentOperator: move a deployment onto a new agent version behind a
smoke run, and put it back when the smoke run fails.

There is no rollout or traffic-split API: a rollout is an update of the deployment's agent pin.
This task makes it safe: it notes the exact pin the deployment had, pins the new version, starts a
manual smoke run and follows its session to the end (in the worker or deferred, as the run
operator does, whose machinery it is), and on any failure of the smoke (a typed run error, a
session ending, the timeout, a kill) restores the noted pin and fails with the smoke's own error.

A retry never rolls out twice: the rollout's record (the task state store on Airflow 3.3, a
Variable before) says where an earlier try stopped, and the smoke run is the run operator's,
adopted rather than sent again. A deployment already on the new version is left as it is (no
smoke run): a re-run of a provisioning DAG changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_managed_agents.operators.runs import ManagedAgentsRunDeploymentOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_managed_agents.stores import TaskRecord

STATE_KEY = "managed_agents_rollout"
VARIABLE_PREFIX = "managed_agents_rollout__"


class ManagedAgentsRolloutDeploymentOperator(ManagedAgentsRunDeploymentOperator):
    """Pin a deployment to a new agent version behind a smoke run; roll back if it fails.

    :param deployment_id: the deployment to move.
    :param agent: the new pin: ``{"type": "agent", "id": ..., "version": N}`` (an ensure-agent
        task's ``agent_pin`` XCom), or an agent id (its latest version).
    :param wait_for_session_end: judge the smoke by its session's end (default) rather than by
        its run alone.
    :param deferrable, poll_interval, timeout, final_message_max_chars, on_kill_session: as the
        run operator's, for the smoke run.

    XCom ``agent_pin`` is the pin the deployment has when the task ends: the new one on success
    (with ``previous_agent_pin``), the restored one on failure (also in ``rolled_back_to``, pushed
    only then), besides the smoke run's XComs. Success returns the deployment id; failure
    restores the previous pin exactly and raises the smoke's typed error.
    """

    template_fields: Sequence[str] = ("deployment_id", "agent", "managed_agents_conn_id")
    template_fields_renderers = {"agent": "json"}

    def __init__(
        self, *, deployment_id: str, agent: str | dict[str, Any], wait_for_session_end: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(deployment_id=deployment_id, wait_for_session_end=wait_for_session_end, **kwargs)
        self.agent = agent
        self._rollout: TaskRecord | None = None
        self._previous: dict[str, Any] | None = None

    def execute(self, context: Context) -> str:
        from airflow_provider_managed_agents.models.params import checked_id

        deployment_id = checked_id(self.deployment_id, "deployment_id")
        record = self._record(context)
        earlier = record.read() or {}
        if earlier.get("deployment_id") == deployment_id:
            previous, target = earlier["previous"], earlier["target"]
            self.log.info("Carrying on with the rollout try %s began: %s -> %s", earlier.get("try"), previous, target)
        else:
            current = self.hook.get_deployment(deployment_id).agent
            previous = {"type": "agent", "id": current.id, "version": current.version}
            target = self._target()
            if target == previous:
                self.log.info(
                    "Deployment %s is already on agent %s version %s: nothing to roll out",
                    deployment_id,
                    target["id"],
                    target["version"],
                )
                context["ti"].xcom_push(key="agent_pin", value=target)
                return deployment_id
            record.write(
                {
                    "deployment_id": deployment_id,
                    "previous": previous,
                    "target": target,
                    "try": context["ti"].try_number,
                }
            )
        self._previous = previous
        self.hook.update_deployment(deployment_id, agent=target)
        self.log.info(
            "Deployment %s pinned to agent %s version %s; smoke run next",
            deployment_id,
            target["id"],
            target["version"],
        )
        try:
            super().execute(context)
        except Exception as error:  # TaskDeferred is not one: the rollout carries on in execute_complete
            from airflow_provider_managed_agents.compat import TaskDeferred

            if isinstance(error, TaskDeferred):
                raise
            self._roll_back(context, deployment_id, previous)
            raise
        return self._rolled_out(context, deployment_id, previous, target)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Back from the triggerer with the smoke session's end."""
        from airflow_provider_managed_agents.models.params import checked_id

        deployment_id = checked_id(self.deployment_id, "deployment_id")
        record = self._record(context).read() or {}
        previous, target = record.get("previous"), record.get("target")
        self._previous = previous
        try:
            super().execute_complete(context, event)
        except Exception:
            if previous is not None:
                self._roll_back(context, deployment_id, previous)
            raise
        if previous is None or target is None:
            from airflow_provider_managed_agents.exceptions import ManagedAgentsError

            raise ManagedAgentsError(f"No record of this rollout of {deployment_id}: its pin cannot be reported")
        return self._rolled_out(context, deployment_id, previous, target)

    def on_kill(self) -> None:
        """Killed, or out of ``execution_timeout``, mid-smoke: stop the smoke session (as the run
        operator does), then put the deployment back on its previous pin."""
        super().on_kill()
        if self._previous is not None and self._rollout is not None:
            try:
                self.hook.update_deployment(str(self.deployment_id), agent=self._previous)
                self._rollout.forget()
                self.log.info("Rolled deployment %s back to %s", self.deployment_id, self._previous)
            except Exception as exc:  # a kill must never be blocked by the API
                self.log.warning("Could not roll deployment %s back to %s: %s", self.deployment_id, self._previous, exc)

    # --- the two endings ----------------------------------------------------------------------

    def _roll_back(self, context: Context, deployment_id: str, previous: dict[str, Any]) -> None:
        self.log.warning("Smoke run failed: rolling deployment %s back to %s", deployment_id, previous)
        restored = self.hook.update_deployment(deployment_id, agent=previous)
        context["ti"].xcom_push(key="agent_pin", value=previous)
        context["ti"].xcom_push(key="rolled_back_to", value=previous)
        assert self._rollout is not None
        self._rollout.forget()
        self._previous = None
        self.log.info(
            "Deployment %s is back on agent %s version %s", deployment_id, restored.agent.id, restored.agent.version
        )

    def _rolled_out(
        self, context: Context, deployment_id: str, previous: dict[str, Any], target: dict[str, Any]
    ) -> str:
        ti = context["ti"]
        ti.xcom_push(key="agent_pin", value=target)
        ti.xcom_push(key="previous_agent_pin", value=previous)
        assert self._rollout is not None
        self._rollout.forget()
        self._previous = None
        self.log.info("Rolled deployment %s out to agent %s version %s", deployment_id, target["id"], target["version"])
        return deployment_id

    # --- what it moves to, and its record ---------------------------------------------------------

    def _target(self) -> dict[str, Any]:
        from airflow_provider_managed_agents.exceptions import ManagedAgentsValidationError

        agent = self.agent
        if isinstance(agent, str):
            latest = self.hook.get_agent(agent)
            return latest.pin()
        if isinstance(agent, dict) and isinstance(agent.get("id"), str):
            if agent.get("version") is None:
                return self.hook.get_agent(agent["id"]).pin()
            try:
                version = int(agent["version"])
            except (TypeError, ValueError):
                version = 0
            if version >= 1:
                return {"type": "agent", "id": agent["id"], "version": version}
        raise ManagedAgentsValidationError(
            "rollout arguments", [("agent", 'an agent id or {"type": "agent", "id": ..., "version": N >= 1}')]
        )

    def _record(self, context: Context) -> TaskRecord:
        from airflow_provider_managed_agents.stores import TaskRecord

        self._rollout = TaskRecord.for_task(context, STATE_KEY, VARIABLE_PREFIX, "this task's rollout record")
        return self._rollout
