"""Run state over 4 MiB with the real Inngest Python SDK: the ``use_api`` path (protocol §6.3).

perdure's HTTP server is served on a real port (the SDK fetches ``/v0/runs/{id}/batch`` and
``/v0/runs/{id}/actions`` from it, as from an Inngest server) and the SDK app (FastAPI) syncs
itself through it. The perdure app has a step output limit of 5 MiB (the default is 4 MiB,
Inngest's own) and an event limit of 2 MiB, so that one step's output can be over 4 MiB.

Scenarios, concurrently, on SQLite and PostgreSQL: a 4.5 MiB step output read by the next step;
the SDK's own ``steps_that_needs_api`` (five parallel 1 MiB steps); its ``batch_that_needs_api``
(a batch of 1 MiB events, five here); a step output over the limit, failing the run clearly.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import fastapi
import httpx
import pytest
import uvicorn
from sdk_app import free_port

from perdure import App, Event, Limits
from perdure.inngest.driver import InngestDriver
from perdure.inngest.routes import InngestRoutes
from perdure.runtime import Worker
from perdure.server import create_app
from perdure.types import RunInfo

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import inngest.fast_api

    import inngest

APP_ID = "iapi"
DEADLINE = 60.0
MiB = 1024 * 1024
BIG = 9 * MiB // 2
LIMITS = Limits(event=2 * MiB, step_output=5 * MiB)
TOO_BIG = LIMITS.step_output


def _hashed(step_id: str) -> str:
    return hashlib.sha1(step_id.encode()).hexdigest()


def build(bodies: Counter[str], origin: str) -> fastapi.FastAPI:
    """The SDK app: its API is perdure at ``origin``."""
    client = inngest.Inngest(
        app_id=APP_ID, is_production=False, api_base_url=origin, event_api_base_url=origin
    )

    def body(name: str, value: Any) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            bodies[name] += 1
            return value

        return run

    @client.create_function(fn_id="big", trigger=inngest.TriggerEvent(event="api/big"), retries=0)
    async def big(ctx: inngest.Context) -> Any:
        text = await ctx.step.run("big", body("big", "x" * BIG))

        async def read() -> dict[str, Any]:
            bodies["read"] += 1
            return {"len": len(text), "all_x": text == "x" * BIG}

        seen = await ctx.step.run("read", read)
        return {"read": seen, "events": len(ctx.events)}

    @client.create_function(
        fn_id="parallel", trigger=inngest.TriggerEvent(event="api/parallel"), retries=0
    )
    async def parallel(ctx: inngest.Context) -> Any:
        steps = tuple(
            (lambda i=i: ctx.step.run(f"p{i}", body(f"p{i}", str(i) * MiB))) for i in range(5)
        )
        out = await ctx.group.parallel(steps)
        return [len(s) for s in out]

    @client.create_function(
        fn_id="too-big", trigger=inngest.TriggerEvent(event="api/too-big"), retries=0
    )
    async def too_big(ctx: inngest.Context) -> Any:
        await ctx.step.run("huge", body("huge", "x" * TOO_BIG))
        return "unreachable"

    @client.create_function(
        fn_id="batched",
        trigger=inngest.TriggerEvent(event="api/batch"),
        batch_events=inngest.Batch(max_size=5, timeout=timedelta(seconds=10)),
        retries=0,
    )
    async def batched(ctx: inngest.Context) -> Any:
        bodies["batched"] += 1
        return {"n": len(ctx.events), "sizes": sorted({len(str(e.data["s"])) for e in ctx.events})}

    app = fastapi.FastAPI()
    inngest.fast_api.serve(app, client, [big, parallel, too_big, batched])
    return app


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test's process owns the signals
        pass


@dataclass
class World:
    app: App
    http: httpx.AsyncClient  # perdure's server, over the network
    bodies: Counter[str]
    fetched: Counter[str]  # GET /v0/runs/{id}/<what> served, by what

    async def trigger(self, name: str) -> str:
        (sent,) = await self.app.send_detailed([Event(name=name, data={})])
        (run_id,) = sent.run_ids
        return run_id

    async def ended(self, run_id: str) -> RunInfo:
        end = time.monotonic() + DEADLINE
        while True:
            info = await self.app.get_run(run_id)
            if str(info.status) in ("completed", "failed", "cancelled"):
                return info
            if time.monotonic() > end:
                pytest.fail(f"run {run_id} is {info.status}")
            await asyncio.sleep(0.05)


def _counting(asgi: Any, fetched: Counter[str]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/v0/runs/") and path.endswith(("/batch", "/actions")):
            fetched[path.rsplit("/", 1)[1]] += 1
        await asgi(scope, receive, send)

    return app


async def _serve(server: uvicorn.Server, task: asyncio.Task[None] | None = None) -> None:
    end = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < end, "a server did not start"
        if task is not None and task.done():
            task.result()
        await asyncio.sleep(0.02)


@asynccontextmanager
async def world(db_url: str) -> AsyncIterator[World]:
    app = App("host", db_url, limits=LIMITS)
    await app.open()
    driver = InngestDriver()
    routes = InngestRoutes(app, driver)
    fetched: Counter[str] = Counter()
    asgi = _counting(
        create_app(app, dev=True, api_token=None, extra_routes=routes.routes()), fetched
    )
    port, app_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{port}"
    perdure = _Server(
        uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.get_running_loop().create_task(perdure.serve())
    bodies: Counter[str] = Counter()
    sdk = _Server(
        uvicorn.Config(build(bodies, origin), host="127.0.0.1", port=app_port, log_level="warning")
    )
    thread = threading.Thread(target=sdk.run, name="inngest-api-app", daemon=True)
    thread.start()
    worker: Worker | None = None
    http = httpx.AsyncClient(base_url=origin, timeout=30)
    try:
        await _serve(perdure, serving)
        await _serve(sdk)
        async with httpx.AsyncClient(timeout=30) as put:  # the SDK syncs through perdure
            res = await put.put(f"http://127.0.0.1:{app_port}/api/inngest")
            assert res.status_code == 200, res.text
        assert len(driver.functions) == 4, driver.functions
        worker = Worker(app.runtime, [driver], lease_seconds=30)
        await worker.start()
        yield World(app, http, bodies, fetched)
    finally:
        if worker is not None:
            await worker.stop()
        await http.aclose()
        sdk.should_exit = True
        perdure.should_exit = True
        await serving
        await asyncio.to_thread(thread.join, 10)
        await app.close()


async def test_state_over_4_mib_is_fetched_by_the_sdk_from_the_api(db_url: str) -> None:
    async with world(db_url) as w:

        async def big() -> tuple[str, RunInfo]:
            run_id = await w.trigger("api/big")
            info = await w.ended(run_id)
            assert str(info.status) == "completed", info.error
            assert info.output == {"read": {"len": BIG, "all_x": True}, "events": 1}
            return run_id, info

        async def parallel() -> None:
            info = await w.ended(await w.trigger("api/parallel"))
            assert str(info.status) == "completed", info.error
            assert info.output == [MiB] * 5

        async def too_big() -> None:
            info = await w.ended(await w.trigger("api/too-big"))
            assert str(info.status) == "failed"
            assert info.error is not None
            assert info.error["type"] == "PayloadTooLargeError"  # the step's failure, raised
            assert info.error["message"] == (
                f"output of step 'huge' is {TOO_BIG + 2} bytes, "
                f"over the limit of {LIMITS.step_output} bytes"
            )

        async def batch() -> None:
            events = [{"name": "api/batch", "data": {"s": "b" * MiB}} for _ in range(5)]
            for part in (events[:3], events[3:]):  # a request body is at most 8 MiB
                res = await w.http.post("/e/key", json=part)
                assert res.status_code == 200, res.text
            end = time.monotonic() + DEADLINE
            while not (runs := await w.app.list_runs(function=f"{APP_ID}-batched")):
                assert time.monotonic() < end, "the batch did not start a run"
                await asyncio.sleep(0.05)
            (run,) = runs
            info = await w.ended(run.id)
            assert str(info.status) == "completed", info.error
            assert info.output == {"n": 5, "sizes": [MiB]}

        (run_id, info), *_ = await asyncio.gather(big(), parallel(), too_big(), batch())
        # Every step body ran once; the SDK fetched the state on the calls that left it out.
        ran = {"big": 1, "read": 1, "huge": 1, "batched": 1} | {f"p{i}": 1 for i in range(5)}
        assert w.bodies == ran
        assert w.fetched["batch"] == w.fetched["actions"] >= 3, w.fetched

        res = await w.http.get(f"/v0/runs/{run_id}/actions")
        assert res.status_code == 200
        assert res.json() == {
            _hashed("big"): {"data": "x" * BIG},
            _hashed("read"): {"data": {"len": BIG, "all_x": True}},
        }
        res = await w.http.get(f"/v0/runs/{run_id}/batch")
        assert res.status_code == 200
        (event,) = res.json()
        assert event["name"] == "api/big" and event["id"] == info.event.id
        assert event["user"] == {} and event["ts"] > 0
        for what in ("batch", "actions"):
            res = await w.http.get(f"/v0/runs/01HNOSUCHRUN0000000000000/{what}")
            assert res.status_code == 404
            assert res.json() == {
                "error": "no run with id '01HNOSUCHRUN0000000000000'",
                "status": 404,
            }
