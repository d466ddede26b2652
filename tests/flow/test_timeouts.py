"""timeouts: a run that did not start in time, or did not finish in time, is cancelled at the
deadline by the worker's sweeper, with the reason, on both backends (manual clock)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

import perdure
from perdure.testing import ManualClock

Check = Callable[[], Awaitable[bool]]


async def eventually(check: Check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def status_is(app: perdure.App, run_id: str, status: perdure.RunStatus) -> Check:
    async def check() -> bool:
        return (await app.get_run(run_id)).status == status

    return check


def timed_out(which: str, text: str, seconds: float) -> dict[str, object]:
    verb = "start" if which == "start" else "finish"
    return {
        "option": "timeouts",
        "decision": "cancelled",
        "message": f"did not {verb} within {text}",
        "timeout": which,
        "seconds": seconds,
    }


async def test_a_run_that_never_got_a_worker_slot_is_cancelled_at_its_start_deadline(
    db_url: str,
) -> None:
    clock = ManualClock()
    app = perdure.App("t", db_url, clock=clock)
    release = asyncio.Event()
    ran: list[str] = []

    @app.function()
    async def blocker(ctx: perdure.Context) -> None:
        await ctx.step.run("hold", release.wait)

    @app.function(timeouts=perdure.Timeouts(start="10m"))
    async def report(ctx: perdure.Context) -> None:
        ran.append("report")

    async with app, app.worker(concurrency=1) as worker:
        busy = await app.start(blocker)
        await eventually(status_is(app, busy.run_id, perdure.RunStatus.RUNNING), "the blocker")
        late = await app.start(report)
        await clock.advance(minutes=9)
        await asyncio.sleep(0.2)  # grace for a wrong early cancel (nothing announces one)
        assert (await app.get_run(late.run_id)).status == perdure.RunStatus.QUEUED
        await clock.advance(minutes=1, seconds=1)
        await eventually(status_is(app, late.run_id, perdure.RunStatus.CANCELLED), "the cancel")
        release.set()
        await busy.result(timeout=30)
        with pytest.raises(perdure.RunCancelledError):
            await late.result(timeout=30)
        run = await app.get_run(late.run_id)
        assert worker.deadlines is not None and worker.deadlines.cancelled == 1
    assert run.reason == timed_out("start", "10m", 600.0)
    assert run.started_at is None and ran == []


async def test_a_run_of_a_function_no_worker_hosts_is_cancelled_too(db_url: str) -> None:
    clock = ManualClock()
    app = perdure.App("t", db_url, clock=clock)

    @app.function(timeouts=perdure.Timeouts(start="1m"))
    async def hosted(ctx: perdure.Context) -> None: ...

    @app.function(timeouts=perdure.Timeouts(start="30s"))
    async def orphan(ctx: perdure.Context) -> None: ...

    async with app, app.worker(functions=["hosted"]):
        await app.register()
        handle = await app.start(orphan)
        await clock.advance(seconds=31)
        await eventually(status_is(app, handle.run_id, perdure.RunStatus.CANCELLED), "cancel")
        assert (await app.get_run(handle.run_id)).reason == timed_out("start", "30s", 30.0)


async def test_the_finish_timeout_cancels_a_sleeping_run(db_url: str) -> None:
    clock = ManualClock()
    app = perdure.App("t", db_url, clock=clock)
    woke: list[str] = []

    @app.function(timeouts=perdure.Timeouts(finish="1h"))
    async def long(ctx: perdure.Context) -> None:
        await ctx.step.sleep("nap", "2h")
        woke.append("woke")

    async with app, app.worker():
        handle = await app.start(long)
        await eventually(status_is(app, handle.run_id, perdure.RunStatus.SLEEPING), "sleep")
        await clock.advance(minutes=59)
        await asyncio.sleep(0.2)  # grace for a wrong early cancel
        assert (await app.get_run(handle.run_id)).status == perdure.RunStatus.SLEEPING
        await clock.advance(minutes=1, seconds=1)
        with pytest.raises(perdure.RunCancelledError):
            await handle.result(timeout=30)
        await clock.advance(hours=2)
        await asyncio.sleep(0.3)  # grace for a wrong resumption
        run = await app.get_run(handle.run_id)
    assert run.reason == timed_out("finish", "1h", 3600.0)
    assert run.status == perdure.RunStatus.CANCELLED and woke == []


async def test_the_finish_timeout_cancels_a_running_run_and_drops_its_step(db_url: str) -> None:
    clock = ManualClock()
    app = perdure.App("t", db_url, clock=clock)
    entered = asyncio.Event()
    release = asyncio.Event()
    after: list[str] = []

    async def slow() -> str:
        entered.set()
        await release.wait()
        return "late"

    @app.function(timeouts=perdure.Timeouts(start="1m", finish="20s"))
    async def job(ctx: perdure.Context) -> None:
        await ctx.step.run("slow", slow)
        after.append("next")

    async with app, app.worker():
        handle = await app.start(job)
        await asyncio.wait_for(entered.wait(), 30)
        await clock.advance(seconds=21)
        with pytest.raises(perdure.RunCancelledError):
            await handle.result(timeout=30)
        release.set()
        await asyncio.sleep(0.3)  # grace for a wrong late write
        run = await app.get_run(handle.run_id)
    assert run.reason == timed_out("finish", "20s", 20.0)
    assert run.steps == [] and after == []


async def test_runs_that_end_in_time_keep_no_reason(db_url: str) -> None:
    clock = ManualClock()
    app = perdure.App("t", db_url, clock=clock)

    @app.function(timeouts=perdure.Timeouts(start="1m", finish="1m"))
    async def quick(ctx: perdure.Context) -> int:
        return await ctx.step.run("one", lambda: 1)

    async with app, app.worker():
        handle = await app.start(quick)
        assert await handle.result(timeout=30) == 1
        await clock.advance(minutes=5)
        await asyncio.sleep(0.2)
        run = await app.get_run(handle.run_id)
    assert run.status == perdure.RunStatus.COMPLETED and run.reason is None
