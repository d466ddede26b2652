"""Operations on SQLite: the workers registry, paused functions, bounded pruning (a mixin of
:class:`~perdure.store.sqlite.store.SqliteStore`; see :mod:`perdure.store.operations`).

Pausing or resuming bumps the registry version, so the claim, which reads that version in its
transaction, knows the paused functions exactly and leaves them out of the functions it claims
for: a pause costs the claim nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from perdure import serde
from perdure.store import inputs
from perdure.store.operations import WorkerBeat, WorkerRow, worker_from_row
from perdure.store.sqlite import queries as q

if TYPE_CHECKING:
    from perdure.store.sqlite.writer import Tx

T = TypeVar("T")


class Operations:
    """Workers, pauses and pruning."""

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Tx], T], small: bool = False) -> T: ...

        async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T: ...

    # ------------------------------------------------------------------ workers

    async def beat_worker(self, beat: WorkerBeat) -> None:
        """Create or refresh the worker's row."""
        inputs.require_storable("a worker id", beat.id)
        fields = (beat.id, beat.host, int(beat.pid), beat.app, serde.dumps(list(beat.functions)))
        sizes = (int(beat.slots), int(beat.slots_used), float(beat.stale_after))

        def op(tx: Tx) -> None:
            tx.conn.execute(q.WORKER_BEAT, (*fields, *sizes, tx.now, tx.now))

        await self._write(op, True)

    async def stop_worker(self, worker_id: str) -> None:
        """Mark the worker stopped."""
        if not inputs.storable(worker_id):
            return
        await self._write(lambda tx: tx.conn.execute(q.WORKER_STOP, (tx.now, worker_id)), True)

    async def list_workers(self, seen_since: float) -> list[WorkerRow]:
        """The workers that beat at or after ``seen_since``."""
        rows = await self._read(lambda c: c.execute(q.WORKERS_SEEN, (seen_since,)).fetchall())
        return [worker_from_row(row) for row in rows]

    async def prune_workers(self, before: float) -> int:
        """Delete the rows of workers not seen since ``before``."""
        return await self._write(lambda tx: tx.conn.execute(q.WORKERS_PRUNE, (before,)).rowcount)

    # ------------------------------------------------------------------ pauses

    async def set_function_paused(self, function_id: str, paused: bool) -> float | None:
        """Pause or resume a function (the registry version moves: claims see it at once)."""
        inputs.require_storable("a function id", function_id)

        def op(tx: Tx) -> float | None:
            conn = tx.conn
            if paused:
                changed = conn.execute(q.PAUSE_FUNCTION, (function_id, tx.now)).rowcount
            else:
                changed = conn.execute(q.RESUME_FUNCTION, (function_id,)).rowcount
                tx.wake = tx.wake or changed > 0
            if changed:
                conn.execute(q.BUMP_REGISTRY)
            row = conn.execute(q.PAUSED_AT, (function_id,)).fetchone()
            return None if row is None else float(row[0])

        return await self._write(op)

    async def paused_functions(self) -> dict[str, float]:
        """The paused functions and when they were paused."""
        rows = await self._read(lambda c: c.execute(q.PAUSED_FUNCTIONS).fetchall())
        return {str(fid): float(at) for fid, at in rows}

    # ------------------------------------------------------------------ pruning

    async def prune_runs(
        self,
        finished_before: float,
        limit: int,
        *,
        function_id: str | None = None,
        exclude: Sequence[str] = (),
    ) -> int:
        """Delete at most ``limit`` ended runs (and their steps) in one transaction."""
        if limit <= 0 or not inputs.all_storable((function_id, *exclude)):
            return 0
        pick, params = _pick(finished_before, function_id, exclude)

        def op(tx: Tx) -> int:
            conn = tx.conn
            ids = [r[0] for r in conn.execute(pick, (*params, limit))]
            if ids:
                marks = q.marks(len(ids))
                conn.execute(q.PRUNE_STEPS.format(ids=marks), ids)
                conn.execute(q.PRUNE_AUDIT.format(ids=marks), ids)
                conn.execute(q.PRUNE_RUNS.format(ids=marks), ids)
            return len(ids)

        return await self._write(op)

    async def count_prunable(
        self,
        finished_before: float,
        *,
        function_id: str | None = None,
        exclude: Sequence[str] = (),
    ) -> dict[str, int]:
        """How many ended runs :meth:`prune_runs` would delete, by function (a read)."""
        if not inputs.all_storable((function_id, *exclude)):
            return {}
        params: tuple[object, ...]
        if function_id is not None:
            sql, params = q.PRUNE_COUNT_ONE, (finished_before, function_id)
        else:
            sql = q.PRUNE_COUNT_OTHERS.format(fids=q.marks(len(exclude)))
            params = (finished_before, *exclude)
        rows = await self._read(lambda c: c.execute(sql, params).fetchall())
        return {str(fid): int(n) for fid, n in rows}


def _pick(
    before: float, function_id: str | None, exclude: Sequence[str]
) -> tuple[str, tuple[object, ...]]:
    if function_id is not None:
        return q.PRUNE_PICK_ONE, (before, function_id)
    return q.PRUNE_PICK_OTHERS.format(fids=q.marks(len(exclude))), (before, *exclude)
