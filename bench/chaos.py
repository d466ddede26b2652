"""The long chaos run of issue 3 ("Scale-out, proven"), on PostgreSQL, with real processes.

4 ``perdure worker`` and 2 ``perdure server`` processes share one PostgreSQL schema; 1,000 runs
of 5 to 20 steps are started through the two servers' HTTP APIs (alternating; a client that
retries 503s and connection errors with the run's idempotency key); a random worker is killed
with SIGKILL every 0.5-3 s, 50 times, and restarted; a few workers are also frozen with SIGSTOP
beyond their lease and continued. Then every invariant is checked from the ledger the steps
write and the harness's own log (tests/chaos/chaos_harness.py documents each check), and a
summary is printed. Exit status 1 if an invariant is violated.

    python bench/chaos.py                       # the full run (about 2 minutes)
    python bench/chaos.py --runs 150 --kills 8  # the size of the CI test
    python bench/chaos.py --seed 7 --keep       # another seed; keep the ledger and logs

The database is ``--pg-url`` (default ``$PERDURE_TEST_POSTGRES_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``); a scratch schema ``chaos_*`` is created there
and dropped afterwards (unless ``--keep``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "chaos"), str(ROOT / "tests" / "apps")]

import psycopg  # noqa: E402
from chaos_harness import ChaosConfig, run_chaos  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=1000, help="runs started (default 1000)")
    p.add_argument("--min-steps", type=int, default=5, help="fewest steps per run (5)")
    p.add_argument("--max-steps", type=int, default=20, help="most steps per run (20)")
    p.add_argument(
        "--step-ms",
        type=int,
        nargs=2,
        default=(20, 250),
        metavar=("MIN", "MAX"),
        help="duration of a step's side effect, ms (20 250)",
    )
    p.add_argument("--kills", type=int, default=50, help="workers killed with SIGKILL (50)")
    p.add_argument(
        "--kill-every",
        type=float,
        nargs=2,
        default=(0.5, 3.0),
        metavar=("MIN", "MAX"),
        help="seconds between two chaos events (0.5 3)",
    )
    p.add_argument(
        "--freezes",
        type=int,
        default=10,
        help="workers frozen with SIGSTOP for lease + 0.5-1.5 s, then continued (10)",
    )
    p.add_argument("--workers", type=int, default=4, help="worker processes (4)")
    p.add_argument("--servers", type=int, default=2, help="server processes (2)")
    p.add_argument("--lease", type=float, default=2.0, help="worker lease, seconds (2)")
    p.add_argument("--concurrency", type=int, default=100, help="runs per worker at once (100)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the workload and chaos")
    p.add_argument(
        "--window",
        type=float,
        default=None,
        help="seconds over which the starts are spread (default: the expected chaos duration)",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get("PERDURE_TEST_POSTGRES_URL") or DEFAULT_PG,
        help="PostgreSQL server (a scratch schema is created there)",
    )
    p.add_argument("--workdir", type=Path, default=None, help="where ledger and logs go")
    p.add_argument("--keep", action="store_true", help="keep the schema, ledger and logs")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> int:
    cfg = ChaosConfig(
        runs=args.runs,
        min_steps=args.min_steps,
        max_steps=args.max_steps,
        step_ms=tuple(args.step_ms),
        kills=args.kills,
        kill_every=tuple(args.kill_every),
        freezes=args.freezes,
        workers=args.workers,
        servers=args.servers,
        lease=args.lease,
        concurrency=args.concurrency,
        seed=args.seed,
        start_window=args.window,
    )
    schema = f"chaos_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in args.pg_url else "?"
    url = f"{args.pg_url}{sep}schema={schema}"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="perdure-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {message}", flush=True)

    say(
        f"{cfg.runs} runs of {cfg.min_steps}-{cfg.max_steps} steps, {cfg.kills} kills and "
        f"{cfg.freezes} freezes every {cfg.kill_every[0]}-{cfg.kill_every[1]} s, "
        f"{cfg.workers} workers, {cfg.servers} servers, lease {cfg.lease} s, seed {cfg.seed}; "
        f"schema {schema}, workdir {workdir}; {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    with psycopg.connect(args.pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        report = await run_chaos(cfg, url, workdir, progress=say)
    finally:
        if not args.keep:
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            shutil.rmtree(workdir, ignore_errors=True)
    print(report.summary())
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json:
        data = asdict(report)
        data["config"] = asdict(cfg)
        args.json.write_text(json.dumps(data, indent=2, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
