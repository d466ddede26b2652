"""Claim-time flow control: throughput with a per-key concurrency limit vs none, and the claim
cost with 10,000 queued runs over 1,000 keys (issue 7).

    python bench/flow_bench.py [--backends sqlite,postgres] [--runs 2000] [--repeat N]
                               [--pg-url URL] [--no-claim-cost]

With ``--repeat N`` the no-limit and per-key-limit throughputs are measured in N interleaved
rounds (no limit, limit, no limit, limit, ...) and the medians are printed. On PostgreSQL each
limited round also prints where the time went: the claims (how many, how many took runs, runs
per claim, time per claim, round trips per claim) and the creations of the runs (the store's
``create_runs`` calls), counted by wrapping the store's methods and the cursor's ``execute``
and connection's ``pipeline`` (a statement outside a pipeline is one round trip, a pipeline is
one). Both kinds of rounds are counted the same way, so the counting does not bias the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import perdure
from perdure import Concurrency

PG_URL = os.environ.get("PERDURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def db_url(backend: str, pg: str, tmp: str) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp}/{uuid.uuid4().hex}.db"
    return f"{pg}?schema=flowbench_{uuid.uuid4().hex[:8]}"


@dataclass
class Calls:
    """Calls of one store method: how many, their total seconds, the items they moved, and the
    round trips they made."""

    n: int = 0
    seconds: float = 0.0
    items: int = 0
    empty: int = 0
    trips: int = 0

    def line(self, what: str, unit: str) -> str:
        if not self.n:
            return f"  {what}: none"
        per = self.items / max(1, self.n - self.empty)
        return (
            f"  {what}: {self.n} calls ({self.empty} empty), {per:.1f} {unit}/non-empty call, "
            f"{self.seconds / self.n * 1000:.2f} ms/call, {self.trips / self.n:.1f} round trips/"
            f"call, {self.seconds:.2f} s in all"
        )


@dataclass
class Probe:
    """Counts of the store calls of one throughput round (PostgreSQL)."""

    claims: Calls = field(default_factory=Calls)
    gated: Calls = field(default_factory=Calls)
    creates: Calls = field(default_factory=Calls)
    trips: int = 0


_CURRENT: contextvars.ContextVar[tuple[Calls, ...]] = contextvars.ContextVar("calls", default=())


@contextlib.contextmanager
def count_round_trips(probe: Probe) -> Iterator[None]:
    """Count statements and pipelines of every PostgreSQL connection, attributed to the store
    call in progress in the task (a statement inside a pipeline is not counted on its own)."""
    import psycopg

    cls, cur = psycopg.AsyncConnection, psycopg.AsyncCursor
    orig_execute, orig_pipeline = cur.execute, cls.pipeline
    in_pipe: contextvars.ContextVar[bool] = contextvars.ContextVar("in_pipe", default=False)

    def note() -> None:
        probe.trips += 1
        for calls in _CURRENT.get():
            calls.trips += 1

    async def execute(self: Any, *a: Any, **kw: Any) -> Any:
        if not in_pipe.get():
            note()
        return await orig_execute(self, *a, **kw)

    @contextlib.asynccontextmanager
    async def pipeline(self: Any) -> AsyncIterator[Any]:
        outer = in_pipe.get()
        if not outer:
            note()
        token = in_pipe.set(True)
        try:
            async with orig_pipeline(self) as p:
                yield p
        finally:
            in_pipe.reset(token)

    cur.execute = execute  # type: ignore[method-assign]
    cls.pipeline = pipeline  # type: ignore[method-assign]
    try:
        yield
    finally:
        cur.execute = orig_execute  # type: ignore[method-assign]
        cls.pipeline = orig_pipeline  # type: ignore[method-assign]


@contextlib.contextmanager
def wrap(cls: Any, name: str, calls: Calls, size: Callable[[Any], int]) -> Iterator[None]:
    """Replace the coroutine method ``cls.name`` by one that counts into ``calls``."""
    orig = getattr(cls, name)

    async def counted(*a: Any, **kw: Any) -> Any:
        token = _CURRENT.set((*_CURRENT.get(), calls))
        t0 = time.perf_counter()
        try:
            out = await orig(*a, **kw)
        finally:
            _CURRENT.reset(token)
        calls.n += 1
        calls.seconds += time.perf_counter() - t0
        k = size(out)
        calls.items += k
        calls.empty += k == 0
        return out

    setattr(cls, name, counted)
    try:
        yield
    finally:
        setattr(cls, name, orig)


@contextlib.contextmanager
def probing(probe: Probe | None) -> Iterator[None]:
    """Count the PostgreSQL store's claims, gated claims, creations and round trips."""
    if probe is None:
        yield
        return
    from perdure.store.postgres.store import PostgresStore

    with (
        count_round_trips(probe),
        wrap(PostgresStore, "claim", probe.claims, lambda c: len(c.runs)),
        wrap(PostgresStore, "_claim_gated", probe.gated, lambda c: len(c.runs)),
        wrap(PostgresStore, "create_runs", probe.creates, len),
    ):
        yield


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
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds (medians)")
    ap.add_argument("--pg-url", default=PG_URL)
    ap.add_argument("--no-claim-cost", action="store_true", help="skip the claim-cost figure")
    ap.add_argument("--no-breakdown", action="store_true", help="do not count store calls")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            frees: list[float] = []
            lims: list[float] = []
            for i in range(args.repeat):
                for limited, out in ((False, frees), (True, lims)):
                    probe = None
                    if backend == "postgres" and not args.no_breakdown:
                        probe = Probe()
                    url = db_url(backend, args.pg_url, tmp)
                    with probing(probe):
                        out.append(await throughput(url, args.runs, limited))
                    what = "limit   " if limited else "no limit"
                    print(f"{backend:8} round {i + 1} {what}: {out[-1]:7.0f}/s")
                    if probe is not None:
                        print(f"  round trips in all: {probe.trips}")
                        print(probe.claims.line("claim (all)", "runs"))
                        if limited:
                            print(probe.gated.line("gated claim", "runs"))
                        print(probe.creates.line("create_runs", "runs"))
            free, lim = statistics.median(frees), statistics.median(lims)
            print(
                f"{backend:8} throughput {args.runs} runs (median of {args.repeat}): "
                f"no limit {free:7.0f}/s, per-key limit {lim:7.0f}/s, ratio {lim / free:.2f} "
                f"(target >= 0.70)"
            )
            if not args.no_claim_cost:
                gated, plain = await claim_cost(db_url(backend, args.pg_url, tmp))
                print(
                    f"{backend:8} claim of 100 with 10,000 queued over 1,000 keys: "
                    f"limit 1 per key {gated:.1f} ms, no limit {plain:.1f} ms"
                )


if __name__ == "__main__":
    asyncio.run(main())
