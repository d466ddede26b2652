"""Operations through the SDK (docs/operations.md): the workers registry, pausing and resuming
a function, per-function retention (ManualClock), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

import perdure
from perdure.errors import FunctionNotFoundError, InvalidInputError
from perdure.testing import ManualClock

APPS = Path(__file__).resolve().parent.parent / "apps"
DEADLINE = 30.0


async def until(check: object, what: str, timeout: float = DEADLINE) -> None:
    """Wait (polling) until ``check()`` is true."""
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def make_app(db_url: str, **options: object) -> tuple[perdure.App, list[int]]:
    app = perdure.App("ops", db_url, **options)  # type: ignore[arg-type]
    order: list[int] = []

    @app.function(id="held")
    async def held(ctx: perdure.Context) -> int:
        order.append(ctx.event.data["n"])
        return int(ctx.event.data["n"])

    @app.function(id="free")
    async def free(ctx: perdure.Context) -> str:
        return "ok"

    return app, order


async def test_pause_queues_runs_and_resume_starts_them_in_order(db_url: str) -> None:
    app, order = make_app(db_url)
    async with app, app.worker():
        state = await app.pause("held")
        assert state.paused and state.paused_at is not None
        again = await app.pause("held")
        assert again.paused_at == state.paused_at  # pausing twice changes nothing
        handles = [await app.start("held", {"n": i}) for i in range(4)]  # local-lease path too
        # A run of another function started after them completes: the worker claimed past
        # the paused ones, which are still queued.
        assert await (await app.start("free")).result(timeout=DEADLINE) == "ok"
        for h in handles:
            assert (await h.status()) == perdure.RunStatus.QUEUED
        [rec] = [f for f in await app.query.list_functions() if f.id == "held"]
        assert rec.paused_at is not None
        await app.register()  # a sync rewrites the function rows: the pause stays
        assert (await app.start("free")).run_id
        assert (await handles[0].status()) == perdure.RunStatus.QUEUED
        resumed = await app.resume("held")
        assert not resumed.paused and resumed.paused_at is None
        assert [await h.result(timeout=DEADLINE) for h in handles] == [0, 1, 2, 3]
        assert order == [0, 1, 2, 3]
        with pytest.raises(FunctionNotFoundError):
            await app.pause("no-such-function")


def test_pause_sync_twins(sqlite_url: str) -> None:
    app, _ = make_app(sqlite_url)
    try:
        assert app.pause_sync("held").paused
        assert not app.resume_sync("held").paused
    finally:
        app.close_sync()


async def test_cron_of_a_paused_function_skips_its_ticks(db_url: str) -> None:
    clock = ManualClock(1_800_000_000.0)  # 2027-01-15 08:00:00 UTC
    app = perdure.App("cronops", db_url, clock=clock)

    @app.function(id="tick", trigger=perdure.cron("*/5 * * * *"))
    async def tick(ctx: perdure.Context) -> int:
        return 1

    async with app, app.worker() as worker:
        assert worker.scheduler is not None
        await app.pause("tick")
        await clock.advance(minutes=5)
        await worker.scheduler.tick()
        assert await app.list_runs(function="tick") == []  # the paused tick was skipped
        await app.resume("tick")
        await worker.scheduler.tick()
        assert await app.list_runs(function="tick") == []  # and never runs afterwards
        await clock.advance(minutes=5)
        await worker.scheduler.tick()
        [run] = await app.list_runs(function="tick")
        assert await app.handle(run.id).result(timeout=DEADLINE) == 1


async def test_retention_per_function_with_manual_clock(db_url: str) -> None:
    clock = ManualClock(1_800_000_000.0)
    app = perdure.App("keep", db_url, clock=clock, retention=timedelta(days=30))

    @app.function(id="short", retention=timedelta(days=1))
    async def short(ctx: perdure.Context) -> int:
        return 1

    @app.function(id="long")
    async def long(ctx: perdure.Context) -> int:
        return 2

    async with app, app.worker() as worker:
        assert worker.scheduler is not None
        s = await app.start("short")
        lg = await app.start("long")
        assert await s.result(timeout=DEADLINE) == 1 and await lg.result(timeout=DEADLINE) == 2
        # The worker's first pass started a pruning of its own: let it end first, or the
        # tick below finds it in flight and hands back its result (of the time before).
        if worker.scheduler.pruning is not None:
            await asyncio.wait_for(worker.scheduler.pruning, DEADLINE)
        await clock.advance(days=2)
        await worker.scheduler.tick()
        assert worker.scheduler.pruning is not None
        assert await worker.scheduler.pruning == 1
        assert [r.id for r in await app.list_runs()] == [lg.run_id]  # 'long' keeps 30 days
        await clock.advance(days=29)
        await worker.scheduler.tick()
        assert worker.scheduler.pruning is not None
        assert await worker.scheduler.pruning == 1
        assert await app.list_runs() == []
    with pytest.raises(InvalidInputError, match="retention"):
        app.function(id="bad", retention=timedelta(0))(short)


async def test_workers_registry_lists_and_stops(db_url: str) -> None:
    app, _ = make_app(db_url)
    async with app:
        worker = app.worker(concurrency=7, heartbeat_interval=0.2)
        await worker.start()
        try:
            [info] = await app.query.list_workers()
            assert info.id == worker.id and info.live and info.status == "live"
            assert info.pid == os.getpid() and info.app == "ops"
            assert sorted(info.functions) == ["free", "held"] and info.slots == 7
            first = info.last_heartbeat

            async def refreshed() -> bool:
                [now] = await app.query.list_workers()
                return now.last_heartbeat > first

            await until(refreshed, "a second heartbeat")
        finally:
            await worker.stop()
        assert await app.query.list_workers() == []
        [gone] = await app.query.list_workers(include_dead=True)
        assert gone.status == "stopped" and gone.stopped_at is not None


async def test_sigkilled_worker_stops_being_live(db_url: str) -> None:
    env = {**os.environ, "PERDURE_DATABASE_URL": db_url, "BEAT_SECONDS": "0.3"}
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, str(APPS / "beater.py")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    app = perdure.App("observer", db_url)
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.startswith("ready "), line
        wid = line.split()[1]
        async with app:
            [info] = [w for w in await app.query.list_workers() if w.id == wid]
            assert info.live and info.stale_after == pytest.approx(0.9)
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, DEADLINE)

            async def dead() -> bool:
                return wid not in {w.id for w in await app.query.list_workers()}

            await until(dead, "the killed worker to stop being live")
            [seen] = [w for w in await app.query.list_workers(include_dead=True) if w.id == wid]
            assert seen.status == "dead" and seen.stopped_at is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
