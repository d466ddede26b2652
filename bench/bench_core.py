"""perdure's core benchmark: what durability costs over plain function calls.

Measures, in one process and one run, on a fresh database:

- sequential: one run of 3 no-op steps at a time (start -> result), median and p99 per run and
  per step;
- throughput: N runs of 3 no-op steps started at once, runs per second end to end;

and the same workload without perdure (the three functions awaited directly), then prints the
ratios. Usage::

    python bench/bench_core.py                       # SQLite in a temp folder
    python bench/bench_core.py --url postgresql://postgres@127.0.0.1:5432/test
    python bench/bench_core.py --runs 500 --throughput 2000 --concurrency 500
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

import perdure


async def noop() -> None:
    return None


async def three_plain() -> int:
    await noop()
    await noop()
    await noop()
    return 1


def make_app(url: str) -> tuple[perdure.App, Any]:
    app = perdure.App("bench", url, retention=None)

    @app.function()
    async def three(ctx: perdure.Context) -> int:
        await ctx.step.run("a", noop)
        await ctx.step.run("b", noop)
        await ctx.step.run("c", noop)
        return 1

    return app, three


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def baseline(runs: int, throughput: int) -> dict[str, float]:
    lat = []
    for _ in range(runs):
        t = time.perf_counter()
        await three_plain()
        lat.append(time.perf_counter() - t)
    t = time.perf_counter()
    await asyncio.gather(*(three_plain() for _ in range(throughput)))
    return {
        "median": statistics.median(lat),
        "p99": pct(lat, 0.99),
        "rps": throughput / (time.perf_counter() - t),
    }


async def measure(url: str, runs: int, throughput: int, concurrency: int) -> dict[str, float]:
    app, three = make_app(url)
    async with app, app.worker(concurrency=concurrency):
        for _ in range(50):  # warm-up
            await (await app.start(three)).result()
        lat = []
        for _ in range(runs):
            t = time.perf_counter()
            await (await app.start(three)).result()
            lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        handles = await asyncio.gather(*(app.start(three) for _ in range(throughput)))
        await asyncio.gather(*(h.result() for h in handles))
        rps = throughput / (time.perf_counter() - t)
    return {"median": statistics.median(lat), "p99": pct(lat, 0.99), "rps": rps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="database URL (default: a temp SQLite file)")
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--throughput", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{os.path.join(tmp, 'bench.db')}"
        base = asyncio.run(baseline(args.runs, args.throughput))
        got = asyncio.run(measure(url, args.runs, args.throughput, args.concurrency))
    backend = url.split(":", 1)[0]
    print(f"perdure {perdure.__version__} on {backend}, {os.cpu_count()} CPUs")
    print(f"{'':28}{'perdure':>14}{'plain calls':>14}{'ratio':>10}")
    for label, key, scale, unit in (
        ("sequential run, median", "median", 1e3, "ms"),
        ("sequential run, p99", "p99", 1e3, "ms"),
    ):
        p, b = got[key] * scale, base[key] * scale
        print(f"{label:28}{p:>11.3f} {unit}{b:>11.4f} {unit}{p / b:>9.0f}x")
        print(f"{'  per step':28}{p / 3:>11.3f} {unit}{b / 3:>11.4f} {unit}")
    print(
        f"{'throughput (3-step runs)':28}{got['rps']:>9.0f} r/s{base['rps']:>10.0f} r/s"
        f"{base['rps'] / got['rps']:>9.0f}x slower"
    )


if __name__ == "__main__":
    main()
