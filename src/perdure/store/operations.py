"""The operations part of the storage protocol: the workers registry, paused functions and
bounded pruning (migration 0008). :class:`~perdure.store.base.Store` includes it.

- **Workers registry.** Every worker upserts one small row (:class:`WorkerBeat`) on its own
  cadence, not per run; a clean shutdown marks the row stopped. A row whose last heartbeat is
  older than its ``stale_after`` belongs to a worker that died without saying so (SIGKILL, a
  lost machine). Rows not seen for a while are pruned.
- **Paused functions** live in their own table, apart from the ``functions`` rows a sync
  rewrites: registering or syncing a function keeps its pause. Claims skip the runs of paused
  functions (they stay queued, in their queue order); creating runs is unaffected, except that
  a run is never created already leased (``NewRun.lease_owner``) while its function is paused.
- **Pruning in bounded batches**: :meth:`OperationsStore.prune_runs` deletes at most ``limit``
  ended runs (with their steps) per call, one short transaction each; the caller loops and
  yields between batches (:mod:`perdure.runtime.retention`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, LiteralString, Protocol

from perdure import serde

__all__ = ["WORKER_COLUMNS", "OperationsStore", "WorkerBeat", "WorkerRow", "worker_from_row"]

WORKER_COLUMNS: Final[LiteralString] = (
    "id, host, pid, app, functions, slots, slots_used, stale_after, started_at, "
    "last_heartbeat, stopped_at"
)
"""The columns :func:`worker_from_row` reads, in order (both backends)."""


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """What a worker writes about itself on every beat (:meth:`OperationsStore.beat_worker`)."""

    id: str
    host: str
    pid: int
    app: str
    functions: tuple[str, ...]
    slots: int
    slots_used: int
    stale_after: float
    """Seconds without a beat after which the worker is presumed dead."""


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A worker as registered. Times are store seconds since the epoch."""

    id: str
    host: str
    pid: int
    app: str
    functions: tuple[str, ...]
    slots: int
    slots_used: int
    stale_after: float
    started_at: float
    last_heartbeat: float
    stopped_at: float | None

    def live(self, now: float) -> bool:
        """Whether the worker runs now: not stopped, and beat within ``stale_after``."""
        return self.stopped_at is None and now - self.last_heartbeat <= self.stale_after


class OperationsStore(Protocol):
    """Workers, pauses and pruning (see the module docstring)."""

    async def beat_worker(self, beat: WorkerBeat) -> None:
        """Create or refresh the worker's row: its heartbeat is now (its ``started_at`` is
        the first beat's time; a beat after a stop clears ``stopped_at``)."""
        ...

    async def stop_worker(self, worker_id: str) -> None:
        """Mark the worker stopped now (a clean shutdown); unknown ids are ignored."""
        ...

    async def list_workers(self, seen_since: float) -> list[WorkerRow]:
        """The workers that beat at or after ``seen_since``, oldest start first."""
        ...

    async def prune_workers(self, before: float) -> int:
        """Delete the rows of workers whose last beat is before ``before``; how many."""
        ...

    async def set_function_paused(self, function_id: str, paused: bool) -> float | None:
        """Pause or resume a function; return when it was paused (``None``: it runs). Pausing
        a paused function keeps its first ``paused_at``; resuming wakes the workers, and its
        queued runs start in their queue order."""
        ...

    async def paused_functions(self) -> dict[str, float]:
        """The paused functions: id -> when paused."""
        ...

    async def prune_runs(
        self,
        finished_before: float,
        limit: int,
        *,
        function_id: str | None = None,
        exclude: Sequence[str] = (),
    ) -> int:
        """Delete at most ``limit`` ended runs (with their steps) that ended before
        ``finished_before``, in one short transaction, the oldest end first: those of
        ``function_id`` when given, else of every function but those in ``exclude``. Return
        how many were deleted."""
        ...

    async def count_prunable(
        self,
        finished_before: float,
        *,
        function_id: str | None = None,
        exclude: Sequence[str] = (),
    ) -> dict[str, int]:
        """What :meth:`prune_runs` would delete without a limit, counted by function id
        (a read: nothing is deleted)."""
        ...


def worker_from_row(row: Sequence[Any]) -> WorkerRow:
    """A worker selected with :data:`WORKER_COLUMNS`."""
    wid, host, pid, app, functions, slots, used, stale, started, beat, stopped = row
    return WorkerRow(
        id=wid,
        host=host,
        pid=int(pid),
        app=app,
        functions=tuple(serde.loads(functions)),
        slots=int(slots),
        slots_used=int(used),
        stale_after=float(stale),
        started_at=float(started),
        last_heartbeat=float(beat),
        stopped_at=None if stopped is None else float(stopped),
    )
