#!/usr/bin/env python3
"""Micro-benchmark: what perdure's per-run statements cost PostgreSQL, one at a time.

    python bench/pg_statements.py [--pg-url URL] [--runs 500] [--sync on|off]

In a scratch schema with perdure's own schema, executes the statements of one sequential run
exactly as perdure builds them (the SQL of ``perdure.store.postgres.queries``, the parameters
of ``PostgresStore._runs_params``, ``CommitPlan``, ``OnePlan`` and ``one_run_params``), over
one synchronous psycopg connection
(prepared statements, autocommit: each statement is its own transaction, as in perdure):

    create (INSERT_RUNS, leased to a worker)  ->  3 x step checkpoint (COMMIT_STEPS)
    ->  end (COMMIT_END)

It prints the median time of each, the floor (a single-row INSERT) in the same session, the
server-side execution time and WAL of each (``EXPLAIN (ANALYZE, BUFFERS, WAL)`` on a few
extra runs, rolled back), and variants that show what could be saved:

- ``end, HOT-friendly``: the same final UPDATE with the indexes that the update touches
  (``runs_by_status``, ``runs_ended``) dropped: a HOT update needs every changed column to be
  unindexed;
- ``step, plain``: the step checkpoint as a bare fenced ``INSERT ... SELECT`` with a row lock
  (no json_to_recordset, no CTE chain);
- ``step+end in one``: the last checkpoint and the end in one transaction (a pipeline: BEGIN,
  COMMIT_STEPS, COMMIT_END, COMMIT), instead of two commits.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from typing import Any

import psycopg

from perdure import ids
from perdure.store.base import NewRun, Outcome, StepWrite
from perdure.store.postgres import PostgresStore
from perdure.store.postgres import queries as q
from perdure.store.postgres.plan import CommitPlan, OnePlan, one_run_params

DEFAULT_PG = os.environ.get(
    "PERDURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
WAKE, DONE, ORIGIN = "perdure_wake_x", "perdure_done_x", "bench"


# The single-row statements of the sequential hot path (perdure's own, since the batch-of-one
# fast path: ``OnePlan`` and ``CREATE_ONE``), with the parameters the store builds.


def one_plan(ops: list[Any]) -> OnePlan:
    p = OnePlan.build(ops, None, WAKE, DONE, ORIGIN)
    assert p is not None
    return p


def one_run_scalar(conn: psycopg.Connection[Any], lat: dict[str, list[float]]) -> None:
    rid = ids.new_id()
    run = NewRun(rid, "three", '{"name":"x","data":{}}', lease_owner="w1", lease_seconds=30.0)
    timed(
        conn,
        q.CREATE_ONE,
        one_run_params(run, None, WAKE, ORIGIN),
        lat["create, single-row (CREATE_ONE)"],
    )
    for seq, key in enumerate(("a", "b")):
        p = one_plan([step(rid, key, seq)])
        timed(conn, p.sql, p.params, lat["step checkpoint, single-row (STEP_ONE)"])
    p = one_plan([step(rid, "c", 2), Outcome(rid, 1, "complete", output="1")])
    timed(conn, p.sql, p.params, lat["last step + end, one statement (STEP_END_ONE)"])
    rid2 = ids.new_id()
    run2 = NewRun(rid2, "three", "{}", lease_owner="w1", lease_seconds=30.0)
    timed(conn, q.CREATE_ONE, one_run_params(run2, None, WAKE, ORIGIN), [])
    p = one_plan([Outcome(rid2, 1, "complete", output="1")])
    timed(conn, p.sql, p.params, lat["end, single-row (END_ONE)"])


def run_params(store: PostgresStore, run_id: str) -> dict[str, Any]:
    run = NewRun(run_id, "three", '{"name":"x","data":{}}', lease_owner="w1", lease_seconds=30.0)
    return store._runs_params([run])


def plan(ops: list[Any]) -> CommitPlan:
    return CommitPlan.build(ops, None, WAKE, DONE, ORIGIN)


def step(run_id: str, key: str, seq: int) -> StepWrite:
    return StepWrite(run_id, 1, key, seq, "run", "completed", output="null", started_at=0.0)


def timed(conn: psycopg.Connection[Any], sql: Any, params: Any, lat: list[float]) -> Any:
    t = time.perf_counter()
    cur = conn.execute(sql, params, prepare=True)
    rows = cur.fetchall() if cur.description else None
    lat.append(time.perf_counter() - t)
    return rows


def med(lat: list[float]) -> str:
    return f"{statistics.median(lat) * 1e3:7.3f} ms (mean {statistics.fmean(lat) * 1e3:6.3f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--sync", default="on", choices=("on", "off"))
    args = ap.parse_args()
    schema = "public"
    dbname = f"pgstmt_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{dbname}"')
    db_url = args.pg_url.rsplit("/", 1)[0] + "/" + dbname
    store = PostgresStore(db_url)
    import asyncio

    async def create_schema() -> None:
        await store.open()
        await store.close()

    asyncio.run(create_schema())
    conn = psycopg.connect(db_url, autocommit=True, options=f"-c search_path={schema}")
    try:
        conn.execute(f"SET synchronous_commit = {args.sync}")
        conn.execute("CREATE TABLE floor (id text PRIMARY KEY, body text NOT NULL)")
        report(conn, store, args)
    finally:
        conn.close()
        with psycopg.connect(args.pg_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    return 0


def one_run(
    conn: psycopg.Connection[Any], store: PostgresStore, lat: dict[str, list[float]], merge: bool
) -> None:
    rid = ids.new_id()
    timed(conn, q.INSERT_RUNS, run_params(store, rid), lat["create (INSERT_RUNS)"])
    for seq, key in enumerate(("a", "b", "c")):
        if merge and key == "c":
            break
        p = plan([step(rid, key, seq)])
        ((sql, params),) = p.statements()
        timed(conn, sql, params, lat["step checkpoint (COMMIT_STEPS)"])
    end = Outcome(rid, 1, "complete", output="1")
    if merge:
        p = plan([step(rid, "c", 2), end])
        t = time.perf_counter()
        with conn.pipeline():
            conn.execute("BEGIN")
            for sql, params in p.statements():
                conn.execute(sql, params, prepare=True)
            conn.execute("COMMIT")
        lat["last step + end, one transaction (pipeline)"].append(time.perf_counter() - t)
        return
    ((sql, params),) = plan([end]).statements()
    timed(conn, sql, params, lat["end (COMMIT_END)"])


def report(conn: psycopg.Connection[Any], store: PostgresStore, args: argparse.Namespace) -> None:
    n = args.runs
    print(
        f"PostgreSQL {conn.info.server_version}, synchronous_commit={args.sync}, load "
        f"{os.getloadavg()[0]:.2f}; {n} runs"
    )
    conn.execute(
        "INSERT INTO functions (id, app, triggers, config, updated_at) "
        "VALUES ('three', 'bench', '[]', '{}', 0)"
    )
    lat: dict[str, list[float]] = {
        "floor: single-row INSERT": [],
        "create (INSERT_RUNS)": [],
        "step checkpoint (COMMIT_STEPS)": [],
        "end (COMMIT_END)": [],
        "last step + end, one transaction (pipeline)": [],
        "step, plain fenced INSERT": [],
        "create, single-row (CREATE_ONE)": [],
        "step checkpoint, single-row (STEP_ONE)": [],
        "end, single-row (END_ONE)": [],
        "last step + end, one statement (STEP_END_ONE)": [],
    }
    for i in range(n + 20):
        timed(
            conn,
            "INSERT INTO floor VALUES (%s, 'null')",
            (f"{i:026d}",),
            lat["floor: single-row INSERT"],
        )
        one_run(conn, store, lat, merge=False)
        one_run(conn, store, lat, merge=True)
        one_run_scalar(conn, lat)
        rid = ids.new_id()
        timed(conn, q.INSERT_RUNS, run_params(store, rid), [])
        timed(
            conn,
            "INSERT INTO steps (run_id, key, seq, kind, status, output, error, attempts,"
            " wake_at, started_at, ended_at) SELECT r.id, %s, 0, 'run', 'completed', 'null',"
            " NULL, 1, NULL, 0, 0 FROM (SELECT id FROM runs WHERE id = %s AND lease_token = %s"
            " AND status = 'running' FOR NO KEY UPDATE) r"
            " ON CONFLICT (run_id, key) DO UPDATE SET status = excluded.status",
            ("a", rid, 1),
            lat["step, plain fenced INSERT"],
        )
    for k in lat:
        del lat[k][:20]
    f = statistics.median(lat["floor: single-row INSERT"])
    print("round trip, client side (median; x floor):")
    for k, v in lat.items():
        print(f"  {k:48s} {med(v)}  {statistics.median(v) / f:5.2f}x")
    per_run = (
        statistics.median(lat["create (INSERT_RUNS)"])
        + 3 * statistics.median(lat["step checkpoint (COMMIT_STEPS)"])
        + statistics.median(lat["end (COMMIT_END)"])
    )
    merged = (
        statistics.median(lat["create (INSERT_RUNS)"])
        + 2 * statistics.median(lat["step checkpoint (COMMIT_STEPS)"])
        + statistics.median(lat["last step + end, one transaction (pipeline)"])
    )
    scalar = (
        statistics.median(lat["create, single-row (CREATE_ONE)"])
        + 2 * statistics.median(lat["step checkpoint, single-row (STEP_ONE)"])
        + statistics.median(lat["last step + end, one statement (STEP_END_ONE)"])
    )
    scalar5 = (
        statistics.median(lat["create, single-row (CREATE_ONE)"])
        + 3 * statistics.median(lat["step checkpoint, single-row (STEP_ONE)"])
        + statistics.median(lat["end, single-row (END_ONE)"])
    )
    print(
        f"  sum for one run: {per_run * 1e3:.3f} ms today (5 statements/commits); "
        f"{merged * 1e3:.3f} ms with the last step and the end in one pipelined transaction "
        f"(4 commits); perdure's single-row statements: {scalar5 * 1e3:.3f} ms (5 commits), "
        f"{scalar * 1e3:.3f} ms with the last step folded into the end (4 commits); "
        f"floor x5 {5 * f * 1e3:.3f} ms, x4 {4 * f * 1e3:.3f} ms"
    )
    explain(conn, store)
    wal(conn, store)
    hot(conn, store, n)


def explain(conn: psycopg.Connection[Any], store: PostgresStore) -> None:
    print("server side (EXPLAIN ANALYZE, BUFFERS, WAL; execution time, WAL records/bytes):")
    rid = ids.new_id()
    stmts = [
        ("create", q.INSERT_RUNS, run_params(store, rid)),
        ("step a", *plan([step(rid, "a", 0)]).statements()[0]),
        ("step b", *plan([step(rid, "b", 1)]).statements()[0]),
        ("end", *plan([Outcome(rid, 1, "complete", output="1")]).statements()[0]),
    ]
    r1 = ids.new_id()
    run = NewRun(r1, "three", "{}", lease_owner="w1", lease_seconds=30.0)
    folded = one_plan([step(r1, "b", 1), Outcome(r1, 1, "complete", output="1")])
    stmts += [
        ("create1", q.CREATE_ONE, one_run_params(run, None, WAKE, ORIGIN)),
        ("step1", one_plan([step(r1, "a", 0)]).sql, one_plan([step(r1, "a", 0)]).params),
        ("stepend1", folded.sql, folded.params),
    ]
    for label, sql, params in stmts:
        rows = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) " + sql, params
        ).fetchone()
        assert rows is not None
        top = rows[0][0]
        p = top["Plan"]
        print(
            f"  {label:8s} planning {top.get('Planning Time', 0):.3f} ms, execution "
            f"{top['Execution Time']:.3f} ms, WAL records {p.get('WAL Records', '?')}, "
            f"WAL bytes {p.get('WAL Bytes', '?')}, FPI {p.get('WAL FPI', '?')}, shared hit "
            f"{p.get('Shared Hit Blocks', '?')}, dirtied {p.get('Shared Dirtied Blocks', '?')}"
        )


def wal(conn: psycopg.Connection[Any], store: PostgresStore) -> None:
    """The WAL records each statement of a run writes (pg_walinspect, filtered by the
    statement's own transaction id, so other sessions' WAL is left out)."""
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    except psycopg.Error as exc:
        print(f"WAL records: pg_walinspect unavailable ({exc})")
        return
    print("WAL written by each statement (its own transaction, pg_walinspect):")
    rid = ids.new_id()
    stmts = [
        ("create", q.INSERT_RUNS, run_params(store, rid)),
        ("step a", *plan([step(rid, "a", 0)]).statements()[0]),
        ("step b", *plan([step(rid, "b", 1)]).statements()[0]),
        ("end", *plan([Outcome(rid, 1, "complete", output="1")]).statements()[0]),
    ]
    for label, sql, params in stmts:
        conn.execute("BEGIN")
        conn.execute("SET LOCAL synchronous_commit = on")  # the WAL read below must be flushed
        start = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]  # type: ignore[index]
        conn.execute(sql, params)
        xid = conn.execute("SELECT txid_current_if_assigned()").fetchone()[0]  # type: ignore[index]
        conn.execute("COMMIT")
        end = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]  # type: ignore[index]
        rows = conn.execute(
            "SELECT resource_manager, record_type, count(*), sum(record_length),"
            " sum(fpi_length) FROM pg_get_wal_records_info(%s, %s) WHERE xid = %s"
            " GROUP BY 1, 2 ORDER BY 1, 2",
            (start, end, xid),
        ).fetchall()
        total = sum(r[3] for r in rows)
        kinds = ", ".join(f"{r[0]}/{r[1]} x{r[2]}" for r in rows)
        print(f"  {label:8s} {sum(r[2] for r in rows):3d} records, {total:5d} bytes: {kinds}")


def hot(conn: psycopg.Connection[Any], store: PostgresStore, n: int) -> None:
    """The end of a run with and without the indexes it updates (HOT needs none changed)."""
    print("end of a run (COMMIT_END), with and without runs_by_status + runs_ended:")
    for variant in ("schema indexes", "without runs_by_status, runs_ended"):
        if variant.startswith("without"):
            conn.execute("DROP INDEX runs_by_status")
            conn.execute("DROP INDEX runs_ended")
        before = _upd(conn)
        lat: list[float] = []
        for _ in range(n):
            rid = ids.new_id()
            timed(conn, q.INSERT_RUNS, run_params(store, rid), [])
            ((sql, params),) = plan([Outcome(rid, 1, "complete", output="1")]).statements()
            timed(conn, sql, params, lat)
        after = _upd(conn)
        print(
            f"  {variant:40s} {med(lat)}; updates {after[0] - before[0]}, of which HOT "
            f"{after[1] - before[1]}"
        )


def _upd(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Updates and HOT updates of ``runs`` so far (this session's counters flushed first)."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'runs'"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


if __name__ == "__main__":
    sys.exit(main())
