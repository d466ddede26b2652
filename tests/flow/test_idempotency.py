"""Idempotency: one run per evaluated key within 24 hours; later events and starts with a used
key are recorded as skipped runs, visible to the sender and in the API."""

from __future__ import annotations

from typing import Any

from gate_helpers import clock, table_rows

import perdure
from perdure.testing import ManualClock


def make_app(url: str, clk: ManualClock) -> perdure.App:
    app = perdure.App("id", url, clock=clk)

    @app.function(id="charge", trigger=perdure.event("order/paid"), idempotency="event.data.order")
    async def charge(ctx: perdure.Context) -> Any:
        return ctx.event.data["order"]

    return app


def paid(order: str) -> perdure.Event:
    return perdure.Event("order/paid", {"order": order})


async def test_a_used_key_starts_nothing_for_24_hours(db_url: str) -> None:
    clk = clock()
    app = make_app(db_url, clk)
    async with app:
        await app.register()
        (a,) = await app.send_detailed([paid("o-1")])
        assert not a.skipped
        await clk.advance(hours=23)
        (b,) = await app.send_detailed([paid("o-1")])
        assert b.skipped == b.run_ids and len(b.run_ids) == 1
        run = await app.get_run(b.run_ids[0])
        assert run.status == perdure.RunStatus.SKIPPED
        assert run.reason is not None
        assert run.reason["option"] == "idempotency"
        assert run.reason["key"] == "o-1"
        assert run.reason["run_id"] == a.run_ids[0]
        (other,) = await app.send_detailed([paid("o-2")])
        assert not other.skipped
        # app.start evaluates the same key over its invocation event.
        h = await app.start("charge", {"order": "o-2"})
        assert (await h.status()) == perdure.RunStatus.SKIPPED
        await clk.advance(hours=1, seconds=1)
        (c,) = await app.send_detailed([paid("o-1")])
        assert not c.skipped  # the 24 hours have passed
        assert len(await app.list_runs(status="skipped")) == 2
        assert table_rows(db_url, "flow_idempotency") == 2
        await clk.advance(hours=23, minutes=30)  # o-2 (used at 23 h) expires, o-1 not yet
        await app.runtime.store.prune(0, 100)  # expired keys go; used ones stay
        assert table_rows(db_url, "flow_idempotency") == 1
        (d,) = await app.send_detailed([paid("o-1")])
        assert d.skipped
