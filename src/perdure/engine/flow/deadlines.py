"""``timeouts``: when a run's start and finish deadlines fall, and whether one has passed.

Pure. ``start_by`` is set when a run is created (``created_at + start``), ``finish_by`` when it is
first claimed (``started_at + finish``, :func:`finish_by`). A run is overdue (:func:`overdue`)
when it has not started by ``start_by`` or not ended by ``finish_by``; the deadline sweeper
(:mod:`perdure.runtime.deadlines`) cancels it with the reason this module words.
"""

from __future__ import annotations

from perdure.engine.durations import format_duration
from perdure.engine.flow.reasons import reason

__all__ = ["ACTIVE_STATUSES", "finish_by", "next_deadline", "overdue", "timeout_reason"]

ACTIVE_STATUSES = ("queued", "running", "sleeping", "waiting")
"""The statuses of runs that have not ended (a deadline or a cancelling event applies)."""


def finish_by(started_at: float, finish_seconds: float | None) -> float | None:
    """The finish deadline of a run first started at ``started_at``."""
    return None if finish_seconds is None else started_at + finish_seconds


def timeout_reason(which: str, seconds: float) -> str:
    """The ``reason`` of a run cancelled by ``timeouts`` (``which``: ``start`` or ``finish``)."""
    verb = "start" if which == "start" else "finish"
    text = format_duration(max(0.0, seconds))
    return reason(
        "timeouts",
        "cancelled",
        f"did not {verb} within {text}",
        timeout=which,
        seconds=seconds,
    )


def overdue(
    status: str,
    created_at: float,
    started_at: float | None,
    start_by: float | None,
    finish_by: float | None,
    now: float,
) -> str | None:
    """The reason to cancel a run whose deadline passed at ``now``, else ``None``. The start
    deadline applies while the run has never started; the finish deadline while it has not
    ended. When both passed, the one that fell first is named."""
    if status not in ACTIVE_STATUSES:
        return None
    late_start = start_by is not None and started_at is None and start_by <= now
    late_finish = finish_by is not None and finish_by <= now
    if (
        late_start
        and start_by is not None
        and (not late_finish or finish_by is None or start_by <= finish_by)
    ):
        return timeout_reason("start", start_by - created_at)
    if late_finish and finish_by is not None:
        base = created_at if started_at is None else started_at
        return timeout_reason("finish", finish_by - base)
    return None


def next_deadline(*deadlines: float | None) -> float | None:
    """The earliest of some deadlines (``None`` ones ignored)."""
    known = [d for d in deadlines if d is not None]
    return min(known) if known else None
