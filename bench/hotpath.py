#!/usr/bin/env python3
"""Where the sequential per-step time goes: perdure's hot path, instrumented from outside.

    python bench/hotpath.py --backend sqlite   [--mode durable|nosync] [--runs 1000]
    python bench/hotpath.py --backend postgres [--mode durable|nosync] [--profile cprofile]

Runs the workload of ``compare_dbos.py`` (sequential runs of a function of 3 no-op async steps,
client and worker in one process) and measures, in the same process and the same minute:

- the floor: one durable single-row commit (as in ``compare_dbos.py``), in the same mode;
- perdure per run and per step (median), and CPU per run;
- per run: store calls, transactions, SQL statements by kind (no engine code is changed: the
  store's connection and plumbing are wrapped at run time);
- per store write: the time the awaiting coroutine waited, the time the transaction took on
  its connection (SQLite: in the writer thread; split into the COMMIT and the other
  statements), and what is left: the hand-off between the event loop and the writer thread
  (SQLite), the driver and the round trip (PostgreSQL).

``--mode nosync`` takes the disk flush out (SQLite ``synchronous=NORMAL``, PostgreSQL
``synchronous_commit=off``, for the floor and for perdure alike): what remains is perdure's own
cost, which does not depend on how slow the disk flush is on the machine right now.

``--profile cprofile`` (deterministic, all calls on the event loop's thread; the timings are
inflated) or ``--profile pyinstrument`` (sampling) writes a report of the measured runs.
``--no-instrument`` measures without the wrappers (their own cost is a few µs per statement).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from floor_commit import floor_postgres as _floor_postgres  # noqa: E402
from floor_commit import floor_sqlite as _floor_sqlite  # noqa: E402
from floor_commit import sqlite_warmup  # noqa: E402

DEFAULT_PG = os.environ.get(
    "PERDURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STEPS = 3


class Tally:
    """Counters and timers, shared by the wrappers (the writer thread adds to them too)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.on = False
        self.count: collections.Counter[str] = collections.Counter()
        self.secs: collections.defaultdict[str, float] = collections.defaultdict(float)

    def add(self, key: str, seconds: float = 0.0, n: int = 1) -> None:
        if self.on:
            with self.lock:
                self.count[key] += n
                self.secs[key] += seconds


TALLY = Tally()
# The latest moments of the (single, sequential) write in flight, for the timeline of a write.
LAST: dict[str, float] = {}


def _verb(sql: str) -> str:
    words = sql.split(None, 3)
    head = " ".join(words[:2]).upper() if words else "?"
    if head.startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
        return head.split()[0]
    if head.startswith("WITH"):
        return "WITH " + sql[5:40].split("(")[0].strip()
    return " ".join(sql.split()[:3])[:48]


# ------------------------------------------------------------------------------ SQLite hooks


class TimedConnection(sqlite3.Connection):
    """A sqlite3 connection that times and counts its statements."""

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        t = time.perf_counter()
        if sql == "BEGIN IMMEDIATE":
            LAST["begin"] = t
        try:
            return super().execute(sql, *args)
        finally:
            t1 = time.perf_counter()
            if sql == "COMMIT":
                LAST["commit_end"] = t1
            TALLY.add("sql " + _verb(sql), t1 - t)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        rows = list(rows)
        t = time.perf_counter()
        try:
            return super().executemany(sql, rows)
        finally:
            TALLY.add("sql " + _verb(sql) + f" (x{len(rows)} rows)", time.perf_counter() - t)


def hook_sqlite() -> None:
    from perdure.store.sqlite import queries
    from perdure.store.sqlite import store as store_mod
    from perdure.store.sqlite import writer as mod

    original_connect = store_mod.connect

    def connect(path: str, synchronous: str, busy_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_ms / 1000,
            factory=TimedConnection,
        )
        for pragma in queries.PRAGMAS:
            conn.execute(pragma)
        conn.execute(queries.SET_SYNCHRONOUS.format(synchronous))
        conn.execute(queries.SET_BUSY_TIMEOUT.format(busy_ms))
        if hasattr(queries, "NO_AUTOCHECKPOINT"):
            conn.execute(queries.NO_AUTOCHECKPOINT)
        return conn

    assert original_connect is not None
    store_mod.connect = connect

    run_batch = mod.Writer._run_batch

    def timed_batch(self: Any, batch: list[Any]) -> None:
        t = time.perf_counter()
        try:
            run_batch(self, batch)
        finally:
            TALLY.add("writer: batch (BEGIN..COMMIT + resolve)", time.perf_counter() - t)
            TALLY.add("writer: items in batches", 0.0, len(batch))

    mod.Writer._run_batch = timed_batch  # type: ignore[method-assign]

    if not hasattr(mod.Writer, "_run_inline"):  # the code before the inline path
        hook_sqlite_write(store_mod)
        return
    run_inline = mod.Writer._run_inline

    def timed_inline(self: Any, op: Any) -> Any:
        t = time.perf_counter()
        try:
            return run_inline(self, op)
        finally:
            TALLY.add("inline: write on the loop thread (BEGIN..COMMIT)", time.perf_counter() - t)

    mod.Writer._run_inline = timed_inline  # type: ignore[method-assign]

    checkpoint = mod.Writer._checkpoint

    def timed_checkpoint(self: Any) -> None:
        t = time.perf_counter()
        try:
            checkpoint(self)
        finally:
            TALLY.add("reader: background WAL checkpoint", time.perf_counter() - t)

    mod.Writer._checkpoint = timed_checkpoint  # type: ignore[method-assign]

    hook_sqlite_write(store_mod)


def hook_sqlite_write(store_mod: Any) -> None:
    write = store_mod.SqliteStore._write

    class TimedQueue:
        """The writer's queue, noting when the writer thread took an item."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def put(self, item: Any) -> None:
            self.inner.put(item)

        def get(self) -> Any:
            item = self.inner.get()
            LAST["dequeued"] = time.perf_counter()
            return item

        def get_nowait(self) -> Any:
            return self.inner.get_nowait()

    async def timed_write(self: Any, op: Any, small: bool = False) -> Any:
        writer = self._writer
        if writer is not None and not isinstance(writer._queue, TimedQueue):
            writer._queue = TimedQueue(writer._queue)
            loop = asyncio.get_running_loop()
            threadsafe = loop.call_soon_threadsafe

            def noted(cb: Any, *a: Any, **kw: Any) -> Any:
                LAST["resolve_sent"] = time.perf_counter()
                return threadsafe(cb, *a, **kw)

            loop.call_soon_threadsafe = noted  # type: ignore[method-assign,assignment]
        t = time.perf_counter()
        try:
            return await (write(self, op, small) if small else write(self, op))
        finally:
            t5 = time.perf_counter()
            TALLY.add("loop: await store write", t5 - t)
            if TALLY.on and len(LAST) == 4:
                TALLY.add("t: loop -> writer (put, thread wakes)", LAST["dequeued"] - t)
                TALLY.add("t: writer before BEGIN", LAST["begin"] - LAST["dequeued"])
                TALLY.add("t: BEGIN .. COMMIT done", LAST["commit_end"] - LAST["begin"])
                TALLY.add("t: writer after COMMIT", LAST["resolve_sent"] - LAST["commit_end"])
                TALLY.add("t: writer -> loop -> coroutine resumed", t5 - LAST["resolve_sent"])
            elif TALLY.on and "dequeued" not in LAST and "commit_end" in LAST:
                TALLY.add("t: inline: before BEGIN (incl. the yield)", LAST["begin"] - t)
                TALLY.add("t: inline: BEGIN .. COMMIT done", LAST["commit_end"] - LAST["begin"])
                TALLY.add("t: inline: after COMMIT, resumed", t5 - LAST["commit_end"])
            LAST.clear()

    store_mod.SqliteStore._write = timed_write  # type: ignore[method-assign]


# -------------------------------------------------------------------------- PostgreSQL hooks


def hook_postgres() -> None:
    import psycopg

    from perdure.store.postgres import pool as mod

    run = mod.Pool.run

    async def timed_run(self: Any, fn: Any, *, read: bool = False) -> Any:
        t = time.perf_counter()
        try:
            return await run(self, fn, read=read)
        finally:
            TALLY.add("loop: await store call (pool + round trip)", time.perf_counter() - t)

    mod.Pool.run = timed_run  # type: ignore[method-assign]

    execute = psycopg.AsyncConnection.execute

    async def counted_execute(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return await execute(self, query, params, **kw)
        finally:
            text = query if isinstance(query, str) else str(query)
            TALLY.add("sql " + _verb(text), time.perf_counter() - t)

    psycopg.AsyncConnection.execute = counted_execute  # type: ignore[method-assign]

    pipeline = psycopg.AsyncConnection.pipeline

    @contextlib.asynccontextmanager
    async def counted_pipeline(self: Any) -> Any:
        TALLY.add("pipeline blocks")
        async with pipeline(self) as p:
            yield p

    psycopg.AsyncConnection.pipeline = counted_pipeline  # type: ignore[method-assign]


async def pg_table_stats(url: str) -> dict[str, tuple[int, ...]]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        cur = await conn.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del "
            "FROM pg_stat_user_tables WHERE relname IN ('runs', 'steps', 'waits')"
        )
        out: dict[str, tuple[int, ...]] = {r[0]: tuple(r[1:]) for r in await cur.fetchall()}
        cur = await conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        row = await cur.fetchone()
        out["xact_commit"] = (int(row[0]) if row else 0,)
        return out


# ----------------------------------------------------------------------------------- workload


async def _noop() -> None:
    return None


async def measure(url: str, runs: int, warmup: int, profile: str | None) -> dict[str, Any]:
    import perdure

    app = perdure.App("hotpath", url)

    @app.function(id="three")
    async def three(ctx: Any) -> int:
        await ctx.step.run("a", _noop)
        await ctx.step.run("b", _noop)
        await ctx.step.run("c", _noop)
        return 1

    lat: list[float] = []
    async with app, app.worker():
        for _ in range(warmup):
            assert await (await app.start(three)).result() == 1
        profiler: Any = None
        if profile == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002, async_mode="disabled")
            profiler.start()
        elif profile == "cprofile":
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        TALLY.on = True
        cpu0 = time.process_time()
        for _ in range(runs):
            t = time.perf_counter()
            value = await (await app.start(three)).result()
            lat.append(time.perf_counter() - t)
            assert value == 1
        cpu = time.process_time() - cpu0
        TALLY.on = False
        if profile == "pyinstrument":
            profiler.stop()
            path = f"hotpath-{os.getpid()}.pyinstrument.txt"
            with open(path, "w") as f:  # noqa: ASYNC230 - after the measurement
                f.write(profiler.output_text(unicode=True, color=False, show_all=False))
            print(f"  pyinstrument report: {path}", file=sys.stderr)
        elif profile == "cprofile":
            import pstats

            profiler.disable()
            path = f"hotpath-{os.getpid()}.cprofile.txt"
            with open(path, "w") as f:  # noqa: ASYNC230 - after the measurement
                st = pstats.Stats(profiler, stream=f)
                st.sort_stats("tottime").print_stats(45)
                st.sort_stats("cumulative").print_stats(60)
            profiler.dump_stats(path.replace(".txt", ".prof"))
            print(f"  cProfile report: {path} (+ .prof)", file=sys.stderr)
    lat.sort()
    return {
        "median_ms": statistics.median(lat) * 1e3,
        "mean_ms": statistics.fmean(lat) * 1e3,
        "p90_ms": lat[int(len(lat) * 0.9)] * 1e3,
        "cpu_ms": cpu / runs * 1e3,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--mode", choices=("durable", "nosync"), default="durable")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--floor-commits", type=int, default=2000)
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument("--profile", choices=("cprofile", "pyinstrument"), default=None)
    ap.add_argument("--no-instrument", action="store_true")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="hotpath-")
    pg_db = None
    if args.backend == "sqlite":
        sync = "FULL" if args.mode == "durable" else "NORMAL"
        floor_path = os.path.join(workdir, "floor.db")
        if sync == "FULL":
            floor = _floor_sqlite(floor_path, args.floor_commits, sqlite_warmup(args.floor_commits))
        else:
            floor = _floor_sqlite_normal(floor_path, args.floor_commits)
        url = f"sqlite:///{os.path.join(workdir, 'perdure.db')}?synchronous={sync}"
        if not args.no_instrument:
            hook_sqlite()
    else:
        import psycopg

        pg_db = f"hotpath_{os.getpid()}"
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{pg_db}"')
        base = args.pg_url.rsplit("/", 1)[0] + "/" + pg_db
        opt = "on" if args.mode == "durable" else "off"
        url = f"{base}?options=-csynchronous_commit%3D{opt}"
        floor = _floor_pg_mode(base, args.floor_commits, opt)
        if not args.no_instrument:
            hook_postgres()
    try:
        before = asyncio.run(pg_table_stats(url)) if pg_db else {}
        res = asyncio.run(measure(url, args.runs, args.warmup, args.profile))
        after = asyncio.run(pg_table_stats(url)) if pg_db else {}
    finally:
        if pg_db:
            import psycopg

            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)')
    report(args, floor, res, before, after)
    return 0


def _floor_sqlite_normal(path: str, n: int) -> dict[str, Any]:
    """The floor without the flush: WAL, synchronous=NORMAL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE floor (id TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID")
    lat = []
    for i in range(n + n // 10):
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO floor (id, body) VALUES (?, ?)", (f"{i:026d}", "null"))
        conn.execute("COMMIT")
        if i >= n // 10:
            lat.append(time.perf_counter() - t)
    conn.close()
    return {"median_ms": statistics.median(lat) * 1e3, "mean_ms": statistics.fmean(lat) * 1e3}


def _floor_pg_mode(url: str, n: int, sync: str) -> dict[str, Any]:
    return _floor_postgres(url, n, n // 10, synchronous_commit=sync)


def report(
    args: argparse.Namespace,
    floor: dict[str, Any],
    res: dict[str, Any],
    before: dict[str, tuple[int, ...]],
    after: dict[str, tuple[int, ...]],
) -> None:
    runs = args.runs
    f = floor["median_ms"]
    print(
        f"{args.backend} {args.mode}: load {os.getloadavg()[0]:.2f}; "
        f"{runs} sequential runs of {STEPS} no-op steps"
    )
    print(
        f"  floor (one single-row commit, same mode): median {f:.3f} ms, "
        f"mean {floor['mean_ms']:.3f} ms"
    )
    per_step = res["median_ms"] / STEPS
    print(
        f"  perdure: per run median {res['median_ms']:.3f} ms (mean {res['mean_ms']:.3f}, p90 "
        f"{res['p90_ms']:.3f}), per step {per_step:.3f} ms = {per_step / f:.2f}x floor; "
        f"CPU per run {res['cpu_ms']:.3f} ms"
    )
    if args.no_instrument:
        return
    print("  per run (counts; mean ms each; total ms per run):")
    for key in sorted(TALLY.count, key=lambda k: -TALLY.secs[k]):
        n = TALLY.count[key]
        s = TALLY.secs[key]
        each = (s / n * 1e3) if n else 0.0
        print(f"    {key[:70].ljust(70)} {n / runs:7.2f}  {each:8.4f}  {s / runs * 1e3:8.4f}")
    if args.backend == "sqlite":
        w = TALLY.secs["loop: await store write"]
        b = TALLY.secs["writer: batch (BEGIN..COMMIT + resolve)"]
        b += TALLY.secs["inline: write on the loop thread (BEGIN..COMMIT)"]
        commit = TALLY.secs["sql COMMIT"]
        sql = (
            sum(
                v
                for k, v in TALLY.secs.items()
                if k.startswith("sql ") and "wal_checkpoint" not in k  # the reader's
            )
            - commit
        )
        nw = TALLY.count["loop: await store write"] or 1
        print(
            f"  per store write (n={nw / runs:.2f}/run): awaited {w / nw * 1e3:.4f} ms = "
            f"transaction (writer batch or inline) {b / nw * 1e3:.4f} "
            f"(COMMIT {commit / nw * 1e3:.4f}, other SQL {sql / nw * 1e3:.4f}, "
            f"python in transaction {(b - commit - sql) / nw * 1e3:.4f}) + "
            f"hand-off (the yield, or loop->writer->loop) {(w - b) / nw * 1e3:.4f} ms"
        )
        print(
            f"  per run: store writes {w / runs * 1e3:.4f} ms of {res['median_ms']:.4f} ms; "
            f"outside store writes (engine, client, loop) "
            f"{res['mean_ms'] - w / runs * 1e3:.4f} ms (mean based)"
        )
    else:
        w = TALLY.secs["loop: await store call (pool + round trip)"]
        nw = TALLY.count["loop: await store call (pool + round trip)"] or 1
        print(
            f"  per store call (n={nw / runs:.2f}/run): awaited {w / nw * 1e3:.4f} ms; "
            f"per run: store {w / runs * 1e3:.4f} ms; outside store calls "
            f"{res['mean_ms'] - w / runs * 1e3:.4f} ms (mean based)"
        )
        if before and after:
            print("  server side, per run (pg_stat_*; includes the warm-up runs):")
            total = runs + args.warmup
            for rel in ("runs", "steps", "waits"):
                if rel in after:
                    b0 = before.get(rel, (0, 0, 0, 0))
                    d = [(a - b) / total for a, b in zip(after[rel], b0, strict=True)]
                    print(
                        f"    {rel:6s} inserts {d[0]:.2f}  updates {d[1]:.2f}  "
                        f"HOT updates {d[2]:.2f}  deletes {d[3]:.2f}"
                    )
            dc = after["xact_commit"][0] - before["xact_commit"][0]
            print(f"    transactions committed {dc / total:.2f} per run (all connections)")


if __name__ == "__main__":
    sys.exit(main())
