"""The app of the dashboard API tests (``perdure dev --app srv_dash_app:app``): an order
flow that waits for its shipment, and a function whose outcome and duration its input picks."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import perdure

app = perdure.App("srvdash")


@app.function(trigger=perdure.event("dash/order.placed"))
async def ship(ctx: perdure.Context) -> Any:
    order = ctx.event.data["order"]
    shipped = await ctx.step.wait_for_event(
        "shipped", event="dash/order.shipped", match="data.order", timeout=timedelta(hours=1)
    )
    return {"order": order, "carrier": None if shipped is None else shipped.data["carrier"]}


@app.function(retries=0)
async def timed(ctx: perdure.Context) -> Any:
    seconds = float(ctx.event.data.get("seconds", 0))
    await ctx.step.run("work", asyncio.sleep, seconds)
    if ctx.event.data.get("fail"):
        raise perdure.NonRetriableError("failed on purpose")
    return seconds
