"""The report of ``compare_dbos.py``: the table per backend, the ratios to DBOS and to the
floor, the spread over repeats, and the targets of issues 3 and 6."""

from __future__ import annotations

import argparse
import platform
from typing import Any

STEPS = 3  # steps per run of the benchmark's workflow


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


def floor_unsteady(res: dict[str, dict[str, Any]], backend: str, slow_ms: float = 0.0) -> bool:
    """Whether the floor's commits were too uneven to compare a median with (a disk flush that
    stalls: mean far from the median, a low p10, or a long p99), or slower than ``slow_ms``
    (0: no limit): a flush that slow is the machine's state, not a property of the engine."""
    fr = res.get(f"floor:{backend}:commit") or {}
    floor = fr.get("median_ms")
    if not floor or "mean_ms" not in fr:
        return False
    return (
        not floor / 1.5 <= fr["mean_ms"] <= floor * 1.5
        or fr["p99_ms"] > 10 * floor
        or fr.get("p10_ms", floor) < floor / 3
        or (slow_ms > 0 and floor > slow_ms)
    )


def statements_step_ms(res: dict[str, dict[str, Any]], backend: str) -> float | None:
    """The statement floor per step: one run's own statements, no engine, divided by the
    steps."""
    return _get(res, f"statements:{backend}:commit", "median_ms", 1 / STEPS)


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
    bound = _vs_floor(statements_step_ms(res, backend), "time", floor)
    if bound is not None:
        measured += f" (the statements alone: {bound:.2f}x)"
    ok: bool | str | None = None if ratio is None else ratio <= ISSUE6_STEP_VS_FLOOR
    if ratio is not None and floor_unsteady(res, backend, args.slow_floor_ms):
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
            for e in ("floor", "statements", *engines)
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
            stm = statements_step_ms(res, backend)
            sr = res.get(f"statements:{backend}:commit") or {}
            if stm is not None:
                step = _get(res, f"perdure:{backend}:sequential", "median_ms", 1 / STEPS)
                over = (
                    ""
                    if step is None
                    else (
                        f"; perdure's engine adds {step - stm:.3f} ms per step to them"
                        f" ({step / stm:.2f}x)"
                    )
                )
                spread = _spread(res, f"statements:{backend}:commit", "median_ms", 1 / STEPS)
                print(
                    f"  statements: one run's own statements and commits, no engine, per step "
                    f"median {stm:.3f} ms{spread}"
                    f" = {stm / floor:.2f}x the floor ({sr.get('how', '')}){over}"
                )
            if floor_unsteady(res, backend, args.slow_floor_ms):
                print(
                    "  !! the commit time is unsteady or slow on this machine right now (mean "
                    "not within 1.5x of the median, p10 < median/3, p99 > 10x median, or median "
                    f"> --slow-floor-ms {args.slow_floor_ms:g}: the disk flush stalls): ratios "
                    "to the floor are unreliable; rerun when the machine is quiet"
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
    print(
        "  statements = the statement floor (bench/statement_floor.py): what no engine with "
        "perdure's schema goes below; perdure minus it is the engine's own cost."
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
