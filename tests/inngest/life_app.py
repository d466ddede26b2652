"""An app on the real Inngest Python SDK (FastAPI) for the lifecycle, cancellation and GraphQL
tests, and a harness serving it beside a perdure worker and perdure's HTTP server (in process,
through ``httpx.ASGITransport``).

The app registers itself through perdure's own ``POST /fn/register`` (the body it sends when
the test ``PUT``s its serve URL).
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import fastapi
import httpx
import pytest
import uvicorn
from sdk_app import free_port, sync
from sdk_apps import capture_registrations

from perdure import App, Event
from perdure.inngest.driver import InngestDriver
from perdure.inngest.routes import InngestRoutes
from perdure.runtime import Worker
from perdure.server import create_app
from perdure.types import RunInfo

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import inngest.fast_api

    import inngest

APP_ID = "ilife"
DEADLINE = 60.0


class MyError(Exception):
    """The error the failing function raises (its name is in the lifecycle event)."""


@dataclass
class Seen:
    """What the app's functions saw."""

    bodies: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    failure_events: list[dict[str, Any]] = field(default_factory=list)
    slow_started: threading.Event = field(default_factory=threading.Event)
    slow_done: threading.Event = field(default_factory=threading.Event)

    def called(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1


def build(seen: Seen, origin: str) -> Any:
    client = inngest.Inngest(
        app_id=APP_ID, is_production=False, api_base_url=origin, event_api_base_url=origin
    )

    async def on_failure(ctx: inngest.Context) -> Any:
        seen.called("failing-failure")
        seen.failure_events.append({"name": ctx.event.name, "data": dict(ctx.event.data)})
        return {"handled": ctx.event.data.get("run_id"), "attempt": ctx.attempt}

    @client.create_function(
        fn_id="failing",
        trigger=inngest.TriggerEvent(event="life/fail"),
        retries=0,
        on_failure=on_failure,
    )
    async def failing(ctx: inngest.Context) -> Any:
        seen.called("failing")
        raise MyError("intentional failure")

    @client.create_function(fn_id="fine", trigger=inngest.TriggerEvent(event="life/fine"))
    async def fine(ctx: inngest.Context) -> Any:
        seen.called("fine")
        return {"n": ctx.event.data.get("n"), "ok": True}

    @client.create_function(
        fn_id="watch-finished",
        trigger=inngest.TriggerEvent(
            event="inngest/function.finished",
            expression="event.data.function_id == 'ilife-fine'",
        ),
    )
    async def watch_finished(ctx: inngest.Context) -> Any:
        seen.called("watch-finished")
        return {"saw": ctx.event.data.get("result"), "run": ctx.event.data.get("run_id")}

    @client.create_function(
        fn_id="cancellable",
        trigger=inngest.TriggerEvent(event="life/slow"),
        cancel=[inngest.Cancel(event="life/stop", if_exp="event.data.id == async.data.id")],
        retries=0,
    )
    async def cancellable(ctx: inngest.Context) -> Any:
        seen.called("cancellable")

        async def slow() -> str:
            seen.slow_started.set()
            await asyncio.sleep(1.0)
            seen.bodies.append("slow")
            seen.slow_done.set()
            return "slow"

        async def after() -> str:
            seen.bodies.append("after")
            return "after"

        await ctx.step.run("slow", slow)
        await ctx.step.run("after", after)
        return "not cancelled"

    @client.create_function(fn_id="two", trigger=inngest.TriggerEvent(event="life/two"), retries=0)
    async def two(ctx: inngest.Context) -> Any:
        seen.called("two")

        async def a() -> list[dict[str, int]]:
            return [{"foo": 1}]

        async def b() -> None:
            raise ValueError("b broke")

        first = await ctx.step.run("a", a)
        await ctx.step.run("a", a)
        try:
            await ctx.step.run("b", b)
        except inngest.StepError:
            pass
        return {"first": first}

    app = fastapi.FastAPI()
    inngest.fast_api.serve(app, client, [failing, fine, watch_finished, cancellable, two])
    capture_registrations(app)
    return app


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        pass


@dataclass
class Host:
    """The harness: the perdure app and worker, an SDK app, perdure's HTTP server."""

    app: App
    worker: Worker
    http: httpx.AsyncClient
    serve_url: str

    async def send(self, name: str, data: dict[str, Any] | None = None) -> list[str]:
        (sent,) = await self.app.send_detailed([Event(name=name, data=data or {})])
        return sent.run_ids

    async def trigger(self, name: str, data: dict[str, Any] | None = None) -> str:
        (run_id,) = await self.send(name, data)
        return run_id

    async def ended(self, run_id: str) -> RunInfo:
        return await self.until(run_id, lambda r: str(r.status) in _ENDED)

    async def until(self, run_id: str, ok: Callable[[RunInfo], bool]) -> RunInfo:
        end = time.monotonic() + DEADLINE
        while True:
            info = await self.app.get_run(run_id)
            if ok(info):
                return info
            if time.monotonic() > end:
                pytest.fail(f"run {run_id} is {info.status}")
            await asyncio.sleep(0.02)

    async def runs_of_event(self, name: str, count: int = 1) -> list[str]:
        """The runs started by the events named ``name`` (waits for ``count`` of them)."""
        end = time.monotonic() + DEADLINE
        while True:
            page = await self.app.query.list_events(name=name, before=None, limit=100)
            run_ids = [r for info in page.items for r in info.run_ids]
            if len(run_ids) >= count:
                return run_ids
            if time.monotonic() > end:
                pytest.fail(f"no run of a {name} event")
            await asyncio.sleep(0.02)


@dataclass
class Life(Host):
    """The lifecycle harness: what its SDK app's functions saw, too."""

    seen: Seen = field(default_factory=Seen)


_ENDED = {"completed", "failed", "cancelled"}


@asynccontextmanager
async def hosted(
    db_url: str,
    build_sdk: Callable[[str], Any],
    *,
    extra: Callable[[App], None] | None = None,
    synced: bool = True,
    sync_after_start: bool = False,
) -> AsyncIterator[Host]:
    """Serve the SDK app ``build_sdk(origin)`` and perdure; ``extra`` may add native functions
    to the perdure app; ``synced``: the app is registered (else the test registers what it
    wants), before the worker starts or, with ``sync_after_start``, after (as ``perdure dev``
    meets an app that syncs once it runs)."""
    app = App("host", db_url)
    if extra is not None:
        extra(app)
    await app.open()
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    sdk = build_sdk(origin)
    server = _Server(uvicorn.Config(sdk, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="inngest-sdk-app", daemon=True)
    thread.start()
    from perdure.drivers.python import PythonDriver

    driver = InngestDriver()  # its HTTP session is closed by the worker's stop
    routes = InngestRoutes(app, driver)
    asgi = create_app(app, dev=True, api_token=None, extra_routes=routes.routes())
    transport = httpx.ASGITransport(app=asgi)
    http = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8288")
    worker: Worker | None = None

    async def register() -> None:
        registration = await sync(f"{origin}/api/inngest", sdk)
        res = await http.post("/fn/register", json=registration)
        assert res.status_code == 200, res.text

    try:
        end = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < end, "the SDK app did not start"
            await asyncio.sleep(0.02)
        if synced and not sync_after_start:
            await register()
        worker = Worker(app.runtime, [PythonDriver(app.functions), driver], lease_seconds=30)
        await worker.start()
        routes.registry.watcher.listeners.append(worker.refresh)  # as `perdure dev` does
        if synced and sync_after_start:
            await register()
        yield Host(app, worker, http, f"{origin}/api/inngest")
    finally:
        if worker is not None:
            await worker.stop()
        await http.aclose()
        server.should_exit = True
        thread.join(10)
        await app.close()


@asynccontextmanager
async def life(
    db_url: str, *, extra: Callable[[App], None] | None = None, synced: bool = True
) -> AsyncIterator[Life]:
    """Serve the lifecycle SDK app and perdure (see :func:`hosted`)."""
    seen = Seen()
    async with hosted(db_url, lambda origin: build(seen, origin), extra=extra, synced=synced) as h:
        yield Life(h.app, h.worker, h.http, h.serve_url, seen)
