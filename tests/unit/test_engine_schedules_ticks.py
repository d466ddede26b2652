"""Tests for perdure.engine.ticks: which ticks run after a gap (catch-up), and overlap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perdure.engine.cron import CronSchedule
from perdure.engine.ticks import (
    MAX_CATCHUP,
    MAX_COUNT,
    ON_TIME,
    TickPlan,
    check_catchup,
    check_overlap,
    next_tick,
    overlap_allows,
    plan_ticks,
)
from perdure.errors import InvalidInputError

HOURLY = CronSchedule.parse("0 * * * *")
T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC).timestamp()
H = 3600.0


def ticks_between(schedule: CronSchedule, low: float, high: float) -> list[float]:
    """Every tick in (low, high], by walking forward."""
    out = []
    cursor = next_tick(schedule, low)
    while cursor <= high:
        out.append(cursor)
        cursor = next_tick(schedule, cursor)
    return out


def test_nothing_due_is_no_plan() -> None:
    assert plan_ticks(HOURLY, T0, T0 + H - 1, "latest", 86400) is None
    assert plan_ticks(HOURLY, T0 + 10, T0 + 20, "all", 86400) is None


def test_an_on_time_tick_runs_under_every_policy() -> None:
    for policy in ("none", "latest", "all"):
        plan = plan_ticks(HOURLY, T0, T0 + H + 5, policy, 0)
        assert plan == TickPlan((T0 + H,), 0, T0 + H), policy


def test_a_tick_a_little_late_is_still_on_time() -> None:
    assert plan_ticks(HOURLY, T0, T0 + H + ON_TIME, "none", 0) == TickPlan((T0 + H,), 0, T0 + H)
    assert plan_ticks(HOURLY, T0, T0 + H + ON_TIME + 1, "none", 0) == TickPlan((), 1, T0 + H)


def test_none_skips_every_missed_tick() -> None:
    # down from 00:00 to 05:30: the ticks of 01:00 to 05:00 were missed
    assert plan_ticks(HOURLY, T0, T0 + 5.5 * H, "none", 86400) == TickPlan((), 5, T0 + 5 * H)
    # back just after 05:00: that tick is on time, the four before it are missed
    assert plan_ticks(HOURLY, T0, T0 + 5 * H + 2, "none", 86400) == TickPlan(
        (T0 + 5 * H,), 4, T0 + 5 * H
    )


def test_latest_runs_the_most_recent_tick_within_the_window() -> None:
    assert plan_ticks(HOURLY, T0, T0 + 5.5 * H, "latest", 86400) == TickPlan(
        (T0 + 5 * H,), 4, T0 + 5 * H
    )
    # the latest tick is 30 minutes old: outside a 10-minute window
    assert plan_ticks(HOURLY, T0, T0 + 5.5 * H, "latest", 600) == TickPlan((), 5, T0 + 5 * H)


def test_all_runs_every_tick_within_the_window_oldest_first() -> None:
    plan = plan_ticks(HOURLY, T0, T0 + 5.5 * H, "all", 86400)
    assert plan == TickPlan(tuple(T0 + k * H for k in range(1, 6)), 0, T0 + 5 * H)
    # a window of 2 h: the ticks of 04:00 and 05:00 (03:00 is 2.5 h old)
    plan = plan_ticks(HOURLY, T0, T0 + 5.5 * H, "all", 2 * H)
    assert plan == TickPlan((T0 + 4 * H, T0 + 5 * H), 3, T0 + 5 * H)


def test_all_is_bounded_to_the_most_recent_ticks() -> None:
    every_second = CronSchedule.parse("* * * * * *")
    plan = plan_ticks(every_second, T0, T0 + 2 * H, "all", 86400)
    assert plan is not None
    assert len(plan.fire) == MAX_CATCHUP
    assert plan.fire[-1] == T0 + 2 * H
    assert list(plan.fire) == [T0 + 2 * H - MAX_CATCHUP + 1 + k for k in range(MAX_CATCHUP)]
    assert plan.missed == MAX_COUNT  # 6,200 missed, counted up to the cap


def test_missed_ticks_are_counted_up_to_the_cap() -> None:
    every_minute = CronSchedule.parse("* * * * *")
    plan = plan_ticks(every_minute, T0, T0 + 30 * 86400, "latest", 86400)
    assert plan is not None and plan.missed == MAX_COUNT and len(plan.fire) == 1


def test_all_across_a_dst_change_fires_each_real_tick_once() -> None:
    # 02:30 Paris does not exist on 29 March 2026: it fires at 03:00 local time
    paris = CronSchedule.parse("30 * * * *", "Europe/Paris")
    last = datetime(2026, 3, 28, 23, 0, tzinfo=UTC).timestamp()  # 00:00 Paris
    now = datetime(2026, 3, 29, 3, 0, tzinfo=UTC).timestamp()  # 05:00 Paris (summer time)
    plan = plan_ticks(paris, last, now, "all", 86400)
    assert plan is not None
    assert list(plan.fire) == ticks_between(paris, last, now)
    assert len(plan.fire) == len(set(plan.fire))


@settings(max_examples=200, deadline=None)
@given(
    expr=st.sampled_from(
        ["*/7 * * * *", "0 */3 * * *", "15,45 1-3 * * *", "*/20 * * * * *", "0 9 * * 1-5"]
    ),
    tz=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"]),
    start=st.floats(min_value=1.7e9, max_value=1.9e9),
    gap=st.floats(min_value=0, max_value=3 * 86400),
    window=st.floats(min_value=0, max_value=2 * 86400),
    policy=st.sampled_from(["none", "latest", "all"]),
)
def test_plans_agree_with_walking_the_ticks(
    expr: str, tz: str, start: float, gap: float, window: float, policy: str
) -> None:
    schedule = CronSchedule.parse(expr, tz)
    now = start + gap
    due = ticks_between(schedule, start, now)
    plan = plan_ticks(schedule, start, now, policy, window)  # type: ignore[arg-type]
    if not due:
        assert plan is None
        return
    assert plan is not None
    assert plan.latest == due[-1]
    reach = ON_TIME if policy == "none" else max(window, ON_TIME)
    eligible = [t for t in due if now - t <= reach]
    if policy == "all":
        assert list(plan.fire) == eligible[-MAX_CATCHUP:]
    else:
        assert list(plan.fire) == eligible[-1:]
    assert plan.missed == min(MAX_COUNT, len(due) - len(plan.fire))
    assert all(plan.fire[i] < plan.fire[i + 1] for i in range(len(plan.fire) - 1))


def test_overlap_allows() -> None:
    assert overlap_allows("allow", "running")
    assert overlap_allows("skip", None)
    for status in ("completed", "failed", "cancelled"):
        assert overlap_allows("skip", status)
    for status in ("queued", "running", "sleeping", "waiting"):
        assert not overlap_allows("skip", status)


def test_policies_are_checked_with_precise_messages() -> None:
    assert check_catchup("all") == "all"
    assert check_overlap("skip") == "skip"
    with pytest.raises(InvalidInputError, match=r"catchup must be one of 'none', 'latest', 'all'"):
        check_catchup("everything")
    with pytest.raises(InvalidInputError, match=r"overlap must be one of 'skip', 'allow', got 1"):
        check_overlap(1)


def test_the_terminal_statuses_are_the_runs_terminal_statuses() -> None:
    from perdure.engine import ticks
    from perdure.types import TERMINAL_STATUSES

    assert ticks._TERMINAL == TERMINAL_STATUSES
