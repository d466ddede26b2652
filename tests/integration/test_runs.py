"""Runs from the client's side: start, idempotency, invoke, cancel, limits, results."""

from __future__ import annotations

import asyncio
import time

import pytest

import perdure
from perdure.testing import ManualClock


async def wait_status(
    app: perdure.App, run_id: str, status: perdure.RunStatus, timeout: float = 60.0
) -> None:
    deadline = time.monotonic() + timeout
    while (await app.get_run(run_id, steps=False)).status != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} did not become {status} within {timeout:.0f} s")
        await asyncio.sleep(0.02)


async def test_same_idempotency_key_gives_the_same_run(db_url: str) -> None:
    app = perdure.App("t", db_url)
    count = 0

    @app.function()
    async def charge(ctx: perdure.Context) -> int:
        nonlocal count
        count += 1
        amount: int = ctx.event.data["amount"]
        return amount

    async with app, app.worker():
        h1 = await app.start(charge, {"amount": 5}, idempotency_key="order-1")
        h2 = await app.start(charge, {"amount": 9}, idempotency_key="order-1")
        many = await asyncio.gather(
            *(app.start(charge, {"amount": 1}, idempotency_key="k2") for _ in range(20))
        )
        assert h1.run_id == h2.run_id
        assert len({h.run_id for h in many}) == 1
        assert await h2.result(timeout=60) == 5
        assert await many[0].result(timeout=60) == 1
    assert count == 2


async def test_invoke_returns_the_child_output(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function()
    async def square(ctx: perdure.Context) -> int:
        n: int = ctx.event.data["n"]
        return n**2

    @app.function()
    async def fails(ctx: perdure.Context) -> None:
        raise perdure.NonRetriableError("child broke")

    @app.function()
    async def parent(ctx: perdure.Context) -> dict[str, object]:
        a = await ctx.step.invoke("sq", function=square, data={"n": 7})
        b = await ctx.step.invoke("sq-by-id", function="square", data={"n": 3})
        try:
            await ctx.step.invoke("bad", function=fails)
        except perdure.StepError as err:
            return {"a": a, "b": b, "err": err.error_message}
        return {}

    async with app, app.worker():
        handle = await app.start(parent)
        result = await handle.result(timeout=60)
        children = [r for r in await app.list_runs() if r.parent_run_id == handle.run_id]
    assert result == {"a": 49, "b": 9, "err": "child broke"}
    assert len(children) == 3


async def test_invoke_timeout_raises_step_error(sqlite_url: str) -> None:
    clock = ManualClock()
    app = perdure.App("t", sqlite_url, clock=clock)

    @app.function()
    async def forever(ctx: perdure.Context) -> None:
        await ctx.step.wait_for_event("never", event="never")

    @app.function()
    async def parent(ctx: perdure.Context) -> str:
        try:
            await ctx.step.invoke("slow", function=forever, timeout="1h")
        except perdure.StepError as err:
            return err.error_type
        return "finished?"

    async with app, app.worker():
        handle = await app.start(parent)
        await wait_status(app, handle.run_id, perdure.RunStatus.WAITING)
        await clock.advance(hours=2)
        assert await handle.result(timeout=60) == "InvokeTimeoutError"


@pytest.mark.parametrize("state", ["queued", "running", "sleeping", "waiting"])
async def test_cancel_in_every_state(db_url: str, state: str) -> None:
    app = perdure.App("t", db_url)
    gate = asyncio.Event()
    after: list[str] = []
    inside = 0  # executions of the function in progress

    async def block() -> None:
        await gate.wait()

    @app.function()
    async def victim(ctx: perdure.Context) -> None:
        nonlocal inside
        inside += 1
        try:
            if state == "running":
                await ctx.step.run("block", block)
            elif state == "sleeping":
                await ctx.step.sleep("nap", "1h")
            elif state == "waiting":
                await ctx.step.wait_for_event("w", event="never")
            await ctx.step.run("after", lambda: after.append("ran"))
        finally:
            inside -= 1

    @app.function()
    async def sentinel(ctx: perdure.Context) -> str:
        return "claimed"

    client = perdure.App("t", db_url)  # no worker of its own: its runs must be claimed
    async with app, client:
        handle = await app.start(victim)
        if state == "queued":
            info = await app.cancel(handle.run_id)
        else:
            async with app.worker():
                await wait_status(app, handle.run_id, perdure.RunStatus(state))
                info = await app.cancel(handle.run_id)
                gate.set()
                # The execution in progress (if any) is over: it went on past the cancel or not.
                deadline = time.monotonic() + 60
                while inside:
                    assert time.monotonic() < deadline, "the cancelled execution never ended"
                    await asyncio.sleep(0.01)
        assert info.status == perdure.RunStatus.CANCELLED
        with pytest.raises(perdure.RunCancelledError):
            await handle.result(timeout=60)
        async with app.worker():
            # A later run, claimed by this worker: the claim that took it would have taken the
            # (older) cancelled run too, were it claimable.
            later = await client.start("sentinel")
            assert await later.result(timeout=60) == "claimed"
            assert inside == 0
        final = await app.get_run(handle.run_id)
    assert final.status == perdure.RunStatus.CANCELLED
    assert after == []
    assert all(s.id != "after" for s in final.steps)


async def test_cancel_unknown_run(sqlite_url: str) -> None:
    app = perdure.App("t", sqlite_url)
    async with app:
        with pytest.raises(perdure.RunNotFoundError):
            await app.cancel("nope")
        with pytest.raises(perdure.RunNotFoundError):
            await app.get_run("nope")


async def test_start_validates_before_writing(sqlite_url: str) -> None:
    app = perdure.App("t", sqlite_url)

    @app.function()
    async def fn(ctx: perdure.Context) -> None:
        return None

    async with app:
        with pytest.raises(perdure.FunctionNotFoundError):
            await app.start("no-such-function")
        with pytest.raises(perdure.PayloadTooLargeError):
            await app.start(fn, {"blob": "x" * (5 * 1024 * 1024)})
        with pytest.raises(perdure.InvalidInputError):
            await app.start(fn, [1, 2])  # type: ignore[arg-type]  # data must be an object
        assert await app.list_runs() == []


async def test_large_step_output_fails_the_step_without_retrying(sqlite_url: str) -> None:
    app = perdure.App("t", sqlite_url, limits=perdure.Limits(step_output=1000))
    calls = 0

    def big() -> str:
        nonlocal calls
        calls += 1
        return "x" * 2000

    @app.function()
    async def fn(ctx: perdure.Context) -> None:
        await ctx.step.run("big", big)

    async with app, app.worker():
        with pytest.raises(perdure.RunFailedError, match="over the limit of 1000 bytes"):
            await (await app.start(fn)).result(timeout=60)
    assert calls == 1


async def test_large_run_output_fails_the_run(sqlite_url: str) -> None:
    app = perdure.App("t", sqlite_url, limits=perdure.Limits(run_output=100))

    @app.function()
    async def fn(ctx: perdure.Context) -> str:
        return "y" * 200

    async with app, app.worker():
        with pytest.raises(perdure.RunFailedError, match="PayloadTooLargeError"):
            await (await app.start(fn)).result(timeout=60)


async def test_result_from_another_app_instance_on_the_same_database(db_url: str) -> None:
    worker_app = perdure.App("t", db_url)
    client = perdure.App("t", db_url)

    @worker_app.function()
    async def echo(ctx: perdure.Context) -> object:
        await ctx.step.sleep("s", ctx.event.data.get("sleep", 0.1))
        return ctx.event.data

    async with worker_app, client, worker_app.worker():
        handle = await client.start("echo", {"hello": "world"})
        assert await handle.result(timeout=60) == {"hello": "world"}
        slow = await client.start("echo", {"sleep": 60})
        with pytest.raises(TimeoutError):
            await slow.result(timeout=0.3)
        await client.cancel(slow.run_id)
        with pytest.raises(perdure.RunCancelledError):
            await worker_app.handle(slow.run_id).result(timeout=60)
        with pytest.raises(perdure.RunNotFoundError):
            await client.handle("missing").result(timeout=1)


def test_sync_client_twins(sqlite_url: str) -> None:
    app = perdure.App("t", sqlite_url)

    @app.function()
    def hello(ctx: perdure.SyncContext) -> str:
        return ctx.step.run("greet", lambda: f"hi {ctx.event.data['name']}")

    async def serve(started: asyncio.Event, stop: asyncio.Event) -> None:
        worker_app = perdure.App("t", sqlite_url)
        worker_app.function(id="hello")(
            hello.__wrapped__ if hasattr(hello, "__wrapped__") else hello
        )
        async with worker_app, worker_app.worker():
            started.set()
            await stop.wait()

    import threading

    loop = asyncio.new_event_loop()
    started = asyncio.Event()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(started, stop),))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not started.is_set():
            assert time.monotonic() < deadline, "the worker thread did not start"
            threading.Event().wait(0.02)
        handle = app.start_sync("hello", {"name": "sam"})
        assert handle.result_sync(timeout=60) == "hi sam"
        assert app.get_run_sync(handle.run_id).status == perdure.RunStatus.COMPLETED
        ids = app.send_sync(perdure.Event("nothing.listens"))
        assert len(ids) == 1
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
        app.close_sync()
