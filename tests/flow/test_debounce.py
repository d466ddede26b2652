"""Debounce: one run after the events of a key stop for ``period``, with the last event;
``timeout`` caps the delay; a started run closes and the next event opens a new one."""

from __future__ import annotations

import asyncio
from typing import Any

from gate_helpers import clock, eventually, runs_with

import perdure
from perdure.testing import ManualClock


def make_app(url: str, clk: ManualClock, timeout: str | None = None) -> perdure.App:
    app = perdure.App("db", url, clock=clk)

    @app.function(
        id="save",
        trigger=perdure.event("doc/edited"),
        debounce=perdure.Debounce("10s", key="event.data.doc", timeout=timeout),
    )
    async def save(ctx: perdure.Context) -> Any:
        return ctx.event.data["n"]

    return app


def edit(doc: str, n: int) -> perdure.Event:
    return perdure.Event("doc/edited", {"doc": doc, "n": n})


async def test_one_run_with_the_last_event_after_the_events_stop(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk)
    async with app:
        await app.register()
        first = await app.send_detailed([edit("a", 1)])
        run_id = first[0].run_ids[0]
        for n in (2, 3):
            await clk.advance(seconds=5)
            (s,) = await app.send_detailed([edit("a", n)])
            assert s.run_ids == [run_id]  # joined the open run
        (other,) = await app.send_detailed([edit("b", 7)])
        assert other.run_ids != [run_id]
        queued = await app.get_run(run_id)
        assert queued.status == perdure.RunStatus.QUEUED
        assert queued.event.data["n"] == 3
        assert queued.reason is not None and queued.reason["option"] == "debounce"
        async with app.worker():
            await clk.advance(seconds=9)  # 9 s after the last event: not yet
            assert (await app.get_run(run_id)).status == perdure.RunStatus.QUEUED
            await clk.advance(seconds=1.5)
            done = await runs_with(app, "completed", 2)
            assert sorted(r.output for r in done) == [3, 7]
            # The started run closed: the next event opens a new one.
            (later,) = await app.send_detailed([edit("a", 4)])
            assert later.run_ids[0] != run_id
            await clk.advance(seconds=11)
            done = await runs_with(app, "completed", 3)
        assert sorted(r.output for r in done) == [3, 4, 7]


async def test_the_timeout_caps_the_delay_from_the_first_event(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk, timeout="25s")
    async with app:
        await app.register()
        first = clk.now()
        (s,) = await app.send_detailed([edit("a", 0)])
        for n in range(1, 6):
            await clk.advance(seconds=5)
            await app.send_detailed([edit("a", n)])  # keeps pushing, up to t = 25
        run = await app.get_run(s.run_ids[0])
        assert run.reason is not None
        assert run.reason["until"] == first + 25  # capped: not the last event + 10 s
        async with app.worker():
            await clk.advance(seconds=0.5)
            (done,) = await runs_with(app, "completed", 1)
        assert done.output == 5


async def test_app_start_gets_the_handle_of_the_debounce_run(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk)
    async with app:
        await app.register()
        h1 = await app.start("save", {"doc": "a", "n": 1})
        h2 = await app.start("save", {"doc": "a", "n": 2})
        assert h1.run_id == h2.run_id
        assert h1.created and not h2.created
        async with app.worker():
            await clk.advance(seconds=11)
            assert await h2.result(timeout=30) == 2


async def test_concurrent_senders_open_one_run_per_key(db_url: str) -> None:
    clk = clock()
    apps = [make_app(db_url, clk) for _ in range(2)]
    for app in apps:
        await app.register()
    try:
        sent = await asyncio.gather(
            *(apps[i % 2].send_detailed([edit(f"d{i % 3}", i)]) for i in range(30))
        )
        ids = {s.run_ids[0] for (s,) in sent}
        assert len(ids) == 3
        queued = await apps[0].list_runs(status="queued", limit=100)
        assert len(queued) == 3
    finally:
        for app in apps:
            await app.close()


async def test_a_cancelled_open_run_releases_its_key(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk)
    async with app:
        await app.register()
        (s,) = await app.send_detailed([edit("a", 1)])
        await app.cancel(s.run_ids[0])
        (t,) = await app.send_detailed([edit("a", 2)])
        assert t.run_ids[0] != s.run_ids[0]
        run = await eventually(
            lambda: app.get_run(t.run_ids[0]), lambda r: r is not None, "the new run"
        )
        assert run.status == perdure.RunStatus.QUEUED
