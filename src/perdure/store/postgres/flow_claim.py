"""Claim-time flow control on PostgreSQL: concurrency and throttle.

A claim splits the functions it asks for by their registered options (the store's registry
cache, refreshed by registry version in every gated claim and at least every poll interval
otherwise): functions without concurrency or throttle take the unchanged one-statement claim;
the others come here, in one transaction:

1. the time, and the registry if it changed (so a changed limit applies at once);
2. candidates in queue order, locked ``FOR UPDATE SKIP LOCKED``, read in rounds (keyset
   pagination), each round leaving out the runs of keys found saturated so far (no
   head-of-line blocking);
3. the keys' transaction-scoped advisory locks, *tried*: a key another claimer holds is being
   decided by it, and is left out of this claim (no waiting, no deadlock whatever the order);
   then, in later statements of the same round trip (READ COMMITTED: the snapshot is taken after
   the locks, so every claim that held them before is visible), the live-lease counts per key
   and the throttle states;
4. the decisions (:class:`perdure.engine.flow.admission.Admission`), then the leases, the
   delayed runs and the throttle states, and commit (which releases the locks).

Round trips: ``BEGIN``, (1) and the first page of (2) are one pipeline; (3) is one; (4) with
its ``COMMIT`` is one: three for a claim whose candidates fit in one page.

Slots are derived from live leases, never counted: a killed worker's slots come back when its
leases expire.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from psycopg.rows import TupleRow

from perdure import faults
from perdure.engine.flow.admission import (
    Admission,
    Verdict,
    candidate_of,
    delay_reason,
    env_cap,
    rate_of,
)
from perdure.engine.flow.options import FlowControl
from perdure.store.base import Claim, ClaimedRun, KeyLoad
from perdure.store.postgres import flow_queries as fq
from perdure.store.postgres import queries as q
from perdure.store.postgres.pool import Pool, rollback_quietly
from perdure.store.postgres.schema import Conn
from perdure.store.rows import FunctionCache, step_from_row

__all__ = ["FlowClaim", "split_gated"]

ROUND_SIZE = 256
MAX_ROUNDS = 16
#: When a claim left candidates unexamined (or keys to another claimer), it looks again soon.
RESCAN_SECONDS = 0.05


def split_gated(
    cache: FunctionCache, fids: Sequence[str]
) -> tuple[list[str], dict[str, FlowControl]]:
    """The asked function ids without claim-time gates, and the gated ones with their options."""
    gated = {r.id: r.flow for r in cache.records if r.flow.claim_gated}
    return [f for f in fids if f not in gated], {f: gated[f] for f in fids if f in gated}


class FlowClaim:
    """The gated claim (mixed into :class:`~perdure.store.postgres.store.PostgresStore`)."""

    _pool: Pool
    _registry: FunctionCache
    poll_interval: float
    _now_param: Callable[[], float | None]
    _update_registry: Callable[[list[TupleRow]], None]
    _registry_read_at: float = float("-inf")
    claim: Callable[[str, Sequence[str], int, float], Awaitable[Claim]]

    async def _claim_split(
        self, worker_id: str, plain: list[str], gated: list[str], want: int, lease: float
    ) -> Claim:
        """Functions without claim-time gates by the usual claim, then the gated ones."""
        first = Claim([], None)
        if plain:
            first = await self.claim(worker_id, plain, want, lease)
            if len(first.runs) >= want:
                return first
        second = await self._claim_gated(worker_id, gated, want - len(first.runs), lease)
        dues = [d for d in (first.next_due, second.next_due) if d is not None]
        return Claim(first.runs + second.runs, min(dues) if dues else None)

    async def _fresh_registry(self) -> None:
        """Re-read the registry if it was last read more than a poll interval ago."""
        if time.monotonic() - self._registry_read_at < self.poll_interval:
            return
        rows = await self._pool.read_all(q.REGISTRY_IF_CHANGED, {"known": self._registry.version})
        self._update_registry(rows)
        self._registry_read_at = time.monotonic()

    async def _claim_gated(
        self, worker_id: str, fids: list[str], want: int, lease_seconds: float
    ) -> Claim:
        """Lease up to ``want`` due runs of these (gated) functions."""
        manual = self._now_param()

        async def body(conn: Conn) -> Claim:
            # First round trip: the transaction, the time, the registry if it changed, and the
            # first page of candidates (of the functions gated by the cached registry; the
            # fresh one can only remove some: a run of a function no longer gated is left).
            first = _due_params(manual, fids, (float("-inf"), ""), [])
            async with conn.pipeline():
                await conn.execute(q.BEGIN)
                c_now = await conn.execute(fq.GATED_NOW, {"now": manual})
                c_reg = await conn.execute(q.REGISTRY_IF_CHANGED, {"known": self._registry.version})
                c_due = await conn.execute(fq.GATED_DUE, first)
            row = await c_now.fetchone()
            assert row is not None
            now = float(row[0])
            self._update_registry(await c_reg.fetchall())
            self._registry_read_at = time.monotonic()
            rows = await c_due.fetchall()
            _, gated = split_gated(self._registry, fids)
            if not gated:
                faults.hit("before_commit")
                await conn.execute(q.COMMIT)
                return Claim([], now)
            return await _decide_and_lease(
                conn, now, manual, worker_id, gated, want, lease_seconds, rows
            )

        async def op(conn: Conn) -> Claim:
            try:
                claim = await body(conn)
            except BaseException:
                await rollback_quietly(conn)
                raise
            faults.hit("after_commit")
            return claim

        return await self._pool.run(op)

    async def concurrency_load(self, run_id: str) -> KeyLoad | None:
        """A due run's concurrency keys and their live leases now (a read; see
        :data:`~perdure.store.postgres.flow_queries.KEY_LOAD`)."""
        row = await self._pool.read_one(fq.KEY_LOAD, {"id": run_id, "now": self._now_param()})
        return None if row is None else KeyLoad.from_row(row)


def _due_params(
    manual: float | None, fids: list[str], after: tuple[float, str], sat: list[str]
) -> dict[str, Any]:
    return {
        "now": manual,
        "fids": fids,
        "after_at": after[0],
        "after_id": after[1],
        "sat": sat,
        "limit": ROUND_SIZE,
    }


async def _decide_and_lease(
    conn: Conn,
    now: float,
    manual: float | None,
    worker_id: str,
    gated: dict[str, FlowControl],
    want: int,
    lease_seconds: float,
    rows: list[TupleRow],
) -> Claim:
    """Decide on the candidates (``rows``: the first page, read in the transaction's first round
    trip), reading more pages as needed, then lease, delay, write and commit."""
    fids = list(gated)
    adm = Admission(now, want, env_cap=env_cap(gated.values()))
    known: set[str] = set()
    busy: set[str] = set()
    admitted: dict[str, float | None] = {}  # id -> started_at before this claim
    paid: list[str] = []
    delayed: list[tuple[str, float, str]] = []
    exhausted = False
    after = (float("-inf"), "")
    for round_no in range(MAX_ROUNDS):
        if round_no:
            params = _due_params(manual, fids, after, sorted(adm.saturated | busy))
            rows = await (await conn.execute(fq.GATED_DUE, params)).fetchall()
        exhausted = len(rows) < ROUND_SIZE
        if not rows:
            break
        after = (float(rows[-1][4]), str(rows[-1][0]))
        rows = [r for r in rows if r[1] in gated]
        await _load_state(conn, now, adm, known, busy, rows, gated)
        for run_id, fid, _status, started_at, _at, ck1, ck2, tkey, replayed in rows:
            spec = gated[fid]
            unpaid = tkey if started_at is None and spec.throttle is not None else None
            if busy.intersection(k for k in (ck1, ck2, unpaid) if k is not None):
                continue
            offer = adm.offer(candidate_of(run_id, spec, (ck1, ck2), unpaid))
            if offer.verdict is Verdict.ADMIT:
                # A replay's first claim brings the steps it was created with.
                admitted[run_id] = 0.0 if started_at is None and replayed else started_at
                if unpaid is not None:
                    paid.append(run_id)
            elif offer.verdict is Verdict.DELAYED:
                assert offer.until is not None and unpaid is not None
                rate = rate_of(spec)
                assert rate is not None
                delayed.append((run_id, offer.until, delay_reason(unpaid, offer.until, rate)))
            if adm.full:
                break
        if adm.full or exhausted:
            break
    moved = sorted(adm.moved)
    lease = {"now": now, "worker": worker_id, "lease": float(lease_seconds)}
    lease.update(ids=list(admitted), paid=paid)
    replay = [run_id for run_id, started in admitted.items() if started is not None]
    faults.hit("before_commit")
    async with conn.pipeline():  # the writes and the commit: one round trip
        if moved:
            tats = [adm.tats[k] for k in moved]
            await conn.execute(fq.UPSERT_BUCKETS, {"keys": moved, "tats": tats})
        if delayed:
            ids, ats, reasons = (list(col) for col in zip(*delayed, strict=True))
            await conn.execute(fq.DELAY_RUNS, {"ids": ids, "ats": ats, "reasons": reasons})
        c_lease = await conn.execute(fq.CLAIM_IDS, lease) if admitted else None
        c_steps = await conn.execute(fq.STEPS_OF_RUNS, {"ids": replay}) if replay else None
        c_next = None
        if exhausted and not adm.full and not busy:
            c_next = await conn.execute(fq.NEXT_DUE_AFTER, {"now": now, "fids": fids})
        await conn.execute(q.COMMIT)
    claimed: list[ClaimedRun] = []
    if c_lease is not None:
        by_id: dict[str, ClaimedRun] = {}
        for (
            run_id,
            fid,
            token,
            run_input,
            attempt,
            crashes,
            first,
            taken,
        ) in await c_lease.fetchall():
            by_id[run_id] = ClaimedRun(
                run_id, fid, token, run_input, attempt, {}, crashes, bool(first), bool(taken)
            )
        if c_steps is not None:
            for row in await c_steps.fetchall():
                step = step_from_row(row[1:])
                by_id[row[0]].steps[step.key] = step
        claimed = [by_id[run_id] for run_id in admitted if run_id in by_id]
    if adm.full:
        return Claim(claimed, now)
    if c_next is None:
        return Claim(claimed, now + RESCAN_SECONDS)
    nxt = await c_next.fetchone()
    return Claim(claimed, None if nxt is None or nxt[0] is None else float(nxt[0]))


async def _load_state(
    conn: Conn,
    now: float,
    adm: Admission,
    known: set[str],
    busy: set[str],
    rows: list[TupleRow],
    gated: dict[str, FlowControl],
) -> None:
    """Lock the keys not seen yet in this claim, then read their counts and throttle states."""
    ckeys: set[str] = set()
    tkeys: set[str] = set()
    for row in rows:
        for key in (row[5], row[6]):
            if key is not None and key not in known:
                ckeys.add(key)
        if row[7] is not None and row[7] not in known and gated[row[1]].throttle is not None:
            tkeys.add(row[7])
    keys = sorted(ckeys | tkeys)
    if not keys:
        return
    params: dict[str, Any] = {"keys": keys, "now": now}
    async with conn.pipeline():
        c_lock = await conn.execute(fq.LOCK_KEYS, params)
        c_run = await conn.execute(fq.RUNNING_BY_KEY, {**params, "keys": sorted(ckeys)})
        c_bkt = await conn.execute(fq.BUCKETS, {**params, "keys": sorted(tkeys)})
    locked = {r[0] for r in await c_lock.fetchall()}
    busy |= set(keys) - locked
    for key, n in await c_run.fetchall():
        adm.running[key] = int(n)
    for key, tat in await c_bkt.fetchall():
        adm.tats[key] = float(tat)
    known |= set(keys)
