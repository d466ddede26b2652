"""Retention: ended runs older than their function's retention are pruned in bounded batches.

Each function may set its own retention (``@app.function(retention=timedelta(days=7))``, kept in
its registered options as ``config["retention"]``, seconds); every other run is kept for the
App's ``retention`` (default 30 days; ``None``: forever). A run that has not ended is never
pruned.

**Bounded batches.** :func:`prune` deletes at most :data:`BATCH` runs (with their steps) per
transaction (:meth:`~perdure.store.operations.OperationsStore.prune_runs`) and yields to the
event loop between batches, so SQLite's single writer interleaves the hot path's commits with
the pruning, and PostgreSQL never holds many row locks at once (the victims are locked with
``SKIP LOCKED``). Schedulers run it in the background at most every 10 minutes; ``perdure
prune`` runs it on demand (``--dry-run`` only counts, with :func:`count`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from perdure.functions import FunctionRecord
from perdure.store.base import Store

__all__ = ["BATCH", "Cutoff", "count", "cutoffs", "prune", "retention_of"]

BATCH = 500
"""Runs deleted per transaction."""


@dataclass(frozen=True, slots=True)
class Cutoff:
    """Ended runs older than ``before`` go: those of ``function_id``, or (``None``) of every
    function but ``exclude`` (the functions with their own retention)."""

    function_id: str | None
    before: float
    exclude: tuple[str, ...] = ()


def retention_of(record: FunctionRecord) -> float | None:
    """A function's own retention in seconds (``None``: the App's default applies)."""
    value = record.config.get("retention")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def cutoffs(
    records: Sequence[FunctionRecord],
    now: float,
    default: timedelta | None,
    *,
    older_than: timedelta | None = None,
) -> list[Cutoff]:
    """What to prune at ``now``: one cutoff per function with its own retention, and one for
    the rest (``default``; none when ``None``). ``older_than`` replaces every retention."""
    if older_than is not None:
        return [Cutoff(None, now - older_than.total_seconds())]
    own = {r.id: s for r in records if (s := retention_of(r)) is not None}
    out = [Cutoff(fid, now - seconds) for fid, seconds in sorted(own.items())]
    if default is not None:
        out.append(Cutoff(None, now - default.total_seconds(), tuple(sorted(own))))
    return out


async def count(store: Store, plan: Sequence[Cutoff]) -> dict[str, int]:
    """How many ended runs :func:`prune` would delete, by function (nothing is deleted)."""
    out: dict[str, int] = {}
    for c in plan:
        found = await store.count_prunable(c.before, function_id=c.function_id, exclude=c.exclude)
        for fid, n in found.items():
            out[fid] = out.get(fid, 0) + n
    return dict(sorted(out.items()))


async def prune(store: Store, plan: Sequence[Cutoff], batch: int = BATCH) -> int:
    """Delete the ended runs of ``plan`` in transactions of at most ``batch`` runs, yielding
    between them; how many were deleted."""
    total = 0
    for c in plan:
        while True:
            n = await store.prune_runs(
                c.before, batch, function_id=c.function_id, exclude=c.exclude
            )
            total += n
            if n < batch:
                break
            await asyncio.sleep(0)  # let the hot path's writes in between batches
    return total
