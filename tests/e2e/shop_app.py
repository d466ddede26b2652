"""The app the browser tests serve (``perdure dev --app shop_app:app``): a small shop."""

from __future__ import annotations

from typing import Any

import perdure

app = perdure.App("shop")


@app.function(trigger=perdure.event("shop/order.placed"))
async def checkout(ctx: perdure.Context) -> dict[str, Any]:
    order = ctx.event.data
    reserved = await ctx.step.run("reserve-stock", lambda: {"sku": order.get("sku"), "held": 1})
    await ctx.step.sleep("settle", 0.2)
    charge = await ctx.step.run("charge-card", _charge, order.get("total", 0), currency="EUR")
    shipped = await ctx.step.run("ship", lambda: {"tracking": f"TRK-{order.get('n', 0)}"})
    return {"reserved": reserved, "charge": charge, "shipped": shipped}


def _charge(total: int, currency: str) -> dict[str, Any]:
    return {"amount": total, "currency": currency}


def _declined() -> None:
    raise perdure.NonRetriableError("card declined by the issuer")


@app.function(retries=0)
async def refund(ctx: perdure.Context) -> None:
    await ctx.step.run("lookup", lambda: {"order": ctx.event.data.get("n")})
    await ctx.step.run("refund-card", _declined)


@app.function()
async def reminder(ctx: perdure.Context) -> str:
    await ctx.step.run("prepare", lambda: "ready")
    await ctx.step.sleep("wait-a-day", 86400)
    return "reminded"
