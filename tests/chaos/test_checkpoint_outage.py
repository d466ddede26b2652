"""A checkpoint lost to a database outage is not a failure of the user's function.

The worker reaches PostgreSQL through a TCP proxy that the test takes down while a step body
runs: the step's checkpoint fails with the store unavailable. That must not reach user code
(which may catch ``Exception`` around its steps), spend an attempt, or fail a function that has
no retries: the run stops there and, once its lease expires, is replayed from its checkpoints.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

import perdure
from conftest import new_pg_schema_url
from tcp_proxy import Proxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from new_pg_schema_url()


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
    started, gate, stopped = asyncio.Event(), asyncio.Event(), asyncio.Event()

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
            try:
                return await ctx.step.run("s", step)
            except Exception as exc:  # user code handling its step's failures
                caught.append(repr(exc))
                return "fallback"
        finally:
            if bodies == 1:
                stopped.set()  # the first execution of the function is over

    try:
        async with app, observer:
            async with app.worker(lease_seconds=1.0):
                handle = await app.start(job)
                await asyncio.wait_for(started.wait(), 60)
                await proxy.stop()  # the database is gone while the step body runs
                gate.set()  # its checkpoint fails ...
                # ... and the engine stops the run there: only then does the database come back.
                await asyncio.wait_for(stopped.wait(), 60)
                await proxy.start()
                result = await observer.handle(handle.run_id).result(timeout=60)
            run = await observer.get_run(handle.run_id)
    finally:
        await proxy.stop()
    assert result == "ok" and caught == []
    assert run.attempt == 0 and run.error is None
    assert [(s.id, s.status, s.output) for s in run.steps] == [("s", "completed", "ok")]
    assert bodies == 2  # at least once: the body whose checkpoint was lost ran again
