"""The scheduler survives a database outage: a tick due while PostgreSQL is unreachable fires
once the database is back (the worker reaches it through a TCP proxy the test takes down; the
shared server itself is never stopped)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

import perdure
from conftest import new_pg_schema_url
from perdure.testing import ManualClock
from tcp_proxy import Proxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from new_pg_schema_url()


@pytest.mark.timeout(120)
async def test_a_tick_due_during_an_outage_fires_after_it(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    parts = urlsplit(pg_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via_proxy = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    clock = ManualClock(datetime(2026, 6, 1, 6, 0, tzinfo=UTC))
    app = perdure.App("t", via_proxy + "&pool_timeout=1", clock=clock)
    observer = perdure.App("t", pg_url, clock=clock)

    @app.function()
    async def report(ctx: perdure.Context) -> str:
        assert ctx.event.schedule is not None
        return ctx.event.schedule.tick.isoformat()

    caplog.set_level(logging.WARNING, logger="perdure.scheduler")
    try:
        async with app, observer, app.worker():
            await app.schedules.create("hourly", "report", "0 * * * *")
            await proxy.stop()  # the database is gone ...
            await clock.advance(hours=1)  # ... when the 07:00 tick is due
            deadline = time.monotonic() + 60
            while "store unavailable" not in caplog.text:  # a pass failed, and was logged
                assert time.monotonic() < deadline, caplog.text
                await asyncio.sleep(0.05)
            await proxy.start()
            while not (runs := await observer.list_runs(status="completed")):
                assert time.monotonic() < deadline, "no run after the outage"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            runs = await observer.list_runs()
            info = await observer.schedules.get("hourly")
    finally:
        await proxy.stop()
    assert [r.output for r in runs] == ["2026-06-01T07:00:00+00:00"]
    assert (info.runs, info.missed) == (1, 0)
