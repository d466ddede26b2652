"""Singleton: at most one active run per key; ``skip`` records new runs as skipped while one
is active, ``cancel`` cancels the active one (with the reason) and starts the new one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gate_helpers import clock, eventually, runs_with

import perdure
from perdure.testing import ManualClock


def make_app(url: str, clk: ManualClock, mode: str = "skip") -> perdure.App:
    app = perdure.App("sg", url, clock=clk)

    @app.function(
        id="sync_account",
        trigger=perdure.event("account/changed"),
        singleton=perdure.Singleton(key="event.data.account", mode=mode),  # type: ignore[arg-type]
    )
    async def sync_account(ctx: perdure.Context) -> Any:
        await ctx.step.sleep("settle", "1m")
        return ctx.event.data["n"]

    return app


def changed(account: str, n: int) -> perdure.Event:
    return perdure.Event("account/changed", {"account": account, "n": n})


async def test_skip_mode_skips_while_a_run_is_active(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk)
    async with app:
        await app.register()
        (a,) = await app.send_detailed([changed("acme", 1)])
        (b,) = await app.send_detailed([changed("acme", 2)])
        (c,) = await app.send_detailed([changed("other", 3)])
        assert not a.skipped and b.skipped == b.run_ids and not c.skipped
        skipped = await app.get_run(b.run_ids[0])
        assert skipped.status == perdure.RunStatus.SKIPPED
        assert skipped.reason is not None
        assert skipped.reason["option"] == "singleton"
        assert skipped.reason["active_run_id"] == a.run_ids[0]
        async with app.worker():
            await eventually(
                lambda: app.get_run(a.run_ids[0]),
                lambda r: r.status == perdure.RunStatus.SLEEPING,
                "the first run sleeping",
            )
            # Sleeping is active too.
            (d,) = await app.send_detailed([changed("acme", 4)])
            assert d.skipped
            await clk.advance(minutes=2)
            await runs_with(app, "completed", 2)
            # Once it ended, a new run starts.
            (e,) = await app.send_detailed([changed("acme", 5)])
            assert not e.skipped


async def test_cancel_mode_replaces_the_active_run(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk, mode="cancel")
    async with app:
        await app.register()
        async with app.worker():
            first = await app.start("sync_account", {"account": "acme", "n": 1})
            await eventually(
                first.status, lambda s: s == perdure.RunStatus.SLEEPING, "the first run asleep"
            )
            second = await app.start("sync_account", {"account": "acme", "n": 2})
            old = await app.get_run(first.run_id)
            assert old.status == perdure.RunStatus.CANCELLED
            assert old.reason is not None
            assert old.reason["option"] == "singleton"
            assert old.reason["decision"] == "cancelled"
            assert old.reason["replaced_by"] == second.run_id
            with pytest.raises(perdure.RunCancelledError):
                await first.result(timeout=30)
            await clk.advance(minutes=2)
            assert await second.result(timeout=30) == 2


async def test_concurrent_starts_leave_one_active_run(db_url: str) -> None:
    clk = clock()
    apps = [make_app(db_url, clk) for _ in range(2)]
    for app in apps:
        await app.register()
    try:
        sent = await asyncio.gather(
            *(apps[i % 2].send_detailed([changed("acme", i)]) for i in range(20))
        )
        assert sum(1 for (s,) in sent if not s.skipped) == 1
        assert len(await apps[0].list_runs(status="queued")) == 1
        assert len(await apps[0].list_runs(status="skipped", limit=100)) == 19
    finally:
        for app in apps:
            await app.close()


async def test_concurrent_cancels_leave_one_active_run(db_url: str) -> None:
    clk = clock()
    apps = [make_app(db_url, clk, mode="cancel") for _ in range(2)]
    for app in apps:
        await app.register()
    try:
        await asyncio.gather(*(apps[i % 2].send(changed("acme", i)) for i in range(20)))
        assert len(await apps[0].list_runs(status="queued")) == 1
        assert len(await apps[0].list_runs(status="cancelled", limit=100)) == 19
    finally:
        for app in apps:
            await app.close()
