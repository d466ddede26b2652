"""Events: fan-out, wildcards, filters, dedupe, wait_for_event, send_event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

import perdure
from perdure.testing import ManualClock

DEADLINE = 60.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for ``check()`` to hold, failing after ``DEADLINE`` seconds."""
    deadline = time.monotonic() + DEADLINE
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_status(app: perdure.App, run_id: str, status: perdure.RunStatus) -> None:
    async def reached() -> bool:
        return (await app.get_run(run_id, steps=False)).status == status

    await eventually(reached, f"run {run_id} to become {status}")


async def wait_all_completed(app: perdure.App, count: int, fn: object = None) -> None:
    """Wait until ``count`` runs (of ``fn``) exist and every one of them is completed: no
    execution of theirs can follow."""

    async def done() -> bool:
        runs = await app.list_runs(function=fn)
        return len(runs) >= count and all(r.status == perdure.RunStatus.COMPLETED for r in runs)

    await eventually(done, f"{count} completed run(s)")


async def runs_of(app: perdure.App, fn: object) -> list[perdure.RunInfo]:
    return await app.list_runs(function=fn)


async def test_events_fan_out_to_matching_functions(db_url: str) -> None:
    app = perdure.App("t", db_url)
    seen: dict[str, list[str]] = {"exact": [], "wild": [], "filtered": [], "multi": []}

    @app.function(trigger=perdure.event("order.placed"))
    async def exact(ctx: perdure.Context) -> None:
        seen["exact"].append(ctx.event.data["id"])

    @app.function(trigger=perdure.event("order.*"))
    async def wild(ctx: perdure.Context) -> None:
        seen["wild"].append(ctx.event.name)

    @app.function(trigger=perdure.event("order.placed", if_="event.data.total > 100"))
    async def filtered(ctx: perdure.Context) -> None:
        seen["filtered"].append(ctx.event.data["id"])

    @app.function(trigger=[perdure.event("a.one"), perdure.event("order.shipped")])
    async def multi(ctx: perdure.Context) -> None:
        seen["multi"].append(ctx.event.name)

    async with app, app.worker():
        ids = await app.send(
            [
                perdure.Event("order.placed", {"id": "o1", "total": 50}),
                perdure.Event("order.placed", {"id": "o2", "total": 500}),
                perdure.Event("order.shipped", {"id": "o1"}),
                perdure.Event("unrelated", {}),
            ]
        )
        assert len(set(ids)) == 4
        await wait_all_completed(app, 7)  # exact 2, wild 3, filtered 1, multi 1
        events = await app.store.list_events(None, None, 10)
        runs = await app.list_runs(function=exact)
    assert sorted(seen["exact"]) == ["o1", "o2"]
    assert sorted(seen["wild"]) == ["order.placed", "order.placed", "order.shipped"]
    assert seen["filtered"] == ["o2"]
    assert seen["multi"] == ["order.shipped"]
    assert len(events) == 4
    by_name = {e.id: e for e in events}
    assert len(by_name[ids[1]].run_ids) == 3  # exact, wild, filtered
    assert by_name[ids[3]].run_ids == []
    assert {r.event.id for r in runs} == {ids[0], ids[1]}


async def test_duplicate_event_ids_are_ignored(db_url: str) -> None:
    app = perdure.App("t", db_url)
    count = 0

    @app.function(trigger=perdure.event("ping"))
    async def on_ping(ctx: perdure.Context) -> None:
        nonlocal count
        count += 1

    async with app, app.worker():
        first = await app.send(perdure.Event("ping", {"n": 1}, id="evt-1"))
        again = await app.send(perdure.Event("ping", {"n": 2}, id="evt-1"))
        detailed = await app.send_detailed([perdure.Event("ping", {}, id="evt-1")])
        assert first == again == ["evt-1"]
        assert detailed[0].duplicate
        await wait_all_completed(app, 1, on_ping)
        events = await app.store.list_events("ping", None, 10)
        runs = await runs_of(app, on_ping)
    assert count == 1 and len(runs) == 1
    assert len(events) == 1


async def test_event_dedupe_window_expires_after_24h(sqlite_url: str) -> None:
    clock = ManualClock()
    app = perdure.App("t", sqlite_url, clock=clock)
    async with app:
        assert not (await app.send_detailed([perdure.Event("x", id="same")]))[0].duplicate
        await clock.advance(hours=23)
        assert (await app.send_detailed([perdure.Event("x", id="same")]))[0].duplicate
        await clock.advance(hours=2)
        assert not (await app.send_detailed([perdure.Event("x", id="same")]))[0].duplicate


async def test_wait_for_event_matches_on_a_field(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function(trigger=perdure.event("order.placed"))
    async def fulfil(ctx: perdure.Context) -> dict[str, object]:
        shipped = await ctx.step.wait_for_event(
            "shipped", event="order.shipped", match="data.order_id", timeout="1h"
        )
        assert shipped is not None
        return {"carrier": shipped.data["carrier"], "id": shipped.id}

    async with app, app.worker():
        await app.send(perdure.Event("order.placed", {"order_id": "A"}))
        runs: list[perdure.RunInfo] = []

        async def started() -> bool:
            nonlocal runs
            runs = await runs_of(app, fulfil)
            return bool(runs)

        await eventually(started, "the event to start a run")
        await wait_status(app, runs[0].id, perdure.RunStatus.WAITING)
        await app.send(perdure.Event("order.shipped", {"order_id": "B", "carrier": "wrong"}))
        ids = await app.send(perdure.Event("order.shipped", {"order_id": "A", "carrier": "ups"}))
        result = await app.handle(runs[0].id).result(timeout=60)
    assert result == {"carrier": "ups", "id": ids[0]}


async def test_wait_for_event_with_an_expression(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function()
    async def approval(ctx: perdure.Context) -> str:
        ev = await ctx.step.wait_for_event(
            "approved",
            event="review.done",
            if_="async.data.doc == event.data.doc && async.data.ok",
            timeout=60,
        )
        return "none" if ev is None else ev.data["by"]

    async with app, app.worker():
        handle = await app.start(approval, {"doc": 7})
        await wait_status(app, handle.run_id, perdure.RunStatus.WAITING)
        await app.send(perdure.Event("review.done", {"doc": 7, "ok": False, "by": "x"}))
        await app.send(perdure.Event("review.done", {"doc": 8, "ok": True, "by": "y"}))
        await app.send(perdure.Event("review.done", {"doc": 7, "ok": True, "by": "ann"}))
        assert await handle.result(timeout=60) == "ann"


async def test_wait_for_event_times_out_with_none(sqlite_url: str) -> None:
    clock = ManualClock()
    app = perdure.App("t", sqlite_url, clock=clock)

    @app.function()
    async def waiter(ctx: perdure.Context) -> str:
        ev = await ctx.step.wait_for_event("reply", event="reply", timeout="2d")
        return "timeout" if ev is None else "reply"

    async with app, app.worker():
        handle = await app.start(waiter)
        await wait_status(app, handle.run_id, perdure.RunStatus.WAITING)
        await clock.advance(days=2, seconds=1)
        assert await handle.result(timeout=60) == "timeout"
        await app.send(perdure.Event("reply"))  # too late: changes nothing
        info = await app.get_run(handle.run_id)
    assert info.steps[0].status == "completed" and info.steps[0].output is None


async def test_wait_for_event_timeout_in_real_time(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function()
    async def waiter(ctx: perdure.Context) -> bool:
        return await ctx.step.wait_for_event("w", event="never", timeout=0.5) is None

    async with app, app.worker():
        assert await (await app.start(waiter)).result(timeout=60) is True


async def test_an_event_sent_while_the_run_is_still_running_is_not_lost(db_url: str) -> None:
    app = perdure.App("t", db_url)
    gate = asyncio.Event()

    async def slow_sibling() -> str:
        await gate.wait()
        return "sibling"

    @app.function()
    async def racer(ctx: perdure.Context) -> list[object]:
        # The wait begins while a sibling step keeps the run running (not yet suspended).
        ev, sib = await asyncio.gather(
            ctx.step.wait_for_event("w", event="go", timeout=30),
            ctx.step.run("sib", slow_sibling),
        )
        return [None if ev is None else ev.data["n"], sib]

    async with app, app.worker():
        handle = await app.start(racer)

        async def wait_recorded() -> bool:
            return any(s.id == "w" for s in (await app.get_run(handle.run_id)).steps)

        await eventually(wait_recorded, "the wait to be recorded")
        assert (await handle.status()) == perdure.RunStatus.RUNNING
        await app.send(perdure.Event("go", {"n": 1}))
        gate.set()
        assert await handle.result(timeout=60) == [1, "sibling"]


async def test_events_sent_before_the_wait_began_do_not_match(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function()
    async def late(ctx: perdure.Context) -> bool:
        await ctx.step.run("first", lambda: None)
        ev = await ctx.step.wait_for_event("w", event="early", timeout=0.5)
        return ev is None

    async with app:
        await app.send(perdure.Event("early"))
        handle = await app.start(late)
        async with app.worker():
            assert await handle.result(timeout=60) is True


async def test_send_event_step_sends_once_and_triggers(db_url: str) -> None:
    app = perdure.App("t", db_url)
    received: list[int] = []

    @app.function(trigger=perdure.event("child.ping"))
    async def child(ctx: perdure.Context) -> None:
        received.append(ctx.event.data["n"])

    @app.function()
    async def parent(ctx: perdure.Context) -> list[str]:
        ids = await ctx.step.send_event(
            "ping", [perdure.Event("child.ping", {"n": 1}), perdure.Event("child.ping", {"n": 2})]
        )
        await ctx.step.sleep("replay", 0.1)  # the replay must not send again
        return ids

    async with app, app.worker():
        ids = await (await app.start(parent)).result(timeout=60)
        # The children were created with the sends, before the parent completed.
        await wait_all_completed(app, 2, child)
        assert len(await runs_of(app, child)) == 2
    assert len(ids) == 2
    assert sorted(received) == [1, 2]


async def test_invalid_events_are_rejected_before_anything_is_written(sqlite_url: str) -> None:
    app = perdure.App("t", sqlite_url)
    async with app:
        with pytest.raises(perdure.InvalidInputError):
            perdure.Event("", {})
        with pytest.raises(perdure.InvalidInputError):
            perdure.Event("has space", {})
        with pytest.raises(perdure.InvalidInputError):
            perdure.Event("x", [1, 2])  # type: ignore[arg-type]  # data must be an object
        big = perdure.Event("big", {"blob": "x" * (600 * 1024)})
        with pytest.raises(perdure.PayloadTooLargeError) as err:
            await app.send([perdure.Event("small"), big])
        assert err.value.limit == 512 * 1024
        assert await app.store.list_events(None, None, 10) == []
