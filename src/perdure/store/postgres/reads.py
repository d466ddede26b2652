"""The read side of the PostgreSQL store: runs, steps and events as the query layer lists them
(a mixin of :class:`~perdure.store.postgres.store.PostgresStore`; pooled reads, no locks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from perdure.store import inputs
from perdure.store.base import (
    DueBacklog,
    EndedRun,
    EventRow,
    RunFilter,
    RunRow,
    RunTiming,
    StoredStep,
)
from perdure.store.postgres import list_queries as lq
from perdure.store.postgres import queries as q
from perdure.store.postgres.pool import Pool
from perdure.store.rows import run_from_row, step_from_row


class Reads:
    """Reads of runs, steps and events."""

    _pool: Pool

    if TYPE_CHECKING:

        def _now_param(self) -> float | None: ...

    async def get_run(self, run_id: str) -> RunRow | None:
        """One run."""
        if not inputs.storable(run_id):
            return None
        row = await self._pool.read_one(q.SELECT_RUN, {"id": run_id})
        return None if row is None else run_from_row(row)

    async def get_runs(self, run_ids: Sequence[str]) -> list[RunRow]:
        """Several runs (missing ids are left out)."""
        ids = [i for i in run_ids if inputs.storable(i)]
        if not ids:
            return []
        return [run_from_row(row) for row in await self._pool.read_all(q.SELECT_RUNS, {"ids": ids})]

    async def ended_runs(self, run_ids: Sequence[str]) -> list[EndedRun]:
        """The runs among these that have ended, with their outcome."""
        ids = [i for i in run_ids if inputs.storable(i)]
        if not ids:
            return []
        return [EndedRun(*row) for row in await self._pool.read_all(q.ENDED_RUNS, {"ids": ids})]

    async def due_backlog(self) -> DueBacklog:
        """The runs due and not claimed, by function (a read on the due index)."""
        rows = await self._pool.read_all(_DUE_BACKLOG, {"now": self._now_param()})
        return DueBacklog(
            float(rows[0][0]), {str(r[1]): (int(r[2]), float(r[3])) for r in rows if r[1]}
        )

    async def ended_since(self, since: float, limit: int) -> list[str]:
        """Ids of the runs that ended at or after ``since``, the earliest end first."""
        rows = await self._pool.read_all(q.ENDED_SINCE, {"since": since, "limit": limit})
        return [str(row[0]) for row in rows]

    async def get_steps(self, run_id: str) -> list[StoredStep]:
        """The recorded steps of a run, in call order."""
        if not inputs.storable(run_id):
            return []
        rows = await self._pool.read_all(q.STEPS_OF_RUN, {"id": run_id})
        return [step_from_row(row) for row in rows]

    async def list_runs(self, flt: RunFilter) -> list[RunRow]:
        """Runs, newest first, filtered (see :class:`~perdure.store.base.RunFilter`)."""
        params = inputs.run_filter_params(flt)
        if params is None:
            return []
        stmt = lq.list_runs(flt.shape())
        return [run_from_row(row) for row in await self._pool.read_all(stmt, params)]

    async def list_events(self, name: str | None, before: int | None, limit: int) -> list[EventRow]:
        """Events, newest first, with the runs each started."""
        if not inputs.storable(name):
            return []
        cursor = inputs.seq_cursor(before)
        stmt = lq.LIST_EVENTS[(name is not None, cursor is not None)]
        params = {"name": name, "before": cursor, "limit": inputs.row_limit(limit)}
        return [
            EventRow(seq, ev_id, nm, body, at, list(run_ids or ()))
            for seq, ev_id, nm, body, at, run_ids in await self._pool.read_all(stmt, params)
        ]

    async def get_event(self, event_id: str) -> EventRow | None:
        """The newest stored event with this id, with the runs it started."""
        if not inputs.storable(event_id):
            return None
        row = await self._pool.read_one(_GET_EVENT, {"id": event_id})
        if row is None:
            return None
        seq, ev_id, name, body, at, run_ids = row
        return EventRow(seq, ev_id, name, body, at, list(run_ids or ()))

    async def waits_resolved_by(self, event: EventRow, limit: int) -> list[tuple[str, str]]:
        """The wait steps ``event`` resolved: completed with it as output, at or after its
        receipt (an older event of the same id resolved the earlier ones)."""
        params = {"at": event.received_at, "id": event.id, "limit": inputs.row_limit(limit)}
        rows = await self._pool.read_all(_WAITS_RESOLVED, params)
        return [(str(run_id), str(key)) for run_id, key in rows]

    async def run_timings(self, function_id: str, limit: int) -> list[RunTiming]:
        """The newest runs of a function: status, start and end (the function's run index)."""
        if not inputs.storable(function_id):
            return []
        params = {"fid": function_id, "limit": inputs.row_limit(limit)}
        rows = await self._pool.read_all(_RUN_TIMINGS, params)
        return [(str(status), started, ended) for status, started, ended in rows]


# Every recorded wait step is read (no index names a wait's event): a schema change could add
# one (see docs/dashboard.md, "Events").
_WAITS_RESOLVED: Final = (
    "SELECT run_id, key FROM steps WHERE kind = 'wait' AND status = 'completed' "
    "AND ended_at >= %(at)s AND output IS NOT NULL AND (output::json ->> 'id') = %(id)s "
    "ORDER BY run_id, key LIMIT %(limit)s"
)
_RUN_TIMINGS: Final = (
    "SELECT status, started_at, ended_at FROM runs WHERE function_id = %(fid)s "
    "ORDER BY id DESC LIMIT %(limit)s"
)
_GET_EVENT: Final = (
    "SELECT e.seq, e.id, e.name, e.body, e.received_at, "
    "ARRAY(SELECT r.id FROM runs r WHERE r.event_id = e.id ORDER BY r.id) "
    "FROM events e WHERE e.id = %(id)s ORDER BY e.seq DESC LIMIT 1"
)


# One row per function with due runs, plus the database's time on each (a LEFT JOIN keeps one
# row, with a NULL function, when nothing is due).
_DUE_BACKLOG: Final = (
    "WITH " + q.T_NOW + " "
    "SELECT t.now, d.function_id, d.n, d.oldest FROM t LEFT JOIN ("
    "SELECT function_id, count(*) AS n, min(available_at) AS oldest FROM runs, t"
    " WHERE available_at IS NOT NULL AND available_at <= t.now GROUP BY function_id"
    ") d ON true"
)
