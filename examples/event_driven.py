"""Event-driven: an order flow that starts on one event and waits for another.

``fulfil_order`` is triggered by ``order.placed``: every event of that name starts a run, with the
event as ``ctx.event``. The run reserves the stock, then waits for the payment with
``ctx.step.wait_for_event("wait-for-payment", event="order.paid", match="data.order_id", ...)``:
the first ``order.paid`` event sent after the wait began whose ``data.order_id`` equals this
run's ``data.order_id`` resumes it, and the step returns that event. Payments for other orders
are ignored. If none comes within the timeout, the step returns ``None`` and the flow releases
the stock instead of shipping.

While it waits, the run holds no worker: it is a row in the database. The wait may last days
and survive any number of restarts, and the payment event may be sent by any process on the
same database (``await app.send(perdure.Event("order.paid", {...}))``).

Run it::

    python examples/event_driven.py

The script places two orders. It pays the first (the run ships it) and lets the second time out
after 2 seconds (the run releases the stock). The payment window is one hour by default; an order
may shorten it with ``payment_window_seconds`` so the demo does not wait an hour.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import perdure
from perdure.testing import ManualClock

FULFIL_ORDER = "fulfil-order"
PAYMENT_WINDOW = 3600.0  # seconds


# --------------------------------------------------------------------------- fake services


def reserve_stock(order_id: str, items: list[str]) -> str:
    """Hold the items in the warehouse."""
    return f"hold-{order_id}"


def release_stock(hold: str) -> str:
    """Give the held items back."""
    return f"released {hold}"


def ship(order_id: str, hold: str) -> str:
    """Hand the parcel to the carrier; return the tracking number."""
    return f"TRACK-{order_id}"


# --------------------------------------------------------------------------- the function


def make_app(database_url: str | None = None, *, clock: ManualClock | None = None) -> perdure.App:
    """Build the app (``None``: ``PERDURE_DATABASE_URL`` or a SQLite file under ./.perdure/).

    ``clock``: tests pass a :class:`~perdure.testing.ManualClock` to move time by hand.
    """
    app = perdure.App("example-orders", database_url, clock=clock)

    @app.function(id=FULFIL_ORDER, trigger=perdure.event("order.placed"))
    async def fulfil_order(ctx: perdure.Context) -> dict[str, Any]:
        order: dict[str, Any] = ctx.event.data
        order_id: str = order["order_id"]
        hold = await ctx.step.run("reserve-stock", reserve_stock, order_id, order["items"])

        # Suspend until the matching payment arrives, or the window closes (-> None).
        payment = await ctx.step.wait_for_event(
            "wait-for-payment",
            event="order.paid",
            match="data.order_id",  # order.paid's data.order_id == order.placed's data.order_id
            timeout=order.get("payment_window_seconds", PAYMENT_WINDOW),
        )
        if payment is None:
            await ctx.step.run("release-stock", release_stock, hold)
            return {"order_id": order_id, "status": "expired", "payment": None}

        tracking = await ctx.step.run("ship", ship, order_id, hold)
        return {
            "order_id": order_id,
            "status": "shipped",
            "payment": payment.data,  # the order.paid event that resumed the run
            "tracking": tracking,
        }

    return app


# The app for `perdure worker examples.event_driven:app`.
app = make_app()


async def place_order(demo: perdure.App, order: dict[str, Any]) -> perdure.RunHandle:
    """Send ``order.placed`` and return a handle on the ``fulfil-order`` run it started."""
    (sent,) = await demo.send_detailed([perdure.Event("order.placed", order)])
    for run_id in sent.run_ids:  # the runs of every function this event triggered
        if (await demo.get_run(run_id, steps=False)).function_id == FULFIL_ORDER:
            return demo.handle(run_id)
    raise RuntimeError("order.placed did not start fulfil-order")


async def wait_until_waiting(handle: perdure.RunHandle, timeout: float = 10.0) -> None:
    """Wait until the run is suspended on its wait_for_event.

    A wait only matches events sent *after* it began, so a demo that sends the payment right
    after the order must let the run reach its wait first. (A real payment comes later anyway.)
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await handle.status() == perdure.RunStatus.WAITING:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"run {handle.run_id} did not start waiting in {timeout}s")


async def main() -> None:
    """Place two orders: pay one, let the other time out."""
    demo = make_app()
    async with demo, demo.worker():
        paid_id = f"A-{uuid.uuid4().hex[:6]}"
        unpaid_id = f"B-{uuid.uuid4().hex[:6]}"
        paid = await place_order(demo, {"order_id": paid_id, "items": ["book"]})
        unpaid = await place_order(
            demo, {"order_id": unpaid_id, "items": ["lamp"], "payment_window_seconds": 2}
        )
        await wait_until_waiting(paid)
        await wait_until_waiting(unpaid)
        print(f"order {paid_id}: run {paid.run_id} is waiting for order.paid")
        print(f"order {unpaid_id}: run {unpaid.run_id} is waiting for order.paid (2 s window)")

        # A payment for another order does not resume either run; the right one does.
        await demo.send(
            [
                perdure.Event("order.paid", {"order_id": "someone-else", "amount": 1}),
                perdure.Event("order.paid", {"order_id": paid_id, "amount": 25, "method": "card"}),
            ]
        )
        print(f"paid order:   {await paid.result(timeout=30)}")
        print(f"unpaid order: {await unpaid.result(timeout=30)}")
        run = await demo.get_run(unpaid.run_id)
        wait = next(s for s in run.steps if s.id == "wait-for-payment")
        print(f"  its {wait.id!r} step returned {wait.output} (timed out)")


if __name__ == "__main__":
    asyncio.run(main())
