"""The app of the server's flow-control tests (``perdure dev --app srv_flow_app:app``)."""

from __future__ import annotations

import perdure

app = perdure.App("srvflow")


@app.function(
    trigger=perdure.event("shop/order.placed"),
    cancel_on=[perdure.CancelOn("shop/order.cancelled", match="data.order", timeout="1d")],
    timeouts=perdure.Timeouts(start="10m"),
)
async def fulfil(ctx: perdure.Context) -> str:
    await ctx.step.sleep("cool-off", 3600)
    return "shipped"


@app.function(timeouts=perdure.Timeouts(finish="1s"))
async def slowpoke(ctx: perdure.Context) -> str:
    await ctx.step.sleep("nap", 3600)
    return "woke"
