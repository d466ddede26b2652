"""Which ticks of a cron schedule to run after a gap: the catch-up and overlap policies.

Pure functions over a :class:`~perdure.engine.cron.CronSchedule`, used by the scheduler for both
decorator cron triggers and schedules created at run time.

A schedule keeps a *cursor* (``last``): every tick at or before it is handled (run, skipped or
missed). When the scheduler looks at time ``now``, the *due* ticks are those in ``(last, now]``.
A tick at most :data:`ON_TIME` seconds old is always on time, whatever the policy (a scheduler is
never exactly punctual). The catch-up policy says which due ticks run:

- ``none``: only the latest due tick, and only if it is on time; the others are missed.
- ``latest``: only the latest due tick, once, if it is no older than the window (at least
  :data:`ON_TIME`); the others are missed. (Decorator cron triggers default to this.)
- ``all``: every due tick no older than the window, oldest first, at most :data:`MAX_CATCHUP`
  (the most recent ones); the others are missed.

Whatever runs, the cursor then moves to the latest due tick: ticks are never considered twice.

The overlap policy says what a tick does while the schedule's previous run has not ended:
``skip`` starts nothing (the tick is recorded as skipped) and ``allow`` starts the run anyway.
It is applied by the store, in the transaction that fires the tick (see
:func:`overlap_allows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from perdure.engine.cron import CronSchedule
from perdure.errors import InvalidInputError

__all__ = [
    "CATCHUPS",
    "MAX_CATCHUP",
    "MAX_COUNT",
    "ON_TIME",
    "OVERLAPS",
    "CatchUp",
    "Overlap",
    "TickPlan",
    "check_catchup",
    "check_overlap",
    "next_tick",
    "overlap_allows",
    "plan_ticks",
]

CatchUp = Literal["none", "latest", "all"]
Overlap = Literal["skip", "allow"]
CATCHUPS: Final[tuple[CatchUp, ...]] = ("none", "latest", "all")
OVERLAPS: Final[tuple[Overlap, ...]] = ("skip", "allow")

ON_TIME: Final = 60.0
"""A tick fired at most this many seconds late is on time, whatever the catch-up policy."""
MAX_CATCHUP: Final = 1000
"""The most missed ticks ``catchup="all"`` runs after one gap (the most recent ones)."""
MAX_COUNT: Final = 1000
"""Missed ticks are counted up to this many (a larger gap reports this number)."""

_TERMINAL: Final = frozenset({"completed", "failed", "cancelled", "skipped"})
"""The run statuses that have ended (``perdure.types.TERMINAL_STATUSES``; a test checks)."""


def check_catchup(value: object, what: str = "catchup") -> CatchUp:
    """``value`` as a catch-up policy, or InvalidInputError naming the choices."""
    if value not in CATCHUPS:
        raise InvalidInputError(
            f"{what} must be one of {', '.join(repr(c) for c in CATCHUPS)}, got {value!r}"
        )
    return value


def check_overlap(value: object, what: str = "overlap") -> Overlap:
    """``value`` as an overlap policy, or InvalidInputError naming the choices."""
    if value not in OVERLAPS:
        raise InvalidInputError(
            f"{what} must be one of {', '.join(repr(o) for o in OVERLAPS)}, got {value!r}"
        )
    return value


def overlap_allows(overlap: str, previous_status: str | None) -> bool:
    """Whether a tick may start a run, given the status of the schedule's previous run
    (``None``: there is none, or it was pruned)."""
    return overlap == "allow" or previous_status is None or previous_status in _TERMINAL


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What to do with the due ticks of a schedule.

    ``fire``: the ticks to run, oldest first (epoch seconds). ``missed``: how many due ticks do
    not run, counted up to :data:`MAX_COUNT` (they all come before ``fire[0]``). ``latest``:
    the latest due tick, where the cursor goes once the plan is carried out.
    """

    fire: tuple[float, ...]
    missed: int
    latest: float


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def next_tick(schedule: CronSchedule, after: float) -> float:
    """The first tick strictly after ``after`` (epoch seconds)."""
    return schedule.next_after(_at(after)).timestamp()


def _count_between(schedule: CronSchedule, low: float, high: float) -> int:
    """How many ticks fall in ``(low, high)``, counted up to :data:`MAX_COUNT`."""
    count = 0
    cursor = _at(low)
    while count < MAX_COUNT:
        cursor = schedule.next_after(cursor)
        if cursor.timestamp() >= high:
            break
        count += 1
    return count


def _previous(schedule: CronSchedule, before: float) -> float | None:
    """The last tick strictly before ``before`` (a tick instant), if any in the lookback."""
    # Ticks fall on whole seconds: the latest tick at or before one millisecond earlier.
    found = schedule.latest_at_or_before(_at(before - 0.001))
    return None if found is None else found.timestamp()


def plan_ticks(
    schedule: CronSchedule, last: float, now: float, catchup: CatchUp, window: float
) -> TickPlan | None:
    """The plan for the ticks due in ``(last, now]`` (``None``: no tick is due), under the
    catch-up policy ``catchup`` with a window of ``window`` seconds (see the module docstring).
    """
    first_due = next_tick(schedule, last)
    if first_due > now:
        return None
    latest_dt = schedule.latest_at_or_before(_at(now))
    latest = latest_dt.timestamp() if latest_dt is not None else first_due
    latest = max(latest, first_due)
    reach = ON_TIME if catchup == "none" else max(window, ON_TIME)
    if now - latest > reach:
        return TickPlan((), min(MAX_COUNT, _count_between(schedule, last, latest) + 1), latest)
    if catchup != "all":
        return TickPlan((latest,), _count_between(schedule, last, latest), latest)
    fire = [latest]
    while len(fire) < MAX_CATCHUP:
        previous = _previous(schedule, fire[-1])
        if previous is None or previous <= last or now - previous > reach:
            break
        fire.append(previous)
    fire.reverse()
    return TickPlan(tuple(fire), _count_between(schedule, last, fire[0]), latest)
