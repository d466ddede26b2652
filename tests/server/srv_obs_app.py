"""The app of the observability tests (``perdure dev --app srv_obs_app:app``)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import perdure

app = perdure.App("srvobs")
log = logging.getLogger("srvobs")


@app.function()
async def greet(ctx: perdure.Context) -> str:
    def hello() -> str:  # a sync step body: it runs in a thread
        log.warning("hello from the step of %s", ctx.run_id)
        return f"hello {ctx.event.data.get('who')}"

    text = await ctx.step.run("hello", hello)
    log.warning("greeted in %s", ctx.run_id)
    return text


@app.function(retries=0)
async def boom(ctx: perdure.Context) -> None:
    raise perdure.NonRetriableError("boom on purpose")


@app.function()
async def nap(ctx: perdure.Context) -> str:
    await ctx.step.sleep("nap", 3600)
    return "woke"


@app.function(trigger=perdure.event("obs/limited"), rate_limit=perdure.RateLimit(1, "1h"))
async def limited(ctx: perdure.Context) -> int:
    return 1


@app.function(trigger=perdure.event("obs/stall"))
async def stall(ctx: perdure.Context) -> Any:
    async def body() -> str:
        if os.environ.get("SRVOBS_HANG"):  # the process meant to be killed hangs here
            await asyncio.sleep(3600)
        return "done"

    return await ctx.step.run("body", body)
