"""Fan-out, fan-in: ask N suppliers for a price at once and keep the best offer.

Steps awaited together run in parallel: ``ctx.step.parallel(a, b, c)`` (or, equivalently,
``asyncio.gather(a, b, c)``) starts every step at once, checkpoints each as it completes, and
returns their results in order. Each quote is its own step: it is retried on its own if it
fails, and after a crash only the quotes that had not completed yet are fetched again.

Every supplier in this demo takes 1 second to answer, so fetching 5 quotes one after another
would take 5 seconds; in parallel it takes about 1. The script prints the timing and each step's
start and end, which overlap.

Step ids are fixed when the step is *created*, in program order, so a parallel group replays
deterministically whatever order the steps finish in.

Run it::

    python examples/fan_out.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import perdure

BEST_PRICE = "best-price"

SUPPLIERS = ["acme", "globex", "initech", "umbrella", "hooli"]
_PRICES = {"acme": 129.0, "globex": 114.5, "initech": 131.0, "umbrella": 99.9, "hooli": 120.0}


async def fetch_quote(supplier: str, product: str, latency: float) -> dict[str, Any]:
    """Ask one supplier for a price (a slow HTTP call in real life)."""
    await asyncio.sleep(latency)
    return {"supplier": supplier, "product": product, "price": _PRICES.get(supplier, 150.0)}


def make_app(database_url: str | None = None) -> perdure.App:
    """Build the app (``None``: ``PERDURE_DATABASE_URL`` or a SQLite file under ./.perdure/)."""
    app = perdure.App("example-fan-out", database_url)

    @app.function(id=BEST_PRICE)
    async def best_price(ctx: perdure.Context) -> dict[str, Any]:
        product: str = ctx.event.data["product"]
        suppliers: list[str] = ctx.event.data.get("suppliers", SUPPLIERS)
        latency: float = ctx.event.data.get("latency", 1.0)

        # Fan out: one step per supplier, all started at once.
        quotes = await ctx.step.parallel(
            *(ctx.step.run(f"quote-{s}", fetch_quote, s, product, latency) for s in suppliers)
        )
        # Fan in: plain code over the checkpointed results (deterministic, so no step needed).
        best = min(quotes, key=lambda q: q["price"])
        return {"product": product, "best": best, "quotes": len(quotes)}

    return app


# The app for `perdure worker examples.fan_out:app`.
app = make_app()


async def main() -> None:
    """Fetch 5 quotes of 1 s each and show they ran at the same time."""
    demo = make_app()
    async with demo, demo.worker():
        started = time.monotonic()
        handle = await demo.start(BEST_PRICE, {"product": "espresso machine", "latency": 1.0})
        result = await handle.result(timeout=30)
        elapsed = time.monotonic() - started
        run = await demo.get_run(handle.run_id)

    print(f"best offer: {result['best']['supplier']} at {result['best']['price']}")
    print(
        f"{len(run.steps)} quote steps of 1 s each finished in {elapsed:.2f}s "
        f"(one after another would take {len(run.steps)}s)"
    )
    origin = min(s.started_at for s in run.steps if s.started_at is not None)
    for step in run.steps:
        if step.started_at is None or step.ended_at is None:
            continue
        start = (step.started_at - origin).total_seconds()
        end = (step.ended_at - origin).total_seconds()
        print(f"  {step.id:<16} {start:5.2f}s -> {end:5.2f}s  price={step.output['price']}")


if __name__ == "__main__":
    asyncio.run(main())
