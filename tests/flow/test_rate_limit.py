"""Rate limit: runs over the limit are recorded as skipped, with the reason, on both backends;
the bound holds in every sliding window and under concurrent senders."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gate_helpers import clock, runs_with, table_rows

import perdure
from perdure.testing import ManualClock


def make_app(url: str, clk: ManualClock, limit: int = 2, period: str = "1m") -> perdure.App:
    app = perdure.App("rl", url, clock=clk)

    @app.function(
        id="notify",
        trigger=perdure.event("user/signed-up"),
        rate_limit=perdure.RateLimit(limit, period, key="event.data.user"),
    )
    async def notify(ctx: perdure.Context) -> Any:
        return ctx.event.data["n"]

    return app


async def test_runs_over_the_limit_are_skipped_with_the_reason(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk)
    async with app:
        await app.register()
        sent = await app.send_detailed(
            [perdure.Event("user/signed-up", {"user": "ann", "n": i}) for i in range(4)]
            + [perdure.Event("user/signed-up", {"user": "bob", "n": 9})]
        )
        assert [len(s.run_ids) for s in sent] == [1, 1, 1, 1, 1]
        assert [len(s.skipped) for s in sent] == [0, 0, 1, 1, 0]
        skipped = await app.list_runs(status="skipped")
        assert sorted(r.event.data["n"] for r in skipped) == [2, 3]
        run = await app.get_run(sent[2].skipped[0])
        assert run.status == perdure.RunStatus.SKIPPED
        assert run.ended_at is not None and run.started_at is None
        assert run.reason is not None
        assert run.reason["option"] == "rate_limit"
        assert run.reason["decision"] == "skipped"
        assert run.reason["key"] == "ann"
        assert (run.reason["limit"], run.reason["period"]) == (2, 60.0)
        # A skipped run is terminal: cancelling it changes nothing.
        assert (await app.cancel(run.id)).status == perdure.RunStatus.SKIPPED
        async with app.worker():
            done = await runs_with(app, "completed", 3)
        assert sorted(r.output for r in done) == [0, 1, 9]
        assert len(await app.list_runs(status="skipped")) == 2


async def test_the_window_slides(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk, limit=2, period="10s")

    async def admitted_at(user: str = "ann") -> bool:
        (s,) = await app.send_detailed([perdure.Event("user/signed-up", {"user": user, "n": 0})])
        return not s.skipped

    async with app:
        await app.register()
        assert await admitted_at()  # t = 0
        await clk.advance(seconds=6)
        assert await admitted_at()  # t = 6
        assert not await admitted_at()  # t = 6: two in (-4, 6]
        await clk.advance(seconds=4)
        assert await admitted_at()  # t = 10: the one at 0 left the window (0, 10]
        assert not await admitted_at()
        await clk.advance(seconds=5.5)
        assert not await admitted_at()  # t = 15.5: 6 and 10 are in (5.5, 15.5]
        await clk.advance(seconds=0.5)
        assert await admitted_at()  # t = 16: the one at 6 left
        assert not await admitted_at()
        # A quiet key forgets its state: prune deletes it, and it starts afresh.
        await clk.advance(seconds=60)
        assert table_rows(db_url, "flow_rate_heads") == 1
        await app.runtime.store.prune(0, 100)
        assert table_rows(db_url, "flow_rate_heads") == 0
        assert table_rows(db_url, "flow_rate_slots") == 0
        assert await admitted_at()
        assert await admitted_at()
        assert not await admitted_at()


async def test_app_start_is_rate_limited_and_the_handle_says_so(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk, limit=1)
    async with app:
        await app.register()
        first = await app.start("notify", {"user": "ann", "n": 1})
        second = await app.start("notify", {"user": "ann", "n": 2})
        assert (await second.status()) == perdure.RunStatus.SKIPPED
        assert (await first.status()) == perdure.RunStatus.QUEUED
        with pytest.raises(perdure.RunFailedError, match="skipped"):
            await second.result(timeout=10)


async def test_concurrent_senders_never_exceed_the_limit(db_url: str) -> None:
    clk = clock()
    apps = [make_app(db_url, clk, limit=5, period="1h") for _ in range(2)]
    for app in apps:
        await app.register()
    try:

        async def one(app: perdure.App, i: int) -> list[perdure.SentEvent]:
            return await app.send_detailed(
                [perdure.Event("user/signed-up", {"user": "ann", "n": i})]
            )

        sent = await asyncio.gather(*(one(apps[i % 2], i) for i in range(40)))
        admitted = [s for (s,) in sent if not s.skipped]
        assert len(admitted) == 5
        assert len(await apps[0].list_runs(status="skipped", limit=100)) == 35
        assert len(await apps[0].list_runs(status="queued", limit=100)) == 5
    finally:
        for app in apps:
            await app.close()


async def test_a_changed_limit_keeps_the_recent_admissions(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk, limit=3, period="1m")
    async with app:
        await app.register()
        for _ in range(3):
            await app.send(perdure.Event("user/signed-up", {"user": "ann", "n": 0}))
    smaller = make_app(db_url, clk, limit=2, period="1m")
    async with smaller:
        await smaller.register()
        (s,) = await smaller.send_detailed(
            [perdure.Event("user/signed-up", {"user": "ann", "n": 1})]
        )
        assert s.skipped  # three in the window already: over the new limit of two
    larger = make_app(db_url, clk, limit=4, period="1m")
    async with larger:
        await larger.register()
        got = await larger.send_detailed(
            [perdure.Event("user/signed-up", {"user": "ann", "n": 2}) for _ in range(2)]
        )
        # The ring kept the newest two of the three when it shrank: room for two more.
        assert [bool(s.skipped) for s in got] == [False, False]


async def test_invoked_runs_pass_the_creation_gates(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk, limit=1, period="1h")

    @app.function(id="parent")
    async def parent(ctx: perdure.Context) -> Any:
        a = await ctx.step.invoke("a", function="notify", data={"user": "ann", "n": 1})
        b = await ctx.step.invoke("b", function="notify", data={"user": "ann", "n": 2})
        return [a, b]

    async with app:
        await app.register()
        async with app.worker():
            handle = await app.start("parent")
            assert await handle.result(timeout=30) == [1, 2]
        assert await app.list_runs(status="skipped") == []
