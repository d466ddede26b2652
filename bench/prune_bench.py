"""Retention: pruning 50,000 ended runs in bounded batches, and what it does to the hot path.

    python bench/prune_bench.py [--backends sqlite,postgres] [--runs 50000] [--batch 500]

Creates ``--runs`` runs with two steps each, ends them (claims and completes them), then
prunes them with :func:`perdure.runtime.retention.prune` while a probe creates one run every
5 ms. Prints the longest single prune transaction (one ``prune_runs`` call), the total, and the
probe's median and worst latency during the pruning against its latency before it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid

from perdure import serde
from perdure.runtime import retention
from perdure.store import open_store
from perdure.store.base import NewRun, Outcome, StepWrite, Store

PG_URL = os.environ.get("PERDURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BODY = serde.dumps({"id": "e", "name": "bench", "data": {"x": 1}, "ts": 1})


async def fill(store: Store, n: int) -> None:
    chunk = 1000
    for start in range(0, n, chunk):
        runs = [NewRun(f"r{start + i:07d}", "f", BODY) for i in range(min(chunk, n - start))]
        await store.create_runs(runs)
        claim = await store.claim("w", ["f"], len(runs), 30.0)
        ops: list[StepWrite | Outcome] = []
        for c in claim.runs:
            for seq in (0, 1):
                ops.append(StepWrite(c.id, c.token, f"s{seq}", seq, "run", "completed", "1"))
            ops.append(Outcome(c.id, c.token, "complete", output="1"))
        await store.commit(ops)


async def probe(store: Store, stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        await store.create_runs([NewRun(uuid.uuid4().hex, "probe", BODY)])
        out.append(time.perf_counter() - t0)
        await asyncio.sleep(0.005)


class Timed:
    """Wraps ``prune_runs`` to time each call (one transaction each)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[float] = []
        self.inner = store.prune_runs

    async def __call__(self, *args: object, **kw: object) -> int:
        t0 = time.perf_counter()
        n = await self.inner(*args, **kw)  # type: ignore[arg-type]
        self.calls.append(time.perf_counter() - t0)
        return n


async def bench(url: str, runs: int, batch: int) -> None:
    store = open_store(url)
    await store.open()
    try:
        t0 = time.perf_counter()
        await fill(store, runs)
        print(f"  filled {runs} ended runs in {time.perf_counter() - t0:.1f} s")
        idle: list[float] = []
        stop = asyncio.Event()
        task = asyncio.create_task(probe(store, stop, idle))
        await asyncio.sleep(1.0)
        stop.set()
        await task
        busy: list[float] = []
        stop = asyncio.Event()
        timed = Timed(store)
        store.prune_runs = timed  # type: ignore[method-assign]
        task = asyncio.create_task(probe(store, stop, busy))
        t0 = time.perf_counter()
        plan = [retention.Cutoff(None, store.now() + 1, ("probe",))]
        pruned = await retention.prune(store, plan, batch)
        total = time.perf_counter() - t0
        stop.set()
        await task
        ms = 1000.0
        longest, median = max(timed.calls) * ms, statistics.median(timed.calls) * ms
        print(
            f"  pruned {pruned} runs in {total:.2f} s, {len(timed.calls)} transactions: "
            f"longest {longest:.1f} ms, median {median:.1f} ms"
        )
        before = f"median {statistics.median(idle) * ms:.2f} ms max {max(idle) * ms:.2f} ms"
        during = f"median {statistics.median(busy) * ms:.2f} ms max {max(busy) * ms:.2f} ms"
        print(f"  probe (a run created every 5 ms): before {before}; during pruning {during}")
    finally:
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--runs", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=retention.BATCH)
    ap.add_argument("--pg-url", default=PG_URL)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                url = f"sqlite:///{tmp}/prune.db"
            else:
                url = f"{args.pg_url}?schema=prunebench_{uuid.uuid4().hex[:8]}"
            print(f"{backend}: batch {args.batch}")
            asyncio.run(bench(url, args.runs, args.batch))


if __name__ == "__main__":
    main()
