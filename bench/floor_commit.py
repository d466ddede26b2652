"""The floor: one durable single-row commit, nothing else (no engine, no event loop).

What durability costs at the very least on this machine, for ``compare_dbos.py`` (which prints
every figure as a ratio to it) and the hot-path tools:

- SQLite: a fresh file in WAL mode with ``synchronous=FULL``; ``BEGIN`` + one ``INSERT`` +
  ``COMMIT`` per iteration, sequential, on the calling thread;
- PostgreSQL: ``synchronous_commit=on``; one autocommit ``INSERT`` per iteration over one
  synchronous psycopg connection, into a fresh table.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from typing import Any


def _pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[k]


FLOOR_ID_WIDTH = 26  # as long as a perdure run id


def floor_stats(lat: list[float]) -> dict[str, Any]:
    lat.sort()
    return {
        "commits": len(lat),
        "median_ms": statistics.median(lat) * 1e3,
        "mean_ms": statistics.fmean(lat) * 1e3,
        "p99_ms": _pct(lat, 99) * 1e3,
        "p10_ms": _pct(lat, 10) * 1e3,
        "p90_ms": _pct(lat, 90) * 1e3,
        "min_ms": lat[0] * 1e3,
    }


def floor_sqlite(path: str, n: int, warmup: int) -> dict[str, Any]:
    """SQLite, a fresh file in WAL mode with synchronous=FULL: one INSERT + COMMIT per
    iteration, sequential, on the calling thread."""
    import sqlite3

    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE floor (id TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID")
    lat: list[float] = []
    try:
        for i in range(warmup + n):
            row = (f"{i:0{FLOOR_ID_WIDTH}d}", "null")
            t = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute("INSERT INTO floor (id, body) VALUES (?, ?)", row)
            conn.execute("COMMIT")
            if i >= warmup:
                lat.append(time.perf_counter() - t)
    finally:
        conn.close()
    out = floor_stats(lat)
    out["how"] = "sqlite3, WAL, synchronous=FULL, BEGIN + INSERT + COMMIT"
    return out


def floor_postgres(url: str, n: int, warmup: int, synchronous_commit: str = "on") -> dict[str, Any]:
    """PostgreSQL, synchronous_commit on: one autocommit INSERT per iteration over one psycopg
    connection, into a fresh table. (``synchronous_commit="off"``: the same without waiting for
    the flush, for ``bench/hotpath.py --mode nosync``.)"""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        sync = conn.execute("SHOW synchronous_commit").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
        conn.execute(f"SET synchronous_commit = {'off' if synchronous_commit == 'off' else 'on'}")
        conn.execute("DROP TABLE IF EXISTS perdure_floor")
        conn.execute("CREATE TABLE perdure_floor (id text PRIMARY KEY, body text NOT NULL)")
        lat: list[float] = []
        try:
            for i in range(warmup + n):
                row = (f"{i:0{FLOOR_ID_WIDTH}d}", "null")
                t = time.perf_counter()
                conn.execute("INSERT INTO perdure_floor (id, body) VALUES (%s, %s)", row)
                if i >= warmup:
                    lat.append(time.perf_counter() - t)
        finally:
            conn.execute("DROP TABLE IF EXISTS perdure_floor")
    out = floor_stats(lat)
    out["how"] = (
        f"psycopg (sync), autocommit INSERT, synchronous_commit={synchronous_commit} "
        f"(server default {sync[0] if sync else '?'}, fsync {fsync[0] if fsync else '?'})"
    )
    return out


def measure_floor(backend: str, url: str, n: int) -> dict[str, Any]:
    """The floor of ``backend`` (``sqlite`` with a ``sqlite:///path`` URL, or ``postgres``):
    ``n`` commits timed after warm-up ones (PostgreSQL: a tenth as many, at least 50; SQLite:
    see :func:`sqlite_warmup`)."""
    if backend == "sqlite":
        return floor_sqlite(url.removeprefix("sqlite:///"), n, sqlite_warmup(n))
    return floor_postgres(url, n, max(50, n // 10))


def sqlite_warmup(n: int) -> int:
    """Warm-up commits for the SQLite floor: past the WAL's first wrap-around (the default
    auto-checkpoint is at 1,000 pages, one page per commit here). Until then every commit also
    grows the WAL file, which costs the file system a metadata flush: a fresh file's first
    thousand commits are ~1.6x slower (0.20 vs 0.12-0.135 ms measured), and perdure's own
    benchmark runs spend almost all their commits past that point."""
    return max(1100, n // 10)
