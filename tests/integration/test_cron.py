"""Cron triggers: one run per tick across schedulers, time zones, catch-up after downtime."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import perdure
from perdure.testing import ManualClock


def make_app(url: str, clock: ManualClock, catchup: str = "24h") -> perdure.App:
    app = perdure.App("t", url, clock=clock)

    @app.function(trigger=perdure.cron("0 9 * * *", tz="Europe/Paris", catchup=catchup))
    async def report(ctx: perdure.Context) -> dict[str, object]:
        return dict(ctx.event.data)

    return app


async def completed_runs(app: perdure.App, n: int) -> list[perdure.RunInfo]:
    """The completed runs, once there are at least ``n`` (60 s at most); a short grace lets a
    duplicate of the latest tick, which no event of the engine announces, show up too."""
    deadline = time.monotonic() + 60
    while len(await app.list_runs(status="completed")) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {n} completed run(s) after 60 s")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    return await app.list_runs(status="completed")


async def test_one_run_per_tick_with_several_workers(sqlite_url: str) -> None:
    # 2026-03-27 07:00 UTC = 08:00 in Paris (UTC+1 before the switch to summer time).
    clock = ManualClock(datetime(2026, 3, 27, 7, 0, tzinfo=UTC))
    apps = [make_app(sqlite_url, clock) for _ in range(3)]
    for app in apps:
        await app.open()
    workers = [app.worker() for app in apps]
    try:
        for w in workers:
            await w.start()  # each scheduler's first pass is done when start() returns
        await clock.advance(hours=1, seconds=1)  # 09:00:01 Paris on Friday 27 March
        runs = await completed_runs(apps[0], 1)
        assert len(runs) == 1
        assert runs[0].event.data["scheduled_at"] == "2026-03-27T08:00:00Z"
        # Over the DST switch (Sunday 29 March), 09:00 Paris is 07:00 UTC.
        for n in (2, 3):
            await clock.advance(days=1)
            # This tick's run, before the clock moves on (else the tick would be "missed").
            runs = await completed_runs(apps[0], n)
        ticks = sorted(r.event.data["scheduled_at"] for r in runs)
        assert ticks == ["2026-03-27T08:00:00Z", "2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z"]
    finally:
        for w in workers:
            await w.stop()
        for app in apps:
            await app.close()


async def test_catch_up_runs_only_the_latest_missed_tick(sqlite_url: str) -> None:
    clock = ManualClock(datetime(2026, 6, 1, 6, 0, tzinfo=UTC))
    app = make_app(sqlite_url, clock)
    async with app:
        async with app.worker():
            pass  # its scheduler's first pass (before start() returns) records the trigger
        # Down for three days and a bit: ticks of 1, 2, 3 and 4 June were missed.
        await clock.advance(timedelta(days=3, hours=4))
        async with app.worker():
            runs = await completed_runs(app, 1)
    assert len(runs) == 1
    assert runs[0].event.data["scheduled_at"] == "2026-06-04T07:00:00Z"
    assert runs[0].event.data["missed"] == 3


async def test_catch_up_zero_skips_missed_ticks(sqlite_url: str) -> None:
    clock = ManualClock(datetime(2026, 6, 1, 6, 0, tzinfo=UTC))
    app = make_app(sqlite_url, clock, catchup="0s")
    async with app:
        async with app.worker():
            pass  # its scheduler's first pass (before start() returns) records the trigger
        await clock.advance(timedelta(days=2, hours=4))
        async with app.worker():
            # The first pass, done when start() returned, skipped the missed ticks.
            assert await app.list_runs() == []
            await clock.advance(hours=21, seconds=1)  # the next tick fires normally
            runs = await completed_runs(app, 1)
    assert [r.event.data["scheduled_at"] for r in runs] == ["2026-06-04T07:00:00Z"]


async def test_a_new_trigger_does_not_fire_for_the_past(sqlite_url: str) -> None:
    clock = ManualClock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))
    app = make_app(sqlite_url, clock)
    async with app, app.worker():
        # The first pass, done when start() returned, recorded the trigger and fired nothing.
        assert await app.list_runs() == []
