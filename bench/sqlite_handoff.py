#!/usr/bin/env python3
"""Micro-benchmark: the cost of getting one SQLite transaction done from an asyncio coroutine.

    python bench/sqlite_handoff.py [--n 3000] [--sync FULL|NORMAL]

The transaction is the shape of perdure's step checkpoint (``BEGIN IMMEDIATE``, the fence
``SELECT``, one ``INSERT`` into a steps-like table, ``COMMIT``), executed sequentially from a
coroutine through each hand-off a store could use:

- ``inline``: on the event loop's thread, no hand-off at all (the loop is blocked meanwhile);
- ``writer-thread``: what ``perdure.store.sqlite`` does today: a ``queue.SimpleQueue`` read by a
  dedicated writer thread, which resolves an asyncio future with ``call_soon_threadsafe``;
- ``writer-thread+event``: the same thread, resolving a ``concurrent.futures.Future`` wrapped
  with ``asyncio.wrap_future`` (what ``run_in_executor`` does);
- ``run_in_executor``: a one-thread ``ThreadPoolExecutor``;
- ``to_thread``: ``asyncio.to_thread`` (the default executor).

Second part: what the indexes on ``runs`` cost a commit (the run's final ``UPDATE`` with the
schema's indexes, and without ``runs_by_status``/``runs_ended``/``runs_by_function``), and what
the per-commit statements cost (``BEGIN``/``COMMIT`` pairs, one vs. several transactions).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

SCHEMA = """
CREATE TABLE runs (id TEXT PRIMARY KEY, function_id TEXT NOT NULL, status TEXT NOT NULL,
  input TEXT NOT NULL, output TEXT, error TEXT, available_at REAL, lease_token INTEGER NOT NULL
  DEFAULT 0, lease_owner TEXT, created_at REAL NOT NULL, started_at REAL, ended_at REAL);
CREATE TABLE steps (run_id TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
  kind TEXT NOT NULL, status TEXT NOT NULL, output TEXT, error TEXT, attempts INTEGER NOT NULL,
  wake_at REAL, started_at REAL, ended_at REAL, PRIMARY KEY (run_id, key)) WITHOUT ROWID;
CREATE INDEX runs_due ON runs (available_at) WHERE available_at IS NOT NULL;
"""
HOT_INDEXES = """
CREATE INDEX runs_by_function ON runs (function_id, id);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;
"""


def connect(path: str, sync: str, indexes: bool = True) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    conn.executescript(SCHEMA + (HOT_INDEXES if indexes else ""))
    return conn


class Checkpoint:
    """One perdure-like step checkpoint per call (a fresh step key each time)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.i = 0
        conn.execute(
            "INSERT INTO runs (id, function_id, status, input, available_at, lease_token,"
            " created_at) VALUES ('r', 'f', 'running', '{}', 1e12, 1, 0)"
        )

    def __call__(self) -> bool:
        c = self.conn
        self.i += 1
        c.execute("BEGIN IMMEDIATE")
        token = c.execute(
            "SELECT id, lease_token FROM runs WHERE status = 'running' AND id IN (?)", ("r",)
        ).fetchall()
        c.execute(
            "INSERT INTO steps (run_id, key, seq, kind, status, output, error, attempts,"
            " wake_at, started_at, ended_at) VALUES (?, ?, ?, 'run', 'completed', 'null', NULL,"
            " 1, NULL, 0, 0)",
            ("r", f"s{self.i}", self.i),
        )
        c.execute("COMMIT")
        return bool(token)


class Writer:
    """perdure's SQLite writer, reduced to its hand-off: a queue, a thread, a callback."""

    def __init__(self, threadsafe_future: bool) -> None:
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.cf = threadsafe_future
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            fn, fut, loop = item
            value = fn()
            if self.cf:
                fut.set_result(value)
            else:
                loop.call_soon_threadsafe(_set, fut, value)

    async def call(self, fn: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        if self.cf:
            cfut: Future[Any] = Future()
            self.q.put((fn, cfut, loop))
            return await asyncio.wrap_future(cfut)
        fut = loop.create_future()
        self.q.put((fn, fut, loop))
        return await fut

    def close(self) -> None:
        self.q.put(None)
        self.t.join()


def _set(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


async def bench_handoff(kind: str, fn: Callable[[], Any], n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    writer: Writer | None = None
    pool: ThreadPoolExecutor | None = None
    if kind.startswith("writer-thread"):
        writer = Writer(threadsafe_future=kind.endswith("+event"))
    elif kind == "run_in_executor":
        pool = ThreadPoolExecutor(1)
    for i in range(n + n // 10):
        t = time.perf_counter()
        if kind == "inline":
            fn()
        elif writer is not None:
            await writer.call(fn)
        elif pool is not None:
            await loop.run_in_executor(pool, fn)
        else:
            await asyncio.to_thread(fn)
        if i >= n // 10:
            lat.append(time.perf_counter() - t)
    if writer is not None:
        writer.close()
    if pool is not None:
        pool.shutdown()
    return lat


def stats(lat: list[float]) -> str:
    lat = sorted(lat)
    return (
        f"median {statistics.median(lat) * 1e3:7.4f} ms  mean {statistics.fmean(lat) * 1e3:7.4f}"
        f"  p90 {lat[int(len(lat) * 0.9)] * 1e3:7.4f}"
    )


def bench_update(path: str, sync: str, indexes: bool, n: int) -> list[float]:
    """The run's final UPDATE (status, output, available_at, ended_at) in its own commit,
    on a table of n fresh runs: with or without the three list indexes."""
    conn = connect(path, sync, indexes)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO runs (id, function_id, status, input, available_at, lease_token,"
        " created_at) VALUES (?, 'f', 'running', '{}', 1e12, 1, 0)",
        [(f"{i:026d}",) for i in range(n + n // 10)],
    )
    conn.execute("COMMIT")
    lat = []
    for i in range(n + n // 10):
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE runs SET status = 'completed', output = '1', available_at = NULL,"
            " lease_owner = NULL, ended_at = 1.0 WHERE id = ?",
            (f"{i:026d}",),
        )
        conn.execute("COMMIT")
        if i >= n // 10:
            lat.append(time.perf_counter() - t)
    conn.close()
    return lat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--sync", default="NORMAL", choices=("FULL", "NORMAL"))
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="handoff-")
    path = os.path.join(tmp, "h.db")
    print(f"SQLite synchronous={args.sync}; load {os.getloadavg()[0]:.2f}; n={args.n}")
    print("one step checkpoint (BEGIN IMMEDIATE, fence SELECT, INSERT, COMMIT), sequential:")
    kinds = ("inline", "writer-thread", "writer-thread+event", "run_in_executor", "to_thread")
    for rep in range(args.repeat):
        for kind in kinds:
            conn = connect(path, args.sync)
            lat = asyncio.run(bench_handoff(kind, Checkpoint(conn), args.n))
            conn.close()
            print(f"  #{rep + 1} {kind:22s} {stats(lat)}")
    print("the run's final UPDATE, one commit each:")
    for rep in range(args.repeat):
        for indexes in (True, False):
            lat = bench_update(path, args.sync, indexes, args.n)
            label = "with list indexes" if indexes else "without the 3 list indexes"
            print(f"  #{rep + 1} {label:28s} {stats(lat)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
