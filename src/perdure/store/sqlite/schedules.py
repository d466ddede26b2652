"""Schedules on SQLite: the writes run inside the writer's transaction (``BEGIN IMMEDIATE``,
which also serializes the schedulers of other processes), the reads on the reader connection.

The rules (what a tick does) are in :mod:`perdure.store.schedules`; the SQL in
:mod:`perdure.store.sqlite.queries`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from perdure.engine.ticks import overlap_allows
from perdure.store.base import CreatedRun, FireResult, NewRun, NewSchedule, ScheduleRow
from perdure.store.schedules import RESULTS, decide, schedule_from_row
from perdure.store.sqlite import commit as cm
from perdure.store.sqlite import queries as q
from perdure.store.sqlite.writer import Tx


def read_one(conn: sqlite3.Connection, schedule_id: str) -> ScheduleRow | None:
    """One schedule."""
    row = conn.execute(q.SCHEDULE_SELECT, (schedule_id,)).fetchone()
    return None if row is None else schedule_from_row(row)


def create(tx: Tx, s: NewSchedule) -> ScheduleRow | None:
    """Insert the schedule; ``None`` if the id is taken."""
    cur = tx.conn.execute(
        q.SCHEDULE_INSERT,
        (
            s.id,
            s.function_id,
            s.cron,
            s.tz,
            s.data,
            s.overlap,
            s.catchup,
            s.catchup_window,
            1 if s.paused else 0,
            s.start,
            s.next_at,
            s.revision,
            tx.now,
            tx.now,
        ),
    )
    if cur.rowcount == 0:
        return None
    return read_one(tx.conn, s.id)


def list_page(
    conn: sqlite3.Connection, function_id: str | None, after: str | None, limit: int
) -> list[ScheduleRow]:
    """Schedules by id."""
    sql = q.SCHEDULES_LIST[(function_id is not None, after is not None)]
    args = {"fid": function_id, "after": after, "limit": limit}
    return [schedule_from_row(r) for r in conn.execute(sql, args).fetchall()]


def set_paused(
    tx: Tx, schedule_id: str, paused: bool, cursor: float, next_at: float, revision: str
) -> ScheduleRow | None:
    """Pause or resume (no change if it already is)."""
    if paused:
        tx.conn.execute(q.SCHEDULE_PAUSE, (revision, tx.now, schedule_id))
    else:
        tx.conn.execute(q.SCHEDULE_RESUME, (revision, cursor, next_at, tx.now, schedule_id))
    return read_one(tx.conn, schedule_id)


def due(
    conn: sqlite3.Connection, function_ids: Sequence[str], now: float, limit: int
) -> list[ScheduleRow]:
    """Active schedules of these functions that are due, earliest first."""
    sql = q.SCHEDULES_DUE.format(fids=q.marks(len(function_ids)))
    rows = conn.execute(sql, (now, *function_ids, limit)).fetchall()
    return [schedule_from_row(r) for r in rows]


def earliest_next(conn: sqlite3.Connection, function_ids: Sequence[str]) -> float | None:
    """The earliest next tick of the active schedules of these functions."""
    sql = q.SCHEDULE_NEXT.format(fids=q.marks(len(function_ids)))
    row = conn.execute(sql, list(function_ids)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def fire(
    tx: Tx,
    schedule_id: str,
    revision: str,
    tick: float,
    next_tick: float,
    run: NewRun | None,
    missed: int,
) -> FireResult:
    """Handle one tick of a schedule (see :meth:`perdure.store.base.Store.fire_schedule`)."""
    conn = tx.conn
    state = conn.execute(q.SCHEDULE_STATE, (schedule_id,)).fetchone()
    found = None if state is None else (state[0], bool(state[1]), float(state[2]), state[3])
    decision = decide(found, None if state is None else state[4], revision, tick, run is not None)
    if decision == "stale":
        return "stale"
    run_id: str | None = None
    if decision == "fire":
        assert run is not None
        created = cm.insert_runs(tx, [run])[0]
        run_id = created.id
        tx.wake = tx.wake or created.created
    conn.execute(
        q.SCHEDULE_ADVANCE,
        (
            tick,
            next_tick,
            missed,
            1 if decision == "skip" else 0,
            1 if decision == "fire" else 0,
            run_id,
            schedule_id,
        ),
    )
    return RESULTS[decision]


def trigger(tx: Tx, schedule_id: str, run: NewRun) -> CreatedRun | None:
    """Create a run of the schedule now (``None``: unknown schedule)."""
    if tx.conn.execute(q.SCHEDULE_STATE, (schedule_id,)).fetchone() is None:
        return None
    created = cm.insert_runs(tx, [run])[0]
    tx.conn.execute(q.SCHEDULE_TRIGGERED, (created.id, schedule_id))
    tx.wake = tx.wake or created.created
    return created


def fire_cron(
    tx: Tx, function_id: str, trigger_key: str, tick: float, run: NewRun | None, overlap: str
) -> bool:
    """Advance a cron trigger to ``tick`` and create its run, once across schedulers; with
    ``overlap="skip"``, no run while the trigger's previous run is active."""
    conn = tx.conn
    if run is not None and overlap == "skip":
        state = conn.execute(q.CRON_STATE, (function_id, trigger_key)).fetchone()
        if state is not None and not overlap_allows("skip", state[1]):
            advanced = conn.execute(q.CRON_ADVANCE, (function_id, trigger_key, tick)).rowcount
            return advanced > 0
    if conn.execute(q.CRON_ADVANCE, (function_id, trigger_key, tick)).rowcount == 0:
        return False
    if run is None:
        return True
    created = cm.insert_runs(tx, [run])[0]
    conn.execute(q.CRON_LAST_RUN, (created.id, function_id, trigger_key))
    tx.wake = tx.wake or created.created
    return created.created
