"""The PostgreSQL backend: many servers and workers on many machines share one database.

Modules: this one (the store), ``postgres_sql`` (every statement), ``postgres_schema`` (URL,
channel names, migrations), ``postgres_plan`` (how a commit batch becomes statements),
``postgres_listen`` (the LISTEN connection).

Design:

- **psycopg 3, async, raw SQL.** One :class:`psycopg_pool.AsyncConnectionPool`; statements are
  constant text, so psycopg prepares them on each connection; batches are arrays expanded
  with ``unnest``. Multi-statement transactions are sent in *pipeline mode*: ``BEGIN``, the
  statements and ``COMMIT`` travel together, one network round trip.
- **URL:** ``postgresql://user@host:port/db?schema=NAME`` (default schema ``public``). Our own
  parameters (``schema``, ``pool_min_size``, ``pool_max_size``, ``pool_timeout``) are removed;
  every other one goes to libpq. Every connection's ``search_path`` is the schema, created if
  missing.
- **Time** is stored as ``double precision`` seconds since the epoch and read from the
  database clock (``now()``, the transaction's start) through the ``perdure_now(manual)`` SQL
  function. A test that hands the store a manual clock passes its time as ``manual`` instead.
  :meth:`PostgresStore.now` answers without a round trip: the local clock plus the offset to
  the database clock measured on recent round trips (claims, heartbeats, pings).
- **Claims:** one statement (``FOR UPDATE SKIP LOCKED``) leases up to *n* runs, and returns
  their recorded steps (for runs that had started), the database time and the next due time.
- **Checkpoints:** ``commit(ops)`` is one transaction and one round trip: a first statement
  locks the batch's runs in id order (the fence) and upserts every step, wait and invoked
  child; one statement per outcome kind follows.
- **Wake-ups:** statements that make work due call ``pg_notify`` (folded to one per
  transaction); a listener connection (:mod:`perdure.store.postgres_listen`) calls the
  ``on_wake`` and ``on_finished`` callbacks for other processes' commits. Channel names
  include the schema.
- **Errors:** a connection failure, a pool timeout or a closed store raise
  :class:`~perdure.errors.StoreUnavailableError`; deadlocks and serialization failures are
  retried; the pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from perdure import faults, serde
from perdure.clock import Clock, SystemClock
from perdure.errors import StoreUnavailableError
from perdure.functions import FunctionRecord
from perdure.store import postgres_sql as q
from perdure.store.base import (
    Claim,
    CreatedRun,
    EventIn,
    EventRow,
    NewRun,
    RunFilter,
    RunRow,
    SentEvent,
    StoredStep,
    WriteOp,
)
from perdure.store.common import runs_for_event, wait_matches
from perdure.store.postgres_listen import Listener
from perdure.store.postgres_plan import CommitPlan, claim_from_rows, function_from_row, to_json
from perdure.store.postgres_schema import (
    MIGRATIONS,
    SCHEMA_FILE,
    PgConfig,
    apply_schema,
    channel_name,
    migrate,
    parse_url,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_FILE",
    "PgConfig",
    "PostgresStore",
    "apply_schema",
    "channel_name",
    "migrate",
    "parse_url",
]

T = TypeVar("T")
Conn = psycopg.AsyncConnection[TupleRow]

log = logging.getLogger("perdure.store.postgres")

EVENT_DEDUPE_SECONDS = 24 * 3600.0
_MAX_RETRIES = 8
_INVOKE_TIMEOUT = serde.dumps(
    {"type": "InvokeTimeoutError", "message": "the invoked run did not finish before the timeout"}
)
_CANCELLED = serde.dumps({"type": "RunCancelledError", "message": "the run was cancelled"})


# ---------------------------------------------------------------------- the store's clock


class _DbClock:
    """The database's clock, as the store estimates it (see :meth:`PostgresStore.now`)."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def now(self) -> float:
        return self._store.now()

    async def wait(self, event: asyncio.Event, deadline: float | None, cap: float | None) -> None:
        timeout = cap
        if deadline is not None:
            until = max(0.0, deadline - self.now())
            timeout = until if timeout is None else min(timeout, until)
        if event.is_set() or (timeout is not None and timeout <= 0):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


# ---------------------------------------------------------------------- the store


class PostgresStore:
    """A :class:`~perdure.store.base.Store` on PostgreSQL."""

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self.url = url
        self.poll_interval = 2.0  # a safety net: LISTEN/NOTIFY wakes workers at once
        self._cfg = parse_url(url)
        self.schema = self._cfg.schema
        manual = clock is not None and not isinstance(clock, SystemClock)
        self._manual: Clock | None = clock if manual else None
        self.clock: Clock = clock if clock is not None and manual else _DbClock(self)
        self._offset = 0.0
        self._sample_score = float("inf")
        self._sample_at = 0.0
        self._origin = uuid.uuid4().hex[:16]
        self._wake_channel = channel_name("wake", self.schema)
        self._done_channel = channel_name("done", self.schema)
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listener: Listener | None = None
        self._wake_cbs: list[Callable[[], None]] = []
        self._finished_cbs: list[Callable[[Sequence[str]], None]] = []
        self._registry: list[FunctionRecord] = []
        self._registry_version: str | None = None
        self._check_task: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """The manual clock's time, else the database's (estimated without a round trip)."""
        if self._manual is not None:
            return self._manual.now()
        return time.time() + self._offset

    def _now_param(self) -> float | None:
        return None if self._manual is None else self._manual.now()

    def _sample(self, db_now: float, t0: float, t1: float) -> None:
        """Learn the database clock's offset from a round trip that read it (the estimate
        with the shortest round trip wins; an old one slowly loses its credit)."""
        if self._manual is not None:
            return
        mono = time.monotonic()
        score = t1 - t0
        if score <= self._sample_score + (mono - self._sample_at) * 0.001:
            self._offset = db_now - (t0 + t1) / 2
            self._sample_score = score
            self._sample_at = mono

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Apply migrations, open the pool and start the listener."""
        cfg = self._cfg
        try:
            conn = await psycopg.AsyncConnection.connect(
                cfg.conninfo, autocommit=True, **cfg.kwargs
            )
            async with conn:
                await apply_schema(conn, self.schema)
                t0 = time.time()
                row = await (await conn.execute(q.DB_NOW)).fetchone()
                assert row is not None
                self._sample(float(row[0]), t0, time.time())
            self._pool = AsyncConnectionPool(
                cfg.conninfo,
                kwargs={"autocommit": True, **cfg.kwargs},
                min_size=cfg.pool_min_size,
                max_size=cfg.pool_max_size,
                timeout=cfg.pool_timeout,
                open=False,
                name=f"perdure-{self.schema}",
            )
            await self._pool.open(wait=True, timeout=cfg.pool_timeout)
            self._listener = Listener(
                cfg.conninfo,
                cfg.kwargs,
                [self._wake_channel, self._done_channel],
                self._on_notify,
                self._on_reconnect,
            )
            await self._listener.start()
        except BaseException as exc:
            await self._shutdown()
            if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
                raise StoreUnavailableError(f"PostgreSQL is unavailable: {exc}") from exc
            raise

    async def close(self) -> None:
        """Stop the listener and close the pool."""
        if self._closed:
            return
        self._closed = True
        await self._shutdown()

    async def _shutdown(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        task, self._check_task = self._check_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def schema_version(self) -> tuple[int, int]:
        """The schema version of the database and the latest this perdure knows."""
        row = await self._read_one(q.SCHEMA_VERSION, {})
        return (int(row[0]) if row else 0), len(MIGRATIONS)

    def on_wake(self, callback: Callable[[], None]) -> None:
        """Register a callback for new claimable work (this process's and others')."""
        self._wake_cbs.append(callback)

    def on_finished(self, callback: Callable[[Sequence[str]], None]) -> None:
        """Register a callback for runs that reached a terminal state."""
        self._finished_cbs.append(callback)

    async def ping(self) -> None:
        """A trivial round trip (it also refreshes the clock offset)."""

        async def op(conn: Conn) -> None:
            t0 = time.time()
            row = await (await conn.execute(q.PING, {"now": self._now_param()})).fetchone()
            assert row is not None
            self._sample(float(row[0]), t0, time.time())

        await self._run(op, read=True)

    # ------------------------------------------------------------------ plumbing

    def _on_notify(self, channel: str, payload: str) -> None:
        if channel == self._wake_channel:
            if payload != self._origin:
                for cb in list(self._wake_cbs):
                    cb()
        elif channel == self._done_channel:
            origin, _, ids = payload.partition(":")
            if origin != self._origin and ids:
                run_ids = ids.split(",")
                for fcb in list(self._finished_cbs):
                    fcb(run_ids)

    def _on_reconnect(self) -> None:
        # Notifications may have been missed while the listener was away.
        for cb in list(self._wake_cbs):
            cb()

    def _announce(self, wake: bool, finished: Sequence[str] = ()) -> None:
        if not (wake or finished):
            return
        asyncio.get_running_loop().call_soon(self._call_back, wake, list(finished))

    def _call_back(self, wake: bool, finished: list[str]) -> None:
        if wake:
            for cb in list(self._wake_cbs):
                cb()
        if finished:
            for fcb in list(self._finished_cbs):
                fcb(finished)

    def _recheck_pool(self) -> None:
        """After a connection error, test the idle connections in the background."""
        pool = self._pool
        if pool is None or self._closed:
            return
        if self._check_task is None or self._check_task.done():
            self._check_task = asyncio.get_running_loop().create_task(
                self._check_pool(pool), name="perdure-pg-pool-check"
            )

    @staticmethod
    async def _check_pool(pool: AsyncConnectionPool[Conn]) -> None:
        with contextlib.suppress(Exception):
            await pool.check()

    async def _run(self, fn: Callable[[Conn], Awaitable[T]], *, read: bool = False) -> T:
        """Run ``fn`` on a pooled connection, translating connection failures into
        StoreUnavailableError and retrying transactions PostgreSQL rolled back (deadlocks,
        serialization failures). A read is also retried once after a connection error."""
        attempt = 0
        while True:
            pool = self._pool
            if pool is None or self._closed:
                raise StoreUnavailableError("the store is closed")
            try:
                async with pool.connection() as conn:
                    return await fn(conn)
            except psycopg.errors.TransactionRollback as exc:
                if attempt >= _MAX_RETRIES:
                    raise StoreUnavailableError(f"PostgreSQL kept aborting: {exc}") from exc
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
            except PoolClosed as exc:
                raise StoreUnavailableError("the store is closed") from exc
            except PoolTimeout as exc:
                self._recheck_pool()
                raise StoreUnavailableError(f"PostgreSQL is unavailable: {exc}") from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._recheck_pool()
                if not read or attempt >= 1:
                    raise StoreUnavailableError(f"PostgreSQL is unavailable: {exc}") from exc
            attempt += 1

    async def _read_all(self, stmt: LiteralString, params: dict[str, Any]) -> list[TupleRow]:
        async def op(conn: Conn) -> list[TupleRow]:
            return await (await conn.execute(stmt, params)).fetchall()

        return await self._run(op, read=True)

    async def _read_one(self, stmt: LiteralString, params: dict[str, Any]) -> TupleRow | None:
        async def op(conn: Conn) -> TupleRow | None:
            return await (await conn.execute(stmt, params)).fetchone()

        return await self._run(op, read=True)

    async def _write_one(
        self, conn: Conn, stmt: LiteralString, params: dict[str, Any]
    ) -> list[TupleRow]:
        """One statement, its own transaction."""
        faults.hit("before_commit")
        cur = await conn.execute(stmt, params)
        rows = await cur.fetchall() if cur.description is not None else []
        faults.hit("after_commit")
        return rows

    async def _transaction(
        self, conn: Conn, statements: Sequence[tuple[LiteralString, dict[str, Any]]]
    ) -> list[list[TupleRow]]:
        """Several statements in one transaction and one round trip (pipeline mode)."""
        cursors = []
        try:
            async with conn.pipeline():
                await conn.execute("BEGIN")
                for stmt, params in statements:
                    cursors.append(await conn.execute(stmt, params))
                faults.hit("before_commit")
                await conn.execute("COMMIT")
        except BaseException:
            await _rollback_quietly(conn)
            raise
        faults.hit("after_commit")
        out = []
        for cur in cursors:
            out.append(await cur.fetchall() if cur.description is not None else [])
        return out

    # ------------------------------------------------------------------ functions

    async def register_functions(self, records: Sequence[FunctionRecord]) -> None:
        """Create or replace function records and bump the registry version."""
        latest = {r.id: r for r in records}
        rows = [latest[fid] for fid in sorted(latest)]
        params = {
            "now": self._now_param(),
            "ids": [r.id for r in rows],
            "apps": [r.app for r in rows],
            "triggers": [serde.dumps([t.to_dict() for t in r.triggers]) for r in rows],
            "configs": [serde.dumps(r.config) for r in rows],
        }

        async def op(conn: Conn) -> None:
            await self._write_one(conn, q.REGISTER_FUNCTIONS, params)

        await self._run(op)

    async def list_functions(self) -> list[FunctionRecord]:
        """Every registered function."""
        return [function_from_row(row) for row in await self._read_all(q.SELECT_FUNCTIONS, {})]

    # ------------------------------------------------------------------ client side

    def _runs_params(self, runs: Sequence[NewRun]) -> dict[str, Any]:
        rows = [
            {
                "ord": i,
                "id": r.id,
                "function_id": r.function_id,
                "input": r.input,
                "event_id": r.event_id,
                "idempotency_key": r.idempotency_key,
                "parent_run_id": r.parent_run_id,
                "parent_step": r.parent_step,
                "priority": r.priority,
                "owner": r.lease_owner,
                "lease": r.lease_seconds,
            }
            for i, r in enumerate(runs)
        ]
        return {
            "now": self._now_param(),
            "runs": to_json(rows),
            "wake_channel": self._wake_channel,
            "origin": self._origin,
        }

    async def create_runs(self, runs: Sequence[NewRun]) -> list[CreatedRun]:
        """Insert runs, due now; idempotency keys return existing runs."""
        runs = list(runs)
        if not runs:
            return []
        params = self._runs_params(runs)

        async def op(conn: Conn) -> tuple[list[CreatedRun], bool]:
            rows = await self._write_one(conn, q.INSERT_RUNS, params)
            out: list[CreatedRun] = []
            for run, (run_id, created, existing, _, token) in zip(runs, rows, strict=True):
                if created:
                    out.append(CreatedRun(run_id, True, token))
                    continue
                if existing is None:  # committed by another transaction meanwhile
                    found = await (
                        await conn.execute(
                            q.RUN_BY_KEY, {"fid": run.function_id, "key": run.idempotency_key}
                        )
                    ).fetchone()
                    existing = found[0] if found else run_id
                out.append(CreatedRun(existing, False))
            return out, bool(rows and rows[0][3])

        out, woke = await self._run(op)
        self._announce(woke)
        return out

    async def send_events(self, events: Sequence[EventIn]) -> list[SentEvent]:
        """Store events, start the runs they trigger, resume the runs waiting for them."""
        events = list(events)
        if not events:
            return []
        ids = sorted({ev.id for ev in events})
        names = sorted({ev.name for ev in events})

        async def op(conn: Conn) -> tuple[list[SentEvent], bool]:
            try:
                async with conn.pipeline():
                    await conn.execute("BEGIN")
                    c_new = await conn.execute(
                        q.EVENT_DEDUPE,
                        {"now": self._now_param(), "ids": ids, "window": EVENT_DEDUPE_SECONDS},
                    )
                    c_reg = await conn.execute(
                        q.REGISTRY_IF_CHANGED, {"known": self._registry_version}
                    )
                    c_waits = await conn.execute(
                        q.WAITS_FOR_EVENTS, {"names": names, "now": self._now_param()}
                    )
                new = {row[0] for row in await c_new.fetchall()}
                self._update_registry(await c_reg.fetchall())
                registry = self._registry
                waits: dict[str, list[TupleRow]] = {}
                for row in await c_waits.fetchall():
                    waits.setdefault(row[0], []).append(row)
                out: list[SentEvent] = []
                stored: list[EventIn] = []
                runs: list[NewRun] = []
                resolved: dict[tuple[str, str], str] = {}
                for ev in events:
                    if ev.id not in new:
                        out.append(SentEvent(ev.id, True, []))
                        continue
                    new.discard(ev.id)  # a second copy in this batch is a duplicate
                    stored.append(ev)
                    started = runs_for_event(registry, ev.obj, ev.body)
                    runs.extend(started)
                    for _, run_id, key, path, value, expr, run_input in waits.get(ev.name, ()):
                        if (run_id, key) in resolved:
                            continue
                        if wait_matches(path, value, expr, run_input or "", ev.obj):
                            resolved[(run_id, key)] = ev.body
                    out.append(SentEvent(ev.id, False, [r.id for r in started]))
                faults.hit("event_fanout")
                statements: list[tuple[LiteralString, dict[str, Any]]] = []
                if stored:
                    statements.append(
                        (
                            q.INSERT_EVENTS,
                            {
                                "now": self._now_param(),
                                "events": to_json(
                                    [
                                        {"ord": i, "id": e.id, "name": e.name, "body": e.body}
                                        for i, e in enumerate(stored)
                                    ]
                                ),
                            },
                        )
                    )
                if runs:
                    statements.append((q.INSERT_RUNS, self._runs_params(runs)))
                if resolved:
                    statements.append(
                        (
                            q.RESOLVE_WAITS,
                            {
                                "now": self._now_param(),
                                "runs": sorted({k[0] for k in resolved}),
                                "waits": to_json(
                                    [
                                        {"run_id": k[0], "key": k[1], "output": body}
                                        for k, body in resolved.items()
                                    ]
                                ),
                                "wake_channel": self._wake_channel,
                                "origin": self._origin,
                            },
                        )
                    )
                cursors = []
                async with conn.pipeline():
                    for stmt, params in statements:
                        cursors.append(await conn.execute(stmt, params))
                    faults.hit("before_commit")
                    await conn.execute("COMMIT")
            except BaseException:
                await _rollback_quietly(conn)
                raise
            faults.hit("after_commit")
            wake = bool(runs)
            if resolved:
                counts = await cursors[-1].fetchone()
                wake = wake or bool(counts and counts[1])
            return out, wake

        out, wake = await self._run(op)
        self._announce(wake)
        return out

    def _update_registry(self, rows: list[TupleRow]) -> None:
        if not rows or rows[0][0] == self._registry_version:
            return
        self._registry = [function_from_row(row[1:]) for row in rows if row[1] is not None]
        self._registry_version = rows[0][0]

    async def cancel_run(self, run_id: str) -> RunRow | None:
        """Cancel a run that has not ended; fence its worker; fail its parent's invoke step."""
        params = {
            "now": self._now_param(),
            "id": run_id,
            "error": _CANCELLED,
            "wake_channel": self._wake_channel,
            "done_channel": self._done_channel,
            "origin": self._origin,
        }

        async def op(conn: Conn) -> tuple[RunRow | None, bool, bool]:
            counts, found = await self._transaction(
                conn, [(q.CANCEL_RUN, params), (q.SELECT_RUN, {"id": run_id})]
            )
            cancelled, woke = bool(counts[0][0]), bool(counts[0][1])
            return (RunRow(*found[0]) if found else None), cancelled, woke

        row, cancelled, woke = await self._run(op)
        self._announce(woke, [run_id] if cancelled else [])
        return row

    async def get_run(self, run_id: str) -> RunRow | None:
        """One run."""
        row = await self._read_one(q.SELECT_RUN, {"id": run_id})
        return None if row is None else RunRow(*row)

    async def get_runs(self, run_ids: Sequence[str]) -> list[RunRow]:
        """Several runs (missing ids are left out)."""
        ids = list(run_ids)
        if not ids:
            return []
        return [RunRow(*row) for row in await self._read_all(q.SELECT_RUNS, {"ids": ids})]

    async def get_steps(self, run_id: str) -> list[StoredStep]:
        """The recorded steps of a run, in call order."""
        return [StoredStep(*row) for row in await self._read_all(q.STEPS_OF_RUN, {"id": run_id})]

    async def list_runs(self, flt: RunFilter) -> list[RunRow]:
        """Runs, newest first, filtered."""
        stmt = q.LIST_RUNS[
            (flt.status is not None, flt.function_id is not None, flt.before is not None)
        ]
        params = {
            "status": flt.status,
            "fid": flt.function_id,
            "before": flt.before,
            "limit": flt.limit,
        }
        return [RunRow(*row) for row in await self._read_all(stmt, params)]

    async def list_events(self, name: str | None, before: int | None, limit: int) -> list[EventRow]:
        """Events, newest first, with the runs each started."""
        stmt = q.LIST_EVENTS[(name is not None, before is not None)]
        rows = await self._read_all(stmt, {"name": name, "before": before, "limit": limit})
        return [
            EventRow(seq, ev_id, nm, body, at, list(run_ids or ()))
            for seq, ev_id, nm, body, at, run_ids in rows
        ]

    # ------------------------------------------------------------------ worker side

    async def claim(
        self, worker_id: str, function_ids: Sequence[str], limit: int, lease_seconds: float
    ) -> Claim:
        """Lease up to ``limit`` due runs of the given functions, with their recorded steps."""
        fids = list(function_ids)
        if not fids or limit <= 0:
            return Claim([], self.now(), None)
        params = {
            "now": self._now_param(),
            "fids": fids,
            "limit": limit,
            "worker": worker_id,
            "lease": float(lease_seconds),
        }

        async def op(conn: Conn) -> Claim:
            t0 = time.time()
            rows = await self._write_one(conn, q.CLAIM, params)
            self._sample(float(rows[0][0]), t0, time.time())
            return claim_from_rows(rows)

        return await self._run(op)

    async def next_due(self, function_ids: Sequence[str]) -> float | None:
        """When the earliest run of these functions comes due (a read; no lock)."""
        fids = list(function_ids)
        if not fids:
            return None
        row = await self._read_one(q.NEXT_DUE, {"fids": fids})
        return None if row is None or row[0] is None else float(row[0])

    async def commit(self, ops: Sequence[WriteOp]) -> list[bool]:
        """Apply fenced checkpoints and outcomes in one transaction (one round trip)."""
        ops = list(ops)
        if not ops:
            return []
        plan = CommitPlan.build(
            ops, self._now_param(), self._wake_channel, self._done_channel, self._origin
        )

        async def op(conn: Conn) -> tuple[list[bool], bool, list[str]]:
            statements = plan.statements()
            if len(statements) == 1:
                results = [await self._write_one(conn, *statements[0])]
            else:
                results = await self._transaction(conn, statements)
            return plan.results(results)

        oks, wake, finished = await self._run(op)
        self._announce(wake, finished)
        return oks

    async def heartbeat(
        self, worker_id: str, leases: Sequence[tuple[str, int]], lease_seconds: float
    ) -> list[str]:
        """Extend the leases; return the ids of runs whose lease was lost."""
        leases = list(leases)
        if not leases:
            return []
        params = {
            "now": self._now_param(),
            "ids": [run_id for run_id, _ in leases],
            "tokens": [token for _, token in leases],
            "lease": float(lease_seconds),
        }

        async def op(conn: Conn) -> list[str]:
            t0 = time.time()
            rows = await self._write_one(conn, q.HEARTBEAT, params)
            self._sample(float(rows[0][0]), t0, time.time())
            kept = set(rows[0][1] or ())
            return [run_id for run_id, _ in leases if run_id not in kept]

        return await self._run(op)

    async def expire_step(self, run_id: str, token: int, key: str) -> StoredStep | None:
        """Time out a waiting or invoking step past its deadline, unless already resolved;
        return the step as now recorded (``None`` if the lease was lost)."""
        fence = {"run": run_id, "token": token}
        params = {**fence, "now": self._now_param(), "key": key, "error": _INVOKE_TIMEOUT}

        async def op(conn: Conn) -> StoredStep | None:
            _, rows = await self._transaction(
                conn, [(q.EXPIRE_LOCK, fence), (q.EXPIRE_APPLY, params)]
            )
            return StoredStep(*rows[0]) if rows else None

        return await self._run(op)

    # ------------------------------------------------------------------ cron, maintenance

    async def cron_last_tick(self, function_id: str, trigger: str) -> float | None:
        """The last tick fired for a cron trigger."""
        row = await self._read_one(q.CRON_LAST, {"fid": function_id, "trigger": trigger})
        return None if row is None else float(row[0])

    async def fire_cron(
        self, function_id: str, trigger: str, tick: float, run: NewRun | None
    ) -> bool:
        """Advance the trigger's last tick to ``tick`` and create ``run`` (if given), once
        across all schedulers."""
        params: dict[str, Any] = {
            "now": self._now_param(),
            "fid": function_id,
            "trigger": trigger,
            "tick": float(tick),
            "id": None if run is None else run.id,
            "run_fid": None if run is None else run.function_id,
            "input": None if run is None else run.input,
            "event_id": None if run is None else run.event_id,
            "key": None if run is None else run.idempotency_key,
            "parent": None if run is None else run.parent_run_id,
            "parent_step": None if run is None else run.parent_step,
            "priority": None if run is None else run.priority,
            "wake_channel": self._wake_channel,
            "origin": self._origin,
        }

        async def op(conn: Conn) -> tuple[bool, bool]:
            advanced, created, _ = (await self._write_one(conn, q.FIRE_CRON, params))[0]
            return bool(advanced), bool(created)

        advanced, created = await self._run(op)
        self._announce(created)
        if not advanced:
            return False
        return True if run is None else created

    async def prune(self, finished_before: float, limit: int) -> int:
        """Delete terminal runs (and their steps) that ended before the given time, expired
        event ids, and events received before that time."""
        before = {"before": float(finished_before)}

        async def op(conn: Conn) -> int:
            counted, _, _ = await self._transaction(
                conn,
                [
                    (q.PRUNE_RUNS, {**before, "limit": limit}),
                    (q.PRUNE_EVENT_IDS, {"now": self._now_param()}),
                    (q.PRUNE_EVENTS, before),
                ],
            )
            return int(counted[0][0])

        return await self._run(op)


# ---------------------------------------------------------------------- helpers


async def _rollback_quietly(conn: Conn) -> None:
    if conn.closed:
        return
    if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        with contextlib.suppress(Exception):
            await conn.rollback()
