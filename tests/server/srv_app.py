"""The app the server tests serve (``perdure dev --app srv_app:app``)."""

from __future__ import annotations

from typing import Any

import perdure

app = perdure.App("srvtest")


@app.function()
async def echo(ctx: perdure.Context) -> dict[str, Any]:
    doubled = await ctx.step.run("double", lambda: {k: [v, v] for k, v in ctx.event.data.items()})
    return {"data": ctx.event.data, "doubled": doubled}


@app.function(trigger=perdure.event("test/ping"))
async def on_ping(ctx: perdure.Context) -> str:
    seen = await ctx.step.run("see", lambda: ctx.event.data.get("n"))
    return f"pong {seen}"


@app.function()
async def nap(ctx: perdure.Context) -> str:
    await ctx.step.sleep("nap", 3600)
    return "woke"


@app.function()
async def paged(ctx: perdure.Context) -> Any:
    return ctx.event.data.get("i")


@app.function(retries=0)
async def boom(ctx: perdure.Context) -> None:
    raise perdure.NonRetriableError("boom on purpose")
