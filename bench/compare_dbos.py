#!/usr/bin/env python3
"""perdure vs DBOS Transact, side by side, on SQLite and PostgreSQL, in one invocation.

    python bench/compare_dbos.py [--backends sqlite,postgres] [--engines perdure,dbos]
                                 [--runs 500] [--throughput 2000]
                                 [--pg-url postgresql://postgres@127.0.0.1:5432/test]

Workload (identical for both engines): a durable workflow of 3 steps whose bodies are
``async def noop(): return None``; the workflow returns 1.

- sequential: one workflow at a time, ``--runs`` times after ``--warmup`` runs; latency from the
  client's start call to its awaited result; median and p99 per run, and per step (= per run / 3).
- throughput: ``--throughput`` workflows started at once (``asyncio.gather`` of the starts), then
  all results awaited; workflows per second from the first start to the last result.
- memory: every engine x backend x workload runs in its own child process (fresh interpreter,
  fresh database or file), which reports its peak RSS (``ru_maxrss``). Idle baselines: a bare
  interpreter, and one with each library imported.
- bare: the same 3 no-op coroutines awaited directly, no engine (the floor).
- floor: one durable single-row commit (``floor_commit.py``); statements: one run's own
  statements and commits replayed with no engine (``statement_floor.py``), both measured in
  the same run as perdure, before it on each repeat.

The parent only orchestrates: it creates a fresh database (PostgreSQL) or file (SQLite) per
child, runs the child, collects its JSON, drops the database, and prints the table.
See bench/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare_report import print_report
from floor_commit import measure_floor
from statement_floor import measure_statements

HERE = os.path.abspath(__file__)
DEFAULT_PG = os.environ.get(
    "PERDURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


# =============================================================================== child side


def _rss_now_kib() -> int:
    """Current resident set size, KiB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError):
        return 0


def _peak_rss_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def _pct(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[k]


async def _noop() -> None:
    return None


# What the measurement has done so far, for the watchdog's report if it stalls.
PROGRESS: dict[str, Any] = {"stage": "starting", "started": 0, "completed": 0}


def _watchdog(seconds: float, args: argparse.Namespace, out: dict[str, Any]) -> None:
    """A thread that ends the child with a clear error if it stalls. (A thread, not an asyncio
    timeout: a stalled event loop would never fire its own timers.)"""
    import threading

    def fire() -> None:
        out["error"] = (
            f"stalled: no result after {seconds:.0f} s "
            f"(stage {PROGRESS['stage']}, {PROGRESS['started']} started, "
            f"{PROGRESS['completed']} completed)"
        )
        try:
            import faulthandler

            with open(args.out + ".stacks", "w") as f:
                faulthandler.dump_traceback(f, all_threads=True)
            with open(args.out + ".stacks") as f:
                out["traceback"] = f.read()
        except Exception:  # pragma: no cover
            pass
        out["peak_rss_kib"] = _peak_rss_kib()
        with open(args.out, "w") as f:
            json.dump(out, f)
        os._exit(4)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


async def _sequential(start: Any, result: Any, runs: int, warmup: int) -> dict[str, Any]:
    PROGRESS["stage"] = "sequential warm-up"
    for _ in range(warmup):
        assert await result(await start()) == 1
    PROGRESS["stage"] = "sequential"
    rss_before = _rss_now_kib()
    lat: list[float] = []
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    handle = None
    for _ in range(runs):
        t = time.perf_counter()
        handle = await start()
        PROGRESS["started"] += 1
        value = await result(handle)
        lat.append(time.perf_counter() - t)
        PROGRESS["completed"] += 1
        if value != 1:
            raise AssertionError(f"wrong result {value!r}")
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    lat.sort()
    return {
        "runs": runs,
        "median_ms": statistics.median(lat) * 1e3,
        "p99_ms": _pct(lat, 99) * 1e3,
        "mean_ms": statistics.fmean(lat) * 1e3,
        "min_ms": lat[0] * 1e3,
        "max_ms": lat[-1] * 1e3,
        "cpu_per_run_ms": cpu / runs * 1e3,
        "wall_s": wall,
        "rss_before_kib": rss_before,
        "_last": handle,
    }


async def _throughput(start: Any, result: Any, n: int, warmup: int) -> dict[str, Any]:
    PROGRESS["stage"] = "throughput warm-up"
    for _ in range(warmup):
        assert await result(await start()) == 1
    PROGRESS["stage"] = "throughput"
    rss_before = _rss_now_kib()

    async def one_start() -> Any:
        h = await start()
        PROGRESS["started"] += 1
        return h

    async def one_result(h: Any) -> Any:
        v = await result(h)
        PROGRESS["completed"] += 1
        return v

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    handles = await asyncio.gather(*(one_start() for _ in range(n)))
    t_started = time.perf_counter()
    values = await asyncio.gather(*(one_result(h) for h in handles))
    t1 = time.perf_counter()
    cpu = time.process_time() - cpu0
    bad = [v for v in values if v != 1]
    if bad or len(values) != n:
        raise AssertionError(f"{len(bad)} wrong results out of {len(values)}")
    return {
        "workflows": n,
        "runs_per_s": n / (t1 - t0),
        "wall_s": t1 - t0,
        "start_phase_s": t_started - t0,
        "cpu_per_run_ms": cpu / n * 1e3,
        "rss_before_kib": rss_before,
        "_last": handles[-1],
    }


class _Profiled:
    """Optionally wrap the measured phase in pyinstrument (main thread, async-aware)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.profiler: Any = None

    def __enter__(self) -> _Profiled:
        if self.path:
            from pyinstrument import Profiler

            self.profiler = Profiler(interval=0.0005, async_mode="enabled")
            self.profiler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.profiler is not None:
            self.profiler.stop()
            assert self.path is not None
            with open(self.path + ".txt", "w") as f:
                f.write(self.profiler.output_text(unicode=True, color=False, show_all=False))
            with open(self.path + ".html", "w") as f:
                f.write(self.profiler.output_html())


async def _measure(phase: str, start: Any, result: Any, args: argparse.Namespace) -> dict[str, Any]:
    with _Profiled(args.profile_to):
        if phase == "sequential":
            return await _sequential(start, result, args.runs, args.warmup)
        return await _throughput(start, result, args.throughput, min(args.warmup, 20))


class OpenFailed(Exception):
    """The engine could not open its database: the parent skips this backend."""


async def _child_perdure(phase: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    import perdure

    app = perdure.App("bench", url)

    @app.function(id="three")
    async def three(ctx: Any) -> int:
        await ctx.step.run("a", _noop)
        await ctx.step.run("b", _noop)
        await ctx.step.run("c", _noop)
        return 1

    try:
        await app.open()
    except Exception as exc:
        raise OpenFailed(f"{type(exc).__name__}: {exc}") from exc
    options: dict[str, Any] = {}
    if args.perdure_concurrency:
        options["concurrency"] = args.perdure_concurrency
    try:
        async with app.worker(**options):

            def start() -> Any:
                return app.start(three)

            def result(h: Any) -> Any:
                return h.result()

            out = await _measure(phase, start, result, args)
            last = out.pop("_last")
            info = await app.get_run(last.run_id)
            out["check_steps_recorded"] = len(info.steps)
            out["check_status"] = info.status.value
    finally:
        await app.close()
    out["engine_version"] = perdure.__version__
    return out


async def _child_dbos(phase: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    from dbos import DBOS, DBOSConfig

    @DBOS.step()
    async def noop() -> None:
        return None

    @DBOS.workflow()
    async def three() -> int:
        await noop()
        await noop()
        await noop()
        return 1

    # DBOS's documented defaults, plus log_level WARNING (less logging: in DBOS's favour).
    config: DBOSConfig = {"name": "bench", "system_database_url": url, "log_level": "WARNING"}
    try:
        DBOS(config=config)
        DBOS.launch()
    except Exception as exc:
        raise OpenFailed(f"{type(exc).__name__}: {exc}") from exc
    try:

        def start() -> Any:
            return DBOS.start_workflow_async(three)

        def result(h: Any) -> Any:
            return h.get_result()

        out = await _measure(phase, start, result, args)
        last = out.pop("_last")
        steps = await DBOS.list_workflow_steps_async(last.get_workflow_id())
        status = await DBOS.get_workflow_status_async(last.get_workflow_id())
        out["check_steps_recorded"] = len(steps)
        out["check_status"] = status.status if status else None
    finally:
        DBOS.destroy()
    import importlib.metadata

    out["engine_version"] = importlib.metadata.version("dbos")
    return out


async def _bare(args: argparse.Namespace) -> dict[str, Any]:
    async def three() -> int:
        await _noop()
        await _noop()
        await _noop()
        return 1

    n = max(args.runs * 100, 10000)
    for _ in range(1000):
        await three()
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        await three()
        lat.append(time.perf_counter() - t)
    lat.sort()
    t0 = time.perf_counter()
    for _ in range(n):
        await three()
    mean = (time.perf_counter() - t0) / n
    return {
        "median_ms": statistics.median(lat) * 1e3,
        "p99_ms": _pct(lat, 99) * 1e3,
        "mean_ms": mean * 1e3,
    }


def child_main(args: argparse.Namespace) -> int:
    engine, backend, phase = args.child.split(":")
    out: dict[str, Any] = {"engine": engine, "backend": backend, "phase": phase}
    code = 0
    _watchdog(args.phase_timeout, args, out)
    try:
        if phase == "idle":
            if engine == "perdure":
                import perdure  # noqa: F401
            elif engine == "dbos":
                import dbos  # noqa: F401
        elif phase == "bare":
            out.update(asyncio.run(_bare(args)))
        elif engine == "floor":
            out.update(measure_floor(backend, args.url, args.floor_commits))
        elif engine == "statements":
            out.update(measure_statements(backend, args.url, args.statement_runs))
        elif engine == "perdure":
            out.update(asyncio.run(_child_perdure(phase, args.url, args)))
        elif engine == "dbos":
            out.update(asyncio.run(_child_dbos(phase, args.url, args)))
        else:
            raise ValueError(f"unknown engine {engine!r}")
    except OpenFailed as exc:
        out["skipped"] = str(exc)
        code = 3
    except BaseException as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()
        code = 2
    out["peak_rss_kib"] = _peak_rss_kib()
    with open(args.out, "w") as f:
        json.dump(out, f)
    return code


# ============================================================================== parent side


class Postgres:
    """Fresh databases on the server of ``--pg-url``, one per measurement."""

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        self.psycopg = psycopg
        self.url = url
        self.params = conninfo_to_dict(url)
        self._make = make_conninfo
        self.created: list[str] = []
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            self.version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]

    def fresh(self, name: str) -> str:
        with self.psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        params = dict(self.params, dbname=name)
        host, port = params.get("host", "127.0.0.1"), params.get("port", "5432")
        user = params.get("user", "postgres")
        password = params.get("password")
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@{host}:{port}/{name}"

    def drop(self, name: str) -> None:
        try:
            with self.psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as exc:  # pragma: no cover
            print(f"  (could not drop database {name}: {exc})", file=sys.stderr)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_child(spec: str, url: str, args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    out = os.path.join(workdir, spec.replace(":", "-") + ".json")
    cmd = [
        sys.executable,
        HERE,
        "--child",
        spec,
        "--url",
        url,
        "--out",
        out,
        "--runs",
        str(args.runs),
        "--warmup",
        str(args.warmup),
        "--throughput",
        str(args.throughput),
        "--phase-timeout",
        str(args.phase_timeout),
        "--floor-commits",
        str(args.floor_commits),
        "--statement-runs",
        str(args.statement_runs),
    ]
    if args.perdure_concurrency:
        cmd += ["--perdure-concurrency", str(args.perdure_concurrency)]
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        cmd += ["--profile-to", os.path.join(args.profile, spec.replace(":", "-"))]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.phase_timeout + 60)
    except subprocess.TimeoutExpired:
        return {"error": f"killed after {args.phase_timeout + 60:.0f} s"}
    took = time.perf_counter() - t0
    try:
        with open(out) as f:
            res: dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
        return {
            "error": f"child exited {proc.returncode} without a result:\n    " + "\n    ".join(tail)
        }
    res["child_seconds"] = took
    if "error" in res:
        _log(
            "    child stderr (tail):\n      "
            + "\n      ".join((proc.stderr or "").strip().splitlines()[-10:])
        )
    return res


def _env(workdir: str) -> dict[str, Any]:
    import importlib.metadata
    import sqlite3

    def ver(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    cpu_model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem = f"{pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError):
        pass
    fs = "?"
    try:
        best = ""
        with open("/proc/mounts") as f:
            for line in f:
                _dev, mnt, kind = line.split()[:3]
                if workdir.startswith(mnt) and len(mnt) > len(best):
                    best, fs = mnt, kind
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem": mem,
        "fs": fs,
        "perdure": ver("perdure"),
        "dbos": ver("dbos"),
        "sqlite": sqlite3.sqlite_version,
        "workdir": workdir,
        "load_before": os.getloadavg()[0],
    }


def _combine(tries: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from repeats: the median of every number (repeats kept under "repeats")."""
    for t in tries:
        if "error" in t or "skipped" in t:
            return t
    if len(tries) == 1:
        return tries[0]
    out = dict(tries[0])
    for key, value in tries[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = statistics.median(t[key] for t in tries)
    out["repeats"] = tries
    return out


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parent_main(args: argparse.Namespace) -> int:
    import signal

    signal.signal(signal.SIGTERM, _terminate)  # clean up scratch databases and files
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for b in backends:
        if b not in ("sqlite", "postgres"):
            raise SystemExit(f"unknown backend {b!r} (sqlite, postgres)")
    for e in engines:
        if e not in ("perdure", "dbos"):
            raise SystemExit(f"unknown engine {e!r} (perdure, dbos)")
    base = args.workdir or tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="compare_dbos-", dir=base)
    env = _env(workdir)
    res: dict[str, dict[str, Any]] = {}
    t_all = time.perf_counter()
    try:
        _log(f"workdir {workdir}; {env['cpus']} CPUs")
        for spec in ["python:-:idle", *[f"{e}:-:idle" for e in engines], "bare:-:bare"]:
            _log(f"  {spec} ...")
            res[spec] = run_child(spec, "", args, workdir)
        pg: Postgres | None = None
        if "postgres" in backends:
            try:
                pg = Postgres(args.pg_url)
                env["pg"] = pg.version
            except Exception as exc:
                _log(f"postgres: cannot connect to {args.pg_url} ({exc}); skipping the backend")
                for e in engines:
                    for phase in ("sequential", "throughput"):
                        res[f"{e}:postgres:{phase}"] = {
                            "skipped": f"PostgreSQL unreachable at {args.pg_url}"
                        }
        tag = f"{os.getpid()}"
        # Per backend: the floor, then each engine's phases; with --repeat the whole sequence
        # is repeated (interleaved, so that a burst of load on the machine hits every figure
        # alike and the floor is measured next to the figures it is compared with).
        plan = [("floor", "commit"), ("statements", "commit")] + [
            (e, p) for e in engines for p in ("sequential", "throughput")
        ]
        for backend in backends:
            if backend == "postgres" and pg is None:
                continue
            tries: dict[str, list[dict[str, Any]]] = {}
            dead: set[str] = set()  # engines skipped or failed on this backend
            for rep in range(args.repeat):
                for engine, phase in plan:
                    spec = f"{engine}:{backend}:{phase}"
                    if engine in dead:
                        continue
                    dbname = None
                    if backend == "sqlite":
                        url = "sqlite:///" + os.path.join(
                            workdir, f"{engine}-{phase}" + (f"-{rep}" if rep else "") + ".db"
                        )
                    else:
                        assert pg is not None
                        dbname = f"cmpdbos_{engine}_{phase}_{tag}"
                        url = pg.fresh(dbname)
                    _log(
                        f"  {spec} ..."
                        + (f" (repeat {rep + 1}/{args.repeat})" if args.repeat > 1 else "")
                    )
                    try:
                        r = run_child(spec, url, args, workdir)
                    finally:
                        if dbname is not None and pg is not None:
                            pg.drop(dbname)
                    tries.setdefault(spec, []).append(r)
                    if "skipped" in r:
                        _log(f"    skipped: {engine} could not open {backend}: {r['skipped']}")
                        dead.add(engine)
                        for other in ("sequential", "throughput"):
                            if other != phase:
                                tries.setdefault(f"{engine}:{backend}:{other}", []).append(r)
                    elif "error" in r:
                        _log(f"    FAILED: {r['error']}")
                        if phase == "commit":
                            dead.add(engine)
                    else:
                        _log(f"    done in {r['child_seconds']:.1f} s")
            for spec, got in tries.items():
                res[spec] = _combine(got)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    env["load_after"] = os.getloadavg()[0]
    _log(f"total {time.perf_counter() - t_all:.0f} s")
    all_ok = print_report(args, res, env, backends)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "args": vars(args), "results": res}, f, indent=2)
    return 0 if (all_ok or not args.strict) else 1


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--engines", default="perdure,dbos")
    ap.add_argument(
        "--no-dbos", action="store_true", help="measure perdure only (same as --engines perdure)"
    )
    ap.add_argument(
        "--floor-commits",
        type=int,
        default=2000,
        help="durable single-row commits timed for the floor (after a tenth as many warm-up)",
    )
    ap.add_argument(
        "--statement-runs",
        type=int,
        default=1000,
        help="runs replayed for the statement floor (bench/statement_floor.py), after warm-up",
    )
    ap.add_argument(
        "--slow-floor-ms",
        type=float,
        default=1.0,
        help="a floor slower than this (ms) is the disk's state: no verdict on the latency "
        "target (0: no limit)",
    )
    ap.add_argument(
        "--target-throughput",
        type=float,
        default=4300.0,
        help="issue 6: today's throughput, runs/s, that perdure must keep",
    )
    ap.add_argument(
        "--throughput-slack",
        type=float,
        default=0.05,
        help="issue 6: how far below --target-throughput still counts as kept (fraction)",
    )
    ap.add_argument("--runs", type=int, default=500, help="sequential runs measured")
    ap.add_argument("--warmup", type=int, default=50, help="sequential warm-up runs")
    ap.add_argument("--throughput", type=int, default=2000, help="workflows started at once")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each measurement N times (fresh database each) and report "
        "the median of each figure",
    )
    ap.add_argument(
        "--pg-url", default=DEFAULT_PG, help="a PostgreSQL server to create scratch databases on"
    )
    ap.add_argument(
        "--perdure-concurrency",
        type=int,
        default=None,
        help="perdure worker concurrency (default: perdure's default)",
    )
    ap.add_argument("--workdir", default=None, help="where SQLite files go (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the SQLite files and child JSON")
    ap.add_argument("--json", default=None, help="also write all results to this JSON file")
    ap.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="run each measured phase under pyinstrument; reports go to DIR",
    )
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    ap.add_argument(
        "--phase-timeout",
        type=float,
        default=300.0,
        help="a child that has not finished after this many seconds is reported "
        "as stalled (with its progress and thread stacks)",
    )
    # internal: child mode
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--url", default="", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--profile-to", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.no_dbos:
        args.engines = ",".join(e for e in args.engines.split(",") if e.strip() != "dbos")
    if args.child:
        return child_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
