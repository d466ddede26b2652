"""The seam between the runtime and whatever executes a run's code.

The runtime claims a run, keeps its lease and commits what comes out; a **driver** executes one
attempt of it. The Python SDK (:mod:`perdure.drivers.python`) is one driver; the HTTP driver for
apps on the Inngest SDKs is another. A driver is given an :class:`~perdure.runtime.attempt.
Attempt` (the claimed run, its recorded steps, its lease) and:

- writes each step checkpoint with :meth:`Attempt.write` (fenced by the lease; a lost lease
  raises :class:`~perdure._signals.LeaseLost`),
- calls :meth:`Attempt.ensure_lease` before it starts a step body (a side effect the database
  cannot fence),
- returns exactly one :class:`~perdure.store.base.Outcome` (complete, fail, retry, suspend), or
  ``None`` when the attempt stopped without one (the lease was lost, the store went away: the
  run is replayed from its checkpoints when the lease expires).

The runtime does the rest: the crash cap, committing the outcome, announcing finished runs,
waking up for the next due run. Retry decisions come from :mod:`perdure.engine.attempts`, the
same for every driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from perdure.runtime.attempt import Attempt
from perdure.runtime.ports import ClientOps, HostedFunction
from perdure.store.base import Outcome

__all__ = ["ClientOps", "Driver", "HostedFunction"]


class Driver(Protocol):
    """Executes attempts of the runs of some functions."""

    @property
    def functions(self) -> Mapping[str, HostedFunction]:
        """The functions this driver executes, by id (may grow while it runs)."""
        ...

    async def execute(self, attempt: Attempt) -> Outcome | None:
        """Execute one attempt of a claimed run; see the module docstring."""
        ...

    async def close(self) -> None:
        """Release the driver's resources (the worker stopped)."""
        ...
