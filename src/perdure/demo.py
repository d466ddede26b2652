"""The bundled demo app: what ``perdure dev`` serves when no ``--app`` is given.

Try it::

    perdure dev                                                   # in one terminal
    perdure send demo/order.placed --data '{"order_id": "A1"}'    # in another
    perdure runs list
    perdure send demo/order.delivered --data '{"order_id": "A1"}'

Sending ``demo/order.placed`` starts two runs:

- ``fulfil-order``: reserves stock, charges the card (a flaky step that fails its first attempt
  and is retried), sleeps a few seconds while "the courier comes" (the run is suspended and
  the worker is free meanwhile), then sends ``demo/order.shipped``;
- ``track-delivery``: waits up to two minutes for a ``demo/order.delivered`` event with the
  same ``order_id``, then reports whether it came.

``ping`` runs every minute (cron), and ``greet`` is a plain (sync) function started directly:
``curl -X POST localhost:8288/api/v1/functions/greet/runs -d '{"data": {"name": "Ada"}}'``.

The database is ``PERDURE_DATABASE_URL``, else ``.perdure/perdure.db``.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import perdure

app = perdure.App("demo")

_charge_calls: dict[str, int] = {}


def reserve_stock(order_id: str) -> dict[str, Any]:
    """A side effect: reserve the items (here, pretend)."""
    return {"order_id": order_id, "warehouse": random.choice(["north", "south"])}


async def charge_card(order_id: str) -> dict[str, Any]:
    """A flaky payment call: the first attempt for each order fails, the retry succeeds."""
    _charge_calls[order_id] = _charge_calls.get(order_id, 0) + 1
    await asyncio.sleep(0.1)
    if _charge_calls[order_id] == 1:
        raise ConnectionError("payment gateway timed out")
    return {"order_id": order_id, "charged": True, "attempts": _charge_calls[order_id]}


@app.function(trigger=perdure.event("demo/order.placed"), retries=3)
async def fulfil_order(ctx: perdure.Context) -> dict[str, Any]:
    """Reserve, charge (retried), wait for the courier, ship."""
    order_id = str(ctx.event.data.get("order_id", "unknown"))
    stock = await ctx.step.run("reserve-stock", reserve_stock, order_id)
    payment = await ctx.step.run("charge-card", charge_card, order_id)
    await ctx.step.sleep("wait-for-courier", 3)
    await ctx.step.send_event(
        "announce-shipment",
        perdure.Event(name="demo/order.shipped", data={"order_id": order_id}),
    )
    return {"order_id": order_id, "warehouse": stock["warehouse"], "payment": payment}


@app.function(trigger=perdure.event("demo/order.placed"))
async def track_delivery(ctx: perdure.Context) -> dict[str, Any]:
    """Wait for the matching ``demo/order.delivered`` event, for up to two minutes."""
    delivered = await ctx.step.wait_for_event(
        "delivered", event="demo/order.delivered", match="data.order_id", timeout="2m"
    )
    if delivered is None:
        return {"order_id": ctx.event.data.get("order_id"), "delivered": False}
    return {
        "order_id": ctx.event.data.get("order_id"),
        "delivered": True,
        "at": delivered.time.isoformat(),
    }


@app.function(trigger=perdure.cron("* * * * *"))
async def ping(ctx: perdure.Context) -> str:
    """Runs every minute."""
    return f"pong at {ctx.event.time:%H:%M:%S} UTC"


@app.function()
def greet(ctx: perdure.SyncContext) -> str:
    """A plain function, started directly; its steps block and return values."""
    name = ctx.event.data.get("name", "world")
    text = ctx.step.run("compose", lambda: f"Hello, {name}!")
    return text
