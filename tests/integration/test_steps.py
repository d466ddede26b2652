"""Steps through the public SDK: memoization, parallelism, sleeps, sync functions, types."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pydantic
import pytest

import perdure
from perdure.testing import ManualClock

FAST = perdure.RetryPolicy(retries=4, initial_delay=0.01, max_delay=0.05)


def identity(i: int) -> int:
    """A sync step body that returns its argument."""
    return i


async def test_happy_path_runs_each_step_and_the_body_once(db_url: str) -> None:
    app = perdure.App("t", db_url)
    calls: list[str] = []
    body_calls = 0

    async def work(name: str) -> str:
        calls.append(name)
        return name.upper()

    @app.function()
    async def flow(ctx: perdure.Context) -> list[str]:
        nonlocal body_calls
        body_calls += 1
        a = await ctx.step.run("a", work, "a")
        b = await ctx.step.run("b", work, "b")
        c = await ctx.step.run("c", work, "c")
        return [a, b, c, ctx.event.data["x"]]

    async with app, app.worker():
        handle = await app.start(flow, {"x": 1})
        assert await handle.result(timeout=60) == ["A", "B", "C", 1]
        info = await app.get_run(handle.run_id)
    assert calls == ["a", "b", "c"]
    assert body_calls == 1
    assert info.status == perdure.RunStatus.COMPLETED
    assert [(s.id, s.status, s.output, s.attempts) for s in info.steps] == [
        ("a", "completed", "A", 1),
        ("b", "completed", "B", 1),
        ("c", "completed", "C", 1),
    ]
    assert info.event.name == "perdure/function.invoked"
    assert info.event.data == {"x": 1}
    assert info.started_at is not None and info.ended_at is not None


async def test_repeated_step_ids_get_distinct_keys(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function()
    async def loop(ctx: perdure.Context) -> list[int]:
        return [await ctx.step.run("same", identity, i) for i in range(3)]

    async with app, app.worker():
        handle = await app.start(loop)
        assert await handle.result(timeout=60) == [0, 1, 2]
        info = await app.get_run(handle.run_id)
    assert [s.id for s in info.steps] == ["same", "same:2", "same:3"]


async def test_steps_awaited_together_run_in_parallel(db_url: str) -> None:
    app = perdure.App("t", db_url)
    running = 0
    peak = 0

    async def slow(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.3)
        running -= 1
        return i * i

    @app.function()
    async def fan(ctx: perdure.Context) -> int:
        parts = await asyncio.gather(*(ctx.step.run(f"sq-{i}", slow, i) for i in range(8)))
        return sum(parts)

    async with app, app.worker():
        assert await (await app.start(fan)).result(timeout=60) == sum(i * i for i in range(8))
    assert peak == 8  # all eight bodies were running at once


async def test_sync_step_bodies_run_in_parallel_threads(sqlite_url: str) -> None:
    app = perdure.App("t", sqlite_url)

    lock = threading.Lock()
    running = peak = 0

    def blocking(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.3)
        with lock:
            running -= 1
        return i

    @app.function()
    async def fan(ctx: perdure.Context) -> list[int]:
        return list(
            await ctx.step.parallel(*(ctx.step.run(f"b{i}", blocking, i) for i in range(6)))
        )

    async with app, app.worker():
        assert await (await app.start(fan)).result(timeout=60) == list(range(6))
    assert peak > 1  # bodies overlapped on threads (how many: the step pool's size)


async def test_sleep_suspends_and_resumes_on_time(db_url: str) -> None:
    app = perdure.App("t", db_url)
    seen: list[float] = []

    @app.function()
    async def napper(ctx: perdure.Context) -> float:
        before = await ctx.step.run("before", time.time)
        await ctx.step.sleep("nap", timedelta(seconds=2))
        seen.append(time.time())
        return before

    async with app, app.worker():
        handle = await app.start(napper)
        # The run suspends: the worker holds no lease and the run is "sleeping" (seen before
        # the 2 s are over, however slow the machine: the status is read until then).
        statuses: set[perdure.RunStatus] = set()
        while not seen and perdure.RunStatus.SLEEPING not in statuses:
            statuses.add(await handle.status())
            await asyncio.sleep(0.01)
        assert perdure.RunStatus.SLEEPING in statuses, statuses
        before = await handle.result(timeout=60)
    resumed_after = seen[-1] - before
    # On time: a precise timer, not the next safety poll (2 s on PostgreSQL); the margin is
    # for a loaded machine.
    assert 2.0 <= resumed_after < 2.8, resumed_after


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    """Wait for ``check()`` to hold, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_seven_day_sleep_with_a_manual_clock(sqlite_url: str) -> None:
    clock = ManualClock()
    app = perdure.App("t", sqlite_url, clock=clock)

    @app.function()
    async def weekly(ctx: perdure.Context) -> str:
        await ctx.step.sleep("week", "7d")
        await ctx.step.sleep_until(
            "later", datetime.fromtimestamp(clock.now(), UTC) + timedelta(days=1)
        )
        return "done"

    async with app, app.worker():
        handle = await app.start(weekly)

        async def sleeping() -> bool:
            return (await handle.status()) == perdure.RunStatus.SLEEPING

        async def second_sleep() -> bool:
            info = await app.get_run(handle.run_id)
            return len(info.steps) == 2 and await sleeping()

        await eventually(sleeping, "the run to sleep")
        await clock.advance(days=6)
        await asyncio.sleep(0.2)  # grace for a wrong early wake-up (no event announces one)
        assert (await handle.status()) == perdure.RunStatus.SLEEPING
        await clock.advance(days=1)
        # The second sleep's wake time is computed from the clock: it must be recorded (and
        # the run asleep again) before the clock moves on.
        await eventually(second_sleep, "the run to sleep until the next day")
        await clock.advance(days=1, seconds=1)
        assert await handle.result(timeout=60) == "done"


async def test_sync_functions_use_blocking_steps(db_url: str) -> None:
    app = perdure.App("t", db_url)
    calls: list[int] = []

    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    @app.function()
    def pipeline(ctx: perdure.SyncContext) -> int:
        a = ctx.step.run("a", double, ctx.event.data["n"])
        ctx.step.sleep("tiny", 0.05)
        b = ctx.step.run("b", double, a)
        return b

    async with app, app.worker():
        assert await (await app.start(pipeline, {"n": 3})).result(timeout=60) == 12
    assert calls == [3, 6]


class Money(pydantic.BaseModel):
    amount: int
    currency: str


@dataclasses.dataclass
class Box:
    label: str
    items: list[int]


def make_money() -> Money:
    return Money(amount=5, currency="EUR")


def make_box() -> Box:
    return Box("b", [1, 2])


async def test_models_and_dataclasses_round_trip(db_url: str) -> None:
    app = perdure.App("t", db_url)
    seen: list[object] = []

    @app.function()
    async def typed(ctx: perdure.Context) -> dict[str, object]:
        money = await ctx.step.run("money", make_money)
        box = await ctx.step.run("box", make_box)
        seen.extend([money, box])
        await ctx.step.sleep("replay-me", 0.05)
        return {"amount": money.amount, "label": box.label}

    async with app, app.worker():
        assert await (await app.start(typed)).result(timeout=60) == {"amount": 5, "label": "b"}
    # Both the first execution and the replay after the sleep rebuilt the types.
    assert [type(v) for v in seen] == [Money, Box, Money, Box]
    assert seen[2] == Money(amount=5, currency="EUR")
    assert seen[3] == Box("b", [1, 2])


async def test_unserializable_step_output_fails_the_step(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function(retries=0)
    async def bad(ctx: perdure.Context) -> None:
        await ctx.step.run("obj", object)

    async with app, app.worker():
        with pytest.raises(perdure.RunFailedError, match="not JSON-serializable"):
            await (await app.start(bad)).result(timeout=60)


async def test_sync_functions_wait_invoke_and_send(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function()
    def child(ctx: perdure.SyncContext) -> int:
        return int(ctx.event.data["n"]) * 10

    @app.function()
    def parent(ctx: perdure.SyncContext) -> list[object]:
        got = ctx.step.invoke("child", function=child, data={"n": 4})
        ids = ctx.step.send_event("note", perdure.Event("sync.noted", {"v": got}))
        ev = ctx.step.wait_for_event("go", event="sync.go", timeout=30)
        late = ctx.step.wait_for_event("never", event="sync.never", timeout=0.2)
        return [got, len(ids), None if ev is None else ev.data["ok"], late]

    async with app, app.worker():
        handle = await app.start(parent)

        async def waiting() -> bool:
            return any(s.id == "go" for s in (await app.get_run(handle.run_id)).steps)

        await eventually(waiting, "the wait for sync.go to be recorded")
        await app.send(perdure.Event("sync.go", {"ok": True}))
        assert await handle.result(timeout=60) == [40, 1, True, None]


@pytest.mark.parametrize("step_id", ["", "x" * 201, "a\x00b", "lone\ud800"])
async def test_an_invalid_step_id_fails_the_run_and_writes_no_step(
    db_url: str, step_id: str
) -> None:
    app = perdure.App("t", db_url)

    async def work() -> str:
        return "never"

    @app.function(retries=0)
    async def flow(ctx: perdure.Context) -> str:
        return await ctx.step.run(step_id, work)

    async with app, app.worker():
        handle = await app.start(flow)
        with pytest.raises(perdure.RunFailedError) as err:
            await handle.result(timeout=30)
        assert err.value.error_type == "InvalidInputError"
        assert "a step id must be" in err.value.error_message
        assert (await app.get_run(handle.run_id)).steps == []
