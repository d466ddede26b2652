"""A FastAPI app on the official Inngest Python SDK, served on a free port for the driver tests.

The app runs in its own thread and event loop (as a separate process would). It also serves a
stand-in for the two server routes the SDK itself calls, so that the driver is tested without
perdure's Inngest routes (built separately): ``POST /fn/register`` keeps the registration body
the SDK sends when the test ``PUT``s its serve URL, and ``POST /e/{key}`` hands the events to
a perdure client on the test's loop (``forward``), answering as Inngest does.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import threading
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import fastapi
import httpx
import uvicorn

with warnings.catch_warnings():  # the SDK's models use pydantic's deprecated class Config
    warnings.simplefilter("ignore", DeprecationWarning)
    import inngest.fast_api

    import inngest

Forward = Callable[[list[dict[str, Any]]], Coroutine[Any, Any, list[str]]]
Handler = Callable[[inngest.Context], Awaitable[Any]]

APP_ID = "iexec"
SHORT = 0.3  # seconds a "slow" step body takes


class State:
    """What the app's functions saw: calls per function, step bodies, attempts."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.bodies: list[str] = []
        self.attempts: dict[str, list[int]] = {}

    def called(self, fn: str, ctx: inngest.Context) -> None:
        self.calls[fn] += 1
        self.attempts.setdefault(fn, []).append(ctx.attempt)


def build(state: State, origin: str, forward: Forward, loop: asyncio.AbstractEventLoop) -> Any:
    """The FastAPI app with the test functions (``origin``: where it is served)."""
    client = inngest.Inngest(
        app_id=APP_ID,
        is_production=False,
        api_base_url=origin,
        event_api_base_url=origin,
    )
    registrations: list[dict[str, Any]] = []

    def fn(fid: str, event: str, retries: int = 0) -> Callable[[Handler], inngest.Function[Any]]:
        return client.create_function(
            fn_id=fid, trigger=inngest.TriggerEvent(event=event), retries=retries
        )

    @fn("no-steps", "test/no-steps")
    async def no_steps(ctx: inngest.Context) -> Any:
        state.called("no-steps", ctx)
        return {"hello": ctx.event.data.get("who"), "event": ctx.event.name}

    @fn("two-steps", "test/two-steps")
    async def two_steps(ctx: inngest.Context) -> Any:
        state.called("two-steps", ctx)

        async def a() -> int:
            state.bodies.append("a")
            return 1

        async def b() -> dict[str, int]:
            state.bodies.append("b")
            return {"b": 2}

        first = await ctx.step.run("a", a)
        second = await ctx.step.run("b", b)
        return [first, second]

    @fn("repeated", "test/repeated")
    async def repeated(ctx: inngest.Context) -> Any:
        state.called("repeated", ctx)
        out = []
        for i in range(3):

            async def body(i: int = i) -> int:
                state.bodies.append(f"r{i}")
                return i * 10

            out.append(await ctx.step.run("same", body))
        return out

    @fn("sleeper", "test/sleep")
    async def sleeper(ctx: inngest.Context) -> Any:
        state.called("sleeper", ctx)
        await ctx.step.sleep("nap", datetime.timedelta(seconds=1))
        return "woke"

    @fn("waiter", "test/wait")
    async def waiter(ctx: inngest.Context) -> Any:
        state.called("waiter", ctx)
        got = await ctx.step.wait_for_event(
            "wait",
            event="test/go",
            if_exp="event.data.k == async.data.k",
            timeout=datetime.timedelta(seconds=_number(ctx.event.data.get("timeout", 30))),
        )
        return None if got is None else {"name": got.name, "data": got.data, "id": got.id}

    @fn("child", "test/never")
    async def child(ctx: inngest.Context) -> Any:
        state.called("child", ctx)
        if ctx.event.data.get("fail"):
            raise inngest.NonRetriableError("child says no")
        return {"doubled": _number(ctx.event.data["n"]) * 2, "event": ctx.event.name}

    @fn("parent", "test/invoke")
    async def parent(ctx: inngest.Context) -> Any:
        state.called("parent", ctx)
        try:
            out = await ctx.step.invoke(
                "call-child",
                function=child,
                data={"n": 21, "fail": ctx.event.data.get("fail", False)},
            )
        except inngest.StepError as err:
            return {"caught": err.message}
        return out

    @fn("sender", "test/send")
    async def sender(ctx: inngest.Context) -> Any:
        state.called("sender", ctx)
        ids = await ctx.step.send_event(
            "send", inngest.Event(name="test/sent", data={"from": ctx.run_id})
        )
        return {"ids": ids}

    @fn("on-sent", "test/sent")
    async def on_sent(ctx: inngest.Context) -> Any:
        state.called("on-sent", ctx)
        return ctx.event.data

    def body(name: str, seconds: float = 0.0) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            if seconds:
                await asyncio.sleep(seconds)
            state.bodies.append(name)
            return name

        return run

    @fn("parallel", "test/parallel")
    async def parallel(ctx: inngest.Context) -> Any:
        state.called("parallel", ctx)
        both = await ctx.group.parallel(
            (
                lambda: ctx.step.run("p1", body("p1")),
                lambda: ctx.step.run("p2", body("p2")),
            )
        )
        after = await ctx.step.run("after", body("after"))
        return [*both, after]

    @fn("groups", "test/groups")
    async def groups(ctx: inngest.Context) -> Any:
        state.called("groups", ctx)

        async def first() -> None:
            await ctx.step.run("a.1", body("a.1"))
            await ctx.step.run("a.2", body("a.2"))

        async def second() -> None:
            await ctx.step.run("b.1", body("b.1"))
            await ctx.step.run("b.2", body("b.2"))

        await ctx.group.parallel((first, second))
        return "done"

    @fn("race", "test/race")
    async def race(ctx: inngest.Context) -> Any:
        state.called("race", ctx)

        async def fast() -> None:
            await ctx.step.run("a.1", body("a.1"))
            await ctx.step.run("a.2", body("a.2"))

        async def slow() -> None:
            await ctx.step.run("b.1", body("b.1", SHORT * 3))
            await ctx.step.run("b.2", body("b.2", SHORT))

        await ctx.group.parallel((fast, slow), parallel_mode=inngest.ParallelMode.RACE)
        return "raced"

    @fn("mixed", "test/mixed")
    async def mixed(ctx: inngest.Context) -> Any:
        state.called("mixed", ctx)
        out = await ctx.group.parallel(
            (
                lambda: ctx.step.run("m1", body("m1")),
                lambda: ctx.step.sleep("m-nap", datetime.timedelta(seconds=1)),
            )
        )
        return list(out)

    @fn("slow-child", "test/never-slow")
    async def slow_child(ctx: inngest.Context) -> Any:
        state.called("slow-child", ctx)
        await ctx.step.sleep("long", datetime.timedelta(seconds=30))
        return "too late"

    @fn("impatient", "test/impatient")
    async def impatient(ctx: inngest.Context) -> Any:
        state.called("impatient", ctx)
        return await ctx.step.invoke(
            "call-slow", function=slow_child, data={}, timeout=datetime.timedelta(seconds=1)
        )

    @fn("flaky-step", "test/flaky-step", retries=2)
    async def flaky_step(ctx: inngest.Context) -> Any:
        state.called("flaky-step", ctx)

        async def flaky() -> str:
            state.bodies.append(f"flaky@{ctx.attempt}")
            if ctx.attempt < 1:
                raise ValueError("not yet")
            return "steady"

        return await ctx.step.run("flaky", flaky)

    @fn("saga", "test/saga", retries=1)
    async def saga(ctx: inngest.Context) -> Any:
        state.called("saga", ctx)

        async def doomed() -> None:
            state.bodies.append(f"doomed@{ctx.attempt}")
            raise ValueError("always")

        try:
            await ctx.step.run("doomed", doomed)
        except inngest.StepError as err:
            return {"compensated": err.message}
        return "unreachable"

    @fn("non-retriable", "test/non-retriable", retries=3)
    async def non_retriable(ctx: inngest.Context) -> Any:
        state.called("non-retriable", ctx)
        raise inngest.NonRetriableError("stop here")

    @fn("retry-after", "test/retry-after", retries=3)
    async def retry_after(ctx: inngest.Context) -> Any:
        state.called("retry-after", ctx)

        async def gated() -> int:
            if ctx.attempt == 0:
                raise inngest.RetryAfterError("later", datetime.timedelta(seconds=1))
            return ctx.attempt

        return await ctx.step.run("gated", gated)

    @fn("crash", "test/crash", retries=1)
    async def crash(ctx: inngest.Context) -> Any:
        state.called("crash", ctx)
        raise RuntimeError(f"boom {ctx.attempt}")

    app = fastapi.FastAPI()
    functions = [
        no_steps,
        two_steps,
        repeated,
        sleeper,
        waiter,
        child,
        parent,
        sender,
        on_sent,
        parallel,
        groups,
        race,
        mixed,
        slow_child,
        impatient,
        flaky_step,
        saga,
        non_retriable,
        retry_after,
        crash,
    ]
    inngest.fast_api.serve(app, client, functions)

    @app.post("/fn/register")
    async def register(request: fastapi.Request) -> dict[str, Any]:
        registrations.append(await request.json())
        return {"ok": True, "modified": True}

    @app.post("/e/{key}")
    async def events(request: fastapi.Request) -> dict[str, Any]:
        payload = await request.json()
        batch = payload if isinstance(payload, list) else [payload]
        future = asyncio.run_coroutine_threadsafe(forward(batch), loop)
        ids: list[str] = await asyncio.wrap_future(future)
        return {"ids": ids, "status": 200}

    app.state.registrations = registrations
    return app


def _number(value: object) -> int:
    assert isinstance(value, int), value
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test's process owns the signals
        pass


@contextmanager
def serve(
    state: State, forward: Forward, loop: asyncio.AbstractEventLoop
) -> Iterator[tuple[str, Any]]:
    """Serve the app on a free port in a thread; yield its serve URL and the FastAPI app."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    app = build(state, origin, forward, loop)
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="inngest-sdk-app", daemon=True)
    thread.start()
    try:
        deadline = 30.0
        while not server.started:
            if not thread.is_alive() or deadline <= 0:
                raise RuntimeError("the SDK app did not start")
            threading.Event().wait(0.02)
            deadline -= 0.02
        yield f"{origin}/api/inngest", app
    finally:
        server.should_exit = True
        thread.join(10)


async def sync(url: str, app: Any) -> dict[str, Any]:
    """Make the app sync (``PUT`` its URL, as the dev server does) and return the
    registration body it sent."""
    async with httpx.AsyncClient() as http:
        res = await http.put(url, headers={"x-inngest-server-kind": "dev"}, timeout=30)
    res.raise_for_status()
    registrations: list[dict[str, Any]] = app.state.registrations
    assert registrations, "the SDK did not register"
    return registrations[-1]
