"""Schedules created at run time (``app.schedules``), end to end with workers, on both backends.

Time is a ManualClock shared by every app of a test (one "machine"), so ticks hours apart are
tested in milliseconds; every wait is for the thing itself (a run, a status), with a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import perdure
from perdure.errors import InvalidCronError, PayloadTooLargeError
from perdure.testing import ManualClock

START = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)  # a Monday, 06:00 UTC
HOUR = 3600.0


def at(hour: int, minute: int = 0) -> str:
    return f"2026-06-01T{hour:02d}:{minute:02d}:00Z"


def make_app(url: str, clock: ManualClock | None, **options: Any) -> perdure.App:
    app = perdure.App("sched", url, clock=clock, **options)

    @app.function()
    async def report(ctx: perdure.Context) -> dict[str, Any]:
        scheduled = ctx.event.schedule
        return {
            "name": ctx.event.name,
            "data": ctx.event.data,
            "ts": ctx.event.ts,
            "schedule": None if scheduled is None else scheduled.to_dict(),
        }

    @app.function()
    async def hold(ctx: perdure.Context) -> str:
        await ctx.step.wait_for_event("release", event="sched/release", timeout=86400 * 30)
        return "released"

    return app


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.02)


async def runs_of(app: perdure.App, n: int, status: str = "completed") -> list[perdure.RunInfo]:
    """The runs in ``status``, once there are at least ``n`` (oldest first); a short grace lets
    a duplicate, which nothing would announce, show up too."""

    async def enough() -> bool:
        return len(await app.list_runs(status=status)) >= n

    await eventually(enough, f"{n} {status} run(s)")
    await asyncio.sleep(0.1)
    return list(reversed(await app.list_runs(status=status)))


def ticks(runs: list[perdure.RunInfo]) -> list[str]:
    return sorted(r.output["schedule"]["tick"] for r in runs)


async def test_a_tick_starts_one_run_with_the_data_the_id_and_the_tick(db_url: str) -> None:
    clock = ManualClock(START)
    app = make_app(db_url, clock)
    async with app, app.worker():
        info = await app.schedules.create(
            "hourly-report", "report", "0 * * * *", data={"to": "ops", "n": 1}
        )
        assert info.next_tick == START + timedelta(hours=1) and info.last_run_id is None
        await clock.advance(hours=1, seconds=1)
        [run] = await runs_of(app, 1)
    assert run.output == {
        "name": "perdure/scheduled.timer",
        "data": {"to": "ops", "n": 1},
        "ts": int((START.timestamp() + HOUR) * 1000),
        "schedule": {"id": "hourly-report", "tick": at(7), "manual": False},
    }
    assert run.event.schedule == perdure.ScheduleTick("hourly-report", START + timedelta(hours=1))
    assert run.event.to_dict()["schedule"] == {
        "id": "hourly-report",
        "tick": at(7),
        "manual": False,
    }
    assert run.idempotency_key == f"schedule:hourly-report:{int((START.timestamp() + HOUR) * 1000)}"
    async with app:
        info = await app.schedules.get("hourly-report")
    assert info.runs == 1 and info.last_run_id == run.id
    assert info.last_tick == START + timedelta(hours=1)
    assert info.next_tick == START + timedelta(hours=2)


async def test_two_schedulers_on_one_database_fire_one_run_per_tick(db_url: str) -> None:
    clock = ManualClock(START)
    apps = [make_app(db_url, clock) for _ in range(3)]
    for app in apps:
        await app.open()
    workers = [app.worker() for app in apps]
    try:
        for w in workers:
            await w.start()
        await apps[1].schedules.create("every-hour", "report", "0 * * * *", data={"k": 1})
        for n in (1, 2, 3):
            await clock.advance(hours=1)
            runs = await runs_of(apps[0], n)
        assert ticks(runs) == [at(7), at(8), at(9)]
        info = await apps[2].schedules.get("every-hour")
        assert info.runs == 3 and info.skipped_overlap == 0
    finally:
        for w in workers:
            await w.stop()
        for app in apps:
            await app.close()


async def release_and_wait(app: perdure.App, waiting: int) -> None:
    async def all_waiting() -> bool:
        return len(await app.list_runs(status="waiting")) >= waiting

    await eventually(all_waiting, f"{waiting} waiting run(s)")
    await app.send(perdure.Event("sched/release"))


async def test_overlap_skip_starts_no_run_while_the_previous_one_is_active(db_url: str) -> None:
    clock = ManualClock(START)
    app = make_app(db_url, clock)
    async with app, app.worker():
        await app.schedules.create("held", "hold", "0 * * * *")  # overlap="skip"
        await clock.advance(hours=1)  # 07:00: a run starts and waits

        async def waiting() -> bool:
            return len(await app.list_runs(status="waiting")) == 1

        await eventually(waiting, "the first run waits")
        await clock.advance(hours=1)  # 08:00: skipped, the 07:00 run is still waiting

        async def skipped() -> bool:
            return (await app.schedules.get("held")).skipped_overlap == 1

        await eventually(skipped, "the 08:00 tick is skipped")
        assert len(await app.list_runs()) == 1
        await release_and_wait(app, 1)
        await runs_of(app, 1)
        await clock.advance(hours=1)  # 09:00: the previous run has ended, so this one starts
        await eventually(waiting, "the 09:00 run waits")
        info = await app.schedules.get("held")
        assert (info.runs, info.skipped_overlap) == (2, 1)
        assert len(await app.list_runs()) == 2


async def test_overlap_allow_starts_a_run_at_every_tick(db_url: str) -> None:
    clock = ManualClock(START)
    app = make_app(db_url, clock)
    async with app, app.worker():
        await app.schedules.create("held", "hold", "0 * * * *", overlap="allow")
        for n in (1, 2):
            await clock.advance(hours=1)

            async def started(n: int = n) -> bool:
                return (await app.schedules.get("held")).runs == n

            # this tick's run, before the clock moves on (else the tick would be "missed")
            await eventually(started, f"run {n} started")
        await release_and_wait(app, 2)
        runs = await runs_of(app, 2)
        assert [r.output for r in runs] == ["released", "released"]
        info = await app.schedules.get("held")
        assert (info.runs, info.skipped_overlap) == (2, 0)


async def down_for(url: str, clock: ManualClock, catchup: str, **options: Any) -> perdure.App:
    """Create an hourly schedule at 06:00 with no worker running, and stay down until 11:30
    (the ticks of 07:00 to 11:00 are missed); return the app, open."""
    app = make_app(url, clock)
    await app.open()
    await app.register()
    await app.schedules.create(
        "catch", "report", "0 * * * *", catchup=catchup, overlap="allow", **options
    )
    await clock.advance(hours=5, minutes=30)
    return app


async def test_catchup_latest_runs_the_most_recent_missed_tick_once(db_url: str) -> None:
    clock = ManualClock(START)
    app = await down_for(db_url, clock, "latest")
    try:
        async with app.worker():
            runs = await runs_of(app, 1)
            assert ticks(runs) == [at(11)]
            info = await app.schedules.get("catch")
            assert (info.runs, info.missed) == (1, 4)
            assert info.next_tick == START + timedelta(hours=6)
    finally:
        await app.close()


async def test_catchup_none_skips_the_missed_ticks(db_url: str) -> None:
    clock = ManualClock(START)
    app = await down_for(db_url, clock, "none")
    try:
        async with app.worker():
            # the worker's first pass, done when start() returned, skipped them all
            assert await app.list_runs() == []
            info = await app.schedules.get("catch")
            assert (info.runs, info.missed) == (0, 5)
            await clock.advance(minutes=30)  # 12:00 fires as usual
            assert ticks(await runs_of(app, 1)) == [at(12)]
    finally:
        await app.close()


async def test_catchup_all_runs_every_missed_tick_within_the_window(db_url: str) -> None:
    clock = ManualClock(START)
    app = await down_for(db_url, clock, "all")
    try:
        async with app.worker():
            runs = await runs_of(app, 5)
            assert ticks(runs) == [at(7), at(8), at(9), at(10), at(11)]
            # oldest first: the runs were created in tick order
            assert [r.output["schedule"]["tick"] for r in runs] == ticks(runs)
            info = await app.schedules.get("catch")
            assert (info.runs, info.missed) == (5, 0)
    finally:
        await app.close()


async def test_catchup_all_is_limited_to_the_window(db_url: str) -> None:
    clock = ManualClock(START)
    app = await down_for(db_url, clock, "all", catchup_window="2h")
    try:
        async with app.worker():
            runs = await runs_of(app, 2)
            assert ticks(runs) == [at(10), at(11)]  # 09:00 is 2.5 h old
            assert (await app.schedules.get("catch")).missed == 3
    finally:
        await app.close()


async def test_a_paused_schedule_does_not_fire_and_resumes_after_now(db_url: str) -> None:
    clock = ManualClock(START)
    app = make_app(db_url, clock)
    async with app, app.worker():
        await app.schedules.create("p", "report", "0 * * * *")
        paused = await app.schedules.pause("p")
        assert paused.paused and paused.next_tick is None
        assert (await app.schedules.pause("p")).paused  # pausing again is harmless
        await clock.advance(hours=1, minutes=30)  # 07:00 passes while paused
        await asyncio.sleep(0.2)
        assert await app.list_runs() == []
        resumed = await app.schedules.resume("p")
        assert not resumed.paused
        assert resumed.last_tick == START + timedelta(hours=1, minutes=30)
        assert resumed.next_tick == START + timedelta(hours=2)
        await clock.advance(minutes=30)
        assert ticks(await runs_of(app, 1)) == [at(8)]  # 07:00 never runs
        info = await app.schedules.get("p")
        assert (info.runs, info.missed) == (1, 0)


async def test_a_deleted_schedule_stops(db_url: str) -> None:
    clock = ManualClock(START)
    app = make_app(db_url, clock)
    async with app, app.worker():
        await app.schedules.create("d", "report", "0 * * * *")
        await clock.advance(hours=1)
        await runs_of(app, 1)
        await app.schedules.delete("d")
        with pytest.raises(perdure.ScheduleNotFoundError):
            await app.schedules.get("d")
        with pytest.raises(perdure.ScheduleNotFoundError):
            await app.schedules.delete("d")
        await clock.advance(hours=2)
        await asyncio.sleep(0.3)
        assert len(await app.list_runs()) == 1
        # the id can be used again, and the new schedule starts afresh
        again = await app.schedules.create("d", "report", "0 * * * *", data={"v": 2})
        assert again.runs == 0 and again.next_tick == START + timedelta(hours=4)


async def test_trigger_starts_one_run_now_even_when_paused(db_url: str) -> None:
    clock = ManualClock(START)
    app = make_app(db_url, clock)
    async with app, app.worker():
        await app.schedules.create("t", "report", "0 0 1 1 *", data={"x": 1}, paused=True)
        handle = await app.schedules.trigger("t")
        assert handle.created
        out = await handle.result(timeout=30)
        assert out["data"] == {"x": 1}
        assert out["schedule"] == {"id": "t", "tick": at(6), "manual": True}
        info = await app.schedules.get("t")
        assert info.paused and info.runs == 1 and info.last_run_id == handle.run_id
        with pytest.raises(perdure.ScheduleNotFoundError, match="'nope'"):
            await app.schedules.trigger("nope")


async def test_create_get_and_list(db_url: str) -> None:
    clock = ManualClock(START)
    app = make_app(db_url, clock)
    async with app:
        await app.register()
        for sid, fn in [("b", "hold"), ("a", "report"), ("c", "report")]:
            await app.schedules.create(
                sid,
                fn,
                "30 9 * * 1-5",
                tz="Europe/Paris",
                catchup="all",
                catchup_window=timedelta(hours=2),
            )
        a = await app.schedules.get("a")
        assert (a.id, a.function_id, a.cron, a.tz, a.data) == (
            "a",
            "report",
            "30 9 * * 1-5",
            "Europe/Paris",
            {},
        )
        assert (a.overlap, a.catchup, a.catchup_window, a.paused) == ("skip", "all", 7200.0, False)
        assert a.next_tick == datetime(2026, 6, 1, 7, 30, tzinfo=UTC)  # 09:30 in Paris
        assert a.created_at == a.updated_at == START
        assert [s.id for s in await app.schedules.list()] == ["a", "b", "c"]
        assert [s.id for s in await app.schedules.list(function="report")] == ["a", "c"]
        page = await app.schedules.page(limit=2)
        assert [s.id for s in page.items] == ["a", "b"] and page.next_cursor == "b"
        rest = await app.schedules.page(after=page.next_cursor, limit=2)
        assert [s.id for s in rest.items] == ["c"] and rest.next_cursor is None
        with pytest.raises(perdure.ScheduleNotFoundError):
            await app.schedules.get("missing")
        with pytest.raises(perdure.ScheduleNotFoundError):
            await app.schedules.pause("not a valid id")


async def test_bad_arguments_are_refused_with_precise_errors(db_url: str) -> None:
    app = make_app(db_url, ManualClock(START), limits=perdure.Limits(run_input=2048))
    async with app:
        await app.register()
        await app.schedules.create("taken", "report", "@daily")
        with pytest.raises(perdure.ScheduleExistsError, match="'taken' already exists"):
            await app.schedules.create("taken", "hold", "@hourly")
        with pytest.raises(perdure.FunctionNotFoundError, match="'ghost'"):
            await app.schedules.create("s", "ghost", "@daily")
        with pytest.raises(InvalidCronError, match="minute"):
            await app.schedules.create("s", "report", "61 * * * *")
        with pytest.raises(InvalidCronError, match="unknown time zone 'Mars/Olympus'"):
            await app.schedules.create("s", "report", "@daily", tz="Mars/Olympus")
        with pytest.raises(perdure.InvalidInputError, match="overlap must be one of"):
            await app.schedules.create("s", "report", "@daily", overlap="queue")
        with pytest.raises(perdure.InvalidInputError, match="catchup must be one of"):
            await app.schedules.create("s", "report", "@daily", catchup="some")
        with pytest.raises(perdure.InvalidInputError, match="invalid duration"):
            await app.schedules.create("s", "report", "@daily", catchup_window="-1h")
        with pytest.raises(perdure.InvalidInputError, match="must be a JSON object"):
            await app.schedules.create("s", "report", "@daily", data=[1, 2])  # type: ignore[arg-type]
        with pytest.raises(perdure.InvalidInputError, match="schedule id 'a b'"):
            await app.schedules.create("a b", "report", "@daily")
        with pytest.raises(perdure.InvalidInputError, match="schedule id"):
            await app.schedules.create("x" * 129, "report", "@daily")
        with pytest.raises(PayloadTooLargeError, match="over the limit of 2048"):
            await app.schedules.create("s", "report", "@daily", data={"blob": "x" * 4000})
        assert [s.id for s in await app.schedules.list()] == ["taken"]


async def test_a_schedule_created_in_this_process_wakes_its_scheduler(sqlite_url: str) -> None:
    # the system clock, and a scheduler that would otherwise look again only after a minute
    app = make_app(sqlite_url, None)
    async with app, app.worker() as worker:
        assert worker.scheduler is not None
        worker.scheduler.poll_interval = 60.0
        await asyncio.sleep(0.1)  # the scheduler is asleep, with nothing scheduled
        await app.schedules.create("now", "report", "* * * * * *", overlap="allow")
        runs = await runs_of(app, 1)
        assert runs[0].output["schedule"]["id"] == "now"
        await app.schedules.pause("now")


async def test_a_schedule_created_by_another_process_is_seen_within_a_poll(
    sqlite_url: str,
) -> None:
    worker_app = make_app(sqlite_url, None)
    client_app = make_app(sqlite_url, None)  # another runtime: no local scheduler to wake
    async with worker_app, client_app, worker_app.worker() as worker:
        assert worker.scheduler is not None
        worker.scheduler.poll_interval = 0.2
        await client_app.schedules.create("elsewhere", "report", "* * * * * *")
        runs = await runs_of(worker_app, 1)
        assert runs[0].output["schedule"]["id"] == "elsewhere"
        await client_app.schedules.pause("elsewhere")


def test_sync_twins(sqlite_url: str) -> None:
    clock = ManualClock(START)
    app = make_app(sqlite_url, clock)
    try:
        info = app.schedules.create_sync("s", "report", "0 * * * *", data={"sync": True})
        assert app.schedules.get_sync("s") == info
        assert [s.id for s in app.schedules.list_sync()] == ["s"]
        assert app.schedules.pause_sync("s").paused
        assert not app.schedules.resume_sync("s").paused
        handle = app.schedules.trigger_sync("s")
        assert handle.run_id == app.schedules.get_sync("s").last_run_id
        app.schedules.delete_sync("s")
        assert app.schedules.list_sync() == []
    finally:
        app.close_sync()


async def test_the_runs_of_a_schedule_go_through_flow_control(db_url: str) -> None:
    clock = ManualClock(START)
    app = perdure.App("sched", db_url, clock=clock)

    @app.function(rate_limit=perdure.RateLimit(1, "1h"))
    async def limited(ctx: perdure.Context) -> str:
        assert ctx.event.schedule is not None
        return ctx.event.schedule.tick.isoformat()

    async with app, app.worker():
        await app.schedules.create("rl", limited, "0 * * * *")  # overlap="skip"
        first = await app.schedules.trigger("rl")
        assert await first.result(timeout=30) == "2026-06-01T06:00:00+00:00"
        second = await app.schedules.trigger("rl")  # within the hour: the rate limit skips it
        run = await app.get_run(second.run_id)
        assert run.status == perdure.RunStatus.SKIPPED and run.reason
        assert (await app.schedules.get("rl")).last_run_id == second.run_id
        # a skipped run has ended: the next tick is not an overlap, and a new hour has begun
        await clock.advance(hours=1)

        async def third() -> bool:
            return (await app.schedules.get("rl")).runs == 3

        await eventually(third, "the 07:00 tick's run")
        info = await app.schedules.get("rl")
        assert info.skipped_overlap == 0 and info.last_run_id is not None
        done = await app.handle(info.last_run_id).result(timeout=30)
        assert done == "2026-06-01T07:00:00+00:00"
