"""The SQLite backend: zero setup, one file, one machine (several processes may share it).

Design (measured choices are in docs/architecture.md):

- **One writer thread, group commit.** Every write is a closure queued to a single writer thread.
  The thread takes everything queued, runs it in *one* ``BEGIN IMMEDIATE`` transaction (each
  closure in its own savepoint, so one failing closure fails alone), commits, and only then
  resolves the callers' futures. Under load one fsync covers hundreds of checkpoints; with no load
  a write costs one commit. ``sqlite3`` releases the GIL while it waits on the disk, so the event
  loop keeps executing runs during a commit.
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
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeVar

from perdure import faults, serde
from perdure.clock import Clock, SystemClock
from perdure.errors import InvalidInputError, StoreUnavailableError
from perdure.functions import FunctionRecord, trigger_from_dict
from perdure.store import sqlite_sql as q
from perdure.store.base import (
    Claim,
    ClaimedRun,
    CreatedRun,
    EventIn,
    EventRow,
    NewRun,
    Outcome,
    RunFilter,
    RunRow,
    SentEvent,
    StepWrite,
    StoredStep,
    WriteOp,
)
from perdure.store.common import runs_for_event, wait_matches

T = TypeVar("T")

MIGRATIONS = ("0001_init.sql",)
EVENT_DEDUPE_SECONDS = 24 * 3600.0
_MAX_BATCH = 2000


@dataclass(slots=True)
class _Tx:
    """What a write closure sees: the connection, the batch's time, and what to announce."""

    conn: sqlite3.Connection
    now: float
    wake: bool = False
    finished: list[str] = field(default_factory=list)


_Op = Callable[[_Tx], Any]


class _Item:
    __slots__ = ("fut", "loop", "op")

    def __init__(self, op: _Op, fut: asyncio.Future[Any], loop: asyncio.AbstractEventLoop):
        self.op = op
        self.fut = fut
        self.loop = loop


def _connect(path: str, synchronous: str, busy_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_ms / 1000
    )
    for pragma in q.PRAGMAS:
        conn.execute(pragma)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    return conn


def _resolve(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, exc in results:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


class SqliteStore:
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
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._wconn: sqlite3.Connection | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._rconn: sqlite3.Connection | None = None
        self._wake_cbs: list[Callable[[], None]] = []
        self._finished_cbs: list[Callable[[Sequence[str]], None]] = []
        self._cb_loop: asyncio.AbstractEventLoop | None = None
        self._registry: list[FunctionRecord] = []
        self._registry_version: str | None = None
        self._closed = False

    def now(self) -> float:
        """The clock's time."""
        return self.clock.now()

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Create the file (and its folder), apply migrations, start the threads."""
        await asyncio.to_thread(_make_folder, self.path)
        self._cb_loop = asyncio.get_running_loop()
        self._wconn = await asyncio.to_thread(_connect, self.path, self._sync, self._busy_ms)
        await asyncio.to_thread(self._migrate, self._wconn)
        self._writer = threading.Thread(
            target=self._write_loop, name="perdure-sqlite-writer", daemon=True
        )
        self._writer.start()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="perdure-sqlite-reader")
        self._rconn = await asyncio.get_running_loop().run_in_executor(
            self._reader, _connect, self.path, self._sync, self._busy_ms
        )

    async def close(self) -> None:
        """Finish queued writes, then close the connections."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join)
        if self._reader is not None:
            rconn = self._rconn
            if rconn is not None:
                await asyncio.get_running_loop().run_in_executor(self._reader, rconn.close)
            self._reader.shutdown(wait=True)
        if self._wconn is not None:
            self._wconn.close()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = 0
            if conn.execute(q.HAS_META).fetchone():
                row = conn.execute(q.SCHEMA_VERSION).fetchone()
                current = int(row[0]) if row else 0
            if current > len(MIGRATIONS):
                raise StoreUnavailableError(
                    f"database schema version {current} is newer than this perdure "
                    f"({len(MIGRATIONS)}); upgrade perdure"
                )
            for number, name in enumerate(MIGRATIONS, start=1):
                if number <= current:
                    continue
                sql = resources.files("perdure.store").joinpath("sql/sqlite", name).read_text()
                for statement in _split_sql(sql):
                    conn.execute(statement)
                conn.execute(q.SET_SCHEMA_VERSION, (str(number),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def on_wake(self, callback: Callable[[], None]) -> None:
        """Register a callback for new claimable work committed by this process."""
        self._wake_cbs.append(callback)

    def on_finished(self, callback: Callable[[Sequence[str]], None]) -> None:
        """Register a callback for runs that this process brought to a terminal state."""
        self._finished_cbs.append(callback)

    async def schema_version(self) -> tuple[int, int]:
        """The database's schema version and the latest this perdure knows."""
        row = await self._read(lambda c: c.execute(q.SCHEMA_VERSION).fetchone())
        return (int(row[0]) if row else 0), len(MIGRATIONS)

    async def ping(self) -> None:
        """Run a trivial read."""
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # ------------------------------------------------------------------ plumbing

    async def _write(self, op: Callable[[_Tx], T]) -> T:
        if self._closed or self._writer is None:
            raise StoreUnavailableError("the store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Item(op, fut, loop))
        return await fut

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed or self._reader is None or self._rconn is None:
            raise StoreUnavailableError("the store is closed")
        conn = self._rconn
        return await asyncio.get_running_loop().run_in_executor(self._reader, op, conn)

    def _write_loop(self) -> None:
        assert self._wconn is not None
        conn = self._wconn
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(conn, batch)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        tx = _Tx(conn, self.clock.now())
        for attempt in range(8):
            outcomes = []
            tx = _Tx(conn, self.clock.now())
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if attempt == 7:
                    busy = StoreUnavailableError(f"SQLite is busy: {exc}")
                    outcomes = [(None, busy)] * len(batch)
                    break
                time.sleep(0.01 * (attempt + 1))
                continue
            if len(batch) == 1:
                try:
                    outcomes.append((batch[0].op(tx), None))
                except Exception as exc:
                    conn.execute("ROLLBACK")
                    outcomes = [(None, _translate(exc))]
                    tx.wake = False
                    tx.finished = []
                    break
            for item in batch if len(batch) > 1 else ():
                if item.fut.cancelled():
                    outcomes.append((None, None))
                    continue
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((item.op(tx), None))
                    conn.execute("RELEASE op")
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((None, _translate(exc)))
            try:
                faults.hit("before_commit")
                conn.execute("COMMIT")
                faults.hit("after_commit")
                break
            except Exception as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if attempt == 7 or not isinstance(exc, sqlite3.OperationalError):
                    err = _translate(exc)
                    outcomes = [(None, err)] * len(batch)
                    tx.wake = False
                    tx.finished = []
                    break
                time.sleep(0.01 * (attempt + 1))
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for item, (value, error) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(item.loop, []).append((item.fut, value, error))
        announce = (tx.wake or bool(tx.finished)) and self._cb_loop is not None
        for loop, results in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop closed
                if announce and loop is self._cb_loop:
                    # One wake-up of the loop for both the results and the announcement.
                    loop.call_soon_threadsafe(
                        self._resolve_and_announce, results, tx.wake, tx.finished
                    )
                    announce = False
                else:
                    loop.call_soon_threadsafe(_resolve, results)
        if announce and self._cb_loop is not None:
            with contextlib.suppress(RuntimeError):
                self._cb_loop.call_soon_threadsafe(self._announce, tx.wake, tx.finished)

    def _resolve_and_announce(self, results: list[Any], wake: bool, finished: list[str]) -> None:
        _resolve(results)
        self._announce(wake, finished)

    def _announce(self, wake: bool, finished: list[str]) -> None:
        if wake:
            for cb in self._wake_cbs:
                cb()
        if finished:
            for fcb in self._finished_cbs:
                fcb(finished)

    # ------------------------------------------------------------------ functions

    async def register_functions(self, records: Sequence[FunctionRecord]) -> None:
        """Create or replace function records and bump the registry version."""
        rows = [
            (
                r.id,
                r.app,
                serde.dumps([t.to_dict() for t in r.triggers]),
                serde.dumps(r.config),
            )
            for r in records
        ]

        def op(tx: _Tx) -> None:
            tx.conn.executemany(q.UPSERT_FUNCTION, [(*row, tx.now) for row in rows])
            tx.conn.execute(q.BUMP_REGISTRY)

        await self._write(op)

    async def list_functions(self) -> list[FunctionRecord]:
        """Every registered function."""
        rows = await self._read(lambda c: c.execute(q.SELECT_FUNCTIONS).fetchall())
        return [_function(row) for row in rows]

    def _functions(self, conn: sqlite3.Connection) -> list[FunctionRecord]:
        version = conn.execute(q.REGISTRY_VERSION).fetchone()[0]
        if version != self._registry_version:
            self._registry = [_function(row) for row in conn.execute(q.SELECT_FUNCTIONS)]
            self._registry_version = version
        return self._registry

    # ------------------------------------------------------------------ client side

    async def create_runs(self, runs: Sequence[NewRun]) -> list[CreatedRun]:
        """Insert runs, due now; idempotency keys return existing runs."""
        runs = list(runs)

        def op(tx: _Tx) -> list[CreatedRun]:
            out = _insert_runs(tx, runs)
            if any(c.created and c.token is None for c in out):
                tx.wake = True
            return out

        return await self._write(op)

    async def send_events(self, events: Sequence[EventIn]) -> list[SentEvent]:
        """Store events, start the runs they trigger, resume the runs waiting for them."""
        events = list(events)

        def op(tx: _Tx) -> list[SentEvent]:
            conn, now = tx.conn, tx.now
            registry = self._functions(conn)
            out: list[SentEvent] = []
            for ev in events:
                if (
                    conn.execute(
                        q.DEDUPE_EVENT, (ev.id, now + EVENT_DEDUPE_SECONDS, now)
                    ).fetchone()
                    is None
                ):
                    out.append(SentEvent(ev.id, True, []))
                    continue
                conn.execute(q.INSERT_EVENT, (ev.id, ev.name, ev.body, now))
                faults.hit("event_fanout")
                new_runs = runs_for_event(registry, ev.obj, ev.body)
                if new_runs:
                    _insert_runs(tx, new_runs)
                    tx.wake = True
                for run_id, key, path, value, expr, run_input in conn.execute(
                    q.WAITS_FOR_EVENT, (ev.name, now)
                ).fetchall():
                    if not wait_matches(path, value, expr, run_input, ev.obj):
                        continue
                    _resolve_step(tx, run_id, key, "completed", ev.body, None)
                    conn.execute(q.DELETE_WAIT, (run_id, key))
                out.append(SentEvent(ev.id, False, [r.id for r in new_runs]))
            return out

        return await self._write(op)

    async def cancel_run(self, run_id: str) -> RunRow | None:
        """Cancel a run that has not ended; fence its worker; fail its parent's invoke step."""
        error = serde.dumps({"type": "RunCancelledError", "message": "the run was cancelled"})

        def op(tx: _Tx) -> RunRow | None:
            conn = tx.conn
            row = conn.execute(q.CANCEL_RUN, (tx.now, error, run_id)).fetchone()
            if row is not None:
                conn.execute(q.DELETE_WAITS_OF_RUN, (run_id,))
                tx.finished.append(run_id)
                parent, parent_step = row
                if parent is not None:
                    _resolve_step(tx, parent, parent_step, "failed", None, error)
            found = conn.execute(q.SELECT_RUN, (run_id,)).fetchone()
            return None if found is None else _run(found)

        return await self._write(op)

    async def get_run(self, run_id: str) -> RunRow | None:
        """One run."""
        row = await self._read(lambda c: c.execute(q.SELECT_RUN, (run_id,)).fetchone())
        return None if row is None else _run(row)

    async def get_runs(self, run_ids: Sequence[str]) -> list[RunRow]:
        """Several runs."""
        ids = list(run_ids)
        if not ids:
            return []
        sql = q.SELECT_RUNS.format(ids=_marks(len(ids)))
        rows = await self._read(lambda c: c.execute(sql, ids).fetchall())
        return [_run(row) for row in rows]

    async def get_steps(self, run_id: str) -> list[StoredStep]:
        """The recorded steps of a run, in call order."""
        rows = await self._read(lambda c: c.execute(q.STEPS_OF_RUN, (run_id,)).fetchall())
        return [StoredStep(*row) for row in rows]

    async def list_runs(self, flt: RunFilter) -> list[RunRow]:
        """Runs, newest first."""
        where: list[str] = []
        args: list[Any] = []
        if flt.status is not None:
            where.append("status = ?")
            args.append(flt.status)
        if flt.function_id is not None:
            where.append("function_id = ?")
            args.append(flt.function_id)
        if flt.before is not None:
            where.append("id < ?")
            args.append(flt.before)
        sql = q.LIST_RUNS
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(flt.limit)
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [_run(row) for row in rows]

    async def list_events(self, name: str | None, before: int | None, limit: int) -> list[EventRow]:
        """Events, newest first, with the runs each started."""

        def read(c: sqlite3.Connection) -> list[EventRow]:
            where: list[str] = []
            args: list[Any] = []
            if name is not None:
                where.append("name = ?")
                args.append(name)
            if before is not None:
                where.append("seq < ?")
                args.append(before)
            sql = q.LIST_EVENTS
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY seq DESC LIMIT ?"
            args.append(limit)
            events = [EventRow(*row) for row in c.execute(sql, args).fetchall()]
            if events:
                ev_ids = [e.id for e in events]
                by_event: dict[str, list[str]] = {}
                for ev_id, run_id in c.execute(
                    q.RUNS_OF_EVENTS.format(ids=_marks(len(ev_ids))), ev_ids
                ):
                    by_event.setdefault(ev_id, []).append(run_id)
                for e in events:
                    e.run_ids = by_event.get(e.id, [])
            return events

        return await self._read(read)

    # ------------------------------------------------------------------ worker side

    async def claim(
        self, worker_id: str, function_ids: Sequence[str], limit: int, lease_seconds: float
    ) -> Claim:
        """Lease up to ``limit`` due runs, with their steps."""
        fids = list(function_ids)
        if not fids or limit <= 0:
            return Claim([], self.now(), None)
        select_due = q.SELECT_DUE.format(fids=_marks(len(fids)))
        next_due_sql = q.NEXT_DUE.format(fids=_marks(len(fids)))

        def op(tx: _Tx) -> Claim:
            conn, now = tx.conn, tx.now
            due = conn.execute(select_due, (now, *fids, limit)).fetchall()
            claimed: list[ClaimedRun] = []
            replay: list[str] = []
            for run_id, status, started_at in due:
                crashed = 1 if status == "running" else 0
                fid, token, run_input, attempt, crashes = conn.execute(
                    q.CLAIM_RUN, (worker_id, now + lease_seconds, now, crashed, run_id)
                ).fetchone()
                claimed.append(ClaimedRun(run_id, fid, token, run_input, attempt, {}, crashes))
                if started_at is not None:
                    replay.append(run_id)
            if replay:
                by_id = {c.id: c for c in claimed}
                sql = q.STEPS_OF_RUNS.format(ids=_marks(len(replay)))
                for row in conn.execute(sql, replay):
                    step = StoredStep(*row[1:])
                    by_id[row[0]].steps[step.key] = step
            nxt = conn.execute(next_due_sql, fids).fetchone()[0]
            return Claim(claimed, now, nxt)

        return await self._write(op)

    async def next_due(self, function_ids: Sequence[str]) -> float | None:
        """When the earliest run of these functions comes due (a read; no lock)."""
        fids = list(function_ids)
        if not fids:
            return None
        sql = q.NEXT_DUE.format(fids=_marks(len(fids)))
        row = await self._read(lambda c: c.execute(sql, fids).fetchone())
        return None if row is None else row[0]

    async def commit(self, ops: Sequence[WriteOp]) -> list[bool]:
        """Apply fenced checkpoints and outcomes in one transaction."""
        ops = list(ops)
        return await self._write(lambda tx: _commit(tx, ops))

    async def heartbeat(
        self, worker_id: str, leases: Sequence[tuple[str, int]], lease_seconds: float
    ) -> list[str]:
        """Extend leases; return the runs whose lease was lost."""
        leases = list(leases)

        def op(tx: _Tx) -> list[str]:
            lost = []
            until = tx.now + lease_seconds
            for run_id, token in leases:
                if tx.conn.execute(q.HEARTBEAT, (until, run_id, token)).rowcount == 0:
                    lost.append(run_id)
            return lost

        return await self._write(op)

    async def expire_step(self, run_id: str, token: int, key: str) -> StoredStep | None:
        """Time out a wait or invoke step past its deadline, unless already resolved."""

        def op(tx: _Tx) -> StoredStep | None:
            conn = tx.conn
            row = conn.execute(q.FENCE.format(ids="?"), (run_id,)).fetchone()
            if row is None or row[1] != token:
                return None
            step = conn.execute(q.STEP_OF_RUN, (run_id, key)).fetchone()
            if step is None:
                return None
            current = StoredStep(*step)
            if current.status == "waiting":
                conn.execute(q.RESOLVE_STEP, ("completed", "null", None, tx.now, run_id, key))
                conn.execute(q.DELETE_WAIT, (run_id, key))
            elif current.status == "invoking":
                err = serde.dumps(
                    {
                        "type": "InvokeTimeoutError",
                        "message": "the invoked run did not finish before the timeout",
                    }
                )
                conn.execute(q.RESOLVE_STEP, ("failed", None, err, tx.now, run_id, key))
            else:
                return current
            return StoredStep(*conn.execute(q.STEP_OF_RUN, (run_id, key)).fetchone())

        return await self._write(op)

    # ------------------------------------------------------------------ cron, maintenance

    async def cron_last_tick(self, function_id: str, trigger: str) -> float | None:
        """The last tick fired for a cron trigger."""
        row = await self._read(lambda c: c.execute(q.CRON_LAST, (function_id, trigger)).fetchone())
        return None if row is None else float(row[0])

    async def fire_cron(
        self, function_id: str, trigger: str, tick: float, run: NewRun | None
    ) -> bool:
        """Advance the trigger's last tick and create the tick's run, once."""

        def op(tx: _Tx) -> bool:
            if tx.conn.execute(q.CRON_ADVANCE, (function_id, trigger, tick)).rowcount == 0:
                return False
            if run is None:
                return True
            created = _insert_runs(tx, [run])[0].created
            tx.wake = tx.wake or created
            return created

        return await self._write(op)

    async def prune(self, finished_before: float, limit: int) -> int:
        """Delete ended runs older than ``finished_before`` with their steps, and old events."""

        def op(tx: _Tx) -> int:
            conn = tx.conn
            ids = [r[0] for r in conn.execute(q.PRUNE_SELECT, (finished_before, limit))]
            if ids:
                marks = _marks(len(ids))
                conn.execute(q.PRUNE_STEPS.format(ids=marks), ids)
                conn.execute(q.PRUNE_RUNS.format(ids=marks), ids)
            conn.execute(q.PRUNE_EVENT_IDS, (tx.now,))
            conn.execute(q.PRUNE_EVENTS, (finished_before,))
            return len(ids)

        return await self._write(op)


# ---------------------------------------------------------------------- helpers


def _make_folder(path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _split_sql(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _translate(exc: Exception) -> BaseException:
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailableError(f"SQLite error: {exc}")
    return exc


def _function(row: tuple[Any, ...]) -> FunctionRecord:
    fid, app, triggers, config = row
    return FunctionRecord(
        fid, app, tuple(trigger_from_dict(t) for t in serde.loads(triggers)), serde.loads(config)
    )


def _run(row: tuple[Any, ...]) -> RunRow:
    return RunRow(*row)


def _insert_runs(tx: _Tx, runs: Sequence[NewRun]) -> list[CreatedRun]:
    conn, now = tx.conn, tx.now
    plain = [r for r in runs if r.idempotency_key is None and r.lease_owner is None]
    if len(plain) == len(runs):
        conn.executemany(
            q.INSERT_RUN,
            [
                (
                    r.id,
                    r.function_id,
                    r.input,
                    r.event_id,
                    None,
                    r.parent_run_id,
                    r.parent_step,
                    r.priority,
                    now,
                    now,
                )
                for r in runs
            ],
        )
        return [CreatedRun(r.id, True) for r in runs]
    out = []
    for r in runs:
        if r.lease_owner is not None:
            cur = conn.execute(
                q.INSERT_LEASED_RUN,
                (
                    r.id,
                    r.function_id,
                    r.input,
                    r.event_id,
                    r.idempotency_key,
                    r.parent_run_id,
                    r.parent_step,
                    r.priority,
                    now + r.lease_seconds,
                    now,
                    r.lease_owner,
                    now,
                ),
            )
            if cur.rowcount == 1:
                out.append(CreatedRun(r.id, True, 1))
                continue
            existing = conn.execute(q.RUN_BY_KEY, (r.function_id, r.idempotency_key)).fetchone()
            out.append(CreatedRun(existing[0], False))
            continue
        cur = conn.execute(
            q.INSERT_RUN_IDEMPOTENT,
            (
                r.id,
                r.function_id,
                r.input,
                r.event_id,
                r.idempotency_key,
                r.parent_run_id,
                r.parent_step,
                r.priority,
                now,
                now,
            ),
        )
        if cur.rowcount == 1 or r.idempotency_key is None:
            out.append(CreatedRun(r.id, True))
        else:
            existing = conn.execute(q.RUN_BY_KEY, (r.function_id, r.idempotency_key)).fetchone()
            out.append(CreatedRun(existing[0], False))
    return out


def _resolve_step(
    tx: _Tx, run_id: str, key: str, status: str, output: str | None, error: str | None
) -> None:
    """Resolve a waiting or invoking step of another run and make that run due."""
    conn = tx.conn
    resolved = conn.execute(q.RESOLVE_STEP, (status, output, error, tx.now, run_id, key))
    if resolved.rowcount and conn.execute(q.WAKE_RUN, (tx.now, tx.now, run_id)).rowcount:
        tx.wake = True


def _commit(tx: _Tx, ops: list[WriteOp]) -> list[bool]:
    conn, now = tx.conn, tx.now
    run_ids = list({op.run_id for op in ops})
    tokens: dict[str, int] = {}
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start : start + 500]
        tokens.update(conn.execute(q.FENCE.format(ids=_marks(len(chunk))), chunk).fetchall())
    results: list[bool] = []
    step_rows: list[tuple[Any, ...]] = []
    ended: set[str] = set()
    for op in ops:
        ok = tokens.get(op.run_id) == op.token and op.run_id not in ended
        results.append(ok)
        if not ok:
            continue
        if isinstance(op, StepWrite):
            done = op.status in ("completed", "failed")
            step_rows.append(
                (
                    op.run_id,
                    op.key,
                    op.seq,
                    op.kind,
                    op.status,
                    op.output,
                    op.error,
                    op.attempts,
                    op.wake_at,
                    op.started_at or now,
                    now if done else None,
                )
            )
            if op.wait is not None:
                w = op.wait
                conn.execute(
                    q.UPSERT_WAIT,
                    (
                        op.run_id,
                        op.key,
                        w.event_name,
                        w.match_path,
                        w.match_value,
                        w.expression,
                        w.expires_at,
                        now,
                    ),
                )
            if op.child is not None:
                _insert_runs(tx, [op.child])
                tx.wake = True
        else:
            if step_rows:
                conn.executemany(q.UPSERT_STEP, step_rows)
                step_rows = []
            _outcome(tx, op)
            ended.add(op.run_id)
    if step_rows:
        conn.executemany(q.UPSERT_STEP, step_rows)
    return results


def _outcome(tx: _Tx, op: Outcome) -> None:
    conn, now = tx.conn, tx.now
    if op.kind in ("complete", "fail"):
        status = "completed" if op.kind == "complete" else "failed"
        parent, parent_step = conn.execute(
            q.COMPLETE_RUN, (status, op.output, op.error, now, op.run_id)
        ).fetchone()
        conn.execute(q.DELETE_WAITS_OF_RUN, (op.run_id,))
        tx.finished.append(op.run_id)
        if parent is not None:
            if status == "completed":
                _resolve_step(tx, parent, parent_step, "completed", op.output or "null", None)
            else:
                _resolve_step(tx, parent, parent_step, "failed", None, op.error)
    elif op.kind == "retry":
        conn.execute(q.RETRY_RUN, (op.error, op.available_at, op.run_id))
    elif op.kind == "suspend":
        available = op.available_at
        if op.watch_keys:
            sql = q.RESOLVED_WATCHED.format(keys=_marks(len(op.watch_keys)))
            if conn.execute(sql, (op.run_id, *op.watch_keys)).fetchone():
                available = now
        status = "queued" if available is not None and available <= now else op.status
        conn.execute(q.SUSPEND_RUN, (status, available, op.run_id))
        if available is not None and available <= now:
            tx.wake = True
    else:  # release
        conn.execute(q.SUSPEND_RUN, ("queued", now, op.run_id))
        tx.wake = True
