"""Decorator cron triggers with the schedules' policies: ``perdure.cron(..., catchup=...,
overlap=...)`` (the default behaviour is in test_cron.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import perdure
from perdure.functions import trigger_from_dict
from perdure.testing import ManualClock

START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)


def hourly_app(url: str, clock: ManualClock, trigger: perdure.CronTrigger) -> perdure.App:
    app = perdure.App("cronpol", url, clock=clock)

    @app.function(trigger=trigger)
    async def tick(ctx: perdure.Context) -> dict[str, Any]:
        return dict(ctx.event.data)

    return app


async def completed(app: perdure.App, n: int) -> list[dict[str, Any]]:
    async def enough() -> bool:
        return len(await app.list_runs(status="completed")) >= n

    await eventually(enough, f"{n} completed run(s)")
    await asyncio.sleep(0.1)
    runs = await app.list_runs(status="completed")
    return sorted((r.output for r in runs), key=lambda o: o["scheduled_at"])


async def after_downtime(app: perdure.App, clock: ManualClock) -> None:
    async with app.worker():
        pass  # the first pass records the trigger
    await clock.advance(hours=5, minutes=30)  # the ticks of 07:00 to 11:00 are missed


async def test_catchup_all_runs_every_missed_tick_in_the_window(db_url: str) -> None:
    clock = ManualClock(START)
    trigger = perdure.cron("0 * * * *", catchup="all", catchup_window="3h")
    app = hourly_app(db_url, clock, trigger)
    async with app:
        await after_downtime(app, clock)
        async with app.worker():
            outs = await completed(app, 3)
    assert [o["scheduled_at"] for o in outs] == [
        "2026-06-01T09:00:00Z",
        "2026-06-01T10:00:00Z",
        "2026-06-01T11:00:00Z",
    ]
    assert [o["missed"] for o in outs] == [2, 0, 0]  # 07:00 and 08:00 were too old


async def test_catchup_none_runs_nothing_late(db_url: str) -> None:
    clock = ManualClock(START)
    app = hourly_app(db_url, clock, perdure.cron("0 * * * *", catchup="none"))
    async with app:
        await after_downtime(app, clock)
        async with app.worker():
            assert await app.list_runs() == []
            await clock.advance(minutes=30, seconds=1)
            outs = await completed(app, 1)
    assert [o["scheduled_at"] for o in outs] == ["2026-06-01T12:00:00Z"]


@pytest.mark.parametrize("flow", [False, True], ids=["plain", "flow-control"])
async def test_overlap_skip_on_a_cron_trigger(db_url: str, flow: bool) -> None:
    clock = ManualClock(START)
    app = perdure.App("cronpol", db_url, clock=clock)
    # with a concurrency limit, the runs are created through the flow-control path
    options: dict[str, Any] = {"concurrency": perdure.Concurrency(5)} if flow else {}

    @app.function(trigger=perdure.cron("0 * * * *", overlap="skip"), **options)
    async def held(ctx: perdure.Context) -> str:
        await ctx.step.wait_for_event("go", event="cronpol/go", timeout=timedelta(days=30))
        return str(ctx.event.data["scheduled_at"])

    async def count(status: str | None = None) -> int:
        return len(await app.list_runs(status=status))

    async with app, app.worker():
        await clock.advance(hours=1)  # 07:00 starts a run, which waits

        async def one_waiting() -> bool:
            return await count("waiting") == 1

        await eventually(one_waiting, "the 07:00 run waits")
        await clock.advance(hours=1)  # 08:00: skipped while the 07:00 run is active

        async def recorded() -> bool:
            last = await app.store.cron_last_tick("held", "0 * * * *@UTC")
            return last == START.timestamp() + 7200

        await eventually(recorded, "the 08:00 tick is handled")
        assert await count() == 1
        await app.send(perdure.Event("cronpol/go"))

        async def done() -> bool:
            return await count("completed") == 1

        await eventually(done, "the 07:00 run ends")
        await clock.advance(hours=1)  # 09:00 starts again
        await eventually(one_waiting, "the 09:00 run waits")
        assert await count() == 2


def test_cron_policies_are_validated_and_stored() -> None:
    assert perdure.cron("@daily").catchup == "latest"
    assert perdure.cron("@daily").overlap == "allow"
    legacy = perdure.cron("@daily", catchup=timedelta(hours=2))
    assert (legacy.catchup, legacy.catchup_seconds) == ("latest", 7200.0)
    assert perdure.cron("@daily", catchup="0s").catchup_seconds == 0.0
    every = perdure.cron("@daily", catchup="all", catchup_window=600, overlap="skip")
    assert (every.catchup, every.catchup_seconds, every.overlap) == ("all", 600.0, "skip")
    assert every.to_dict() == {
        "cron": "@daily",
        "tz": "UTC",
        "catchup": 600.0,
        "catchup_policy": "all",
        "overlap": "skip",
    }
    assert trigger_from_dict(every.to_dict()) == every
    # a record stored before the policies existed reads as today's behaviour
    old = trigger_from_dict({"cron": "@daily", "tz": "UTC", "catchup": 60.0})
    assert isinstance(old, perdure.CronTrigger)
    assert (old.catchup, old.overlap) == ("latest", "allow")
    with pytest.raises(perdure.InvalidInputError, match="overlap must be one of"):
        perdure.cron("@daily", overlap="queue")
    with pytest.raises(perdure.InvalidInputError, match="invalid duration 'everything'"):
        perdure.cron("@daily", catchup="everything")
    with pytest.raises(perdure.InvalidInputError, match="do not also give catchup_window"):
        perdure.cron("@daily", catchup="1h", catchup_window="2h")
