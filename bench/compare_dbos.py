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
import contextlib
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


# The floor: one durable single-row commit, nothing else (no engine, no event loop).
FLOOR_ID_WIDTH = 26  # as long as a perdure run id


def _floor_stats(lat: list[float]) -> dict[str, Any]:
    lat.sort()
    return {
        "commits": len(lat),
        "median_ms": statistics.median(lat) * 1e3,
        "mean_ms": statistics.fmean(lat) * 1e3,
        "p99_ms": _pct(lat, 99) * 1e3,
        "p10_ms": _pct(lat, 10) * 1e3,
        "p90_ms": _pct(lat, 90) * 1e3,
        "min_ms": lat[0] * 1e3,
    }


def _floor_sqlite(path: str, n: int, warmup: int) -> dict[str, Any]:
    """SQLite, a fresh file in WAL mode with synchronous=FULL: one INSERT + COMMIT per
    iteration, sequential, on the calling thread."""
    import sqlite3

    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE floor (id TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID")
    lat: list[float] = []
    try:
        for i in range(warmup + n):
            row = (f"{i:0{FLOOR_ID_WIDTH}d}", "null")
            t = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute("INSERT INTO floor (id, body) VALUES (?, ?)", row)
            conn.execute("COMMIT")
            if i >= warmup:
                lat.append(time.perf_counter() - t)
    finally:
        conn.close()
    out = _floor_stats(lat)
    out["how"] = "sqlite3, WAL, synchronous=FULL, BEGIN + INSERT + COMMIT"
    return out


def _floor_postgres(
    url: str, n: int, warmup: int, synchronous_commit: str = "on"
) -> dict[str, Any]:
    """PostgreSQL, synchronous_commit on: one autocommit INSERT per iteration over one psycopg
    connection, into a fresh table. (``synchronous_commit="off"``: the same without waiting for
    the flush, for ``bench/hotpath.py --mode nosync``.)"""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        sync = conn.execute("SHOW synchronous_commit").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
        conn.execute(f"SET synchronous_commit = {'off' if synchronous_commit == 'off' else 'on'}")
        conn.execute("DROP TABLE IF EXISTS perdure_floor")
        conn.execute("CREATE TABLE perdure_floor (id text PRIMARY KEY, body text NOT NULL)")
        lat: list[float] = []
        try:
            for i in range(warmup + n):
                row = (f"{i:0{FLOOR_ID_WIDTH}d}", "null")
                t = time.perf_counter()
                conn.execute("INSERT INTO perdure_floor (id, body) VALUES (%s, %s)", row)
                if i >= warmup:
                    lat.append(time.perf_counter() - t)
        finally:
            conn.execute("DROP TABLE IF EXISTS perdure_floor")
    out = _floor_stats(lat)
    out["how"] = (
        f"psycopg (sync), autocommit INSERT, synchronous_commit={synchronous_commit} "
        f"(server default {sync[0] if sync else '?'}, fsync {fsync[0] if fsync else '?'})"
    )
    return out


def _floor(backend: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    n = args.floor_commits
    warmup = max(50, n // 10)
    if backend == "sqlite":
        return _floor_sqlite(url.removeprefix("sqlite:///"), n, warmup)
    return _floor_postgres(url, n, warmup)


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
            out.update(_floor(backend, args.url, args))
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


# issue 6: the targets against the floor and today's figures.
ISSUE6_STEP_VS_FLOOR = 1.8  # perdure per-step latency at most this many floors
ISSUE6_RSS_MIB = 60.0  # peak RSS of the throughput child below this


def _get(res: dict[str, dict[str, Any]], spec: str, key: str, scale: float = 1.0) -> float | None:
    r = res.get(spec) or {}
    if "error" in r or "skipped" in r or key not in r:
        return None
    return float(r[key]) * scale


def floor_unsteady(res: dict[str, dict[str, Any]], backend: str) -> bool:
    """Whether the floor's commits were too uneven to compare a median with (a disk flush that
    stalls: mean far from the median, a low p10, or a long p99)."""
    fr = res.get(f"floor:{backend}:commit") or {}
    floor = fr.get("median_ms")
    if not floor or "mean_ms" not in fr:
        return False
    return (
        not floor / 1.5 <= fr["mean_ms"] <= floor * 1.5
        or fr["p99_ms"] > 10 * floor
        or fr.get("p10_ms", floor) < floor / 3
    )


def floor_ms(res: dict[str, dict[str, Any]], backend: str) -> float | None:
    """The median duration of one durable single-row commit on ``backend``, in ms."""
    return _get(res, f"floor:{backend}:commit", "median_ms")


def _vs_floor(value: float | None, kind: str | None, floor: float | None) -> float | None:
    """A figure in floors: a time (ms) divided by the floor; a rate (runs/s) turned into the
    time it allots to one run (1 / rate), divided by the floor."""
    if value is None or kind is None or not floor or value <= 0:
        return None
    if kind == "time":
        return value / floor
    return (1e3 / value) / floor


def build_rows(res: dict[str, dict[str, Any]], backend: str) -> list[tuple[Any, ...]]:
    """(label, perdure, dbos, lower_is_better, target_ratio or None, floor kind or None)"""
    rows: list[tuple[Any, ...]] = []
    for label, phase, key, scale, lower, target, kind in (
        ("sequential: per run, median (ms)", "sequential", "median_ms", 1, True, None, "time"),
        ("sequential: per run, p99 (ms)", "sequential", "p99_ms", 1, True, None, "time"),
        (
            "sequential: per step, median (ms)",
            "sequential",
            "median_ms",
            1 / STEPS,
            True,
            5.0,
            "time",
        ),
        ("sequential: per step, p99 (ms)", "sequential", "p99_ms", 1 / STEPS, True, None, "time"),
        (
            "sequential: client CPU per run (ms)",
            "sequential",
            "cpu_per_run_ms",
            1,
            True,
            None,
            None,
        ),
        ("throughput: workflows/s end to end", "throughput", "runs_per_s", 1, False, 20.0, "rate"),
        ("throughput: start phase (s)", "throughput", "start_phase_s", 1, True, None, None),
        (
            "throughput: client CPU per run (ms)",
            "throughput",
            "cpu_per_run_ms",
            1,
            True,
            None,
            None,
        ),
        (
            "peak RSS, sequential child (MiB)",
            "sequential",
            "peak_rss_kib",
            1 / 1024,
            True,
            None,
            None,
        ),
        (
            "peak RSS, throughput child (MiB)",
            "throughput",
            "peak_rss_kib",
            1 / 1024,
            True,
            1.0,
            None,
        ),
    ):
        rows.append(
            (
                label,
                _get(res, f"perdure:{backend}:{phase}", key, scale),
                _get(res, f"dbos:{backend}:{phase}", key, scale),
                lower,
                target,
                kind,
            )
        )
    return rows


def issue6_checks(
    res: dict[str, dict[str, Any]], backend: str, args: argparse.Namespace
) -> list[tuple[str, str, bool | str | None]]:
    """(what, measured, ok) for each target of issue 6 on ``backend`` (ok None: not measured;
    "unsteady": measured against a floor too uneven to judge by)."""
    floor = floor_ms(res, backend)
    step = _get(res, f"perdure:{backend}:sequential", "median_ms", 1 / STEPS)
    rate = _get(res, f"perdure:{backend}:throughput", "runs_per_s")
    rss = _get(res, f"perdure:{backend}:throughput", "peak_rss_kib", 1 / 1024)
    out: list[tuple[str, str, bool | str | None]] = []
    ratio = _vs_floor(step, "time", floor)
    measured = "-"
    if ratio is not None and step is not None and floor is not None:
        measured = f"{step:.3f} ms / {floor:.3f} ms = {ratio:.2f}x"
    ok: bool | str | None = None if ratio is None else ratio <= ISSUE6_STEP_VS_FLOOR
    if ratio is not None and floor_unsteady(res, backend):
        ok = "unsteady"
        measured += " (the floor was unsteady: not a verdict)"
    out.append((f"per-step latency <= {ISSUE6_STEP_VS_FLOOR:g}x the floor", measured, ok))
    want = args.target_throughput
    out.append(
        (
            f"throughput ({args.throughput} at once) >= {want:,.0f} runs/s "
            f"(today's, less {args.throughput_slack:.0%})",
            "-" if rate is None else f"{rate:,.0f} runs/s ({rate / want:.2f}x today's)",
            None if rate is None else rate >= want * (1 - args.throughput_slack),
        )
    )
    out.append(
        (
            f"peak RSS of the throughput child < {ISSUE6_RSS_MIB:g} MiB",
            "-" if rss is None else f"{rss:.1f} MiB",
            None if rss is None else rss < ISSUE6_RSS_MIB,
        )
    )
    return out


def _spread(res: dict[str, dict[str, Any]], spec: str, key: str, scale: float = 1.0) -> str:
    r = res.get(spec) or {}
    reps = [float(t[key]) * scale for t in r.get("repeats", ()) if key in t]
    if len(reps) < 2:
        return ""
    return f" [{_fmt(min(reps), 3)}..{_fmt(max(reps), 3)}]"


def print_repeats(res: dict[str, dict[str, Any]], backend: str) -> None:
    """Each repeat's floor, perdure per-step latency and their ratio (the noise, visible)."""
    floors = (res.get(f"floor:{backend}:commit") or {}).get("repeats") or []
    seqs = (res.get(f"perdure:{backend}:sequential") or {}).get("repeats") or []
    thrs = (res.get(f"perdure:{backend}:throughput") or {}).get("repeats") or []
    if len(floors) < 2 and len(seqs) < 2:
        return
    print("  repeats (each: floor, then perdure sequential, then perdure throughput):")
    for i in range(max(len(floors), len(seqs), len(thrs))):
        f = floors[i].get("median_ms") if i < len(floors) else None
        st = seqs[i].get("median_ms") / STEPS if i < len(seqs) else None
        rt = thrs[i].get("runs_per_s") if i < len(thrs) else None
        ratio = _vs_floor(st, "time", f)
        print(
            f"    #{i + 1}: floor {_fmt(f, 3)} ms   perdure per step {_fmt(st, 3)} ms"
            f" = {'-' if ratio is None else f'{ratio:.2f}x'}   throughput {_fmt(rt)} runs/s"
        )


def print_report(
    args: argparse.Namespace,
    res: dict[str, dict[str, Any]],
    env: dict[str, Any],
    backends: list[str],
) -> bool:
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    with_dbos = "dbos" in engines
    print()
    print(
        "perdure vs DBOS Transact — same machine, same process model, same workload"
        if with_dbos
        else "perdure (DBOS not measured: --no-dbos) — against the durable-commit floor"
    )
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
    if with_dbos:
        w = [38, 11, 11, 13, 9, 9, 11]
        head = ["metric", "perdure", "DBOS", "perdure adv.", "p/floor", "D/floor", "target"]
    else:
        w = [38, 11, 9]
        head = ["metric", "perdure", "p/floor"]
    all_ok = True
    for backend in backends:
        status = [
            f"{e}: {r['skipped'] if 'skipped' in r else r['error'].splitlines()[0]}"
            for e in ("floor", *engines)
            for phase in ("commit", "sequential", "throughput")
            if (r := res.get(f"{e}:{backend}:{phase}")) and ("error" in r or "skipped" in r)
        ]
        print(f"== {backend} " + "=" * (sum(w) + 2 * (len(w) - 1) - 4 - len(backend)))
        floor = floor_ms(res, backend)
        fr = res.get(f"floor:{backend}:commit") or {}
        if floor is not None:
            print(
                f"  floor: one durable single-row commit, median {floor:.3f} ms"
                f"{_spread(res, f'floor:{backend}:commit', 'median_ms')}, mean "
                f"{fr['mean_ms']:.3f} ms, p10 {fr.get('p10_ms', 0):.3f}, p90 "
                f"{fr.get('p90_ms', 0):.3f}, p99 {fr['p99_ms']:.3f} ms over "
                f"{fr['commits']:,.0f} commits ({fr['how']})"
            )
            if floor_unsteady(res, backend):
                print(
                    "  !! the commit time is unsteady on this machine right now (mean not within"
                    " 1.5x of the median, p10 < median/3, or p99 > 10x median: the disk flush "
                    "stalls): ratios to the floor are unreliable; rerun when the machine is quiet"
                )
        print(
            "  ".join(
                h.ljust(x) if i == 0 else h.rjust(x)
                for i, (h, x) in enumerate(zip(head, w, strict=True))
            )
        )
        for label, p, d, lower, target, kind in build_rows(res, backend):
            pf = _vs_floor(p, kind, floor)
            df = _vs_floor(d, kind, floor)
            cells = [label.ljust(w[0]), _fmt(p).rjust(w[1])]
            if with_dbos:
                ratio = _ratio(p, d, lower)
                tgt = ""
                if target is not None and ratio is not None:
                    ok = ratio >= target
                    all_ok &= ok
                    tgt = f"{'OK' if ok else 'MISS'} ≥{target:g}x"
                cells += [
                    _fmt(d).rjust(w[2]),
                    ("-" if ratio is None else f"{ratio:.1f}x").rjust(w[3]),
                    ("" if pf is None else f"{pf:.2f}x").rjust(w[4]),
                    ("" if df is None else f"{df:.1f}x").rjust(w[5]),
                    tgt.rjust(w[6]),
                ]
            else:
                cells.append(("" if pf is None else f"{pf:.2f}x").rjust(w[2]))
            print("  ".join(cells))
        step_spread = _spread(res, f"perdure:{backend}:sequential", "median_ms", 1 / STEPS)
        rate_spread = _spread(res, f"perdure:{backend}:throughput", "runs_per_s")
        if step_spread or rate_spread:
            print(
                f"  spread over repeats (min..max): perdure per step{step_spread} ms,"
                f" throughput{rate_spread} runs/s"
            )
        print_repeats(res, backend)
        print("  issue 6 targets (perdure):")
        for what, measured, ok in issue6_checks(res, backend, args):
            if ok is None:
                mark = "  -- "
            elif ok == "unsteady":
                mark, all_ok = "  ?? ", False  # --strict cannot confirm it
            else:
                mark = "  OK " if ok else "MISS "
                all_ok &= bool(ok)
            print(f"    {mark} {what.ljust(62)} {measured}")
        for e in engines:
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
        "  x/floor = the figure in floors (one durable single-row commit on that backend, "
        "measured in this run): a time divided by the floor; for throughput, the time per run "
        "(1 / rate) divided by the floor."
    )
    if with_dbos:
        print(
            "  perdure adv. = how many times better perdure is (DBOS time / perdure time; "
            "perdure rate / DBOS rate; DBOS RSS / perdure RSS): > 1 means perdure is better."
        )
        print(
            "  targets (issue 3): per-step latency ≥5x lower, throughput ≥20x higher, memory "
            "no more than DBOS."
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
        plan = [("floor", "commit")] + [
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
