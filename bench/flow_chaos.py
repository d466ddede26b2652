"""Concurrency limits under SIGKILL, full size (issue 7): 10,000 runs on PostgreSQL, a global
limit of 5 and a per-key limit of 1 (over 100 keys), 4 worker processes of 20 slots each; every
few seconds a worker that is executing a step body is SIGKILLed and a new one started.

Checked from what the step bodies recorded (``tests/apps/flowy.py`` appends ``start``/``end``
lines with ``time.monotonic_ns()`` to a ledger file), never from the engine's counters:

- every run completes;
- at no instant more than 5 bodies ran, nor 2 of one key;
- a killed worker's slots came back when its leases expired, not earlier: a body cut short by
  the kill is counted as holding its slots until the earliest its lease could expire (the kill
  less one heartbeat interval, plus the lease), and the limits still hold; and the next body of
  its key started within a bound after the lease expiry (reported).

    python bench/flow_chaos.py [--runs 10000] [--keys 100] [--workers 4] [--lease 2]
                               [--kill-every 5] [--step 0.002] [--pg-url URL]

Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "flow"), str(ROOT / "tests" / "apps")]

from flow_intervals import ledger_spans, max_overlap, overlap_by_key, read_ledger  # noqa: E402

import perdure  # noqa: E402

PG_URL = os.environ.get("PERDURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
GLOBAL = 5
SLOTS = 20


class Workers:
    """The worker processes: started, SIGKILLed (the kill's time kept by pid), replaced."""

    def __init__(self, env: dict[str, str], lease: float, logs: Path) -> None:
        self.env, self.lease, self.logs = env, lease, logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed: dict[int, int] = {}

    def spawn(self) -> subprocess.Popen[bytes]:
        log = self.logs / f"worker-{len(self.procs) + len(self.killed)}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "perdure.cli", "worker", "flowy:app"),
                    *("--concurrency", str(SLOTS), "--lease", str(self.lease)),
                    *("--log-level", "warning"),
                ],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        self.killed[proc.pid] = time.monotonic_ns()
        proc.wait()
        self.procs.remove(proc)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


class LedgerTail:
    """Which processes are inside a step body now, read incrementally from the ledger."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0
        self.open: dict[int, set[str]] = {}
        self.lines = 0

    def poll(self) -> None:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        self.offset += cut
        for line in data[:cut].decode().splitlines():
            parts = line.split()
            if len(parts) != 5:
                continue
            self.lines += 1
            bodies = self.open.setdefault(int(parts[3]), set())
            if parts[2] == "start":
                bodies.add(parts[0])
            else:
                bodies.discard(parts[0])


async def completed(conn: psycopg.AsyncConnection[tuple[int]], schema: str) -> int:
    cur = await conn.execute(f"SELECT count(*) FROM {schema}.runs WHERE status = 'completed'")
    row = await cur.fetchone()
    return 0 if row is None else int(row[0])


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--lease", type=float, default=2.0)
    ap.add_argument("--kill-every", type=float, default=5.0)
    ap.add_argument("--step", type=float, default=0.002, help="seconds each step body sleeps")
    ap.add_argument("--deadline", type=float, default=540.0)
    ap.add_argument("--pg-url", default=PG_URL)
    args = ap.parse_args()
    schema = f"flowchaos_{uuid.uuid4().hex[:8]}"
    url = f"{args.pg_url}{'&' if '?' in args.pg_url else '?'}schema={schema}"
    tmp = Path(tempfile.mkdtemp(prefix="flow_chaos-"))
    ledger = tmp / "ledger.txt"
    ledger.touch()
    env = dict(os.environ)
    env.update(
        PERDURE_DATABASE_URL=url,
        LEDGER=str(ledger),
        FLOWY_GLOBAL=str(GLOBAL),
        FLOWY_STEP_SECONDS=str(args.step),
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "apps"), env.get("PYTHONPATH", "")]),
    )
    import flowy

    client = perdure.App("flowy", url)
    limits = [perdure.Concurrency(GLOBAL), perdure.Concurrency(1, key="event.data.k")]
    client.function(id="limited", concurrency=limits)(flowy.limited)
    workers = Workers(env, args.lease, tmp)
    rng = random.Random(7)
    t0 = time.monotonic()
    try:
        async with client:
            await client.register()
            for _ in range(args.workers):
                workers.spawn()
            for base in range(0, args.runs, 500):
                n = min(500, args.runs - base)
                await asyncio.gather(
                    *(
                        client.start("limited", {"k": f"k{(base + i) % args.keys}"})
                        for i in range(n)
                    )
                )
            started = time.monotonic() - t0
            tail = LedgerTail(ledger)
            next_kill = time.monotonic() + args.kill_every
            next_count = 0.0
            done = 0
            conn = await psycopg.AsyncConnection.connect(args.pg_url, autocommit=True)
            while done < args.runs:
                if time.monotonic() - t0 > args.deadline:
                    raise SystemExit(f"FAIL: {done} of {args.runs} completed in {args.deadline}s")
                await asyncio.sleep(0.005)
                tail.poll()
                if time.monotonic() >= next_kill:
                    busy = [p for p in workers.procs if tail.open.get(p.pid)]
                    if busy:
                        workers.kill(rng.choice(busy))
                        workers.spawn()
                        next_kill = time.monotonic() + args.kill_every
                if time.monotonic() >= next_count:
                    done = await completed(conn, schema)
                    next_count = time.monotonic() + 0.25
            elapsed = time.monotonic() - t0
            await conn.close()
    finally:
        workers.stop()
        with psycopg.connect(args.pg_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return report(args, ledger, workers.killed, started, elapsed)


def first_excess(spans: list[tuple[float, float]], limit: int) -> float | None:
    """The first instant more than ``limit`` of these intervals are open (``None``: never)."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    n = 0
    for t, d in edges:
        n += d
        if n > limit:
            return t
    return None


def report(
    args: argparse.Namespace, ledger: Path, killed: dict[int, int], started: float, elapsed: float
) -> int:
    spans, cut = ledger_spans(read_ledger(ledger), killed)
    # A cut body holds its slots until the earliest its lease could expire: its last renewal
    # was at most a heartbeat interval (lease / 3) before the kill.
    hold = (args.lease * 2 / 3) - 0.05
    # (A cut span ends at exactly killed_ns / 1e9: see ledger_spans.)
    cut_ends = {(k, at / 1e9) for k, at in cut}
    held = [(k, s, e + hold) if (k, e) in cut_ends else (k, s, e) for k, s, e in spans]
    peak = max_overlap((s, e) for _, s, e in spans)
    peak_held = max_overlap((s, e) for _, s, e in held)
    per_key = max(overlap_by_key(spans).values())
    per_key_held = max(overlap_by_key(held).values())
    # When each kill's slots were used again: its cut bodies held forever (the others until
    # their earliest expiry), the first instant more than GLOBAL bodies would run.
    reuse = []
    for at in killed.values():
        mine = {(k, e) for k, e in cut_ends if e == at / 1e9}
        forever = [
            (s, float("inf")) if (k, e) in mine else (s, e + hold) if (k, e) in cut_ends else (s, e)
            for k, s, e in spans
        ]
        t = first_excess(forever, GLOBAL)
        if mine and t is not None:
            reuse.append(t - at / 1e9)
    bodies = len(spans)
    print(f"runs {args.runs} over {args.keys} keys; limits: {GLOBAL} at once, 1 per key")
    print(
        f"workers {args.workers} x {SLOTS} slots, lease {args.lease:g}s; "
        f"{len(killed)} SIGKILLed mid-body and replaced (one every ~{args.kill_every:g}s)"
    )
    print(
        f"all {args.runs} completed in {elapsed:.1f}s (starts took {started:.1f}s); "
        f"{bodies} bodies ran ({bodies - args.runs} again after a kill), {len(cut)} cut short"
    )
    print(f"most bodies at once: {peak} (limit {GLOBAL}); most of one key: {per_key} (limit 1)")
    print(
        f"with cut bodies holding their slots until the earliest lease expiry (+{hold:.2f}s): "
        f"at once {peak_held}, one key {per_key_held}"
    )
    if reuse:
        print(
            f"a killed worker's slots used again after the kill: min {min(reuse):.2f}s, "
            f"median {statistics.median(reuse):.2f}s, max {max(reuse):.2f}s over {len(reuse)} "
            f"kills (its leases expire {args.lease * 2 / 3:.2f}s to {args.lease:.2f}s after it)"
        )
    ok = (
        peak <= GLOBAL
        and per_key == 1
        and peak_held <= GLOBAL
        and per_key_held == 1
        and bool(cut)
        and bool(reuse)
        and all(hold <= r <= args.lease + 2.0 for r in reuse)
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
