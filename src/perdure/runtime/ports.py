"""The runtime's ports: what it needs of the functions it hosts and of the client layer.

Apart from :mod:`perdure.runtime.driver` so that the runtime object, attempts and drivers all
depend on them without depending on each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from perdure.engine.backoff import RetryPolicy
from perdure.functions import FunctionRecord, Trigger
from perdure.store.base import NewRun
from perdure.types import Event


class HostedFunction(Protocol):
    """What the runtime needs to know of a function it hosts, whatever executes it."""

    @property
    def id(self) -> str:
        """The function's id."""
        ...

    @property
    def triggers(self) -> tuple[Trigger, ...]:
        """Its triggers (cron triggers are fired by the scheduler)."""
        ...

    @property
    def retry(self) -> RetryPolicy:
        """Its retry policy (steps and run attempts)."""
        ...

    @property
    def max_crashes(self) -> int:
        """How many worker crashes a run survives before it fails."""
        ...

    def record(self) -> FunctionRecord:
        """The form the store keeps (routing events without the code)."""
        ...


class ClientOps(Protocol):
    """The client operations a running step may need (an ``invoke`` creates a child run, a
    ``send_event`` step sends events), provided by the client layer."""

    async def child_run(self, function_id: str, data: Any, parent: str, key: str) -> NewRun:
        """The run an ``invoke`` step creates (validated; not yet written)."""
        ...

    async def send(self, events: Event | Sequence[Event]) -> list[str]:
        """Send events; return their ids."""
        ...

    async def recover(self) -> None:
        """Redo what a crash of some process may have cut short: the lifecycle events of the
        runs that ended just before it (a starting worker calls it)."""
        ...
