"""An app on the real Inngest Python SDK (FastAPI) whose functions declare every flow-control
option the SDK has, for ``test_flow_sdk.py``: one function per option, each recording what it
saw (its calls, the events of each call, when its step bodies ran) in :class:`Seen`.

A function body that must stay busy (to hold a concurrency slot, to be the active singleton,
to outlive its finish timeout) waits for a release the test gives (:meth:`Seen.release`) on
the app's event loop, never blocking it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import fastapi
from sdk_apps import capture_registrations

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import inngest.fast_api

    import inngest

APP_ID = "iflow"
HOLD = 20.0  # seconds a held body waits for its release at most
PERIOD = timedelta(seconds=1)  # the shortest duration the SDK accepts


@dataclass
class Seen:
    """What the app's functions saw (written on the app's thread, read by the test)."""

    calls: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)
    """Per function, the ``data`` of ``ctx.events`` of each call of its handler."""
    bodies: dict[str, list[tuple[str, float, float]]] = field(default_factory=dict)
    """Per function, ``(label, start, end)`` of each finished step body (monotonic)."""
    order: list[str] = field(default_factory=list)
    """The labels of the prioritized function's runs, in the order they started."""
    flags: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def flag(self, name: str) -> threading.Event:
        with self.lock:
            return self.flags.setdefault(name, threading.Event())

    def release(self, name: str) -> None:
        """Let the bodies held under ``name`` return."""
        self.flag(f"release:{name}").set()

    def started(self, label: str) -> bool:
        """Whether the body labelled ``label`` has started."""
        return self.flag(f"started:{label}").is_set()

    def called(self, fn: str, ctx: inngest.Context) -> None:
        with self.lock:
            self.calls.setdefault(fn, []).append([dict(e.data) for e in ctx.events])

    async def hold(self, name: str) -> None:
        await self.wait_for(f"release:{name}")

    async def wait_for(self, flag: str, seconds: float = HOLD) -> bool:
        event = self.flag(flag)
        end = time.monotonic() + seconds
        # A threading.Event (the test sets it from another thread), polled so that the app's
        # loop goes on serving other calls meanwhile.
        while not event.is_set() and time.monotonic() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return event.is_set()


def build(seen: Seen, origin: str) -> Any:
    """The FastAPI app serving the flow-control functions (``origin``: where it is served)."""
    client = inngest.Inngest(
        app_id=APP_ID, is_production=False, api_base_url=origin, event_api_base_url=origin
    )

    def data(ctx: inngest.Context) -> dict[str, Any]:
        return dict(ctx.event.data)

    @client.create_function(
        fn_id="debounced",
        trigger=inngest.TriggerEvent(event="flow/debounce"),
        debounce=inngest.Debounce(period=PERIOD, key="event.data.user"),
        retries=0,
    )
    async def debounced(ctx: inngest.Context) -> Any:
        seen.called("debounced", ctx)
        return data(ctx)

    @client.create_function(
        fn_id="rated",
        trigger=inngest.TriggerEvent(event="flow/rate"),
        rate_limit=inngest.RateLimit(limit=1, period=timedelta(minutes=1), key="event.data.user"),
        retries=0,
    )
    async def rated(ctx: inngest.Context) -> Any:
        seen.called("rated", ctx)
        return data(ctx)

    @client.create_function(
        fn_id="throttled",
        trigger=inngest.TriggerEvent(event="flow/throttle"),
        throttle=inngest.Throttle(limit=1, period=PERIOD),  # the SDK's default burst: 1
        retries=0,
    )
    async def throttled(ctx: inngest.Context) -> Any:
        seen.called("throttled", ctx)
        return data(ctx)

    @client.create_function(
        fn_id="per-user",
        trigger=inngest.TriggerEvent(event="flow/user"),
        concurrency=[inngest.Concurrency(limit=1, key="event.data.user")],
        retries=0,
    )
    async def per_user(ctx: inngest.Context) -> Any:
        seen.called("per-user", ctx)
        user, label = str(ctx.event.data["user"]), str(ctx.event.data["label"])
        other = "b" if user == "a" else "a"

        async def work() -> dict[str, Any]:
            start = time.monotonic()
            seen.flag(f"started:{label}").set()
            seen.flag(f"user-started:{user}").set()
            # Stay in the step until a body of the other user has started (at most HOLD):
            # two users' runs must overlap; the same user's must not.
            overlapped = await seen.wait_for(f"user-started:{other}", 10.0)
            await asyncio.sleep(0.05)
            with seen.lock:
                seen.bodies.setdefault("per-user", []).append((label, start, time.monotonic()))
            return {"label": label, "overlapped": overlapped}

        return await ctx.step.run("work", work)

    def singleton(mode: str) -> Any:
        fid = f"single-{mode}"

        @client.create_function(
            fn_id=fid,
            trigger=inngest.TriggerEvent(event=f"flow/{fid}"),
            singleton=inngest.Singleton(key="event.data.user", mode=mode),  # type: ignore[arg-type]
            retries=0,
        )
        async def single(ctx: inngest.Context) -> Any:
            seen.called(fid, ctx)
            seen.flag(f"started:{fid}:{ctx.event.data['n']}").set()
            if ctx.event.data.get("hold"):
                await seen.hold(fid)
            return data(ctx)

        return single

    @client.create_function(
        fn_id="batched",
        trigger=inngest.TriggerEvent(event="flow/batch"),
        batch_events=inngest.Batch(max_size=3, timeout=PERIOD),
        retries=0,
    )
    async def batched(ctx: inngest.Context) -> Any:
        seen.called("batched", ctx)
        return {"ns": [e.data["n"] for e in ctx.events], "first": ctx.event.data["n"]}

    @client.create_function(
        fn_id="prioritized",
        trigger=inngest.TriggerEvent(event="flow/priority"),
        concurrency=[inngest.Concurrency(limit=1)],
        priority=inngest.Priority(run="event.data.p"),
        retries=0,
    )
    async def prioritized(ctx: inngest.Context) -> Any:
        seen.called("prioritized", ctx)
        label = str(ctx.event.data["label"])
        with seen.lock:
            seen.order.append(label)
        seen.flag(f"started:{label}").set()
        if ctx.event.data.get("hold"):
            await seen.hold("prioritized")
        return label

    @client.create_function(
        fn_id="idempotent",
        trigger=inngest.TriggerEvent(event="flow/idempotent"),
        idempotency="event.data.order",
        retries=0,
    )
    async def idempotent(ctx: inngest.Context) -> Any:
        seen.called("idempotent", ctx)
        return data(ctx)

    @client.create_function(
        fn_id="timed",
        trigger=inngest.TriggerEvent(event="flow/timed"),
        timeouts=inngest.Timeouts(finish=PERIOD),
        retries=0,
    )
    async def timed(ctx: inngest.Context) -> Any:
        seen.called("timed", ctx)

        async def slow() -> str:
            seen.flag("started:timed").set()
            await seen.hold("timed")
            return "finished"

        return await ctx.step.run("slow", slow)

    functions = [
        debounced,
        rated,
        throttled,
        per_user,
        singleton("skip"),
        singleton("cancel"),
        batched,
        prioritized,
        idempotent,
        timed,
    ]
    app = fastapi.FastAPI()
    inngest.fast_api.serve(app, client, functions)
    capture_registrations(app)
    return app
