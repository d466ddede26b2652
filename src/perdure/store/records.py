"""Records the stores exchange for events and schedules (re-exported by
:mod:`perdure.store.base`, where the others are)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(slots=True)
class EventRow:
    """An event as stored."""

    seq: int
    id: str
    name: str
    body: str
    received_at: float
    run_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EventIn:
    """An event to store: its id, name, JSON object and JSON text."""

    id: str
    name: str
    obj: dict[str, Any]
    body: str


@dataclass(slots=True)
class NewSchedule:
    """A schedule to create (validated by the client layer). ``data`` is JSON object text;
    ``start`` is its cursor (ticks after it run: the store's time when it was made) and
    ``next_at`` the first tick after ``start``."""

    id: str
    function_id: str
    cron: str
    tz: str
    data: str
    overlap: str
    catchup: str
    catchup_window: float
    paused: bool
    start: float
    next_at: float
    revision: str


@dataclass(slots=True)
class ScheduleRow:
    """A schedule as stored. ``last_tick`` is its cursor (every tick at or before it is
    handled), ``next_at`` the first tick after it; ``revision`` changes with every change of
    the schedule (create, pause, resume)."""

    id: str
    function_id: str
    cron: str
    tz: str
    data: str
    overlap: str
    catchup: str
    catchup_window: float
    paused: bool
    last_tick: float
    next_at: float
    last_run_id: str | None
    runs: int
    skipped_overlap: int
    missed: int
    revision: str
    created_at: float
    updated_at: float


FireResult = Literal["fired", "skipped", "advanced", "stale"]
"""What firing a schedule's tick did: ``fired`` (its run was created), ``skipped`` (the previous
run is active and the overlap policy is ``skip``), ``advanced`` (the cursor moved; no run was
asked for), ``stale`` (nothing: the schedule changed, was deleted or paused, or another
scheduler already handled the tick)."""
