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
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any

HERE = os.path.abspath(__file__)
STEPS = 3
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


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def _ratio(perdure: float | None, dbos: float | None, lower_is_better: bool) -> float | None:
    if perdure is None or dbos is None or perdure <= 0 or dbos <= 0:
        return None
    return dbos / perdure if lower_is_better else perdure / dbos


def build_rows(res: dict[str, dict[str, Any]], backend: str) -> list[tuple[Any, ...]]:
    """(label, perdure, dbos, lower_is_better, target_ratio or None)"""

    def get(engine: str, phase: str, key: str, scale: float = 1.0) -> float | None:
        r = res.get(f"{engine}:{backend}:{phase}") or {}
        if "error" in r or "skipped" in r or key not in r:
            return None
        return float(r[key]) * scale

    rows: list[tuple[Any, ...]] = []
    for label, phase, key, scale, lower, target in (
        ("sequential: per run, median (ms)", "sequential", "median_ms", 1, True, None),
        ("sequential: per run, p99 (ms)", "sequential", "p99_ms", 1, True, None),
        ("sequential: per step, median (ms)", "sequential", "median_ms", 1 / STEPS, True, 5.0),
        ("sequential: per step, p99 (ms)", "sequential", "p99_ms", 1 / STEPS, True, None),
        ("sequential: client CPU per run (ms)", "sequential", "cpu_per_run_ms", 1, True, None),
        ("throughput: workflows/s end to end", "throughput", "runs_per_s", 1, False, 20.0),
        ("throughput: start phase (s)", "throughput", "start_phase_s", 1, True, None),
        ("throughput: client CPU per run (ms)", "throughput", "cpu_per_run_ms", 1, True, None),
        ("peak RSS, sequential child (MiB)", "sequential", "peak_rss_kib", 1 / 1024, True, None),
        ("peak RSS, throughput child (MiB)", "throughput", "peak_rss_kib", 1 / 1024, True, 1.0),
    ):
        rows.append(
            (
                label,
                get("perdure", phase, key, scale),
                get("dbos", phase, key, scale),
                lower,
                target,
            )
        )
    return rows


def print_report(
    args: argparse.Namespace,
    res: dict[str, dict[str, Any]],
    env: dict[str, Any],
    backends: list[str],
) -> bool:
    print()
    print("perdure vs DBOS Transact — same machine, same process model, same workload")
    print(
        f"  machine : {env['cpus']} CPUs ({env['cpu_model']}), {env['mem']}, "
        f"{platform.system()} {platform.release()}"
    )
    print(
        f"  python  : {platform.python_version()}    perdure {env['perdure']}    "
        f"dbos {env['dbos']}    sqlite {env['sqlite']}    postgres {env.get('pg', '-')}"
    )
    print(
        f"  workload: workflow of {STEPS} no-op async steps; sequential {args.runs} runs "
        f"(after {args.warmup} warm-up), throughput {args.throughput} started at once"
        + (f"; median of {args.repeat} repeats" if args.repeat > 1 else "")
    )
    print(
        f"  sqlite files in {env['workdir']} ({env['fs']}); load average before "
        f"{env['load_before']:.2f}, after {env.get('load_after', 0):.2f} (other processes on "
        "the machine skew the figures)"
    )
    print()
    bare = res.get("bare:-:bare", {})
    if "median_ms" in bare:
        print(
            f"  bare (3 no-op coroutines awaited, no engine): median "
            f"{bare['median_ms'] * 1e3:.2f} µs/run, mean {bare['mean_ms'] * 1e3:.2f} µs/run"
        )
    idle = {k.split(":")[0]: v.get("peak_rss_kib") for k, v in res.items() if k.endswith(":idle")}
    print(
        "  idle RSS: interpreter with this script's imports "
        + _fmt(_mib(idle.get("python")))
        + " MiB"
        + "".join(
            f", + import {e} {_fmt(_mib(idle.get(e)))} MiB"
            for e in ("perdure", "dbos")
            if e in idle
        )
    )
    print()
    w = (38, 11, 11, 14, 11)
    head = ("metric", "perdure", "DBOS", "perdure adv.", "target")
    all_ok = True
    for backend in backends:
        status = [
            f"{e}: {r['skipped'] if 'skipped' in r else r['error'].splitlines()[0]}"
            for e in ("perdure", "dbos")
            for phase in ("sequential", "throughput")
            if (r := res.get(f"{e}:{backend}:{phase}")) and ("error" in r or "skipped" in r)
        ]
        print(f"== {backend} " + "=" * (sum(w) + 8 - len(backend)))
        print(
            "  ".join(
                h.ljust(x) if i == 0 else h.rjust(x)
                for i, (h, x) in enumerate(zip(head, w, strict=True))
            )
        )
        for label, p, d, lower, target in build_rows(res, backend):
            ratio = _ratio(p, d, lower)
            tgt = ""
            if target is not None and ratio is not None:
                ok = ratio >= target
                all_ok &= ok
                tgt = f"{'OK' if ok else 'MISS'} ≥{target:g}x"
            print(
                "  ".join(
                    (
                        label.ljust(w[0]),
                        _fmt(p).rjust(w[1]),
                        _fmt(d).rjust(w[2]),
                        ("-" if ratio is None else f"{ratio:.1f}x").rjust(w[3]),
                        tgt.rjust(w[4]),
                    )
                )
            )
        for e in ("perdure", "dbos"):
            for phase in ("sequential", "throughput"):
                r = res.get(f"{e}:{backend}:{phase}") or {}
                if "check_steps_recorded" in r and r["check_steps_recorded"] != STEPS:
                    print(
                        f"  !! {e} {phase}: last run shows {r['check_steps_recorded']} "
                        f"recorded steps, expected {STEPS}"
                    )
        seen = set()
        for s in status:
            if s not in seen:
                seen.add(s)
                print(f"  skipped/failed — {s}")
        print()
    print(
        "  perdure adv. = how many times better perdure is (DBOS time / perdure time; perdure "
        "rate / DBOS rate; DBOS RSS / perdure RSS): > 1 means perdure is better."
    )
    print(
        "  targets (issue 3): per-step latency ≥5x lower, throughput ≥20x higher, memory no "
        "more than DBOS."
    )
    if args.profile:
        print(f"  NOTE: run under pyinstrument (--profile {args.profile}); figures are inflated.")
    return all_ok


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
    if len(tries) == 1 or any("error" in t or "skipped" in t for t in tries):
        return tries[-1]
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
        for backend in backends:
            if backend == "postgres" and pg is None:
                continue
            for engine in engines:
                for phase in ("sequential", "throughput"):
                    spec = f"{engine}:{backend}:{phase}"
                    if backend == "sqlite":
                        url = "sqlite:///" + os.path.join(workdir, f"{engine}-{phase}.db")
                        dbname = None
                    else:
                        assert pg is not None
                        dbname = f"cmpdbos_{engine}_{phase}_{tag}"
                        url = pg.fresh(dbname)
                    tries: list[dict[str, Any]] = []
                    for rep in range(args.repeat):
                        if rep:
                            if backend == "sqlite":
                                url = "sqlite:///" + os.path.join(
                                    workdir, f"{engine}-{phase}-{rep}.db"
                                )
                            else:
                                assert pg is not None and dbname is not None
                                url = pg.fresh(dbname)
                        _log(
                            f"  {spec} ..."
                            + (f" (repeat {rep + 1}/{args.repeat})" if args.repeat > 1 else "")
                        )
                        try:
                            tries.append(run_child(spec, url, args, workdir))
                        finally:
                            if dbname is not None and pg is not None:
                                pg.drop(dbname)
                        if "error" in tries[-1] or "skipped" in tries[-1]:
                            break
                    r = _combine(tries)
                    res[spec] = r
                    if "skipped" in r:
                        _log(f"    skipped: {engine} could not open {backend}: {r['skipped']}")
                        res[f"{engine}:{backend}:throughput"] = r
                        break
                    if "error" in r:
                        _log(f"    FAILED: {r['error']}")
                    else:
                        _log(f"    done in {r['child_seconds']:.1f} s")
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
    if args.child:
        return child_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
