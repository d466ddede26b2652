#!/usr/bin/env python3
"""A/B experiments for the hot-path proposals of docs/performance.md, without touching src/.

    python bench/experiments.py --backend sqlite [--mode durable|nosync] [--runs 500] [--repeat 3]
                                [--variants base,queued]

Each variant patches perdure *at run time* (in this process only) to behave as a proposal
would, then runs the sequential workload of ``compare_dbos.py`` (runs of 3 no-op async steps);
variants are interleaved over ``--repeat`` rounds, each on a fresh database, and the floor is
measured in every round. The patches are prototypes for measuring, not the implementation
(they skip the busy retries, the sync twins' other loops, etc.):

- ``queued`` (SQLite): every write goes to the writer thread (queue -> writer thread ->
  ``call_soon_threadsafe``), the inline path of ``perdure.store.sqlite.writer`` turned off:
  the code before proposal 1. (``inline``, the prototype of proposal 1, is now the code
  itself: ``base``.) For SQLite the child also counts SQLite's own write transactions
  (writer batches and inline writes), the figure that shows group commit under load.
- ``fold``: a completed ``step.run`` checkpoint is submitted without waiting; the function goes
  on with the value at once, and the *next step* (or the outcome) waits for it. The committer
  collects until the end of the loop iteration, so the last step's checkpoint and the outcome
  of a run that returns right after it travel in one commit (4 commits per 3-step run
  instead of 5). A step body still never starts before the previous checkpoint is durable.
- PostgreSQL: the former ``pgpipe`` idea (one connection held outside the pool for the
  sequential calls) is implemented in the store (``perdure.store.postgres.pool.Dedicated``);
  ``count_transactions`` below patches only the public ``commit``/``create_runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from floor_commit import floor_postgres as _floor_postgres  # noqa: E402
from floor_commit import floor_sqlite as _floor_sqlite  # noqa: E402
from floor_commit import sqlite_warmup  # noqa: E402

DEFAULT_PG = os.environ.get(
    "PERDURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STEPS = 3


# ---------------------------------------------------------------------------------- patches


def patch_queued() -> None:
    """SQLite: every write goes to the writer thread (the inline path of
    ``perdure.store.sqlite.writer`` turned off): the code before proposal 1."""
    from perdure.store.sqlite.writer import Writer

    submit = Writer.submit

    async def queued(self: Any, op: Any, small: bool = False) -> Any:
        return await submit(self, op, False)

    Writer.submit = queued  # type: ignore[method-assign]


def patch_inline() -> None:
    """SQLite: proposal 1 is in the code now (``perdure.store.sqlite.writer``): ``inline`` is
    the code as it is, kept as a name for the earlier command lines."""


def count_sqlite_transactions() -> None:
    """Count SQLite's own write transactions (writer batches and inline writes)."""
    from perdure.store.sqlite import writer

    run_batch = writer.Writer._run_batch

    def counted_batch(self: Any, batch: Any) -> Any:
        COUNT["sqlite"] += 1
        return run_batch(self, batch)

    writer.Writer._run_batch = counted_batch  # type: ignore[method-assign]
    run_inline = getattr(writer.Writer, "_run_inline", None)
    if run_inline is None:
        return

    def counted_inline(self: Any, op: Any) -> Any:
        out = run_inline(self, op)
        if out[0] is not writer._FALLBACK:
            COUNT["sqlite"] += 1
        return out

    writer.Writer._run_inline = counted_inline  # type: ignore[method-assign]


def patch_fold() -> None:
    """A completed ``step.run`` checkpoint is *held* (not sent); the function goes on with the
    value at once. The next step flushes it itself before anything else (Batcher.call's fast
    path: no task) and waits for it to be durable; the outcome takes it along in its own
    commit (both queued before the flush starts: one transaction)."""
    from perdure import execution
    from perdure import worker as wmod
    from perdure._signals import LeaseLost

    ex_cls = execution.RunExecution
    write = ex_cls.write
    run_step = ex_cls.run_step

    async def settle(self: Any) -> None:
        held = self._x_held
        if held is not None:
            self._x_held = None
            await write(self, held)  # fenced; raises LeaseLost if rejected

    async def write_held(self: Any, op: Any) -> None:
        await settle(self)
        if op.kind == "run" and op.status == "completed":
            if self.aborted:
                raise LeaseLost()
            self._x_held = op
            return
        await write(self, op)

    async def run_step_settled(self: Any, *args: Any) -> Any:
        await settle(self)
        return await run_step(self, *args)

    ex_cls._x_held = None  # type: ignore[attr-defined]
    ex_cls.write = write_held  # type: ignore[method-assign]
    ex_cls.run_step = run_step_settled  # type: ignore[method-assign,assignment]

    attempt = wmod.Worker._attempt

    async def attempt_with_held(self: Any, ex: Any, fdef: Any) -> Any:
        outcome = await attempt(self, ex, fdef)
        held = ex._x_held
        ex._x_held = None
        if held is not None and outcome is not None:
            # Queue the held checkpoint without starting a flush: the outcome's call() joins
            # it, and the two go in one transaction (the checkpoint first).
            b = self.committer
            fut = asyncio.get_running_loop().create_future()
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            b._items.append(held)
            b._futures.append(fut)
        return outcome

    wmod.Worker._attempt = attempt_with_held  # type: ignore[method-assign]


VARIANTS = {
    "base": (),
    "queued": (patch_queued,),
    "inline": (patch_inline,),
    "fold": (patch_fold,),
    "inline+fold": (patch_inline, patch_fold),
}


# ---------------------------------------------------------------------------------- workload


async def _noop() -> None:
    return None


async def sequential(url: str, runs: int, warmup: int) -> dict[str, float]:
    import perdure

    app = perdure.App("exp", url)

    @app.function(id="three")
    async def three(ctx: Any) -> int:
        await ctx.step.run("a", _noop)
        await ctx.step.run("b", _noop)
        await ctx.step.run("c", _noop)
        return 1

    lat: list[float] = []
    async with app, app.worker():
        for _ in range(warmup):
            assert await (await app.start(three)).result() == 1
        cpu0 = time.process_time()
        last = None
        for _ in range(runs):
            t = time.perf_counter()
            last = await app.start(three)
            assert await last.result() == 1
            lat.append(time.perf_counter() - t)
        cpu = time.process_time() - cpu0
        assert last is not None
        info = await app.get_run(last.run_id)
        assert len(info.steps) == STEPS and info.status.value == "completed", info
    return {
        "median_ms": statistics.median(lat) * 1e3,
        "mean_ms": statistics.fmean(lat) * 1e3,
        "cpu_ms": cpu / runs * 1e3,
    }


COUNT = {"commit": 0, "create": 0, "sqlite": 0}


async def throughput(url: str, n: int, warmup: int) -> dict[str, float]:
    """n runs started at once; runs/s from the first start to the last result (the median
    field carries the rate, the mean field the seconds)."""
    import perdure

    app = perdure.App("exp", url)

    @app.function(id="three")
    async def three(ctx: Any) -> int:
        await ctx.step.run("a", _noop)
        await ctx.step.run("b", _noop)
        await ctx.step.run("c", _noop)
        return 1

    async with app, app.worker():
        for _ in range(min(warmup, 20)):
            assert await (await app.start(three)).result() == 1
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        handles = await asyncio.gather(*(app.start(three) for _ in range(n)))
        values = await asyncio.gather(*(h.result() for h in handles))
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        assert values == [1] * n
    return {"median_ms": n / wall, "mean_ms": wall, "cpu_ms": cpu / n * 1e3}


def count_transactions(url: str) -> None:
    """Count the store's write transactions (commit() calls and create_runs() calls)."""
    if url.startswith("sqlite"):
        from perdure.store.sqlite import SqliteStore as Store
    else:
        from perdure.store.postgres import PostgresStore as Store  # type: ignore[assignment]
    commit, create = Store.commit, Store.create_runs

    async def counted_commit(self: Any, ops: Any) -> Any:
        COUNT["commit"] += 1
        return await commit(self, ops)

    async def counted_create(self: Any, runs: Any) -> Any:
        COUNT["create"] += 1
        return await create(self, runs)

    Store.commit = counted_commit  # type: ignore[method-assign]
    Store.create_runs = counted_create  # type: ignore[method-assign]


def child(args: argparse.Namespace) -> int:
    for patch in VARIANTS[args.variant]:
        patch()
    count_transactions(args.url)
    if args.url.startswith("sqlite"):
        count_sqlite_transactions()
    if args.workload == "throughput":
        res = asyncio.run(throughput(args.url, args.runs, args.warmup))
        total = args.runs + min(args.warmup, 20)
    else:
        res = asyncio.run(sequential(args.url, args.runs, args.warmup))
        total = args.runs + args.warmup
    tx = (COUNT["commit"] + COUNT["create"]) / total
    sqlite_tx = COUNT["sqlite"] / total
    print(
        f"RESULT {res['median_ms']:.5f} {res['mean_ms']:.5f} {res['cpu_ms']:.5f} {tx:.3f} "
        f"{sqlite_tx:.3f}",
        flush=True,
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--mode", choices=("durable", "nosync"), default="durable")
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--floor-commits", type=int, default=1000)
    ap.add_argument("--variants", default="base,queued")
    ap.add_argument("--pg-url", default=DEFAULT_PG)
    ap.add_argument(
        "--workload",
        choices=("sequential", "throughput"),
        default="sequential",
        help="throughput: --runs runs started at once (the figures are then runs/s)",
    )
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        return child(args)
    import subprocess

    import psycopg

    variants = [v for v in args.variants.split(",") if v]
    if args.backend == "postgres":
        variants = [v for v in variants if "inline" not in v and "queued" not in v]
    tmp = tempfile.mkdtemp(prefix="exp-")
    results: dict[str, list[tuple[float, float, float, float]]] = {v: [] for v in variants}
    print(
        f"{args.backend} {args.mode}; {args.runs} {args.workload} runs x {args.repeat} rounds; "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    for rnd in range(args.repeat):
        for v in variants:
            db = None
            if args.backend == "sqlite":
                sync = "FULL" if args.mode == "durable" else "NORMAL"
                path = os.path.join(tmp, f"{v}-{rnd}.db")
                floor = _floor_sqlite(
                    os.path.join(tmp, "floor.db"),
                    args.floor_commits,
                    sqlite_warmup(args.floor_commits),
                )
                url = f"sqlite:///{path}?synchronous={sync}"
            else:
                db = f"exp_{os.getpid()}"
                with psycopg.connect(args.pg_url, autocommit=True) as c:
                    c.execute(f'DROP DATABASE IF EXISTS "{db}"')
                    c.execute(f'CREATE DATABASE "{db}"')
                base = args.pg_url.rsplit("/", 1)[0] + "/" + db
                opt = "on" if args.mode == "durable" else "off"
                floor = _floor_postgres(base, args.floor_commits, 100, synchronous_commit=opt)
                url = f"{base}?options=-csynchronous_commit%3D{opt}"
            try:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--variant",
                        v,
                        "--url",
                        url,
                        "--runs",
                        str(args.runs),
                        "--warmup",
                        str(args.warmup),
                        "--workload",
                        args.workload,
                    ],
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
            finally:
                if db is not None:
                    with psycopg.connect(args.pg_url, autocommit=True) as c:
                        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
            if not line:
                print(f"  {v}: FAILED\n{out.stderr[-2000:]}")
                continue
            med, mean, cpu, tx, sqlite_tx = (float(x) for x in line[0].split()[1:])
            real = f", SQLite transactions/run {sqlite_tx:.3f}" if args.backend == "sqlite" else ""
            f = floor["median_ms"] if args.mode == "durable" else float("nan")
            results[v].append((med, mean, cpu, f))
            if args.workload == "throughput":
                print(
                    f"  round {rnd + 1} {v:12s} {med:,.0f} runs/s ({mean:.2f} s), CPU/run "
                    f"{cpu:.3f} ms, store write calls/run {tx:.3f}{real}",
                    flush=True,
                )
                continue
            print(
                f"  round {rnd + 1} {v:12s} per run {med:.3f} ms (mean {mean:.3f}), per step "
                f"{med / STEPS:.3f} ms, CPU/run {cpu:.3f} ms, store write calls/run {tx:.2f}"
                f"{real}; floor {f:.3f} ms",
                flush=True,
            )
    print("medians over rounds:")
    base = results.get("base")
    for v, rows in results.items():
        if not rows:
            continue
        med = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[2] for r in rows)
        fl = statistics.median(r[3] for r in rows)
        vs = ""
        if base and v != "base":
            b = statistics.median(r[0] for r in base)
            vs = f"  {med - b:+.3f} ms/run vs base ({(med - b) / b:+.0%})"
        ratio = f" = {med / STEPS / fl:.2f}x floor" if fl == fl else ""
        if args.workload == "throughput":
            b = statistics.median(r[0] for r in base) if base else med
            print(f"  {v:12s} {med:,.0f} runs/s, CPU/run {cpu:.3f} ms ({(med - b) / b:+.0%})")
            continue
        print(
            f"  {v:12s} per run {med:.3f} ms, per step {med / STEPS:.3f} ms{ratio}, CPU/run "
            f"{cpu:.3f} ms{vs}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
