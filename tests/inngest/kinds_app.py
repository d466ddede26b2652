"""Apps for the tests that mix kinds of functions on one ``perdure dev`` (``test_kinds_sdk.py``,
``test_sdk_sigkill.py``): native perdure functions (``app``, loaded by ``perdure dev --app
kinds_app:app`` in its own process), an app on the real Inngest Python SDK on FastAPI (async
functions) and one on Flask (sync functions), both served in the test's process.

What the SDK functions' bodies did is kept in a :class:`Seen` the test reads; the native
functions, which run in the server's process, report what they saw in their outputs.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
import warnings
from collections import Counter
from typing import Any

import fastapi
import flask

import perdure

with warnings.catch_warnings():  # the SDK's models use pydantic's deprecated class Config
    warnings.simplefilter("ignore", DeprecationWarning)
    import inngest.fast_api
    import inngest.flask

    import inngest

FAST_APP = "kfast"
FLASK_APP = "kflask"
NATIVE_PREFIX = "native"  # the SDKs invoke "<app id>-<function id>": native ids are "native-..."

# ---------------------------------------------------------------------- native functions

app = perdure.App("kinds")


@app.function(id="native-double", retries=0)
async def native_double(ctx: perdure.Context) -> Any:
    """Doubles ``n``; reports the event it was started with."""
    return {"doubled": ctx.event.data["n"] * 2, "name": ctx.event.name, "data": ctx.event.data}


@app.function(id="halve", retries=0)
async def halve(ctx: perdure.Context) -> Any:
    """An id without its app's name: the SDKs reach it as ``kinds-halve``."""
    return {"halved": ctx.event.data["n"] / 2}


@app.function(id="native-fails", retries=0)
async def native_fails(ctx: perdure.Context) -> Any:
    raise ValueError(f"native says no to {ctx.event.data.get('n')}")


@app.function(id="native-slow", retries=0)
async def native_slow(ctx: perdure.Context) -> Any:
    await ctx.step.sleep("long", 60)
    return "too late"


@app.function(id="native-invoker", trigger=perdure.event("kinds/native-invoke"), retries=0)
async def native_invoker(ctx: perdure.Context) -> Any:
    """Invokes ``target`` (an Inngest-SDK function's id) with ``payload`` and ``timeout``."""
    data = ctx.event.data
    try:
        out = await ctx.step.invoke(
            "call-sdk", function=data["target"], data=data["payload"], timeout=data.get("timeout")
        )
    except perdure.StepError as err:
        return {"caught": {"type": err.error_type, "message": err.error_message}}
    return {"got": out}


# ---------------------------------------------------------------------- the SDK apps


class Seen:
    """What the SDK functions' bodies did (both apps run in the test's process, in threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bodies: list[str] = []
        self.calls: Counter[str] = Counter()
        self.events: dict[str, dict[str, Any]] = {}
        self.in_flight = threading.Event()  # a step of "durable" is executing
        self.release = threading.Event()  # ... and may return
        self.clients: list[inngest.Inngest] = []

    def close(self) -> None:
        """Close the SDK clients' sync HTTP clients (the Flask app registers with one; the SDK
        never closes it, and its kept-alive socket would be a ResourceWarning at exit)."""
        for c in self.clients:
            c._http_client._http_client_sync.close()

    def body(self, name: str) -> None:
        with self.lock:
            self.bodies.append(name)

    def count(self, name: str) -> int:
        with self.lock:
            return self.bodies.count(name)

    def called(self, fn: str) -> None:
        with self.lock:
            self.calls[fn] += 1


def _client(seen: Seen, app_id: str, origin: str) -> inngest.Inngest:
    c = inngest.Inngest(
        app_id=app_id, is_production=False, api_base_url=origin, event_api_base_url=origin
    )
    seen.clients.append(c)
    return c


def fastapi_app(seen: Seen, origin: str) -> fastapi.FastAPI:
    """Async functions: invokes of native functions, children native functions invoke, and
    ``durable`` (three steps; the second waits for ``seen.release``) for the SIGKILL test."""
    c = _client(seen, FAST_APP, origin)

    @c.create_function(fn_id="call-native", trigger=inngest.TriggerEvent(event="kinds/call-native"))
    async def call_native(ctx: inngest.Context) -> Any:
        data = ctx.event.data
        seconds = data.get("timeout")
        timeout = None if seconds is None else datetime.timedelta(seconds=float(str(seconds)))
        try:
            out = await ctx.step.invoke_by_id(
                "call",
                app_id=str(data.get("app", NATIVE_PREFIX)),
                function_id=str(data["target"]),
                data={"n": data["n"], "from": ctx.run_id},
                timeout=timeout,
            )
        except inngest.StepError as err:
            return {"caught": {"name": err.name, "message": err.message}}
        return {"got": out}

    @c.create_function(fn_id="sdk-child", trigger=inngest.TriggerEvent(event="kinds/never"))
    async def sdk_child(ctx: inngest.Context) -> Any:
        seen.events[str(ctx.event.data.get("tag"))] = {
            "name": ctx.event.name,
            "data": dict(ctx.event.data),
        }
        if ctx.event.data.get("fail"):
            raise inngest.NonRetriableError("sdk child says no")
        return {"tripled": int(str(ctx.event.data["n"])) * 3}

    @c.create_function(fn_id="sdk-slow", trigger=inngest.TriggerEvent(event="kinds/never-slow"))
    async def sdk_slow(ctx: inngest.Context) -> Any:
        await ctx.step.sleep("long", datetime.timedelta(seconds=60))
        return "too late"

    @c.create_function(fn_id="durable", trigger=inngest.TriggerEvent(event="kinds/durable"))
    async def durable(ctx: inngest.Context) -> Any:
        seen.called("durable")

        async def first() -> int:
            seen.body("first")
            return 1

        async def second() -> dict[str, int]:
            seen.body("second")
            seen.in_flight.set()
            await asyncio.to_thread(seen.release.wait, 60)
            return {"two": 2}

        async def third() -> str:
            seen.body("third")
            return "three"

        a = await ctx.step.run("first", first)
        b = await ctx.step.run("second", second)
        c_ = await ctx.step.run("third", third)
        return [a, b, c_]

    app = fastapi.FastAPI()
    inngest.fast_api.serve(app, c, [call_native, sdk_child, sdk_slow, durable])
    return app


def flask_app(seen: Seen, origin: str) -> flask.Flask:
    """Sync functions on Flask: no steps, two steps, a sleep, a step error retried."""
    c = _client(seen, FLASK_APP, origin)

    @c.create_function(fn_id="no-steps", trigger=inngest.TriggerEvent(event="flask/no-steps"))
    def no_steps(ctx: inngest.ContextSync) -> Any:
        seen.called("no-steps")
        return {"hello": ctx.event.data.get("who"), "event": ctx.event.name}

    @c.create_function(fn_id="two-steps", trigger=inngest.TriggerEvent(event="flask/two-steps"))
    def two_steps(ctx: inngest.ContextSync) -> Any:
        seen.called("two-steps")

        def a() -> int:
            seen.body("flask-a")
            return 1

        def b() -> dict[str, int]:
            seen.body("flask-b")
            return {"b": 2}

        return [ctx.step.run("a", a), ctx.step.run("b", b)]

    @c.create_function(fn_id="sleeper", trigger=inngest.TriggerEvent(event="flask/sleep"))
    def sleeper(ctx: inngest.ContextSync) -> Any:
        seen.called("sleeper")
        ctx.step.sleep("nap", datetime.timedelta(seconds=1))
        return "woke"

    @c.create_function(fn_id="flaky", trigger=inngest.TriggerEvent(event="flask/flaky"), retries=2)
    def flaky(ctx: inngest.ContextSync) -> Any:
        seen.called("flaky")

        def step() -> str:
            seen.body(f"flaky@{ctx.attempt}")
            if ctx.attempt < 1:
                raise ValueError("not yet")
            return "steady"

        return ctx.step.run("flaky", step)

    app = flask.Flask("kflask")
    inngest.flask.serve(app, c, [no_steps, two_steps, sleeper, flaky])
    return app
