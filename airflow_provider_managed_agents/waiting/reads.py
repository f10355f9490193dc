"""The reads a wait's look makes, written once for the blocking and the async client.

A look is a plan (a generator) that yields the reads it needs and decides from their answers;
:func:`answer` runs it with the blocking hook (a poke, a worker), :func:`aanswer` with the async
one (a trigger). So a poke and a trigger make the same requests in the same order and reach the
same verdict, and a look's logic exists once.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from airflow_provider_managed_agents.hooks.managed_agents import ManagedAgentsHook

ResultT = TypeVar("ResultT")
Plan = Generator["Read", Any, ResultT]


class Read:
    """One read of the API, by either client."""

    def send(self, hook: ManagedAgentsHook) -> Any:
        raise NotImplementedError

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class ReadRun(Read):
    """A deployment run."""

    run_id: str

    def send(self, hook: ManagedAgentsHook) -> Any:
        return hook.get_deployment_run(self.run_id)

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        return await hook.aget_deployment_run(self.run_id)


@dataclass(frozen=True)
class ReadRuns(Read):
    """Every run matching ``filters``, every page."""

    filters: dict[str, Any]

    def send(self, hook: ManagedAgentsHook) -> Any:
        return list(hook.list_deployment_runs(**self.filters))

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        return [run async for run in hook.alist_deployment_runs(**self.filters)]


@dataclass(frozen=True)
class ReadDeployment(Read):
    """A deployment."""

    deployment_id: str

    def send(self, hook: ManagedAgentsHook) -> Any:
        return hook.get_deployment(self.deployment_id)

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        return await hook.aget_deployment(self.deployment_id)


@dataclass(frozen=True)
class ReadSession(Read):
    """A session."""

    session_id: str

    def send(self, hook: ManagedAgentsHook) -> Any:
        return hook.get_session(self.session_id)

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        return await hook.aget_session(self.session_id)


@dataclass(frozen=True)
class ReadEvents(Read):
    """One page of a session's events matching ``filters``."""

    session_id: str
    filters: dict[str, Any]

    def send(self, hook: ManagedAgentsHook) -> Any:
        return hook.list_session_events_page(self.session_id, **self.filters).data

    async def asend(self, hook: ManagedAgentsHook) -> Any:
        return (await hook.alist_session_events_page(self.session_id, **self.filters)).data


def answer(plan: Plan[ResultT], hook: ManagedAgentsHook) -> ResultT:
    """Run ``plan`` with the blocking client: its result (the hook's errors are raised)."""
    try:
        read = next(plan)
        while True:
            read = plan.send(read.send(hook))
    except StopIteration as done:
        return done.value


async def aanswer(plan: Plan[ResultT], hook: ManagedAgentsHook) -> ResultT:
    """Run ``plan`` with the async client."""
    try:
        read = next(plan)
        while True:
            read = plan.send(await read.asend(hook))
    except StopIteration as done:
        return done.value
