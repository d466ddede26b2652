"""Measured intervals: step bodies record when they really ran; limits are checked from these,
never from the engine's own bookkeeping."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an interval ending at t and one starting at t do
    not overlap)."""
    spans = list(intervals)
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = n = 0
    for _, d in edges:  # ends (-1) sort before starts (+1) at the same instant
        n += d
        best = max(best, n)
    return best


def overlap_by_key(rows: Iterable[tuple[str, float, float]]) -> dict[str, int]:
    """``max_overlap`` per key of ``(key, start, end)`` rows."""
    by: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key, s, e in rows:
        by[key].append((s, e))
    return {k: max_overlap(v) for k, v in by.items()}


def gcra_excess(
    starts: Iterable[float], limit: int, period: float, burst: int, slack: float
) -> int:
    """How far the starts go beyond the GCRA bound in the worst window: over any window
    ``[a, b]`` at most ``burst + 1 + (b - a + slack) / interval`` starts (0: within)."""
    ts = sorted(starts)
    interval = period / limit
    worst = 0
    for i, a in enumerate(ts):
        for j in range(i, len(ts)):
            count = j - i + 1
            bound = burst + 1 + (ts[j] - a + slack) / interval
            worst = max(worst, int(count - bound) + (1 if count > bound else 0))
    return worst


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    """Wait until ``check()`` is true (``timeout`` at most)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


#: A ledger line of ``tests/apps/flowy.py``: run id, key, ``start``/``end``, pid, monotonic ns.
LedgerRow = tuple[str, str, str, int, int]


def read_ledger(path: Path) -> list[LedgerRow]:
    """The complete lines of a ledger written by step bodies (a line cut by a kill is left
    out)."""
    out: list[LedgerRow] = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[2] in ("start", "end"):
            out.append((parts[0], parts[1], parts[2], int(parts[3]), int(parts[4])))
    return out


def ledger_spans(
    rows: Iterable[LedgerRow], killed: dict[int, int]
) -> tuple[list[tuple[str, float, float]], list[tuple[str, int]]]:
    """The bodies' intervals ``(key, start s, end s)`` and the bodies cut short ``(key, killed
    ns)``: a body that started without ending ran until its process was SIGKILLed (``killed``:
    pid to the kill's monotonic ns); one of a process not killed is an error."""
    rows = list(rows)
    starts = {(r[0], r[3]): (r[1], r[4]) for r in rows if r[2] == "start"}
    ends = {(r[0], r[3]): r[4] for r in rows if r[2] == "end"}
    spans: list[tuple[str, float, float]] = []
    cut: list[tuple[str, int]] = []
    for (run_id, pid), (key, t0) in starts.items():
        t1 = ends.get((run_id, pid))
        if t1 is None:
            assert pid in killed, f"run {run_id} started in {pid}, never ended, not killed"
            t1 = killed[pid]
            cut.append((key, t1))
        spans.append((key, t0 / 1e9, t1 / 1e9))
    return spans, cut
