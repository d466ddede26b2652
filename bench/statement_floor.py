"""The statement floor: one sequential run's own statements, replayed with no engine.

``measure_statements(backend, url, n)`` creates perdure's schema in a fresh database (SQLite
file or PostgreSQL database), then replays ``n`` times (after warm-up runs) the statements a
sequential 3-step run makes, built by perdure's own code, in the transactions perdure uses:

- SQLite (the writer connection's pragmas, ``synchronous=FULL``; a WAL checkpoint every 75
  runs, untimed): ``BEGIN IMMEDIATE`` +
  the leased creation + ``COMMIT``; two step checkpoints, each one statement in its own
  transaction; ``BEGIN IMMEDIATE`` + the last checkpoint + the outcome + ``COMMIT``. The
  parameters come from ``perdure.store.sqlite.commit`` (the functions the writer calls).
- PostgreSQL (``synchronous_commit`` on, one synchronous psycopg connection, prepared
  statements, each its own transaction): ``CREATE_ONE``, ``STEP_ONE`` twice, ``STEP_END_ONE``,
  with the parameters of ``OnePlan`` and ``one_run_params``.

It is what an engine with perdure's schema cannot go below: the four durable commits of a run
with the rows and indexes each one writes, the statements' own execution, and nothing of the
engine's Python (no event loop, no driver, no group commit). ``compare_dbos.py`` prints it next
to the single-row floor, so that the distance between perdure and this floor is the engine's
overhead, and the distance between this floor and the single-row one is the schema's.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from floor_commit import floor_stats

WARMUP_RUNS = 300  # SQLite: past the WAL's first restarts (4 commits, ~13 pages per run)
CHECKPOINT_RUNS = 75  # SQLite: a WAL checkpoint every 300 writes, as perdure's writer starts
# them (CHECKPOINT_ITEMS), but untimed: perdure runs them on another thread


def _new_run(run_id: str) -> Any:
    from perdure.store.base import NewRun

    body = '{"id":"' + run_id + '","name":"perdure/function.invoked","data":{},"ts":1}'
    return NewRun(run_id, "three", body, lease_owner="w1", lease_seconds=30.0)


def _step(run_id: str, key: str, seq: int) -> Any:
    from perdure.store.base import StepWrite

    return StepWrite(run_id, 1, key, seq, "run", "completed", output="null", started_at=0.0)


def statements_sqlite(path: str, n: int, warmup: int) -> dict[str, Any]:
    """Replay on a fresh SQLite file (see the module's documentation)."""
    from perdure import ids
    from perdure.store.base import Outcome
    from perdure.store.sqlite import commit as cm
    from perdure.store.sqlite import queries as q
    from perdure.store.sqlite.store import _migrate
    from perdure.store.sqlite.writer import Tx, connect

    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    conn = connect(path, "FULL", 5000)
    _migrate(conn)
    lat: list[float] = []
    try:
        for i in range(warmup + n):
            rid = ids.new_id()
            t = time.perf_counter()
            tx = Tx(conn, time.time())
            conn.execute(q.BEGIN)
            [made] = cm.insert_runs(tx, [_new_run(rid)])
            conn.execute(q.COMMIT)
            assert made.token == 1
            for seq, key in enumerate(("a", "b")):
                tx = Tx(conn, time.time())
                step = _step(rid, key, seq)
                assert cm.one_statement(step)
                assert cm.commit(tx, [step]) == [True]
            tx = Tx(conn, time.time())
            conn.execute(q.BEGIN)
            end = Outcome(rid, 1, "complete", output="1")
            assert cm.commit(tx, [_step(rid, "c", 2), end]) == [True, True]
            conn.execute(q.COMMIT)
            if i >= warmup:
                lat.append(time.perf_counter() - t)
            if i % CHECKPOINT_RUNS == 0:  # as perdure's writer: off the timed path
                conn.execute(q.CHECKPOINT)
    finally:
        conn.close()
    out = floor_stats(lat)
    out["runs"] = out.pop("commits")
    out["how"] = "perdure's SQLite statements and transactions of one 3-step run, no engine"
    return out


def statements_postgres(url: str, n: int, warmup: int) -> dict[str, Any]:
    """Replay on a fresh PostgreSQL database (see the module's documentation)."""
    import asyncio

    import psycopg

    from perdure import ids
    from perdure.store.base import Outcome
    from perdure.store.postgres import PostgresStore
    from perdure.store.postgres import queries as q
    from perdure.store.postgres.plan import OnePlan, one_run_params
    from perdure.store.postgres.schema import parse_url

    store = PostgresStore(url)

    async def schema() -> None:
        await store.open()
        await store.close()

    asyncio.run(schema())
    wake, done, origin = "perdure_wake_floor", "perdure_done_floor", "floor"

    def plan(ops: list[Any]) -> OnePlan:
        p = OnePlan.build(ops, None, wake, done, origin)
        assert p is not None
        return p

    lat: list[float] = []
    cfg = parse_url(url)  # ``?schema=NAME`` as perdure reads it
    with psycopg.connect(cfg.conninfo, autocommit=True, options=cfg.kwargs["options"]) as conn:
        conn.execute("SET synchronous_commit = on")
        for i in range(warmup + n):
            rid = ids.new_id()
            t = time.perf_counter()
            params = one_run_params(_new_run(rid), None, wake, origin)
            conn.execute(q.CREATE_ONE, params, prepare=True).fetchall()
            for seq, key in enumerate(("a", "b")):
                p = plan([_step(rid, key, seq)])
                conn.execute(p.sql, p.params, prepare=True).fetchall()
            p = plan([_step(rid, "c", 2), Outcome(rid, 1, "complete", output="1")])
            conn.execute(p.sql, p.params, prepare=True).fetchall()
            if i >= warmup:
                lat.append(time.perf_counter() - t)
    out = floor_stats(lat)
    out["runs"] = out.pop("commits")
    out["how"] = "perdure's single-row PostgreSQL statements of one 3-step run, no engine"
    return out


def measure_statements(backend: str, url: str, n: int) -> dict[str, Any]:
    """The statement floor of ``backend`` over ``n`` runs (per run: ``median_ms`` etc.)."""
    if backend == "sqlite":
        return statements_sqlite(url.removeprefix("sqlite:///"), n, max(WARMUP_RUNS, n // 10))
    return statements_postgres(url, n, max(50, n // 10))
