"""What each step was given is recorded beside it and shown by ``get_run`` (and the API, and
the dashboard): a run step's arguments, an invoke's function and data, a send's events, a
wait's event and match; arguments that are not JSON are recorded by their types only."""

from __future__ import annotations

import threading

import perdure


class Opaque:
    """A step argument that is not JSON (a client object, say)."""


def add(a: int, b: int = 0) -> int:
    return a + b


async def test_each_step_records_what_it_was_given(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function()
    async def child(ctx: perdure.Context) -> int:
        return int(ctx.event.data["n"]) * 2

    @app.function()
    async def parent(ctx: perdure.Context) -> list[object]:
        plain = await ctx.step.run("plain", lambda: 1)
        summed = await ctx.step.run("sum", add, 2, b=3)
        opaque = await ctx.step.run("opaque", lambda o: type(o).__name__, Opaque())
        doubled = await ctx.step.invoke("double", function=child, data={"n": 21})
        await ctx.step.send_event("notify", perdure.Event(name="t.done", data={"k": 1}))
        seen = await ctx.step.wait_for_event(
            "confirm", event="t.confirm", match="data.order", timeout=0.05
        )
        return [plain, summed, opaque, doubled, seen]

    async with app, app.worker():
        handle = await app.start(parent, {"order": "A1"})
        assert await handle.result(timeout=60) == [1, 5, "Opaque", 42, None]
        info = await app.get_run(handle.run_id)
    given = {s.id: s.input for s in info.steps}
    assert given["plain"] is None
    assert given["sum"] == {"args": [2], "kwargs": {"b": 3}}
    assert given["opaque"] == {"unrecorded": ["Opaque"]}
    assert given["double"] == {"function": "child", "data": {"n": 21}}
    [sent] = given["notify"]["events"]
    assert sent["name"] == "t.done" and sent["data"] == {"k": 1}
    assert given["confirm"] == {
        "event": "t.confirm",
        "match": "data.order",
        "if": None,
        "timeout": 0.05,
    }


async def test_a_sync_step_records_its_arguments(sqlite_url: str) -> None:
    app = perdure.App("t", sqlite_url)

    @app.function()
    def flow(ctx: perdure.SyncContext) -> int:
        assert threading.current_thread() is not threading.main_thread()
        return ctx.step.run("sum", add, 1, 2)

    async with app, app.worker():
        handle = await app.start(flow, {})
        assert await handle.result(timeout=60) == 3
        info = await app.get_run(handle.run_id)
    assert [s.input for s in info.steps] == [{"args": [1, 2], "kwargs": {}}]
