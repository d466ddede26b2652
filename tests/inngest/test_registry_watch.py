"""Two servers on one database, an app on the real Inngest Python SDK synced through one of
them: the other hosts its functions without a restart (runs, crons), and a re-sync that drops
a function cancels its runs that had not ended, with a reason naming it.

Each "server" is what ``perdure dev`` assembles (an App, the Inngest driver and routes, a
worker with the registry watcher as listener), in this process, on a manual clock.
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
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
from perdure.testing import ManualClock
from perdure.types import RunInfo

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import inngest.fast_api

    import inngest

APP_ID = "iwatch"
DEADLINE = 60.0


def build(origin: str) -> Any:
    client = inngest.Inngest(
        app_id=APP_ID, is_production=False, api_base_url=origin, event_api_base_url=origin
    )

    @client.create_function(fn_id="hello", trigger=inngest.TriggerEvent(event="w/hello"))
    async def hello(ctx: inngest.Context) -> Any:
        return {"hello": ctx.event.data.get("who")}

    @client.create_function(fn_id="hourly", trigger=inngest.TriggerCron(cron="0 * * * *"))
    async def hourly(ctx: inngest.Context) -> Any:
        return "tick"

    @client.create_function(fn_id="sleepy", trigger=inngest.TriggerEvent(event="w/sleepy"))
    async def sleepy(ctx: inngest.Context) -> Any:
        await ctx.step.sleep("nap", 3_600_000)
        return "woke"

    app = fastapi.FastAPI()
    inngest.fast_api.serve(app, client, [hello, hourly, sleepy])
    capture_registrations(app)
    return app


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        pass


@dataclass
class Server:
    """One perdure server: its App, driver, worker and HTTP routes (in process)."""

    app: App
    driver: InngestDriver
    routes: InngestRoutes
    worker: Worker
    http: httpx.AsyncClient

    async def register(self, body: dict[str, Any]) -> dict[str, Any]:
        res = await self.http.post("/fn/register", json=body)
        assert res.status_code == 200, res.text
        out: dict[str, Any] = res.json()
        return out


@asynccontextmanager
async def server(db_url: str, clock: ManualClock) -> AsyncIterator[Server]:
    app = App("host", db_url, clock=clock)
    await app.open()
    driver = InngestDriver()
    routes = InngestRoutes(app, driver)
    routes.registry.watcher.interval = 0.05
    asgi = create_app(app, dev=True, api_token=None, extra_routes=routes.routes())
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi), base_url="http://127.0.0.1:8288"
    )
    worker = Worker(app.runtime, [driver], lease_seconds=30)
    try:
        await routes.registry.load()
        await worker.start()
        routes.registry.watcher.listeners.append(worker.refresh)
        routes.registry.watcher.start()
        yield Server(app, driver, routes, worker, http)
    finally:
        await routes.registry.watcher.stop()
        await worker.stop()
        await http.aclose()
        await app.close()


@asynccontextmanager
async def sdk_app() -> AsyncIterator[tuple[str, Any]]:
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    api = build(origin)
    srv = _Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, name="inngest-watch-app", daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 30
        while not srv.started:
            assert thread.is_alive() and time.monotonic() < end, "the SDK app did not start"
            await asyncio.sleep(0.02)
        yield f"{origin}/api/inngest", api
    finally:
        srv.should_exit = True
        thread.join(10)


async def until(app: App, run_id: str, statuses: set[str]) -> RunInfo:
    end = time.monotonic() + DEADLINE
    while True:
        info = await app.get_run(run_id)
        if str(info.status) in statuses:
            return info
        assert time.monotonic() < end, f"run {run_id} is {info.status}"
        await asyncio.sleep(0.02)


async def test_the_other_server_hosts_a_synced_app_and_cancels_runs_of_removed_functions(
    db_url: str,
) -> None:
    clock = ManualClock(datetime(2026, 6, 1, 6, 30, tzinfo=UTC))
    async with sdk_app() as (url, api), server(db_url, clock) as a, server(db_url, clock) as b:
        body = await sync(url, api)
        await a.register(body)
        hosted = {f"{APP_ID}-hello", f"{APP_ID}-hourly", f"{APP_ID}-sleepy"}
        assert set(a.driver.functions) == hosted  # the server that took the sync, at once
        end = time.monotonic() + DEADLINE
        while set(b.driver.functions) != hosted:  # the other one, by its watcher
            assert time.monotonic() < end, sorted(b.driver.functions)
            await asyncio.sleep(0.02)

        # Only b executes runs from now on: a's worker stops (its app stays up for reads).
        await a.worker.stop()
        (sent,) = await b.app.send_detailed([Event(name="w/hello", data={"who": "b"})])
        (run_id,) = sent.run_ids
        done = await until(b.app, run_id, {"completed", "failed"})
        assert (str(done.status), done.output) == ("completed", {"hello": "b"})

        # The cron of a function synced after b's worker started fires on b.
        await clock.advance(hours=1)
        end = time.monotonic() + DEADLINE
        while not (ticks := await b.app.list_runs(function=f"{APP_ID}-hourly")):
            assert time.monotonic() < end, "the synced cron never fired"
            await asyncio.sleep(0.02)
        tick = await until(b.app, ticks[0].id, {"completed", "failed"})
        assert (str(tick.status), tick.output) == ("completed", "tick")

        # A run of "sleepy" sleeps; a re-sync without "sleepy" cancels it, saying why.
        (sent,) = await b.app.send_detailed([Event(name="w/sleepy", data={})])
        (sleeping,) = sent.run_ids
        await until(b.app, sleeping, {"sleeping"})
        body["functions"] = [f for f in body["functions"] if not f["id"].endswith("-sleepy")]
        answer = await a.register(body)
        assert answer.get("modified") is True
        info = await until(b.app, sleeping, {"cancelled"})
        assert info.reason is not None
        assert (info.reason["option"], info.reason["decision"]) == ("sync", "cancelled")
        assert info.reason["function_id"] == f"{APP_ID}-sleepy", info.reason
        assert f"removed from the Inngest app '{APP_ID}'" in info.reason["message"]
        end = time.monotonic() + DEADLINE
        while f"{APP_ID}-sleepy" in b.driver.functions:
            assert time.monotonic() < end, "b still hosts the removed function"
            await asyncio.sleep(0.02)
        # The removed function's event starts nothing any more.
        (sent,) = await b.app.send_detailed([Event(name="w/sleepy", data={})])
        assert sent.run_ids == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_dev_server_removal_by_fn_remove_cancels_the_apps_live_runs(db_url: str) -> None:
    clock = ManualClock(datetime(2026, 6, 1, 6, 30, tzinfo=UTC))
    async with sdk_app() as (url, api), server(db_url, clock) as a:
        await a.register(await sync(url, api))
        (sent,) = await a.app.send_detailed([Event(name="w/sleepy", data={})])
        (sleeping,) = sent.run_ids
        await until(a.app, sleeping, {"sleeping"})
        res = await a.http.request("DELETE", "/fn/remove", params={"url": url})
        assert res.status_code == 200, res.text
        info = await until(a.app, sleeping, {"cancelled"})
        assert info.reason is not None and "removed" in info.reason["message"]
        assert a.driver.functions == {}
