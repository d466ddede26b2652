"""The read side of the SQLite store: runs, steps and events as the query layer lists them
(a mixin of :class:`~perdure.store.sqlite.store.SqliteStore`; reads run on the reader thread's
connection, beside the writer, as WAL allows)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, TypeVar

from perdure.store import inputs
from perdure.store.base import (
    DueBacklog,
    EndedRun,
    EventRow,
    KeyLoad,
    RunFilter,
    RunRow,
    RunTiming,
    StoredStep,
)
from perdure.store.rows import run_from_row
from perdure.store.rows import step_from_row as _step
from perdure.store.sqlite import flow_claim
from perdure.store.sqlite import queries as q

T = TypeVar("T")


class Reads:
    """Reads of runs, steps and events."""

    if TYPE_CHECKING:

        def now(self) -> float: ...

        async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T: ...

    async def get_run(self, run_id: str) -> RunRow | None:
        """One run."""
        if not inputs.storable(run_id):
            return None
        row = await self._read(lambda c: c.execute(q.SELECT_RUN, (run_id,)).fetchone())
        return None if row is None else run_from_row(row)

    async def concurrency_load(self, run_id: str) -> KeyLoad | None:
        """A due run's concurrency keys and their live leases now (a read)."""
        now = self.now()
        return await self._read(lambda c: flow_claim.concurrency_load(c, run_id, now))

    async def due_backlog(self) -> DueBacklog:
        """The runs due and not claimed, by function (a read on the due index)."""
        now = self.now()
        rows = await self._read(lambda c: c.execute(_DUE_BACKLOG, (now,)).fetchall())
        return DueBacklog(now, {str(f): (int(n), float(at)) for f, n, at in rows})

    async def ended_since(self, since: float, limit: int) -> list[str]:
        """Ids of the runs that ended at or after ``since``, the earliest end first."""
        rows = await self._read(lambda c: c.execute(q.ENDED_SINCE, (since, limit)).fetchall())
        return [str(row[0]) for row in rows]

    async def get_runs(self, run_ids: Sequence[str]) -> list[RunRow]:
        """Several runs."""
        ids = [i for i in run_ids if inputs.storable(i)]
        if not ids:
            return []
        sql = q.SELECT_RUNS.format(ids=q.marks(len(ids)))
        rows = await self._read(lambda c: c.execute(sql, ids).fetchall())
        return [run_from_row(row) for row in rows]

    async def ended_runs(self, run_ids: Sequence[str]) -> list[EndedRun]:
        """The runs among these that have ended, with their outcome."""
        ids = [i for i in run_ids if inputs.storable(i)]
        if not ids:
            return []
        sql = q.ENDED_RUNS.format(ids=q.marks(len(ids)))
        rows = await self._read(lambda c: c.execute(sql, ids).fetchall())
        return [EndedRun(*row) for row in rows]

    async def get_steps(self, run_id: str) -> list[StoredStep]:
        """The recorded steps of a run, in call order."""
        if not inputs.storable(run_id):
            return []
        rows = await self._read(lambda c: c.execute(q.STEPS_OF_RUN, (run_id,)).fetchall())
        return [_step(row) for row in rows]

    async def list_runs(self, flt: RunFilter) -> list[RunRow]:
        """Runs, newest first, filtered (see :class:`~perdure.store.base.RunFilter`)."""
        args = inputs.run_filter_params(flt)
        if args is None:
            return []
        sql = q.list_runs(flt.shape())
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [run_from_row(row) for row in rows]

    async def list_events(self, name: str | None, before: int | None, limit: int) -> list[EventRow]:
        """Events, newest first, with the runs each started."""
        if not inputs.storable(name):
            return []
        cursor = inputs.seq_cursor(before)
        sql = q.LIST_EVENTS[(name is not None, cursor is not None)]
        args = {"name": name, "before": cursor, "limit": inputs.row_limit(limit)}

        def read(c: sqlite3.Connection) -> list[EventRow]:
            events = [EventRow(*row) for row in c.execute(sql, args).fetchall()]
            if events:
                ev_ids = [e.id for e in events]
                by_event: dict[str, list[str]] = {}
                for ev_id, run_id in c.execute(
                    q.RUNS_OF_EVENTS.format(ids=q.marks(len(ev_ids))), ev_ids
                ):
                    by_event.setdefault(ev_id, []).append(run_id)
                for e in events:
                    e.run_ids = by_event.get(e.id, [])
            return events

        return await self._read(read)

    async def get_event(self, event_id: str) -> EventRow | None:
        """The newest stored event with this id, with the runs it started."""
        if not inputs.storable(event_id):
            return None

        def read(c: sqlite3.Connection) -> EventRow | None:
            row = c.execute(_GET_EVENT, (event_id,)).fetchone()
            if row is None:
                return None
            event = EventRow(*row)
            event.run_ids = [r[1] for r in c.execute(q.RUNS_OF_EVENTS.format(ids="?"), (event_id,))]
            return event

        return await self._read(read)

    async def waits_resolved_by(self, event: EventRow, limit: int) -> list[tuple[str, str]]:
        """The wait steps ``event`` resolved: completed with it as output, at or after its
        receipt (an older event of the same id resolved the earlier ones)."""
        args = (event.received_at, event.id, inputs.row_limit(limit))
        rows = await self._read(lambda c: c.execute(_WAITS_RESOLVED, args).fetchall())
        return [(str(run_id), str(key)) for run_id, key in rows]

    async def run_timings(self, function_id: str, limit: int) -> list[RunTiming]:
        """The newest runs of a function: status, start and end (the function's run index)."""
        if not inputs.storable(function_id):
            return []
        args = (function_id, inputs.row_limit(limit))
        rows = await self._read(lambda c: c.execute(_RUN_TIMINGS, args).fetchall())
        return [(str(status), started, ended) for status, started, ended in rows]


# Every recorded wait step is read (no index names a wait's event): a schema change could add
# one (see docs/dashboard.md, "Events").
_WAITS_RESOLVED: Final = (
    "SELECT run_id, key FROM steps WHERE kind = 'wait' AND status = 'completed' "
    "AND ended_at >= ? AND json_extract(output, '$.id') = ? ORDER BY run_id, key LIMIT ?"
)
_RUN_TIMINGS: Final = (
    "SELECT status, started_at, ended_at FROM runs WHERE function_id = ? ORDER BY id DESC LIMIT ?"
)
_DUE_BACKLOG: Final = (
    "SELECT function_id, count(*), min(available_at) FROM runs "
    "WHERE available_at IS NOT NULL AND available_at <= ? GROUP BY function_id"
)
_GET_EVENT: Final = (
    "SELECT seq, id, name, body, received_at FROM events WHERE id = ? ORDER BY seq DESC LIMIT 1"
)
