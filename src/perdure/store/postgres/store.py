"""The PostgreSQL store: many servers and workers on many machines share one database.

Design:

- **psycopg 3, async, raw SQL** (:mod:`.queries`). One connection pool (:mod:`.pool`);
  statements are constant text, so psycopg prepares them on each connection; batches travel as
  JSON arrays expanded in SQL. Multi-statement transactions are sent in *pipeline mode*:
  ``BEGIN``, the statements and ``COMMIT`` travel together, one network round trip.
- **URL:** ``postgresql://user@host:port/db?schema=NAME`` (default schema ``public``; see
  :mod:`.schema`). Every connection's ``search_path`` is the schema, created if missing.
- **Time** is stored as ``double precision`` seconds since the epoch and read from the
  database clock (``now()``, the transaction's start) through the ``perdure_now(manual)`` SQL
  function. A test that hands the store a manual clock passes its time as ``manual`` instead.
  :meth:`PostgresStore.now` answers without a round trip (:mod:`.clock`).
- **Claims:** one statement (``FOR UPDATE SKIP LOCKED``) leases up to *n* runs, and returns
  their recorded steps (for runs that had started), the database time and the next due time.
- **Checkpoints:** ``commit(ops)`` is one transaction and one round trip (:mod:`.plan`): a
  first statement locks the batch's runs in id order (the fence) and upserts every step, wait
  and invoked child; one statement per outcome kind follows.
- **Wake-ups:** statements that make work due call ``pg_notify`` (folded to one per
  transaction); a listener connection (:mod:`.listen`) calls the ``on_wake`` and
  ``on_finished`` callbacks for other processes' commits. Channel names include the schema.
- **Errors:** a connection failure, a pool timeout or a closed store raise
  :class:`~perdure.errors.StoreUnavailableError`; deadlocks and serialization failures are
  retried; the pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from perdure import faults
from perdure.clock import Clock, SystemClock
from perdure.functions import FunctionRecord
from perdure.store import inputs
from perdure.store.announce import Announcer
from perdure.store.base import (
    Claim,
    CreatedRun,
    EventIn,
    NewRun,
    RunRow,
    SentEvent,
    StoredStep,
    WriteOp,
)
from perdure.store.migrations import version_of
from perdure.store.postgres import (
    access,
    app_syncs,
    derived,
    flow,
    flow_cancel,
    flow_claim,
    operations,
    reads,
    traces,
)
from perdure.store.postgres import queries as q
from perdure.store.postgres import schedules as sch
from perdure.store.postgres.clock import DbClock
from perdure.store.postgres.listen import Listener
from perdure.store.postgres.plan import (
    CommitPlan,
    EventPlan,
    OnePlan,
    claim_from_rows,
    one_run_params,
    runs_json,
)
from perdure.store.postgres.pool import (
    Conn,
    Dedicated,
    Pool,
    rollback_quietly,
    transaction,
    unavailable,
    write_one,
)
from perdure.store.postgres.schema import MIGRATIONS, apply_schema, channel_name, parse_url
from perdure.store.rows import (
    FunctionCache,
    function_from_row,
    function_values,
    run_from_row,
    step_from_row,
)
from perdure.store.rules import CANCELLED_ERROR, EVENT_DEDUPE_SECONDS, INVOKE_TIMEOUT_ERROR


class PostgresStore(
    access.Access,
    app_syncs.AppSyncs,
    derived.DerivedRuns,
    flow.FlowCreation,
    flow_claim.FlowClaim,
    flow_cancel.FlowCancelling,
    operations.Operations,
    reads.Reads,
    sch.ScheduleMethods,
    traces.Traces,
):
    """A :class:`~perdure.store.base.Store` on PostgreSQL."""

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self.url = url
        self.poll_interval = 2.0  # a safety net: LISTEN/NOTIFY wakes workers at once
        self._cfg = parse_url(url)
        self.schema = self._cfg.schema
        manual = clock is not None and not isinstance(clock, SystemClock)
        self._manual: Clock | None = clock if manual else None
        self._db_clock = DbClock()
        self.clock: Clock = clock if clock is not None and manual else self._db_clock
        self._origin = uuid.uuid4().hex[:16]
        self._wake_channel = channel_name("wake", self.schema)
        self._channel = (self._wake_channel, self._origin)
        self._done_channel = channel_name("done", self.schema)
        self._pool = Pool(self._cfg, f"perdure-{self.schema}")
        self._commits = Dedicated(self._cfg, self._pool)
        self._creates = Dedicated(self._cfg, self._pool)
        self._listener: Listener | None = None
        self._announcer = Announcer()
        self._registry = FunctionCache()
        self._closed = False

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """The manual clock's time, else the database's (estimated without a round trip)."""
        if self._manual is not None:
            return self._manual.now()
        return self._db_clock.now()

    def _now_param(self) -> float | None:
        return None if self._manual is None else self._manual.now()

    def _sample(self, db_now: float, t0: float, t1: float) -> None:
        if self._manual is None:
            self._db_clock.sample(db_now, t0, t1)

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
            self._pool = Pool(cfg, f"perdure-{self.schema}")
            self._commits = Dedicated(cfg, self._pool)
            self._creates = Dedicated(cfg, self._pool)
            await self._pool.open()
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
                raise unavailable(exc) from exc
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
        await self._commits.close()
        await self._creates.close()
        await self._pool.close()

    async def schema_version(self) -> tuple[int, int]:
        """The schema version of the database and the latest this perdure knows."""
        return version_of(await self._pool.read_one(q.SCHEMA_VERSION, {})), MIGRATIONS.latest

    def on_wake(self, callback: Callable[[], None]) -> None:
        """Register a callback for new claimable work (this process's and others')."""
        self._announcer.on_wake(callback)

    def on_finished(self, callback: Callable[[Sequence[str]], None]) -> None:
        """Register a callback for runs that reached a terminal state."""
        self._announcer.on_finished(callback)

    async def ping(self) -> None:
        """A trivial round trip (it also refreshes the clock offset)."""

        async def op(conn: Conn) -> None:
            t0 = time.time()
            row = await (await conn.execute(q.PING, {"now": self._now_param()})).fetchone()
            assert row is not None
            self._sample(float(row[0]), t0, time.time())

        await self._pool.run(op, read=True)

    # ------------------------------------------------------------------ announcements

    def _on_notify(self, channel: str, payload: str) -> None:
        if channel == self._wake_channel:
            if payload != self._origin:
                self._announcer.announce(True)
        elif channel == self._done_channel:
            origin, _, ids = payload.partition(":")
            if origin != self._origin and ids:
                self._announcer.announce(False, ids.split(","))

    def _on_reconnect(self) -> None:
        # Notifications may have been missed while the listener was away.
        self._announcer.announce(True)

    def _announce(self, wake: bool, finished: Sequence[str] = ()) -> None:
        """Announce this process's commit on the next turn of the event loop."""
        if wake or finished:
            asyncio.get_running_loop().call_soon(self._announcer.announce, wake, list(finished))

    # ------------------------------------------------------------------ functions

    async def register_functions(self, records: Sequence[FunctionRecord]) -> None:
        """Create or replace function records and bump the registry version."""
        for r in records:
            inputs.require_storable("a function id", r.id)
            inputs.require_storable("an app name", r.app)
        latest = {r.id: r for r in records}
        rows = [function_values(latest[fid]) for fid in sorted(latest)]
        self._note_functions(records)
        params = {
            "now": self._now_param(),
            "ids": [r[0] for r in rows],
            "apps": [r[1] for r in rows],
            "triggers": [r[2] for r in rows],
            "configs": [r[3] for r in rows],
        }

        async def op(conn: Conn) -> None:
            await write_one(conn, q.REGISTER_FUNCTIONS, params)

        await self._pool.run(op)

    async def list_functions(self) -> list[FunctionRecord]:
        """Every registered function."""
        return [function_from_row(row) for row in await self._pool.read_all(q.SELECT_FUNCTIONS, {})]

    async def remove_functions(self, ids: Sequence[str]) -> None:
        """Delete function records and bump the registry version."""
        params = {"ids": sorted(set(ids))}
        if not params["ids"]:
            return

        async def op(conn: Conn) -> None:
            await write_one(conn, q.REMOVE_FUNCTIONS, params)

        await self._pool.run(op)

    def _update_registry(self, rows: list[TupleRow]) -> None:
        if not rows or rows[0][0] == self._registry.version:
            return
        self._registry.replace(rows[0][0], [row[1:] for row in rows if row[1] is not None])

    # ------------------------------------------------------------------ client side

    def _runs_params(self, runs: Sequence[NewRun]) -> dict[str, Any]:
        return {
            "now": self._now_param(),
            "runs": runs_json(runs),
            "wake_channel": self._wake_channel,
            "origin": self._origin,
        }

    async def create_runs(self, runs: Sequence[NewRun]) -> list[CreatedRun]:
        """Insert runs, due now; idempotency keys return existing runs."""
        runs = list(runs)
        if not runs:
            return []
        inputs.require_storable_runs(runs)
        if any(r.flow is not None for r in runs):
            return await self._create_mixed(runs)
        if len(runs) == 1 and runs[0].idempotency_key is None:
            return [await self._create_one(runs[0])]
        params = self._runs_params(runs)

        async def op(conn: Conn) -> tuple[list[CreatedRun], bool]:
            rows = await write_one(conn, q.INSERT_RUNS, params)
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

        out, woke = await self._pool.run(op)
        self._announce(woke)
        return out

    async def _create_one(self, run: NewRun) -> CreatedRun:
        """One run without idempotency key: one single-row statement."""
        params = one_run_params(run, self._now_param(), self._wake_channel, self._origin)

        row = (await self._creates.write_one(q.CREATE_ONE, params))[0]
        self._announce(bool(row[1]))
        return CreatedRun(run.id, True, int(row[0]) or None)

    async def send_events(self, events: Sequence[EventIn]) -> list[SentEvent]:
        """Store events, start the runs they trigger, resume the runs waiting for them."""
        events = list(events)
        if not events:
            return []
        for ev in events:
            inputs.require_storable("an event id", ev.id)
            inputs.require_storable("an event name", ev.name)
        ids = sorted({ev.id for ev in events})
        names = sorted({ev.name for ev in events})
        now = self._now_param()

        async def op(conn: Conn) -> tuple[list[SentEvent], bool, list[str]]:
            try:
                async with conn.pipeline():
                    await conn.execute(q.BEGIN)
                    c_new = await conn.execute(
                        q.EVENT_DEDUPE, {"now": now, "ids": ids, "window": EVENT_DEDUPE_SECONDS}
                    )
                    c_reg = await conn.execute(
                        q.REGISTRY_IF_CHANGED, {"known": self._registry.version}
                    )
                    c_waits = await conn.execute(q.WAITS_FOR_EVENTS, {"names": names, "now": now})
                new = {row[0] for row in await c_new.fetchall()}
                self._update_registry(await c_reg.fetchall())
                waits: dict[str, list[TupleRow]] = {}
                for row in await c_waits.fetchall():
                    waits.setdefault(row[0], []).append(row)
                plan = EventPlan.build(events, new, self._registry.records, waits)
                faults.hit("event_fanout")
                cancelled = await self._cancel_in_send(conn, plan)
                if plan.flow_runs:
                    made = await flow.insert_flow_runs(conn, plan.flow_runs, now, *self._channel)
                    flow.settle_events(plan.out, plan.flow_runs, made)
                cursors = []
                async with conn.pipeline():
                    for stmt, params in plan.statements(now, self._wake_channel, self._origin):
                        cursors.append(await conn.execute(stmt, params))
                    faults.hit("before_commit")
                    await conn.execute(q.COMMIT)
            except BaseException:
                await rollback_quietly(conn)
                raise
            faults.hit("after_commit")
            wake = bool(plan.runs or plan.flow_runs)
            if plan.resolved:
                counts = await cursors[-1].fetchone()
                wake = wake or bool(counts and counts[1])
            return plan.out, wake, cancelled

        out, wake, cancelled = await self._pool.run(op)
        self._announce(wake or bool(cancelled), cancelled)
        return out

    async def cancel_run(self, run_id: str, reason: str | None = None) -> RunRow | None:
        """Cancel a run that has not ended; fence its worker; fail its parent's invoke step."""
        if not inputs.storable(run_id):
            return None
        params = {
            "now": self._now_param(),
            "id": run_id,
            "error": CANCELLED_ERROR,
            "reason": reason,
            "wake_channel": self._wake_channel,
            "done_channel": self._done_channel,
            "origin": self._origin,
        }

        async def op(conn: Conn) -> tuple[RunRow | None, bool, bool]:
            counts, found = await transaction(
                conn, [(q.CANCEL_RUN, params), (q.SELECT_RUN, {"id": run_id})]
            )
            cancelled, woke = bool(counts[0][0]), bool(counts[0][1])
            return (run_from_row(found[0]) if found else None), cancelled, woke

        row, cancelled, woke = await self._pool.run(op)
        self._announce(woke, [run_id] if cancelled else [])
        return row

    # ------------------------------------------------------------------ worker side

    async def claim(
        self, worker_id: str, function_ids: Sequence[str], limit: int, lease_seconds: float
    ) -> Claim:
        """Lease up to ``limit`` due runs of the given functions, with their recorded steps."""
        fids = list(function_ids)
        if not fids or limit <= 0:
            return Claim([], None)
        await self._fresh_registry()
        plain, gated = flow_claim.split_gated(self._registry, fids)
        if gated:
            claim = await self._claim_split(worker_id, plain, list(gated), limit, lease_seconds)
            await self._set_finish_by(claim.runs)
            return claim
        params = {
            "now": self._now_param(),
            "fids": fids,
            "limit": limit,
            "worker": worker_id,
            "lease": float(lease_seconds),
        }

        async def op(conn: Conn) -> Claim:
            t0 = time.time()
            rows = await write_one(conn, q.CLAIM, params)
            t1 = time.time()
            db_now, claim = claim_from_rows(rows)
            self._sample(db_now, t0, t1)
            return claim

        claim = await self._pool.run(op)
        await self._set_finish_by(claim.runs)
        return claim

    async def next_due(self, function_ids: Sequence[str]) -> float | None:
        """When the earliest run of these functions comes due (a read; no lock)."""
        fids = list(function_ids)
        if not fids:
            return None
        row = await self._pool.read_one(q.NEXT_DUE, {"fids": fids})
        return None if row is None or row[0] is None else float(row[0])

    async def commit(self, ops: Sequence[WriteOp]) -> list[bool]:
        """Apply fenced checkpoints and outcomes in one transaction (one round trip)."""
        ops = list(ops)
        if not ops:
            return []
        now = self._now_param()
        one = OnePlan.build(ops, now, self._wake_channel, self._done_channel, self._origin)
        if one is not None:
            single = one

            rows = await self._commits.write_one(single.sql, single.params)
            oks, wake, finished = single.results(rows)
            self._announce(wake, finished)
            return oks
        plan = CommitPlan.build(ops, now, self._wake_channel, self._done_channel, self._origin)

        async def op(conn: Conn) -> tuple[list[bool], bool, list[str]]:
            statements = plan.statements()
            if len(statements) == 1:
                results = [await write_one(conn, *statements[0])]
            else:
                results = await transaction(conn, statements)
            return plan.results(results)

        oks, wake, finished = await self._commits.run(op)
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
            rows = await write_one(conn, q.HEARTBEAT, params)
            self._sample(float(rows[0][0]), t0, time.time())
            kept = set(rows[0][1] or ())
            return [run_id for run_id, _ in leases if run_id not in kept]

        return await self._pool.run(op)

    async def expire_step(self, run_id: str, token: int, key: str) -> StoredStep | None:
        """Time out a waiting or invoking step past its deadline, unless already resolved;
        return the step as now recorded (``None`` if the lease was lost)."""
        fence = {"run": run_id, "token": token}
        params = {**fence, "now": self._now_param(), "key": key, "error": INVOKE_TIMEOUT_ERROR}

        async def op(conn: Conn) -> StoredStep | None:
            _, rows = await transaction(conn, [(q.EXPIRE_LOCK, fence), (q.EXPIRE_APPLY, params)])
            return step_from_row(rows[0]) if rows else None

        return await self._pool.run(op)

    # ------------------------------------------------------------------ cron, maintenance

    async def cron_last_tick(self, function_id: str, trigger: str) -> float | None:
        """The last tick fired for a cron trigger."""
        if not inputs.all_storable((function_id, trigger)):
            return None
        row = await self._pool.read_one(q.CRON_LAST, {"fid": function_id, "trigger": trigger})
        return None if row is None else float(row[0])

    async def fire_cron(
        self,
        function_id: str,
        trigger: str,
        tick: float,
        run: NewRun | None,
        overlap: str = "allow",
    ) -> bool:
        """Advance the trigger's last tick to ``tick`` and create ``run`` (if given), once
        across all schedulers (``overlap="skip"``: no run while the trigger's previous run is
        active)."""
        inputs.require_storable("a function id", function_id)
        inputs.require_storable("a cron trigger", trigger)
        if run is not None:
            inputs.require_storable_runs([run])
            if run.flow is not None:
                return await self._fire_cron_flow(function_id, trigger, tick, run, overlap)
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
            "skip": overlap == "skip" and run is not None,
            "wake_channel": self._wake_channel,
            "origin": self._origin,
        }
        advanced, created, busy = await sch.fire_cron(self._pool, params, params["skip"])
        self._announce(created)
        if not advanced:
            return False
        return True if run is None or busy else created
