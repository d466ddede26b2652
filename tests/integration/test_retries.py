"""Retries, errors, sagas and replay safety."""

from __future__ import annotations

import asyncio
import time

import pytest

import perdure
from perdure.testing import ManualClock

FAST = perdure.RetryPolicy(retries=4, initial_delay=0.01, max_delay=0.05)


async def wait_sleeping(handle: perdure.RunHandle, timeout: float = 60.0) -> None:
    """Wait for the run to be asleep, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (await handle.status()) != perdure.RunStatus.SLEEPING:
        if time.monotonic() > deadline:
            raise AssertionError(f"run {handle.run_id} did not sleep within {timeout:.0f} s")
        await asyncio.sleep(0.02)


async def test_a_failing_step_is_retried_then_succeeds(db_url: str) -> None:
    app = perdure.App("t", db_url, retry_policy=FAST)
    attempts = 0
    before_calls = 0

    def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError(f"boom {attempts}")
        return "ok"

    def before() -> int:
        nonlocal before_calls
        before_calls += 1
        return 1

    @app.function()
    async def fn(ctx: perdure.Context) -> str:
        await ctx.step.run("before", before)
        return await ctx.step.run("flaky", flaky)

    async with app, app.worker():
        handle = await app.start(fn)
        assert await handle.result(timeout=60) == "ok"
        info = await app.get_run(handle.run_id)
    assert attempts == 3
    assert before_calls == 1  # replays after each retry answer it from the checkpoint
    flaky_step = next(s for s in info.steps if s.id == "flaky")
    assert flaky_step.attempts == 3 and flaky_step.status == "completed"


async def test_exhausted_retries_fail_the_run_with_the_error(db_url: str) -> None:
    app = perdure.App("t", db_url, retry_policy=FAST)
    attempts = 0

    def always() -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("nope")

    @app.function(retries=2)
    async def fn(ctx: perdure.Context) -> None:
        await ctx.step.run("always", always)

    async with app, app.worker():
        handle = await app.start(fn)
        with pytest.raises(perdure.RunFailedError) as info:
            await handle.result(timeout=60)
        run = await app.get_run(handle.run_id)
    assert attempts == 3  # 1 + 2 retries
    assert info.value.error_type == "StepError"
    assert "ValueError: nope" in info.value.error_message
    assert run.status == perdure.RunStatus.FAILED
    assert run.error is not None and run.error["step_id"] == "always"
    assert run.error["cause"] == {"type": "ValueError", "message": "nope"}


async def test_non_retriable_error_stops_at_once(db_url: str) -> None:
    app = perdure.App("t", db_url, retry_policy=FAST)
    attempts = 0

    def fatal() -> None:
        nonlocal attempts
        attempts += 1
        raise perdure.NonRetriableError("card declined")

    @app.function()
    async def fn(ctx: perdure.Context) -> None:
        await ctx.step.run("charge", fatal)

    async with app, app.worker():
        with pytest.raises(perdure.RunFailedError, match="card declined"):
            await (await app.start(fn)).result(timeout=60)
    assert attempts == 1


async def test_retry_after_sets_the_delay(sqlite_url: str) -> None:
    app = perdure.App("t", sqlite_url, retry_policy=FAST)
    times: list[float] = []

    def limited() -> str:
        times.append(time.monotonic())
        if len(times) == 1:
            raise perdure.RetryAfterError("0.6s", "rate limited")
        return "ok"

    @app.function()
    async def fn(ctx: perdure.Context) -> str:
        return await ctx.step.run("call", limited)

    async with app, app.worker():
        assert await (await app.start(fn)).result(timeout=60) == "ok"
    assert times[1] - times[0] >= 0.6


async def test_errors_outside_steps_retry_the_run(db_url: str) -> None:
    app = perdure.App("t", db_url, retry_policy=FAST)
    step_calls = 0

    def once() -> int:
        nonlocal step_calls
        step_calls += 1
        return 7

    @app.function(retries=3)
    async def fn(ctx: perdure.Context) -> list[int]:
        value = await ctx.step.run("once", once)
        if ctx.attempt < 2:
            raise RuntimeError(f"flaky body on attempt {ctx.attempt}")
        return [value, ctx.attempt]

    async with app, app.worker():
        handle = await app.start(fn)
        assert await handle.result(timeout=60) == [7, 2]
    assert step_calls == 1


async def test_errors_outside_steps_exhaust_and_fail(db_url: str) -> None:
    app = perdure.App("t", db_url, retry_policy=FAST)

    @app.function(retries=1)
    async def fn(ctx: perdure.Context) -> None:
        raise KeyError("missing")

    async with app, app.worker():
        handle = await app.start(fn)
        with pytest.raises(perdure.RunFailedError) as info:
            await handle.result(timeout=60)
        run = await app.get_run(handle.run_id)
    assert info.value.error_type == "KeyError"
    assert run.attempt == 1


async def test_step_error_can_be_caught_to_compensate(db_url: str) -> None:
    app = perdure.App("t", db_url, retry_policy=FAST)
    log: list[str] = []

    def book(what: str) -> str:
        if what == "car":
            raise perdure.NonRetriableError("no cars left")
        log.append(f"book {what}")
        return f"{what}-1"

    def undo(what: str) -> None:
        log.append(f"undo {what}")

    @app.function()
    async def trip(ctx: perdure.Context) -> dict[str, str]:
        booked: list[str] = []
        try:
            for what in ("flight", "hotel", "car"):
                await ctx.step.run(f"book-{what}", book, what)
                booked.append(what)
        except perdure.StepError as err:
            for what in reversed(booked):
                await ctx.step.run(f"undo-{what}", undo, what)
            return {"failed": err.step_id, "type": err.error_type, "why": err.error_message}
        return {}

    async with app, app.worker():
        result = await (await app.start(trip)).result(timeout=60)
    assert result == {"failed": "book-car", "type": "NonRetriableError", "why": "no cars left"}
    assert log == ["book flight", "book hotel", "undo hotel", "undo flight"]


async def test_replay_that_no_longer_matches_fails_naming_the_step(sqlite_url: str) -> None:
    clock = ManualClock()  # the run sleeps until the test has changed the code
    app = perdure.App("t", sqlite_url, clock=clock)
    version = 1

    @app.function()
    async def evolving(ctx: perdure.Context) -> str:
        await ctx.step.run("first", lambda: 1)
        if version == 1:
            await ctx.step.run("second", lambda: 2)
        else:
            await ctx.step.run("renamed", lambda: 2)
        await ctx.step.sleep("wait", 0.3)
        return "done"

    async with app, app.worker():
        handle = await app.start(evolving)
        await wait_sleeping(handle)
        version = 2  # a deploy renames a step while the run sleeps
        await clock.advance(seconds=1)
        with pytest.raises(perdure.RunFailedError) as info:
            await handle.result(timeout=60)
    assert info.value.error_type == "NonDeterminismError"
    assert "'renamed'" in info.value.error_message and "'second'" in info.value.error_message


async def test_appending_steps_to_a_sleeping_run_is_fine(sqlite_url: str) -> None:
    clock = ManualClock()  # the run sleeps until the test has changed the code
    app = perdure.App("t", sqlite_url, clock=clock)
    version = 1

    @app.function()
    async def growing(ctx: perdure.Context) -> list[int]:
        out = [await ctx.step.run("a", lambda: 1)]
        await ctx.step.sleep("wait", 0.3)
        if version == 2:
            out.append(await ctx.step.run("added", lambda: 2))
        return out

    async with app, app.worker():
        handle = await app.start(growing)
        await wait_sleeping(handle)
        version = 2
        await clock.advance(seconds=1)
        assert await handle.result(timeout=60) == [1, 2]


async def test_removing_a_step_before_an_existing_one_is_detected(sqlite_url: str) -> None:
    clock = ManualClock()  # the run sleeps until the test has changed the code
    app = perdure.App("t", sqlite_url, clock=clock)
    version = 1

    @app.function()
    async def shrinking(ctx: perdure.Context) -> str:
        if version == 1:
            await ctx.step.run("gone", lambda: 0)
        await ctx.step.run("kept", lambda: 1)
        await ctx.step.sleep("wait", 0.3)
        return "done"

    async with app, app.worker():
        handle = await app.start(shrinking)
        await wait_sleeping(handle)
        version = 2
        await clock.advance(seconds=1)
        with pytest.raises(perdure.RunFailedError, match="'kept'"):
            await handle.result(timeout=60)
