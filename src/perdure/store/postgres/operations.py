"""Operations on PostgreSQL: the workers registry, paused functions, pruning (a mixin of
:class:`~perdure.store.postgres.store.PostgresStore`; see :mod:`perdure.store.operations`).

Claims leave paused functions' runs out in SQL (an anti-join on ``function_pauses``, a table
of a few rows, usually none: see ``UNPAUSED`` in :mod:`.queries`), so a pause applies to the
very next claim of every process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from perdure import serde
from perdure.store import inputs
from perdure.store.operations import WorkerBeat, WorkerRow, worker_from_row
from perdure.store.postgres import ops_queries as oq
from perdure.store.postgres.pool import Conn, Pool, transaction, write_one


class Operations:
    """Workers, pauses and pruning."""

    _pool: Pool
    _wake_channel: str
    _origin: str
    _now_param: Callable[[], float | None]
    _announce: Callable[..., None]
    _prune_gates: Callable[[], Awaitable[None]]

    async def _write(self, stmt: Any, params: dict[str, Any]) -> list[Any]:
        async def op(conn: Conn) -> list[Any]:
            return await write_one(conn, stmt, params)

        return await self._pool.run(op)

    # ------------------------------------------------------------------ workers

    async def beat_worker(self, beat: WorkerBeat) -> None:
        """Create or refresh the worker's row (one small upsert)."""
        inputs.require_storable("a worker id", beat.id)
        params = {
            "now": self._now_param(),
            "id": beat.id,
            "host": beat.host,
            "pid": int(beat.pid),
            "app": beat.app,
            "functions": serde.dumps(list(beat.functions)),
            "slots": int(beat.slots),
            "used": int(beat.slots_used),
            "stale": float(beat.stale_after),
        }
        await self._write(oq.WORKER_BEAT, params)

    async def stop_worker(self, worker_id: str) -> None:
        """Mark the worker stopped."""
        if inputs.storable(worker_id):
            await self._write(oq.WORKER_STOP, {"now": self._now_param(), "id": worker_id})

    async def list_workers(self, seen_since: float) -> list[WorkerRow]:
        """The workers that beat at or after ``seen_since``."""
        rows = await self._pool.read_all(oq.WORKERS_SEEN, {"since": float(seen_since)})
        return [worker_from_row(row) for row in rows]

    async def prune_workers(self, before: float) -> int:
        """Delete the rows of workers not seen since ``before``."""
        rows = await self._write(oq.WORKERS_PRUNE, {"before": float(before)})
        return int(rows[0][0])

    # ------------------------------------------------------------------ pauses

    async def set_function_paused(self, function_id: str, paused: bool) -> float | None:
        """Pause or resume a function; resuming wakes every worker."""
        inputs.require_storable("a function id", function_id)
        params: dict[str, Any] = {"now": self._now_param(), "fid": function_id}
        if paused:
            rows = await self._write(oq.PAUSE_FUNCTION, params)
            return float(rows[0][0])
        params |= {"wake_channel": self._wake_channel, "origin": self._origin}
        rows = await self._write(oq.RESUME_FUNCTION, params)
        self._announce(bool(rows[0][0]))
        return None

    async def paused_functions(self) -> dict[str, float]:
        """The paused functions and when they were paused."""
        rows = await self._pool.read_all(oq.PAUSED_FUNCTIONS, {})
        return {str(fid): float(at) for fid, at in rows}

    # ------------------------------------------------------------------ pruning

    def _prune_params(
        self, before: float, function_id: str | None, exclude: Sequence[str]
    ) -> dict[str, Any]:
        return {"before": float(before), "fid": function_id, "exclude": sorted(set(exclude))}

    async def prune_runs(
        self,
        finished_before: float,
        limit: int,
        *,
        function_id: str | None = None,
        exclude: Sequence[str] = (),
    ) -> int:
        """Delete at most ``limit`` ended runs (and their steps) in one statement."""
        if limit <= 0 or not inputs.all_storable((function_id, *exclude)):
            return 0
        params = self._prune_params(finished_before, function_id, exclude)
        rows = await self._write(oq.PRUNE_BATCH, {**params, "limit": int(limit)})
        return int(rows[0][0])

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
        params = self._prune_params(finished_before, function_id, exclude)
        rows = await self._pool.read_all(oq.PRUNE_COUNT, params)
        return {str(fid): int(n) for fid, n in rows}

    async def prune(self, finished_before: float, limit: int) -> int:
        """Delete terminal runs (and their steps) that ended before the given time, expired
        event ids, and events received before that time."""
        before = {"before": float(finished_before)}

        async def op(conn: Conn) -> int:
            counted, _, _ = await transaction(
                conn,
                [
                    (oq.PRUNE_RUNS, {**before, "limit": limit}),
                    (oq.PRUNE_EVENT_IDS, {"now": self._now_param()}),
                    (oq.PRUNE_EVENTS, before),
                ],
            )
            return int(counted[0][0])

        pruned = await self._pool.run(op)
        await self._prune_gates()
        return pruned
