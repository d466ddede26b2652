"""What both backends share about schedules: the column list, row mapping, and the rule that
decides what firing a tick does (the transaction around it is each backend's).

Firing a tick is a compare-and-set: the schedule row is locked (SQLite: the writer's
``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE``), and the tick is handled only if
the row still has the revision the scheduler read, is active, and its cursor is before the
tick. Two schedulers racing for a tick therefore handle it once; the run also carries the
idempotency key ``schedule:<id>:<tick in ms>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal, LiteralString

from perdure.engine.ticks import overlap_allows
from perdure.store.base import FireResult, ScheduleRow

SCHEDULE_COLUMNS: Final[LiteralString] = (
    "id, function_id, cron, tz, data, overlap, catchup, catchup_window, paused, last_tick, "
    "next_at, last_run_id, runs, skipped_overlap, missed, revision, created_at, updated_at"
)
"""The columns of a :class:`~perdure.store.base.ScheduleRow`, in field order."""

MAX_LIST: Final = 1000
"""The most schedules one listing returns."""


def schedule_from_row(row: Sequence[Any]) -> ScheduleRow:
    """A schedule selected with :data:`SCHEDULE_COLUMNS`."""
    values = list(row)
    values[8] = bool(values[8])  # paused: an integer on SQLite
    return ScheduleRow(*values)


Decision = Literal["fire", "skip", "advance", "stale"]


def decide(
    found: tuple[str, bool, float, str] | None,
    previous_status: str | None,
    revision: str,
    tick: float,
    wants_run: bool,
) -> Decision:
    """What a tick does, from the locked row's ``(revision, paused, last_tick, overlap)``
    (``None``: deleted) and the status of its previous run (``None``: none, or pruned)."""
    if found is None:
        return "stale"
    current, paused, last_tick, overlap = found
    if current != revision or paused or last_tick >= tick:
        return "stale"
    if not wants_run:
        return "advance"
    return "fire" if overlap_allows(overlap, previous_status) else "skip"


RESULTS: Final[dict[Decision, FireResult]] = {
    "fire": "fired",
    "skip": "skipped",
    "advance": "advanced",
    "stale": "stale",
}
