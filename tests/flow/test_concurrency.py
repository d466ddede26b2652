"""Concurrency limits at the SDK level, on both backends, checked from measured intervals."""

from __future__ import annotations

import asyncio
import time

from flow_intervals import max_overlap, overlap_by_key, wait_for

import perdure
from perdure import Concurrency


async def completed(app: perdure.App, n: int, timeout: float = 60) -> None:
    async def check() -> bool:
        return len(await app.list_runs(status="completed", limit=n + 1)) >= n

    await wait_for(check, f"{n} completed runs", timeout)


async def test_per_key_and_global_limits_hold(db_url: str) -> None:
    app = perdure.App("t", db_url)
    ledger: list[tuple[str, float, float]] = []

    @app.function(concurrency=[Concurrency(3), Concurrency(1, key="event.data.k")])
    async def work(ctx: perdure.Context) -> None:
        async def body() -> None:
            start = time.monotonic()
            await asyncio.sleep(0.02)
            ledger.append((ctx.event.data["k"], start, time.monotonic()))

        await ctx.step.run("body", body)

    async with app, app.worker(concurrency=50):
        for i in range(36):
            await app.start(work, {"k": f"k{i % 6}"})
        await completed(app, 36)
    assert len(ledger) == 36
    assert max_overlap((s, e) for _, s, e in ledger) <= 3
    assert max(overlap_by_key(ledger).values()) == 1
    # The global limit is used: more than one key ran at once.
    assert max_overlap((s, e) for _, s, e in ledger) >= 2


async def test_env_scoped_pool_is_shared_by_functions(db_url: str) -> None:
    app = perdure.App("t", db_url)
    ledger: list[tuple[str, float, float]] = []
    pool = Concurrency(2, key="'payments-api'", scope="env")

    async def call(name: str) -> None:
        start = time.monotonic()
        await asyncio.sleep(0.02)
        ledger.append((name, start, time.monotonic()))

    @app.function(concurrency=pool)
    async def charge(ctx: perdure.Context) -> None:
        await ctx.step.run("call", call, "charge")

    @app.function(concurrency=pool)
    async def refund(ctx: perdure.Context) -> None:
        await ctx.step.run("call", call, "refund")

    async with app, app.worker():
        for _ in range(10):
            await app.start(charge, {})
            await app.start(refund, {})
        await completed(app, 20)
    assert max_overlap((s, e) for _, s, e in ledger) <= 2
    assert {n for n, _, _ in ledger} == {"charge", "refund"}


async def test_sleeping_runs_hold_no_slot(db_url: str) -> None:
    app = perdure.App("t", db_url)
    ledger: list[tuple[float, float]] = []

    @app.function(concurrency=1)
    async def napper(ctx: perdure.Context) -> None:
        async def body() -> None:
            start = time.monotonic()
            await asyncio.sleep(0.01)
            ledger.append((start, time.monotonic()))

        await ctx.step.run("a", body)
        await ctx.step.sleep("nap", 0.3)
        await ctx.step.run("b", body)

    async with app, app.worker():
        handles = [await app.start(napper, {}) for _ in range(3)]
        for h in handles:
            await h.result(timeout=60)
    assert len(ledger) == 6
    assert max_overlap(ledger) == 1
    # All three first steps ran before any second one: a sleeping run held no slot.
    firsts = sorted(ledger)[:3]
    assert max(e for _, e in firsts) <= min(s for s, _ in sorted(ledger)[3:])


async def test_changed_limit_takes_effect_without_restart(db_url: str) -> None:
    app = perdure.App("t", db_url)
    inside = 0
    peak = 0
    release = asyncio.Event()

    async def body() -> None:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        try:
            await release.wait()
        finally:
            inside -= 1

    @app.function(id="job", concurrency=1)
    async def job(ctx: perdure.Context) -> None:
        await ctx.step.run("body", body)

    other = perdure.App("t", db_url)

    @other.function(id="job", concurrency=3)
    async def job3(ctx: perdure.Context) -> None:  # the same function, re-registered
        await ctx.step.run("body", body)

    async with app, app.worker():
        handles = [await app.start(job, {}) for _ in range(3)]

        async def one_inside() -> bool:
            return inside == 1

        await wait_for(one_inside, "one run executing")
        # Re-register with limit 3 from another process's view; this worker keeps running.
        await other.register()
        await other.close()

        async def three_inside() -> bool:
            return inside == 3

        await wait_for(three_inside, "three runs executing under the new limit")
        release.set()
        for h in handles:
            await h.result(timeout=60)
    assert peak == 3


async def test_fairness_saturated_key_does_not_block_others(db_url: str) -> None:
    app = perdure.App("t", db_url)
    done: list[str] = []

    @app.function(concurrency=Concurrency(1, key="event.data.k"))
    async def work(ctx: perdure.Context) -> None:
        async def body() -> None:
            await asyncio.sleep(0.002)

        await ctx.step.run("body", body)
        done.append(ctx.event.data["k"])

    async with app:
        await app.send([perdure.Event(name="noop", data={})])  # open the store
        await app.register()
        for i in range(0, 1000, 100):
            await asyncio.gather(*(app.start(work, {"k": "A"}) for _ in range(100)))
            del i
        handle = await app.start(work, {"k": "B"})
        async with app.worker():
            await handle.result(timeout=60)
            a_done = done.count("A")
    # B was claimed at once: it did not wait for A's 1,000 runs (limit 1) ahead of it.
    assert a_done < 100, a_done


async def test_worker_concurrency_caps_runs_in_one_process(db_url: str) -> None:
    app = perdure.App("t", db_url)
    ledger: list[tuple[float, float]] = []

    @app.function
    async def plain(ctx: perdure.Context) -> None:
        async def body() -> None:
            start = time.monotonic()
            await asyncio.sleep(0.02)
            ledger.append((start, time.monotonic()))

        await ctx.step.run("body", body)

    async with app:
        await app.register()
        handles = [await app.start(plain, {}) for _ in range(12)]
        async with app.worker(concurrency=3):
            for h in handles:
                await h.result(timeout=60)
    assert max_overlap(ledger) <= 3
