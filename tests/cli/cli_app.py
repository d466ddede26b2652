"""The app the CLI tests register and run."""

from __future__ import annotations

import perdure

app = perdure.App("clitest")


@app.function(trigger=perdure.event("cli/shout"))
async def shout(ctx: perdure.Context) -> str:
    return await ctx.step.run("upper", lambda: str(ctx.event.data.get("text", "")).upper())


@app.function()
async def square(ctx: perdure.Context) -> int:
    n = int(ctx.event.data["n"])
    return await ctx.step.run("square", lambda: n * n)


@app.function(trigger=perdure.cron("0 9 * * *", tz="Europe/Paris"))
async def nap(ctx: perdure.Context) -> str:
    await ctx.step.sleep("long-nap", 3600)
    return "rested"
