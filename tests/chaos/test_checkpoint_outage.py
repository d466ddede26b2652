"""A checkpoint lost to a database outage is not a failure of the user's function.

The worker reaches PostgreSQL through a TCP proxy that the test takes down while a step body
runs: the step's checkpoint fails with the store unavailable. That must not reach user code
(which may catch ``Exception`` around its steps), spend an attempt, or fail a function that has
no retries: the run stops there and, once its lease expires, is replayed from its checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

import perdure
from conftest import new_pg_schema_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from new_pg_schema_url()


class Proxy:
    """A TCP proxy that can drop every connection and refuse new ones, then come back."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.streams: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for w in list(self.streams):
            w.transport.abort()
        self.streams.clear()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection(*self.target)
        except OSError:
            cw.transport.abort()
            return
        self.streams |= {cw, sw}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.transport.abort()

        await asyncio.gather(pipe(cr, sw), pipe(sr, cw))


@pytest.mark.timeout(120)
async def test_a_checkpoint_lost_to_an_outage_is_not_the_functions_failure(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via_proxy = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    app = perdure.App("t", via_proxy + "&pool_timeout=3")
    observer = perdure.App("t", pg_url)
    bodies = 0
    caught: list[str] = []
    started, gate = asyncio.Event(), asyncio.Event()

    async def step() -> str:
        nonlocal bodies
        bodies += 1
        started.set()
        if bodies == 1:
            await gate.wait()
        return "ok"

    @app.function(retries=0)
    async def job(ctx: perdure.Context) -> str:
        try:
            return await ctx.step.run("s", step)
        except Exception as exc:  # user code handling its step's failures
            caught.append(repr(exc))
            return "fallback"

    try:
        async with app, observer:
            async with app.worker(lease_seconds=1.0):
                handle = await app.start(job)
                await asyncio.wait_for(started.wait(), 30)
                await proxy.stop()  # the database is gone while the step body runs
                gate.set()  # its checkpoint fails
                await asyncio.sleep(1.0)
                await proxy.start()
                result = await observer.handle(handle.run_id).result(timeout=60)
            run = await observer.get_run(handle.run_id)
    finally:
        await proxy.stop()
    assert result == "ok" and caught == []
    assert run.attempt == 0 and run.error is None
    assert [(s.id, s.status, s.output) for s in run.steps] == [("s", "completed", "ok")]
    assert bodies == 2  # at least once: the body whose checkpoint was lost ran again
