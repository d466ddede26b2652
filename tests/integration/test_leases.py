"""Leases: heartbeats keep long steps alive, dead workers are taken over, late writes fenced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

import perdure
from perdure.testing import ManualClock


async def until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait for ``check()`` to hold, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)


def stop_heartbeats(worker: perdure.Worker) -> None:
    """Make a worker look dead to the database (its runs keep executing in memory)."""
    names = ("perdure-heartbeat", "perdure-claim")
    found = [task for task in worker._tasks if task.get_name() in names]
    # Renamed or moved tasks would leave the worker alive and the test waiting for a takeover.
    assert sorted(t.get_name() for t in found) == sorted(names), worker._tasks
    for task in found:
        task.cancel()


async def test_heartbeats_keep_a_long_step_alive(db_url: str) -> None:
    app = perdure.App("t", db_url)
    executions = 0

    async def long_step() -> str:
        nonlocal executions
        executions += 1
        await asyncio.sleep(5.0)  # 2.5 leases: alive only through its renewals
        return "done"

    @app.function()
    async def slow(ctx: perdure.Context) -> str:
        return await ctx.step.run("long", long_step)

    async with app:
        # A lease of 2 s: a renewal fails to land in time only after a stall of the process
        # over 1.3 s (the worker renews every third of the lease).
        w1 = app.worker(lease_seconds=2.0, poll_interval=0.05)
        w2 = app.worker(lease_seconds=2.0, poll_interval=0.05)
        async with w1, w2:
            assert await (await app.start(slow)).result(timeout=60) == "done"
    assert executions == 1


async def test_a_dead_worker_is_taken_over_and_its_late_writes_are_rejected(db_url: str) -> None:
    app = perdure.App("t", db_url)
    gate = asyncio.Event()
    calls: list[str] = []
    left: list[str] = []

    async def step() -> str:
        calls.append("call")
        if len(calls) == 1:
            await gate.wait()  # the first worker hangs here, then "wakes up" late
            return "stale"
        return "fresh"

    @app.function()
    async def job(ctx: perdure.Context) -> str:
        try:
            return await ctx.step.run("s", step)
        finally:
            left.append("left")  # this execution of the function is over (returned or stopped)

    async with app:
        first = app.worker(lease_seconds=1.0, poll_interval=0.05)
        await first.start()
        handle = await app.start(job)
        await until(lambda: bool(calls), "the first worker to call the step")
        stop_heartbeats(first)  # the worker is now "dead" as far as the database knows
        async with app.worker(lease_seconds=1.0, poll_interval=0.05):
            assert await handle.result(timeout=60) == "fresh"
            gate.set()  # the first worker finishes its step after losing the lease
            # Its late checkpoint was answered (rejected) once its function is over.
            await until(lambda: len(left) == 2, "the first worker's function to end")
        run = await app.get_run(handle.run_id)
        await first.stop(grace=1)
    assert run.output == "fresh"
    assert [(s.id, s.output, s.attempts) for s in run.steps] == [("s", "fresh", 1)]


async def test_a_run_that_keeps_crashing_workers_fails(sqlite_url: str) -> None:
    clock = ManualClock()
    app = perdure.App("t", sqlite_url, clock=clock)

    @app.function(max_crashes=2)
    async def poison(ctx: perdure.Context) -> None:
        return None

    async with app:
        await app.register()
        handle = await app.start(poison)
        # Three workers claim it and die without a word (their leases expire).
        for i in range(3):
            claim = await app.store.claim(f"dead-{i}", ["poison"], 1, 30.0)
            assert [r.id for r in claim.runs] == [handle.run_id]
            await clock.advance(31)
        async with app.worker():
            with pytest.raises(perdure.RunFailedError) as err:
                await handle.result(timeout=60)
    assert err.value.error_type == "WorkerCrashError"
    assert "max_crashes=2" in err.value.error_message


async def test_graceful_stop_gives_runs_back_at_once(sqlite_url: str) -> None:
    app = perdure.App("t", sqlite_url)
    gate = asyncio.Event()
    calls = 0

    async def step() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await gate.wait()
        return "ok"

    @app.function()
    async def job(ctx: perdure.Context) -> str:
        return await ctx.step.run("s", step)

    async with app:
        w1 = app.worker(lease_seconds=60)
        await w1.start()
        handle = await app.start(job)
        await until(lambda: calls > 0, "the worker to call the step")
        await w1.stop(grace=0.2)  # shutdown: the run is released, not left to a 60 s lease
        assert (await handle.status()) == perdure.RunStatus.QUEUED
        async with app.worker(lease_seconds=60):
            assert await handle.result(timeout=60) == "ok"


async def test_a_graceful_stop_keeps_the_results_of_finished_steps(db_url: str) -> None:
    """A completed step's checkpoint may be held until the next write (it travels with the
    next step's or the outcome's commit); a graceful stop writes it before giving the run back,
    so the step does not run again."""
    app = perdure.App("t", db_url)
    outside = asyncio.Event()
    calls: list[str] = []
    executions = 0

    async def step(name: str) -> str:
        calls.append(name)
        return name

    @app.function()
    async def job(ctx: perdure.Context) -> list[str]:
        nonlocal executions
        executions += 1
        a = await ctx.step.run("a", step, "a")
        if executions == 1:
            await outside.wait()  # not a step: "a"'s checkpoint is still held here
        b = await ctx.step.run("b", step, "b")
        return [a, b]

    async with app:
        w1 = app.worker(lease_seconds=60)
        await w1.start()
        handle = await app.start(job)
        await until(lambda: calls == ["a"], "the worker to call step a")
        await w1.stop(grace=0.2)
        run = await app.get_run(handle.run_id)
        assert run.status == perdure.RunStatus.QUEUED
        assert [(s.id, s.status, s.output) for s in run.steps] == [("a", "completed", "a")]
        async with app.worker(lease_seconds=60):
            assert await handle.result(timeout=60) == ["a", "b"]
    assert calls == ["a", "b"]  # "a" ran once: its result survived the stop
    assert executions == 2
