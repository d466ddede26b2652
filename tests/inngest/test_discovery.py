"""Autodiscovery (``perdure dev`` without ``--no-discovery``): an Inngest SDK app served on a
probed local port is found and synced with no ``-u``; a server that is not an SDK is not."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fastapi
import httpx
import uvicorn
from dev_world import DevServer
from polling import eventually
from sdk_apps import client, free_port

from perdure.inngest.discovery import candidate_ports, discover
from perdure.inngest.sync import AppPoller

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import inngest.fast_api

    import inngest

APP_ID = "idisc"


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        pass


@contextmanager
def served(api: Any) -> Iterator[int]:
    """Serve ``api`` on a free port in a thread; yield the port."""
    port = free_port()
    server = _Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="discovery-app", daemon=True)
    thread.start()
    try:
        eventually("the app to listen", lambda: server.started)
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def sdk_app(origin: str) -> fastapi.FastAPI:
    c = client(APP_ID, origin)

    @c.create_function(fn_id="found", trigger=inngest.TriggerEvent(event="disc/found"))
    async def found(ctx: inngest.Context) -> str:
        return "found"

    api = fastapi.FastAPI()
    inngest.fast_api.serve(api, c, [found])
    return api


def plain_app() -> fastapi.FastAPI:
    api = fastapi.FastAPI()

    @api.get("/api/inngest")
    async def not_an_sdk() -> dict[str, str]:
        return {"hello": "world"}

    return api


def test_the_probed_ports_are_inngest_s_and_port_but_not_perdure_s() -> None:
    ports = candidate_ports("4999", own_port=3000)
    assert 4999 in ports and 3000 not in ports and 3001 in ports and 8288 not in ports
    assert candidate_ports("nope", None) == candidate_ports(None, None)


async def test_discover_finds_sdk_apps_and_nothing_else() -> None:
    closed = free_port()
    with served(sdk_app("http://127.0.0.1:1")) as sdk, served(plain_app()) as plain:
        async with httpx.AsyncClient() as http:
            found = await discover(http, [sdk, plain, closed])
            assert found == [f"http://127.0.0.1:{sdk}/api/inngest"]
            # The poller adds what it finds while no app is synced, and pings it.
            poller = AppPoller([], http=http, discover_ports=[sdk, closed])
            await poller.tick()
            (state,) = poller.states.values()
            assert state.url == found[0] and state.attempts == 1
            # Once an app is synced, it no longer looks.
            quiet = AppPoller([], http=http, discover_ports=[sdk], has_apps=lambda: True)
            await quiet.tick()
            assert quiet.states == {}


def test_perdure_dev_syncs_an_app_it_discovers(tmp_path: Path, sqlite_url: str) -> None:
    port = free_port()
    dev = DevServer(tmp_path, port, sqlite_url, [])
    with served(sdk_app(dev.origin)) as app_port:
        dev.env["PORT"] = str(app_port)  # probed beside the usual ports, as Inngest does
        dev.start()
        try:
            dev.synced(APP_ID, 1)
            run_id = dev.trigger("disc/found")
            assert dev.ended(run_id)["output"] == "found"
        finally:
            dev.close()
