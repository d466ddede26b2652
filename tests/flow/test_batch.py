"""Batch: events accumulate into one run per key, due when full or ``timeout`` after the
first; the function gets ``ctx.events``; the API shows the events."""

from __future__ import annotations

import asyncio
from typing import Any

from gate_helpers import clock, runs_with

import perdure
from perdure.testing import ManualClock


def make_app(url: str, clk: ManualClock, max_size: int = 3) -> perdure.App:
    app = perdure.App("bt", url, clock=clk)

    @app.function(
        id="digest",
        trigger=perdure.event("mail/received"),
        batch=perdure.Batch(max_size, "30s", key="event.data.user"),
    )
    async def digest(ctx: perdure.Context) -> Any:
        assert ctx.event == ctx.events[0]
        return [e.data["n"] for e in ctx.events]

    @app.function(
        id="sync_digest", trigger=perdure.event("mail/sync"), batch=perdure.Batch(2, "1m")
    )
    def sync_digest(ctx: perdure.SyncContext) -> Any:
        return [e.data["n"] for e in ctx.events]

    return app


def mail(user: str, n: int, name: str = "mail/received") -> perdure.Event:
    return perdure.Event(name, {"user": user, "n": n})


async def test_a_full_batch_runs_at_once_with_its_events(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk)
    async with app:
        await app.register()
        sent = await app.send_detailed([mail("ann", n) for n in range(4)])
        batch_id = sent[0].run_ids[0]
        assert [s.run_ids for s in sent[:3]] == [[batch_id]] * 3
        assert sent[3].run_ids != [batch_id]  # full: the fourth opens a new batch
        run = await app.get_run(batch_id)
        assert run.events is not None and [e.data["n"] for e in run.events] == [0, 1, 2]
        assert run.event.data["n"] == 0
        async with app.worker():
            (done,) = await runs_with(app, "completed", 1)
            assert done.output == [0, 1, 2]
            # The open batch of one runs when its timeout passes.
            await clk.advance(seconds=31)
            done_all = await runs_with(app, "completed", 2)
        assert sorted(map(str, (r.output for r in done_all))) == ["[0, 1, 2]", "[3]"]


async def test_sync_functions_get_the_events_too(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk)
    async with app:
        await app.register()
        await app.send([mail("x", 1, "mail/sync"), mail("y", 2, "mail/sync")])
        async with app.worker():
            (done,) = await runs_with(app, "completed", 1)
        assert done.output == [1, 2]


async def test_concurrent_senders_fill_batches_exactly(db_url: str) -> None:
    clk = clock()
    apps = [make_app(db_url, clk, max_size=4) for _ in range(2)]
    for app in apps:
        await app.register()
    try:
        await asyncio.gather(*(apps[i % 2].send(mail("ann", i)) for i in range(18)))
        runs = await apps[0].list_runs(limit=100)
        sizes = sorted(len(r.events or []) for r in runs)
        assert sizes == [2, 4, 4, 4, 4]
        assert sorted(n for r in runs for n in (e.data["n"] for e in r.events or [])) == list(
            range(18)
        )
        open_runs = [r for r in runs if len(r.events or []) < 4]
        assert len(open_runs) == 1
    finally:
        for app in apps:
            await app.close()
