"""cancel_on: an arriving event cancels the runs it matches (queued, running, sleeping,
waiting), with the reason, on both backends, through the store's one cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import perdure
from perdure.testing import ManualClock

Check = Callable[[], Awaitable[bool]]


async def eventually(check: Check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def status_is(app: perdure.App, run_id: str, status: perdure.RunStatus) -> Check:
    async def check() -> bool:
        return (await app.get_run(run_id)).status == status

    return check


def cancelled_by(run: perdure.RunInfo, event_id: str, name: str) -> None:
    assert run.status == perdure.RunStatus.CANCELLED
    assert run.reason == {
        "option": "cancel_on",
        "decision": "cancelled",
        "message": f"cancelled by event {name} ({event_id})",
        "event_id": event_id,
        "event_name": name,
    }


async def test_a_matching_event_cancels_queued_runs_only(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function(
        trigger=perdure.event("order.placed"),
        cancel_on=perdure.CancelOn("order.cancelled", match="data.order"),
    )
    async def fulfil(ctx: perdure.Context) -> None: ...

    async with app:
        await app.register()
        placed = await app.send_detailed(
            [
                perdure.Event("order.placed", {"order": "o1"}),
                perdure.Event("order.placed", {"order": "o2"}),
                perdure.Event("order.placed", {"order": 7}),
            ]
        )
        r1, r2, r3 = (s.run_ids[0] for s in placed)
        (sent,) = await app.send_detailed([perdure.Event("order.cancelled", {"order": "o1"})])
        assert sent.cancelled == [r1] and sent.run_ids == []
        cancelled_by(await app.get_run(r1), sent.id, "order.cancelled")
        assert (await app.get_run(r2)).status == perdure.RunStatus.QUEUED
        # Integers match integers; a missing path or another type cancels nothing.
        (other,) = await app.send_detailed([perdure.Event("order.cancelled", {"order": "7"})])
        (none,) = await app.send_detailed([perdure.Event("order.cancelled", {})])
        assert other.cancelled == [] and none.cancelled == []
        (seven,) = await app.send_detailed([perdure.Event("order.cancelled", {"order": 7})])
        assert seven.cancelled == [r3]
        assert (await app.get_run(r2)).status == perdure.RunStatus.QUEUED
        # A second cancelling event changes nothing on an ended run (its reason stays).
        (again,) = await app.send_detailed([perdure.Event("order.cancelled", {"order": "o1"})])
        assert again.cancelled == []
        cancelled_by(await app.get_run(r1), sent.id, "order.cancelled")


async def test_if_filters_with_both_events_and_wildcards_match_names(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function(
        trigger=perdure.event("pay.started"),
        cancel_on=[
            perdure.CancelOn(
                "risk.*",
                if_="async.data.verdict == 'fraud' && event.data.amount > 100",
            )
        ],
    )
    async def pay(ctx: perdure.Context) -> None: ...

    async with app:
        await app.register()
        small, big = (
            s.run_ids[0]
            for s in await app.send_detailed(
                [
                    perdure.Event("pay.started", {"amount": 50}),
                    perdure.Event("pay.started", {"amount": 500}),
                ]
            )
        )
        (fine,) = await app.send_detailed([perdure.Event("risk.checked", {"verdict": "ok"})])
        assert fine.cancelled == []
        (bad,) = await app.send_detailed([perdure.Event("risk.flagged", {"verdict": "fraud"})])
        assert bad.cancelled == [big]
        cancelled_by(await app.get_run(big), bad.id, "risk.flagged")
        assert (await app.get_run(small)).status == perdure.RunStatus.QUEUED


async def test_the_timeout_window_counts_from_the_runs_creation(db_url: str) -> None:
    clock = ManualClock()
    app = perdure.App("t", db_url, clock=clock)

    @app.function(cancel_on=perdure.CancelOn("stop", timeout="10m"))
    async def job(ctx: perdure.Context) -> None: ...

    async with app:
        await app.register()
        old = await app.start(job)
        await clock.advance(minutes=11)
        new = await app.start(job)
        (sent,) = await app.send_detailed([perdure.Event("stop")])
        assert sent.cancelled == [new.run_id]
        assert (await app.get_run(old.run_id)).status == perdure.RunStatus.QUEUED


async def test_an_event_does_not_cancel_the_run_it_starts(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function(
        trigger=perdure.event("doc.edited"),
        cancel_on=perdure.CancelOn("doc.edited", match="data.doc"),
    )
    async def index(ctx: perdure.Context) -> None: ...

    async with app:
        await app.register()
        (first,) = await app.send_detailed([perdure.Event("doc.edited", {"doc": 1})])
        a, b = await app.send_detailed(
            [perdure.Event("doc.edited", {"doc": 1}), perdure.Event("doc.edited", {"doc": 1})]
        )
        # The first of the batch cancels the earlier run; the second spares the run the
        # first started (runs created by the same send are not cancelled by it).
        assert a.cancelled == first.run_ids and b.cancelled == []
        assert (await app.get_run(a.run_ids[0])).status == perdure.RunStatus.QUEUED
        assert (await app.get_run(b.run_ids[0])).status == perdure.RunStatus.QUEUED


async def test_a_running_run_is_fenced_and_its_step_in_flight_is_not_recorded(
    db_url: str,
) -> None:
    app = perdure.App("t", db_url)
    entered = asyncio.Event()
    release = asyncio.Event()
    after: list[str] = []

    async def slow() -> str:
        entered.set()
        await release.wait()
        return "done"

    @app.function(cancel_on=perdure.CancelOn("job.stop", match="data.k"))
    async def job(ctx: perdure.Context) -> str:
        await ctx.step.run("slow", slow)
        after.append("next")
        await ctx.step.run("next", lambda: "x")
        return "finished"

    async with app, app.worker():
        handle = await app.start(job, {"k": "a"})
        await asyncio.wait_for(entered.wait(), 30)
        (sent,) = await app.send_detailed([perdure.Event("job.stop", {"k": "a"})])
        assert sent.cancelled == [handle.run_id]
        release.set()
        with pytest.raises(perdure.RunCancelledError):
            await handle.result(timeout=30)
        await asyncio.sleep(0.3)  # grace for a wrong late write (nothing announces one)
        run = await app.get_run(handle.run_id)
    cancelled_by(run, sent.id, "job.stop")
    assert [s.id for s in run.steps] == []
    assert after == []


async def test_sleeping_and_waiting_runs_are_cancelled_and_never_resume(db_url: str) -> None:
    clock = ManualClock()
    app = perdure.App("t", db_url, clock=clock)
    resumed: list[str] = []

    @app.function(cancel_on=perdure.CancelOn("user.deleted", match="data.user"))
    async def nap(ctx: perdure.Context) -> None:
        await ctx.step.sleep("nap", "1h")
        resumed.append("nap")

    @app.function(cancel_on=perdure.CancelOn("user.deleted", match="data.user"))
    async def wait(ctx: perdure.Context) -> None:
        await ctx.step.wait_for_event("w", event="user.confirmed", timeout="1d")
        resumed.append("wait")

    async with app, app.worker():
        sleeper = await app.start(nap, {"user": "u1"})
        waiter = await app.start(wait, {"user": "u1"})
        await eventually(status_is(app, sleeper.run_id, perdure.RunStatus.SLEEPING), "sleep")
        await eventually(status_is(app, waiter.run_id, perdure.RunStatus.WAITING), "wait")
        (sent,) = await app.send_detailed([perdure.Event("user.deleted", {"user": "u1"})])
        assert sorted(sent.cancelled) == sorted([sleeper.run_id, waiter.run_id])
        for handle in (sleeper, waiter):
            with pytest.raises(perdure.RunCancelledError):
                await handle.result(timeout=30)
        await app.send(perdure.Event("user.confirmed"))
        await clock.advance(hours=2)
        await asyncio.sleep(0.3)  # grace for a wrong resumption
        for handle in (sleeper, waiter):
            cancelled_by(await app.get_run(handle.run_id), sent.id, "user.deleted")
    assert resumed == []


async def test_a_parent_sees_its_invoked_child_cancelled(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function(cancel_on=perdure.CancelOn("child.stop"))
    async def child(ctx: perdure.Context) -> None:
        await ctx.step.wait_for_event("never", event="never.sent", timeout="1d")

    @app.function()
    async def parent(ctx: perdure.Context) -> Any:
        try:
            return await ctx.step.invoke("call", function=child, data={})
        except perdure.StepError as exc:
            return {"failed": str(exc)}

    async with app, app.worker():
        handle = await app.start(parent)

        async def child_waiting() -> bool:
            runs = await app.list_runs(function=child)
            return bool(runs) and runs[0].status == perdure.RunStatus.WAITING

        await eventually(child_waiting, "the child to wait")
        (kid,) = await app.list_runs(function=child)
        (sent,) = await app.send_detailed([perdure.Event("child.stop")])
        assert sent.cancelled == [kid.id]
        out = await handle.result(timeout=30)
        run = await app.get_run(handle.run_id)
        cancelled_by(await app.get_run(kid.id), sent.id, "child.stop")
    assert "cancel" in out["failed"].lower()
    (step,) = run.steps
    assert step.kind == "invoke" and step.status == "failed"
