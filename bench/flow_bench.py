"""Claim-time flow control: throughput with a per-key concurrency limit vs none, and the claim
cost with 10,000 queued runs over 1,000 keys (issue 7). Prints ratios measured in one run.

    python bench/flow_bench.py [--backends sqlite,postgres] [--runs 2000] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid

import perdure
from perdure import Concurrency

PG_URL = os.environ.get("PERDURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def db_url(backend: str, pg: str, tmp: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp}/{uuid.uuid4().hex}.db"
    return f"{pg}?schema=flowbench_{uuid.uuid4().hex[:8]}"


async def throughput(url: str, runs: int, limited: bool) -> float:
    """Runs per second, 2 steps each, started at once; with ``limited`` a per-key limit of 4
    over 100 keys (the limit is reached: up to 400 runs at once, 500 worker slots)."""
    app = perdure.App("bench", url)
    conc = Concurrency(4, key="event.data.k") if limited else None

    @app.function(id="work", concurrency=conc)
    async def work(ctx: perdure.Context) -> int:
        a = await ctx.step.run("a", lambda: 1)
        return await ctx.step.run("b", lambda: a + 1)

    async with app:
        await app.register()
        t0 = time.perf_counter()
        async with app.worker():
            handles = await asyncio.gather(
                *(app.start(work, {"k": f"k{i % 100}"}) for i in range(runs))
            )
            await asyncio.gather(*(h.result(timeout=600) for h in handles))
        return runs / (time.perf_counter() - t0)


async def claim_cost(url: str) -> tuple[float, float]:
    """Median ms of a claim of 100 runs with 10,000 runs queued over 1,000 keys (limit 1 per
    key): claims run back to back without executing, so each later claim skips the keys the
    earlier ones saturated; and the same claim with no limit."""
    out = []
    for limited in (True, False):
        app = perdure.App("bench", url)
        conc = Concurrency(1, key="event.data.k") if limited else None

        @app.function(id="q", concurrency=conc)
        async def q(ctx: perdure.Context) -> None:
            return None

        async with app:
            await app.register()
            for base in range(0, 10_000, 500):
                await asyncio.gather(
                    *(app.start(q, {"k": f"k{(base + i) % 1000}"}) for i in range(500))
                )
            store = app.store
            times = []
            for _ in range(9):
                t0 = time.perf_counter()
                claim = await store.claim("bench", ["q"], 100, 300.0)
                times.append((time.perf_counter() - t0) * 1000)
                assert len(claim.runs) == 100, len(claim.runs)
            out.append(statistics.median(times))
    return out[0], out[1]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--pg-url", default=PG_URL)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            free = await throughput(db_url(backend, args.pg_url, tmp), args.runs, False)
            lim = await throughput(db_url(backend, args.pg_url, tmp), args.runs, True)
            gated, plain = await claim_cost(db_url(backend, args.pg_url, tmp))
            print(
                f"{backend:8} throughput {args.runs} runs: no limit {free:7.0f}/s, "
                f"per-key limit {lim:7.0f}/s, ratio {lim / free:.2f} (target >= 0.70)"
            )
            print(
                f"{backend:8} claim of 100 with 10,000 queued over 1,000 keys: "
                f"limit 1 per key {gated:.1f} ms, no limit {plain:.1f} ms"
            )


if __name__ == "__main__":
    asyncio.run(main())
