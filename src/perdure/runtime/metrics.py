"""What the runtime counts, and where it reports it.

The runtime knows the moments worth counting (a run starts, ends, a lease is taken over, a step
attempt ends) but not how they are exported: it calls a :class:`RunMetrics` sink, by default
:data:`NO_METRICS`, which does nothing (no cost beyond a method call). The HTTP server attaches
a Prometheus sink (:mod:`perdure.server.metrics`) to the runtime it serves.

Counts are per process: each process counts what it did itself (the runs its workers started
and ended, the cancels it made, the skipped runs it created).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from perdure.store.base import Store


class RunMetrics(Protocol):
    """The sink of the runtime's counts."""

    @property
    def enabled(self) -> bool:
        """Whether anything is counted (counts that need a read are skipped otherwise)."""
        ...

    def run_started(self, function_id: str) -> None:
        """A worker of this process started a run (its first claim)."""
        ...

    def run_ended(self, function_id: str, status: str) -> None:
        """A run ended here: ``completed``, ``failed``, ``cancelled`` or ``skipped``."""
        ...

    def lease_taken_over(self, function_id: str) -> None:
        """A worker of this process claimed a run whose previous lease had expired."""
        ...

    def step_ended(self, function_id: str, kind: str, seconds: float) -> None:
        """A step attempt ended (completed, failed or to be retried) after ``seconds``."""
        ...


class _NoMetrics:
    """The sink that counts nothing."""

    enabled = False

    def run_started(self, function_id: str) -> None:
        pass

    def run_ended(self, function_id: str, status: str) -> None:
        pass

    def lease_taken_over(self, function_id: str) -> None:
        pass

    def step_ended(self, function_id: str, kind: str, seconds: float) -> None:
        pass


NO_METRICS: RunMetrics = _NoMetrics()
"""The default sink: nothing is counted."""


async def count_ended(
    metrics: RunMetrics, store: Store, run_ids: Sequence[str], status: str
) -> None:
    """Count in ``metrics`` the runs among ``run_ids`` that are now in ``status`` (their
    function ids are read in one query; nothing is read while no sink is attached). A failing
    read only loses the counts."""
    if not metrics.enabled or not run_ids:
        return
    try:
        rows = await store.get_runs(list(run_ids))
    except Exception:
        return
    for row in rows:
        if row.status == status:
            metrics.run_ended(row.function_id, status)
