"""Helpers for the creation-time flow-control tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import perdure
from perdure.testing import ManualClock

T = TypeVar("T")

START = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def clock() -> ManualClock:
    """A manual clock at a fixed instant."""
    return ManualClock(START)


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str, timeout: float = 30
) -> T:
    """Poll ``probe`` until ``ok`` holds for its value (``timeout`` seconds at most)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value!r} after {timeout} s")
        await asyncio.sleep(0.02)


async def runs_with(app: perdure.App, status: str, n: int) -> list[perdure.RunInfo]:
    """The runs with ``status``, once there are at least ``n``."""
    return await eventually(
        lambda: app.list_runs(status=status, limit=500),
        lambda runs: len(runs) >= n,
        f"{n} {status} run(s)",
    )


def table_rows(db_url: str, table: str) -> int:
    """How many rows a table of the test's database holds (read directly, not through the
    engine)."""
    if table not in ("flow_rate_heads", "flow_rate_slots", "flow_idempotency"):
        raise ValueError(table)
    if db_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    import psycopg

    from perdure.store.postgres import parse_url

    cfg = parse_url(db_url)
    with psycopg.connect(cfg.conninfo, options=cfg.kwargs["options"]) as pg:
        row = pg.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])
