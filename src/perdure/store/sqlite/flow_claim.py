"""Claim-time flow control on SQLite: concurrency and throttle.

A claim splits the functions it asks for by their *current* registered options
(:meth:`SqliteStore._functions`, refreshed by registry version): functions without concurrency
or throttle take the unchanged claim; the others come here, inside the same writer transaction
(so the decisions are serialized with every other write, across processes by SQLite's lock).

Candidates are read in queue order in rounds (keyset pagination), each round leaving out the
runs of keys found saturated so far, so a saturated key never holds up other keys' runs behind
it. Live-lease counts per key are read from the runs table (slots are derived from leases,
never counted: a killed worker's slots come back when its leases expire). The decisions are
:class:`perdure.engine.flow.admission.Admission`'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final, LiteralString

from perdure.engine.flow.admission import (
    Admission,
    Verdict,
    candidate_of,
    delay_reason,
    env_cap,
    rate_of,
)
from perdure.engine.flow.options import FlowControl
from perdure.functions import FunctionRecord
from perdure.store.base import ClaimedRun, KeyLoad
from perdure.store.rows import step_from_row
from perdure.store.sqlite import queries as q
from perdure.store.sqlite.writer import Tx

__all__ = ["KEY_LOAD", "ROUND_SIZE", "claim_gated", "concurrency_load", "split_gated"]

#: Candidates read per round; the claim reads at most ``MAX_ROUNDS`` rounds.
ROUND_SIZE = 256
MAX_ROUNDS = 16
#: When a claim stopped with candidates left unexamined, it looks again this soon.
RESCAN_SECONDS = 0.05


_LIVE: Final = "SELECT count(*) FROM runs x WHERE x.status = 'running' AND x.available_at > ?"
#: Why a due run waits (a read): its concurrency keys and, for each, the runs holding a live
#: lease on it now (under either column, as ``RUNNING_BY_KEY`` counts). Parameters: now x4,
#: the run id, now. No row when the run is not due or holds no concurrency key.
KEY_LOAD: Final[LiteralString] = (
    "SELECT ?, r.concurrency_key, r.concurrency_key2,"
    " (" + _LIVE + " AND x.concurrency_key = r.concurrency_key)"
    " + (" + _LIVE + " AND x.concurrency_key2 = r.concurrency_key),"
    " (" + _LIVE + " AND x.concurrency_key = r.concurrency_key2)"
    " + (" + _LIVE + " AND x.concurrency_key2 = r.concurrency_key2)"
    " FROM runs r WHERE r.id = ? AND r.available_at <= ?"
    " AND (r.concurrency_key IS NOT NULL OR r.concurrency_key2 IS NOT NULL)"
)


def concurrency_load(conn: sqlite3.Connection, run_id: str, now: float) -> KeyLoad | None:
    """A due run's concurrency keys and their live leases at ``now`` (a read)."""
    row = conn.execute(KEY_LOAD, (now, now, now, now, now, run_id, now)).fetchone()
    return None if row is None else KeyLoad.from_row(row)


def split_gated(
    records: Sequence[FunctionRecord], fids: Sequence[str]
) -> tuple[list[str], dict[str, FlowControl]]:
    """The asked function ids without claim-time gates, and the gated ones with their
    options."""
    gated = {r.id: r.flow for r in records if r.flow.claim_gated}
    plain = [f for f in fids if f not in gated]
    return plain, {f: gated[f] for f in fids if f in gated}


def claim_gated(
    tx: Tx,
    worker_id: str,
    gated: dict[str, FlowControl],
    want: int,
    lease_seconds: float,
) -> tuple[list[ClaimedRun], float | None]:
    """Lease up to ``want`` due runs of the gated functions; return them (with their steps)
    and when this claim should look again."""
    conn, now = tx.conn, tx.now
    fids = list(gated)
    adm = Admission(now, want, env_cap=env_cap(gated.values()))
    known: set[str] = set()
    cursor: tuple[float, int] = (float("-inf"), -1)
    admitted: list[tuple[str, str, float | None]] = []  # id, status, started_at
    paid: list[str] = []
    delayed: list[tuple[float, str, str]] = []
    exhausted = False
    for _ in range(MAX_ROUNDS):
        sat = sorted(adm.saturated)
        sql = q.GATED_DUE.format(fids=q.marks(len(fids)), sat=q.marks(len(sat)))
        rows = conn.execute(sql, (now, *fids, *cursor, *sat, *sat, ROUND_SIZE)).fetchall()
        if len(rows) < ROUND_SIZE:
            exhausted = True
        if not rows:
            break
        cursor = (rows[-1][5], rows[-1][0])
        _load_state(tx, adm, known, rows, gated)
        for _rowid, run_id, fid, status, started_at, _at, ck1, ck2, tkey in rows:
            spec = gated[fid]
            unpaid = tkey if started_at is None else None
            offer = adm.offer(candidate_of(run_id, spec, (ck1, ck2), unpaid))
            if offer.verdict is Verdict.ADMIT:
                admitted.append((run_id, status, started_at))
                if unpaid is not None and spec.throttle is not None:
                    paid.append(run_id)
            elif offer.verdict is Verdict.DELAYED:
                assert offer.until is not None and unpaid is not None
                rate = rate_of(spec)
                assert rate is not None
                delayed.append((offer.until, delay_reason(unpaid, offer.until, rate), run_id))
            if adm.full:
                break
        if adm.full or exhausted:
            break
    for key in sorted(adm.moved):
        tat = adm.tats[key]
        assert tat is not None
        conn.execute(q.UPSERT_BUCKET, (key, tat, tat))
    if delayed:
        conn.executemany(q.DELAY_RUN, delayed)
    if paid:
        conn.executemany(q.PAID_RUN, [(run_id,) for run_id in paid])
    claimed = lease_runs(tx, worker_id, admitted, lease_seconds)
    if adm.full or not exhausted:
        return claimed, now if adm.full else now + RESCAN_SECONDS
    sql = q.NEXT_DUE_AFTER.format(fids=q.marks(len(fids)))
    return claimed, conn.execute(sql, (now, *fids)).fetchone()[0]


def _load_state(
    tx: Tx,
    adm: Admission,
    known: set[str],
    rows: list[tuple[object, ...]],
    gated: dict[str, FlowControl],
) -> None:
    """Read the live-lease counts and throttle states of keys not seen yet in this claim."""
    ckeys: set[str] = set()
    tkeys: set[str] = set()
    for row in rows:
        for key in row[6:8]:
            if isinstance(key, str) and key not in known:
                ckeys.add(key)
        tkey = row[8]
        if isinstance(tkey, str) and tkey not in known and gated[str(row[2])].throttle:
            tkeys.add(tkey)
    conn, now = tx.conn, tx.now
    if ckeys:
        keys = sorted(ckeys)
        sql = q.RUNNING_BY_KEY.format(keys=q.marks(len(keys)))
        for key, n in conn.execute(sql, (*keys, now, *keys, now)):
            adm.running[key] = n
    if tkeys:
        keys = sorted(tkeys)
        sql = q.BUCKETS.format(keys=q.marks(len(keys)))
        for key, tat in conn.execute(sql, (*keys, now)):
            adm.tats[key] = tat
    known |= ckeys | tkeys


def lease_runs(
    tx: Tx,
    worker_id: str,
    admitted: list[tuple[str, str, float | None]],
    lease_seconds: float,
) -> list[ClaimedRun]:
    """Lease the admitted runs (``(id, status, started_at)`` rows, in order) to the worker,
    with the recorded steps of those replayed; used by the plain claim too."""
    conn, now = tx.conn, tx.now
    claimed: list[ClaimedRun] = []
    replay: list[str] = []
    for run_id, status, started_at in admitted:
        crashed = 1 if status == "running" else 0
        fid, token, run_input, attempt, crashes, replayed = conn.execute(
            q.CLAIM_RUN, (worker_id, now + lease_seconds, now, crashed, run_id)
        ).fetchone()
        first, taken_over = started_at is None, crashed == 1
        run = ClaimedRun(run_id, fid, token, run_input, attempt, {}, crashes, first, taken_over)
        claimed.append(run)
        if started_at is not None or replayed:  # a replay's first claim: its copied steps
            replay.append(run_id)
    if replay:
        by_id = {c.id: c for c in claimed}
        sql = q.STEPS_OF_RUNS.format(ids=q.marks(len(replay)))
        for row in conn.execute(sql, replay):
            step = step_from_row(row[1:])
            by_id[row[0]].steps[step.key] = step
    return claimed
