"""Schedules on PostgreSQL.

Firing a tick (and triggering a schedule, and firing a cron trigger that skips overlaps) is one
transaction in two round trips: first ``BEGIN``, the lock of the schedule's row (``FOR
UPDATE``) and, as a new statement in READ COMMITTED, the status of its previous run (exact:
nobody can change the row while it is locked, and the previous run's end is committed or not);
then, decided in Python by the rule shared with SQLite (:func:`perdure.store.schedules.decide`),
the run (the backend's one ``INSERT_RUNS`` statement), the schedule's new cursor and
``COMMIT``. A scheduler that waited for the lock sees the cursor the winner left, so a tick is
handled once.

The functions take the pool and the store's parameters from :class:`~.store.PostgresStore`'s
thin methods.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from perdure.store import inputs
from perdure.store.base import CreatedRun, FireResult, NewRun, NewSchedule, ScheduleRow
from perdure.store.postgres import flow
from perdure.store.postgres import queries as q
from perdure.store.postgres import schedule_queries as sq
from perdure.store.postgres.pool import Conn, Pool, rollback_quietly, transaction, write_one
from perdure.store.schedules import RESULTS, decide, schedule_from_row

RunsParams = Callable[[Sequence[NewRun]], dict[str, Any]]
"""The store's parameters of ``INSERT_RUNS`` for some runs (clock, channel, origin)."""
FlowArgs = tuple[float | None, str, str]
"""The clock parameter, wake channel and origin of the flow-control path
(:func:`perdure.store.postgres.flow.insert_flow_runs`)."""


async def create(pool: Pool, s: NewSchedule, now: float | None) -> ScheduleRow | None:
    """Insert the schedule; ``None`` if the id is taken."""
    params = {
        "now": now,
        "id": s.id,
        "fid": s.function_id,
        "cron": s.cron,
        "tz": s.tz,
        "data": s.data,
        "overlap": s.overlap,
        "catchup": s.catchup,
        "window": float(s.catchup_window),
        "paused": s.paused,
        "start": float(s.start),
        "next_at": float(s.next_at),
        "revision": s.revision,
    }

    async def op(conn: Conn) -> ScheduleRow | None:
        row = await (await conn.execute(sq.SCHEDULE_INSERT, params)).fetchone()
        return None if row is None else schedule_from_row(row)

    return await pool.run(op)


async def get(pool: Pool, schedule_id: str) -> ScheduleRow | None:
    """One schedule."""
    row = await pool.read_one(sq.SCHEDULE_SELECT, {"id": schedule_id})
    return None if row is None else schedule_from_row(row)


async def list_page(
    pool: Pool, function_id: str | None, after: str | None, limit: int
) -> list[ScheduleRow]:
    """Schedules by id."""
    stmt = sq.SCHEDULES_LIST[(function_id is not None, after is not None)]
    rows = await pool.read_all(stmt, {"fid": function_id, "after": after, "limit": limit})
    return [schedule_from_row(r) for r in rows]


async def set_paused(
    pool: Pool,
    schedule_id: str,
    paused: bool,
    params: dict[str, Any],
) -> ScheduleRow | None:
    """Pause or resume (no change if it already is); the schedule as it now is."""
    stmt = sq.SCHEDULE_PAUSE if paused else sq.SCHEDULE_RESUME

    async def op(conn: Conn) -> ScheduleRow | None:
        row = await (await conn.execute(stmt, {**params, "id": schedule_id})).fetchone()
        return None if row is None else schedule_from_row(row)

    return await pool.run(op)


async def delete(pool: Pool, schedule_id: str) -> bool:
    """Delete a schedule; whether it existed."""

    async def op(conn: Conn) -> bool:
        return bool(await (await conn.execute(sq.SCHEDULE_DELETE, {"id": schedule_id})).fetchall())

    return await pool.run(op)


async def due(pool: Pool, function_ids: Sequence[str], now: float, limit: int) -> list[ScheduleRow]:
    """Active schedules of these functions that are due, earliest first."""
    rows = await pool.read_all(
        sq.SCHEDULES_DUE, {"fids": list(function_ids), "now": float(now), "limit": limit}
    )
    return [schedule_from_row(r) for r in rows]


async def earliest_next(pool: Pool, function_ids: Sequence[str]) -> float | None:
    """The earliest next tick of the active schedules of these functions."""
    row = await pool.read_one(sq.SCHEDULE_NEXT, {"fids": list(function_ids)})
    return None if row is None or row[0] is None else float(row[0])


async def _lock(conn: Conn, schedule_id: str) -> tuple[Any, str | None]:
    """Begin, lock the schedule's row; its firing fields and its previous run's status."""
    key = {"id": schedule_id}
    async with conn.pipeline():
        await conn.execute(q.BEGIN)
        c_lock = await conn.execute(sq.SCHEDULE_LOCK, key)
        c_prev = await conn.execute(sq.SCHEDULE_PREVIOUS, key)
    locked = await c_lock.fetchone()
    previous = await c_prev.fetchone()
    return locked, None if previous is None else str(previous[0])


async def _insert(
    conn: Conn, runs_params: RunsParams, run: NewRun, flow_args: FlowArgs
) -> tuple[CreatedRun, bool] | None:
    """A run under flow control, created at once in the open transaction (its result and
    whether it needs announcing); ``None`` for a plain run, which the caller pipelines."""
    if run.flow is None:
        return None
    now, wake_channel, origin = flow_args
    done = (await flow.insert_flow_runs(conn, [run], now, wake_channel, origin))[0]
    return done, done.created


async def fire(
    pool: Pool,
    runs_params: RunsParams,
    flow_args: FlowArgs,
    schedule_id: str,
    revision: str,
    tick: float,
    next_tick: float,
    run: NewRun | None,
    missed: int,
) -> tuple[FireResult, CreatedRun | None]:
    """Handle one tick of a schedule; the run created, if any."""

    async def op(conn: Conn) -> tuple[FireResult, CreatedRun | None]:
        try:
            locked, previous = await _lock(conn, schedule_id)
            found = None
            if locked is not None:
                found = (str(locked[0]), bool(locked[1]), float(locked[2]), str(locked[3]))
            decision = decide(found, previous, revision, tick, run is not None)
            if decision == "stale":
                await rollback_quietly(conn)
                return "stale", None
            fired = decision == "fire" and run is not None
            flowed = await _insert(conn, runs_params, run, flow_args) if fired and run else None
            advance = {
                "id": schedule_id,
                "tick": float(tick),
                "next_at": float(next_tick),
                "missed": missed,
                "skipped": 1 if decision == "skip" else 0,
                "ran": 1 if fired else 0,
                "run_id": None if flowed is None else flowed[0].id,
                "fid": None if run is None else run.function_id,
                "key": run.idempotency_key if fired and run is not None else None,
            }
            async with conn.pipeline():
                c_ins = None
                if fired and run is not None and flowed is None:
                    c_ins = await conn.execute(q.INSERT_RUNS, runs_params([run]))
                await conn.execute(sq.SCHEDULE_ADVANCE, advance)
                await conn.execute(q.COMMIT)
            created = None if flowed is None else flowed[0]
            if c_ins is not None and run is not None:
                rows = await c_ins.fetchall()
                created = CreatedRun(run.id, bool(rows and rows[0][1]))
            return RESULTS[decision], created
        except BaseException:
            await rollback_quietly(conn)
            raise

    return await pool.run(op)


async def trigger(
    pool: Pool, runs_params: RunsParams, flow_args: FlowArgs, schedule_id: str, run: NewRun
) -> CreatedRun | None:
    """Create a run of the schedule now (``None``: unknown schedule)."""

    async def op(conn: Conn) -> CreatedRun | None:
        try:
            locked, _ = await _lock(conn, schedule_id)
            if locked is None:
                await rollback_quietly(conn)
                return None
            flowed = await _insert(conn, runs_params, run, flow_args)
            async with conn.pipeline():
                c_ins = None
                if flowed is None:
                    c_ins = await conn.execute(q.INSERT_RUNS, runs_params([run]))
                run_id = run.id if flowed is None else flowed[0].id
                await conn.execute(sq.SCHEDULE_TRIGGERED, {"id": schedule_id, "run_id": run_id})
                await conn.execute(q.COMMIT)
            if flowed is not None:
                return flowed[0]
            assert c_ins is not None
            rows = await c_ins.fetchall()
            return CreatedRun(run.id, bool(rows[0][1]))
        except BaseException:
            await rollback_quietly(conn)
            raise

    return await pool.run(op)


async def fire_cron(pool: Pool, params: dict[str, Any], skip: bool) -> tuple[bool, bool, bool]:
    """Fire a cron trigger's tick (``FIRE_CRON``); with ``skip``, after locking the trigger's
    row in the same transaction, so that its busy check sees the latest run. Whether the tick
    advanced, whether the run was created, and whether it was skipped as busy."""

    async def op(conn: Conn) -> tuple[bool, bool, bool]:
        if skip:
            _, rows = await transaction(conn, [(sq.CRON_LOCK, params), (sq.FIRE_CRON, params)])
        else:
            rows = await write_one(conn, sq.FIRE_CRON, params)
        advanced, created, _, busy = rows[0]
        return bool(advanced), bool(created), bool(busy)

    return await pool.run(op)


class _StoreParts(Protocol):
    """What the schedule methods use of :class:`~perdure.store.postgres.store.PostgresStore`."""

    _pool: Pool
    _channel: tuple[str, str]

    def _now_param(self) -> float | None: ...

    def _runs_params(self, runs: Sequence[NewRun]) -> dict[str, Any]: ...

    def _announce(self, wake: bool, finished: Sequence[str] = ()) -> None: ...


class ScheduleMethods:
    """The schedule methods of the :class:`~perdure.store.base.Store` protocol, for
    :class:`~perdure.store.postgres.store.PostgresStore` (a mixin over the functions above)."""

    async def create_schedule(self: _StoreParts, schedule: NewSchedule) -> ScheduleRow | None:
        """Create a schedule; ``None`` if one has that id."""
        inputs.require_storable_schedule(schedule)
        return await create(self._pool, schedule, self._now_param())

    async def get_schedule(self: _StoreParts, schedule_id: str) -> ScheduleRow | None:
        """One schedule."""
        if not inputs.storable(schedule_id):
            return None
        return await get(self._pool, schedule_id)

    async def list_schedules(
        self: _StoreParts, function_id: str | None, after: str | None, limit: int
    ) -> list[ScheduleRow]:
        """Schedules by id."""
        if not inputs.all_storable((function_id, after)):
            return []
        return await list_page(self._pool, function_id, after, inputs.row_limit(limit))

    async def set_schedule_paused(
        self: _StoreParts,
        schedule_id: str,
        paused: bool,
        *,
        cursor: float,
        next_at: float,
        revision: str,
    ) -> ScheduleRow | None:
        """Pause or resume a schedule."""
        if not inputs.storable(schedule_id):
            return None
        params = {
            "now": self._now_param(),
            "revision": revision,
            "cursor": float(cursor),
            "next_at": float(next_at),
        }
        return await set_paused(self._pool, schedule_id, paused, params)

    async def delete_schedule(self: _StoreParts, schedule_id: str) -> bool:
        """Delete a schedule; whether it existed."""
        if not inputs.storable(schedule_id):
            return False
        return await delete(self._pool, schedule_id)

    async def due_schedules(
        self: _StoreParts, function_ids: Sequence[str], now: float, limit: int
    ) -> list[ScheduleRow]:
        """Active schedules of these functions that are due, earliest first."""
        fids = [f for f in function_ids if inputs.storable(f)]
        if not fids:
            return []
        return await due(self._pool, fids, now, inputs.row_limit(limit))

    async def next_schedule_at(self: _StoreParts, function_ids: Sequence[str]) -> float | None:
        """The earliest next tick of the active schedules of these functions."""
        fids = [f for f in function_ids if inputs.storable(f)]
        if not fids:
            return None
        return await earliest_next(self._pool, fids)

    async def fire_schedule(
        self: _StoreParts,
        schedule_id: str,
        revision: str,
        tick: float,
        next_at: float,
        run: NewRun | None,
        missed: int,
    ) -> FireResult:
        """Handle one tick of a schedule, once across schedulers."""
        if run is not None:
            inputs.require_storable_runs([run])
        if not inputs.all_storable((schedule_id, revision)):
            return "stale"
        flow_args = (self._now_param(), *self._channel)
        result, created = await fire(
            self._pool,
            self._runs_params,
            flow_args,
            schedule_id,
            revision,
            tick,
            next_at,
            run,
            missed,
        )
        if created is not None:
            self._announce(created.created, [created.id] if created.skipped else [])
        return result

    async def trigger_schedule(
        self: _StoreParts, schedule_id: str, run: NewRun
    ) -> CreatedRun | None:
        """Create a run of the schedule now."""
        inputs.require_storable_runs([run])
        if not inputs.storable(schedule_id):
            return None
        flow_args = (self._now_param(), *self._channel)
        created = await trigger(self._pool, self._runs_params, flow_args, schedule_id, run)
        if created is not None:
            self._announce(created.created, [created.id] if created.skipped else [])
        return created
