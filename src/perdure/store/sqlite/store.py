"""The SQLite store: zero setup, one file, one machine (several processes may share it).

Design (measured choices are in docs/architecture.md):

- **One writer thread, group commit** (:mod:`perdure.store.sqlite.writer`); the commit
  semantics run in Python inside the writer's transaction (:mod:`perdure.store.sqlite.commit`).
- **Reads** run on a second connection in a reader thread (WAL lets them proceed during writes).
- WAL mode, ``synchronous=FULL`` by default (``NORMAL`` is an opt-in: it survives a process crash
  but not a power loss), a busy timeout and retries for other processes holding the lock.
- There is no database server clock: times come from the store's :class:`~perdure.clock.Clock`,
  which on one machine every process shares.
- Other processes' commits are not announced; workers find them with a cheap read (see
  ``perdure.worker``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from perdure import faults
from perdure.clock import Clock, SystemClock
from perdure.engine.flow.options import FlowControl
from perdure.errors import InvalidInputError, StoreUnavailableError
from perdure.functions import FunctionRecord
from perdure.store import inputs
from perdure.store.announce import Announcer
from perdure.store.base import (
    Claim,
    CreatedRun,
    EventIn,
    FireResult,
    NewRun,
    NewSchedule,
    RunOrigin,
    RunRow,
    ScheduleRow,
    SentEvent,
    StoredStep,
    WriteOp,
)
from perdure.store.common import runs_for_event, wait_matches
from perdure.store.migrations import Migrations, split_statements, version_of
from perdure.store.rows import FunctionCache, function_from_row, function_values, run_from_row
from perdure.store.rules import CANCELLED_ERROR, EVENT_DEDUPE_SECONDS
from perdure.store.sqlite import commit as cm
from perdure.store.sqlite import derived, flow_claim, flow_gates
from perdure.store.sqlite import flow_cancel as fc
from perdure.store.sqlite import queries as q
from perdure.store.sqlite import schedules as sch
from perdure.store.sqlite.access import Access
from perdure.store.sqlite.app_syncs import AppSyncs
from perdure.store.sqlite.operations import Operations
from perdure.store.sqlite.reads import Reads
from perdure.store.sqlite.traces import Traces
from perdure.store.sqlite.writer import Tx, Writer, connect

T = TypeVar("T")

_INLINE_MAX = 4  # writes of at most this many runs or ops may run inline on the loop thread

MIGRATIONS = Migrations(
    "perdure.store.sqlite",
    (
        "0001_init.sql",
        "0002_flow.sql",
        "0003_schedules.sql",
        "0004_flow_gates.sql",
        "0005_flow_cancel.sql",
        "0006_step_names.sql",
        "0007_rerun.sql",
        "0008_operations.sql",
        "0009_access.sql",
        "0010_traces.sql",
        "0011_step_inputs.sql",
        "0012_app_syncs.sql",
    ),
)


class SqliteStore(Access, AppSyncs, Operations, Reads, Traces):
    """A :class:`~perdure.store.base.Store` on a SQLite file."""

    def __init__(
        self,
        path: str,
        *,
        clock: Clock | None = None,
        synchronous: str = "FULL",
        busy_timeout: float = 10.0,
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise InvalidInputError("synchronous must be FULL, NORMAL or EXTRA")
        self.path = path
        self.url = f"sqlite:///{path}"
        self.poll_interval = 0.1  # no cross-process notifications: a cheap read instead
        self.clock: Clock = clock or SystemClock()
        self._sync = synchronous.upper()
        self._busy_ms = int(busy_timeout * 1000)
        self._writer: Writer | None = None
        self._wconn: sqlite3.Connection | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._rconn: sqlite3.Connection | None = None
        self._announcer = Announcer()
        self._registry = FunctionCache()
        self._closed = False

    def now(self) -> float:
        """The clock's time."""
        return self.clock.now()

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Create the file (and its folder), apply migrations, start the threads."""
        await asyncio.to_thread(_make_folder, self.path)
        self._wconn = await asyncio.to_thread(connect, self.path, self._sync, self._busy_ms)
        await asyncio.to_thread(_migrate, self._wconn)
        loop = asyncio.get_running_loop()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="perdure-sqlite-reader")
        self._rconn = await loop.run_in_executor(
            self._reader, connect, self.path, self._sync, self._busy_ms
        )
        self._writer = Writer(
            self._wconn,
            self.clock,
            self._announcer,
            loop,
            busy_ms=self._busy_ms,
            reader=self._reader,
            reader_conn=self._rconn,
            wal_path=self.path + "-wal",
        )

    async def close(self) -> None:
        """Finish queued writes, then close the connections."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            await self._writer.stop()
        if self._reader is not None:
            rconn = self._rconn
            if rconn is not None:
                await asyncio.get_running_loop().run_in_executor(self._reader, rconn.close)
            self._reader.shutdown(wait=True)
        if self._wconn is not None:
            self._wconn.close()

    def on_wake(self, callback: Callable[[], None]) -> None:
        """Register a callback for new claimable work committed by this process."""
        self._announcer.on_wake(callback)

    def on_finished(self, callback: Callable[[Sequence[str]], None]) -> None:
        """Register a callback for runs that this process brought to a terminal state."""
        self._announcer.on_finished(callback)

    async def schema_version(self) -> tuple[int, int]:
        """The database's schema version and the latest this perdure knows."""
        row = await self._read(lambda c: c.execute(q.SCHEMA_VERSION).fetchone())
        return version_of(row), MIGRATIONS.latest

    async def ping(self) -> None:
        """Run a trivial read."""
        await self._read(lambda c: c.execute(q.PING).fetchone())

    # ------------------------------------------------------------------ plumbing

    async def _write(
        self, op: Callable[[Tx], T], small: bool = False, *, single: bool = False
    ) -> T:
        """Run ``op`` in a write transaction; ``small`` ones may run inline, ``single`` ones
        (exactly one statement) inline without ``BEGIN``/``COMMIT`` (see
        :mod:`perdure.store.sqlite.writer`)."""
        if self._closed or self._writer is None:
            raise StoreUnavailableError("the store is closed")
        return await self._writer.submit(op, small, single)

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed or self._reader is None or self._rconn is None:
            raise StoreUnavailableError("the store is closed")
        conn = self._rconn
        return await asyncio.get_running_loop().run_in_executor(self._reader, op, conn)

    # ------------------------------------------------------------------ functions

    async def register_functions(self, records: Sequence[FunctionRecord]) -> None:
        """Create or replace function records and bump the registry version."""
        for r in records:
            inputs.require_storable("a function id", r.id)
            inputs.require_storable("an app name", r.app)
        rows = [function_values(r) for r in records]

        def op(tx: Tx) -> None:
            tx.conn.executemany(q.UPSERT_FUNCTION, [(*row, tx.now) for row in rows])
            tx.conn.execute(q.BUMP_REGISTRY)

        await self._write(op)

    async def list_functions(self) -> list[FunctionRecord]:
        """Every registered function."""
        rows = await self._read(lambda c: c.execute(q.SELECT_FUNCTIONS).fetchall())
        return [function_from_row(row) for row in rows]

    async def remove_functions(self, ids: Sequence[str]) -> None:
        """Delete function records and bump the registry version."""
        params = [(fid,) for fid in dict.fromkeys(ids)]
        if not params:
            return

        def op(tx: Tx) -> None:
            tx.conn.executemany(q.DELETE_FUNCTION, params)
            tx.conn.execute(q.BUMP_REGISTRY)

        await self._write(op)

    def _functions(self, conn: sqlite3.Connection) -> list[FunctionRecord]:
        version = conn.execute(q.REGISTRY_VERSION).fetchone()[0]
        if version != self._registry.version:
            rows = conn.execute(q.SELECT_FUNCTIONS).fetchall()
            paused = [r[0] for r in conn.execute(q.PAUSED_FUNCTIONS).fetchall()]
            self._registry.replace(version, rows, paused)
        return self._registry.records

    # ------------------------------------------------------------------ client side

    async def create_runs(self, runs: Sequence[NewRun]) -> list[CreatedRun]:
        """Insert runs, due now; idempotency keys return existing runs."""
        runs = list(runs)
        inputs.require_storable_runs(runs)

        def op(tx: Tx) -> list[CreatedRun]:
            out = cm.insert_runs(tx, runs)
            if any(c.created and c.token is None for c in out):
                tx.wake = True
            return out

        return await self._write(op, len(runs) <= _INLINE_MAX)

    async def create_derived_run(self, run: NewRun, origin: RunOrigin) -> CreatedRun | None:
        """Create a rerun or replay of ``origin.run_id`` with the steps it keeps."""
        inputs.require_storable_runs([run])
        if not inputs.all_storable((origin.run_id, origin.from_step)):
            return None
        return await self._write(lambda tx: derived.create_derived_run(tx, run, origin))

    async def send_events(self, events: Sequence[EventIn]) -> list[SentEvent]:
        """Store events, start the runs they trigger, resume the runs waiting for them."""
        events = list(events)
        for ev in events:
            inputs.require_storable("an event id", ev.id)
            inputs.require_storable("an event name", ev.name)

        def op(tx: Tx) -> list[SentEvent]:
            conn, now = tx.conn, tx.now
            registry = self._functions(conn)
            out: list[SentEvent] = []
            created: set[str] = set()  # runs this send creates: its events do not cancel them
            for ev in events:
                fresh = conn.execute(q.DEDUPE_EVENT, (ev.id, now + EVENT_DEDUPE_SECONDS, now))
                if fresh.fetchone() is None:
                    out.append(SentEvent(ev.id, True, []))
                    continue
                conn.execute(q.INSERT_EVENT, (ev.id, ev.name, ev.body, now))
                faults.hit("event_fanout")
                cancelled = fc.cancel_for_event(tx, registry, ev, created)
                new_runs = runs_for_event(registry, ev.obj, ev.body)
                made = cm.insert_runs(tx, new_runs) if new_runs else []
                if new_runs:
                    created.update(r.id for r in new_runs)
                    tx.wake = True
                for run_id, key, path, value, expr, run_input in conn.execute(
                    q.WAITS_FOR_EVENT, (ev.name, now)
                ).fetchall():
                    if not wait_matches(path, value, expr, run_input, ev.obj):
                        continue
                    cm.resolve_step(tx, run_id, key, "completed", ev.body, None)
                    conn.execute(q.DELETE_WAIT, (run_id, key))
                out.append(SentEvent.of(ev.id, made, cancelled))
            return out

        return await self._write(op)

    async def cancel_run(self, run_id: str, reason: str | None = None) -> RunRow | None:
        """Cancel a run that has not ended; fence its worker; fail its parent's invoke step."""
        if not inputs.storable(run_id):
            return None

        def op(tx: Tx) -> RunRow | None:
            conn = tx.conn
            params = (tx.now, CANCELLED_ERROR, reason, run_id)
            parent = conn.execute(q.CANCEL_RUN, params).fetchone()
            if parent is not None:
                cm.end_run(tx, run_id, parent, "failed", None, CANCELLED_ERROR)
            found = conn.execute(q.SELECT_RUN, (run_id,)).fetchone()
            return None if found is None else run_from_row(found)

        return await self._write(op)

    # ------------------------------------------------------------------ worker side

    async def claim(
        self, worker_id: str, function_ids: Sequence[str], limit: int, lease_seconds: float
    ) -> Claim:
        """Lease up to ``limit`` due runs, with their steps."""
        fids = list(function_ids)
        if not fids or limit <= 0:
            return Claim([], None)

        def op(tx: Tx) -> Claim:
            registry = self._functions(tx.conn)  # reads the version: pauses are exact
            paused = self._registry.paused
            live = [f for f in fids if f not in paused] if paused else fids
            if not live:
                return Claim([], None)
            plain, gated = flow_claim.split_gated(registry, live)
            if gated:
                claim = self._claim_mixed(tx, worker_id, plain, gated, limit, lease_seconds)
            else:
                claim = _claim_plain(tx, worker_id, live, limit, lease_seconds)
            if claim.runs:
                fc.set_finish_by(tx, self._functions(tx.conn), claim.runs)
            return claim

        return await self._write(op)

    def _claim_mixed(
        self,
        tx: Tx,
        worker_id: str,
        plain: list[str],
        gated: dict[str, FlowControl],
        limit: int,
        lease_seconds: float,
    ) -> Claim:
        """Functions without claim-time gates as usual, then the gated ones
        (:mod:`perdure.store.sqlite.flow_claim`)."""
        first = Claim([], None)
        if plain:
            first = _claim_plain(tx, worker_id, plain, limit, lease_seconds)
            if len(first.runs) >= limit:
                return Claim(first.runs, tx.now)
        runs, nxt = flow_claim.claim_gated(
            tx, worker_id, gated, limit - len(first.runs), lease_seconds
        )
        dues = [d for d in (first.next_due, nxt) if d is not None]
        return Claim(first.runs + runs, min(dues) if dues else None)

    async def next_due(self, function_ids: Sequence[str]) -> float | None:
        """When the earliest run of these functions comes due (a read; no lock). Paused
        functions are left out as the last claim knew them."""
        paused = self._registry.paused
        fids = [f for f in function_ids if f not in paused]
        if not fids:
            return None
        sql = q.NEXT_DUE.format(fids=q.marks(len(fids)))
        row = await self._read(lambda c: c.execute(sql, fids).fetchone())
        return None if row is None else row[0]

    async def commit(self, ops: Sequence[WriteOp]) -> list[bool]:
        """Apply fenced checkpoints and outcomes in one transaction."""
        ops = list(ops)
        if len(ops) == 1 and cm.one_statement(ops[0]):
            return await self._write(lambda tx: cm.commit(tx, ops), True, single=True)
        return await self._write(lambda tx: cm.commit(tx, ops), len(ops) <= _INLINE_MAX)

    async def heartbeat(
        self, worker_id: str, leases: Sequence[tuple[str, int]], lease_seconds: float
    ) -> list[str]:
        """Extend leases; return the runs whose lease was lost."""
        leases = list(leases)

        def op(tx: Tx) -> list[str]:
            lost = []
            until = tx.now + lease_seconds
            for run_id, token in leases:
                if tx.conn.execute(q.HEARTBEAT, (until, run_id, token)).rowcount == 0:
                    lost.append(run_id)
            return lost

        return await self._write(op)

    async def expire_step(self, run_id: str, token: int, key: str) -> StoredStep | None:
        """Time out a wait or invoke step past its deadline, unless already resolved."""
        return await self._write(lambda tx: cm.expire_step(tx, run_id, token, key))

    async def cancel_overdue(self, limit: int = 500) -> tuple[list[str], float | None]:
        """Cancel runs past their start or finish deadline (``timeouts``); the ids cancelled
        and when the next deadline falls."""
        return await self._write(lambda tx: fc.cancel_overdue(tx, limit))

    # ------------------------------------------------------------------ cron, maintenance

    async def cron_last_tick(self, function_id: str, trigger: str) -> float | None:
        """The last tick fired for a cron trigger."""
        if not inputs.all_storable((function_id, trigger)):
            return None
        row = await self._read(lambda c: c.execute(q.CRON_LAST, (function_id, trigger)).fetchone())
        return None if row is None else float(row[0])

    async def fire_cron(
        self,
        function_id: str,
        trigger: str,
        tick: float,
        run: NewRun | None,
        overlap: str = "allow",
    ) -> bool:
        """Advance the trigger's last tick and create the tick's run, once (``overlap="skip"``:
        no run while the trigger's previous run is active)."""
        inputs.require_storable("a function id", function_id)
        inputs.require_storable("a cron trigger", trigger)
        if run is not None:
            inputs.require_storable_runs([run])
        return await self._write(
            lambda tx: sch.fire_cron(tx, function_id, trigger, tick, run, overlap)
        )

    async def prune(self, finished_before: float, limit: int) -> int:
        """Delete ended runs older than ``finished_before`` with their steps, and old events."""

        def op(tx: Tx) -> int:
            conn = tx.conn
            ids = [r[0] for r in conn.execute(q.PRUNE_SELECT, (finished_before, limit))]
            if ids:
                marks = q.marks(len(ids))
                conn.execute(q.PRUNE_STEPS.format(ids=marks), ids)
                conn.execute(q.PRUNE_AUDIT.format(ids=marks), ids)
                conn.execute(q.PRUNE_RUNS.format(ids=marks), ids)
            conn.execute(q.PRUNE_EVENT_IDS, (tx.now,))
            conn.execute(q.PRUNE_EVENTS, (finished_before,))
            flow_gates.prune(tx)
            return len(ids)

        return await self._write(op)

    # ------------------------------------------------------------------ schedules

    async def create_schedule(self, schedule: NewSchedule) -> ScheduleRow | None:
        """Create a schedule; ``None`` if one has that id."""
        inputs.require_storable_schedule(schedule)
        return await self._write(lambda tx: sch.create(tx, schedule))

    async def get_schedule(self, schedule_id: str) -> ScheduleRow | None:
        """One schedule."""
        if not inputs.storable(schedule_id):
            return None
        return await self._read(lambda c: sch.read_one(c, schedule_id))

    async def list_schedules(
        self, function_id: str | None, after: str | None, limit: int
    ) -> list[ScheduleRow]:
        """Schedules by id."""
        if not inputs.all_storable((function_id, after)):
            return []
        size = inputs.row_limit(limit)
        return await self._read(lambda c: sch.list_page(c, function_id, after, size))

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, *, cursor: float, next_at: float, revision: str
    ) -> ScheduleRow | None:
        """Pause or resume a schedule."""
        if not inputs.storable(schedule_id):
            return None
        return await self._write(
            lambda tx: sch.set_paused(tx, schedule_id, paused, cursor, next_at, revision)
        )

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule; whether it existed."""
        if not inputs.storable(schedule_id):
            return False
        return await self._write(
            lambda tx: tx.conn.execute(q.SCHEDULE_DELETE, (schedule_id,)).rowcount > 0
        )

    async def due_schedules(
        self, function_ids: Sequence[str], now: float, limit: int
    ) -> list[ScheduleRow]:
        """Active schedules of these functions that are due, earliest first."""
        fids = [f for f in function_ids if inputs.storable(f)]
        if not fids:
            return []
        return await self._read(lambda c: sch.due(c, fids, now, inputs.row_limit(limit)))

    async def next_schedule_at(self, function_ids: Sequence[str]) -> float | None:
        """The earliest next tick of the active schedules of these functions."""
        fids = [f for f in function_ids if inputs.storable(f)]
        if not fids:
            return None
        return await self._read(lambda c: sch.earliest_next(c, fids))

    async def fire_schedule(
        self,
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
        return await self._write(
            lambda tx: sch.fire(tx, schedule_id, revision, tick, next_at, run, missed)
        )

    async def trigger_schedule(self, schedule_id: str, run: NewRun) -> CreatedRun | None:
        """Create a run of the schedule now."""
        inputs.require_storable_runs([run])
        if not inputs.storable(schedule_id):
            return None
        return await self._write(lambda tx: sch.trigger(tx, schedule_id, run))


# ---------------------------------------------------------------------- helpers


def _claim_plain(
    tx: Tx, worker_id: str, fids: list[str], limit: int, lease_seconds: float
) -> Claim:
    """The claim of functions without claim-time gates: due runs in queue order."""
    conn, now = tx.conn, tx.now
    select_due = q.SELECT_DUE.format(fids=q.marks(len(fids)))
    due = conn.execute(select_due, (now, *fids, limit)).fetchall()
    claimed = flow_claim.lease_runs(tx, worker_id, due, lease_seconds)
    nxt = conn.execute(q.NEXT_DUE.format(fids=q.marks(len(fids))), fids).fetchone()[0]
    return Claim(claimed, nxt)


def _make_folder(path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute(q.BEGIN)
    try:
        current = 0
        if conn.execute(q.HAS_META).fetchone():
            current = version_of(conn.execute(q.SCHEMA_VERSION).fetchone())
        for number, name in MIGRATIONS.pending(current):
            for statement in split_statements(MIGRATIONS.read(name)):
                conn.execute(statement)
            conn.execute(q.SET_SCHEMA_VERSION, (str(number),))
        conn.execute(q.COMMIT)
    except BaseException:
        conn.execute(q.ROLLBACK)
        raise
