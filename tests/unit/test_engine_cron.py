"""Tests for perdure.engine.cron."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from perdure.engine.cron import CronSchedule
from perdure.errors import InvalidCronError, InvalidInputError

US = timedelta(microseconds=1)
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def local(
    zone: ZoneInfo,
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    *,
    fold: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone, fold=fold)


def upcoming(schedule: CronSchedule, start: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    t = start
    for _ in range(count):
        t = schedule.next_after(t)
        out.append(t)
    return out


def previous(schedule: CronSchedule, start: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    t: datetime | None = start
    for _ in range(count):
        assert t is not None
        t = schedule.latest_at_or_before(t)
        assert t is not None
        out.append(t)
        t = t - US
    return out


def walls(instants: list[datetime], zone: ZoneInfo) -> list[str]:
    return [t.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S%z") for t in instants]


def found(instant: datetime | None) -> datetime:
    """``instant``, which a search must have found (a test failure if it found nothing)."""
    assert instant is not None
    return instant


# -- plain schedules ------------------------------------------------------------------------


def test_every_five_minutes() -> None:
    schedule = CronSchedule.parse("*/5 * * * *")
    assert upcoming(schedule, utc(2024, 5, 1, 10, 2, 30), 3) == [
        utc(2024, 5, 1, 10, 5),
        utc(2024, 5, 1, 10, 10),
        utc(2024, 5, 1, 10, 15),
    ]


def test_next_after_is_strict_and_latest_is_inclusive() -> None:
    schedule = CronSchedule.parse("0 9 * * *")
    assert schedule.next_after(utc(2024, 5, 1, 9)) == utc(2024, 5, 2, 9)
    assert schedule.next_after(utc(2024, 5, 1, 9) - US) == utc(2024, 5, 1, 9)
    assert schedule.latest_at_or_before(utc(2024, 5, 1, 9)) == utc(2024, 5, 1, 9)
    assert schedule.latest_at_or_before(utc(2024, 5, 1, 9) - US) == utc(2024, 4, 30, 9)


def test_result_is_utc_and_input_may_be_in_any_zone() -> None:
    schedule = CronSchedule.parse("0 9 * * *", "Europe/Paris")
    start = datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=-7)))  # 19:00Z
    result = schedule.next_after(start)
    assert result == utc(2024, 5, 2, 7)
    assert result.tzinfo is UTC
    latest = schedule.latest_at_or_before(start)
    assert latest == utc(2024, 5, 1, 7)
    assert latest is not None
    assert latest.tzinfo is UTC


def test_naive_instants_are_rejected() -> None:
    schedule = CronSchedule.parse("* * * * *")
    with pytest.raises(InvalidInputError, match="naive"):
        schedule.next_after(datetime(2024, 1, 1))
    with pytest.raises(InvalidInputError, match="naive"):
        schedule.latest_at_or_before(datetime(2024, 1, 1))


def test_six_fields_have_seconds_first() -> None:
    daily = CronSchedule.parse("0 0 9 * * *")
    assert daily.next_after(utc(2024, 5, 1, 9, 0, 1)) == utc(2024, 5, 2, 9)
    assert str(daily) == "0 9 * * *"
    seconds = CronSchedule.parse("*/20 * * * * *")
    assert upcoming(seconds, utc(2024, 5, 1, 10, 0, 5), 4) == [
        utc(2024, 5, 1, 10, 0, 20),
        utc(2024, 5, 1, 10, 0, 40),
        utc(2024, 5, 1, 10, 1, 0),
        utc(2024, 5, 1, 10, 1, 20),
    ]
    every_second = CronSchedule.parse("* * * * * *")
    assert every_second.next_after(utc(2024, 5, 1, 10, 0, 5) + US) == utc(2024, 5, 1, 10, 0, 6)
    assert every_second.latest_at_or_before(utc(2024, 5, 1, 10, 0, 5, 999999)) == utc(
        2024, 5, 1, 10, 0, 5
    )
    five = CronSchedule.parse("30 9 * * *")
    assert five.next_after(utc(2024, 5, 1)) == utc(2024, 5, 1, 9, 30, 0)


def test_year_rollover() -> None:
    schedule = CronSchedule.parse("59 23 31 12 *")
    assert schedule.next_after(utc(2024, 12, 31, 23, 59)) == utc(2025, 12, 31, 23, 59)
    assert schedule.latest_at_or_before(utc(2025, 12, 31, 23, 58)) == utc(2024, 12, 31, 23, 59)
    new_year = CronSchedule.parse("@yearly")
    assert new_year.next_after(utc(2024, 12, 31, 23, 59, 59)) == utc(2025, 1, 1)


# -- syntax ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "normalized"),
    [
        ("* * * * *", "* * * * *"),
        ("? * ? * ?", "* * * * *"),
        ("5 * * * *", "5 * * * *"),
        ("1-5 * * * *", "1-5 * * * *"),
        ("1,2 * * * *", "1,2 * * * *"),
        ("*/15 * * * *", "*/15 * * * *"),
        ("0,15,30,45 * * * *", "*/15 * * * *"),
        ("10-40/10 * * * *", "10-40/10 * * * *"),
        ("10/20 * * * *", "10-50/20 * * * *"),
        ("1,3-5,50-59/3 * * * *", "1,3-5,50,53,56,59 * * * *"),
        ("0 0 * JAN,jul *", "0 0 * */6 *"),
        ("0 0 * JAN,jun *", "0 0 * 1,6 *"),
        ("0 0 * Feb-Apr *", "0 0 * 2-4 *"),
        ("0 0 * * mon-FRI", "0 0 * * 1-5"),
        ("0 0 * * SAT,SUN", "0 0 * * 0,6"),
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * 5-7", "0 0 * * 0,5,6"),
        ("0 0 * * 0-7", "0 0 * * 0-6"),
        ("0 0 * * 1/2", "0 0 * * 1-5/2"),
        ("0 0 * * */2", "0 0 * * */2"),
        ("0 0 1-31 * *", "0 0 1-31 * *"),
        ("0 0 */40 * *", "0 0 */31 * *"),
        ("  0   12\t* *   * ", "0 12 * * *"),
        ("0 0 9 * * *", "0 9 * * *"),
        ("30 0 9 * * *", "30 0 9 * * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_syntax_and_normalization(expr: str, normalized: str) -> None:
    schedule = CronSchedule.parse(expr)
    assert str(schedule) == normalized
    assert schedule.expr == expr
    assert schedule.tz == "UTC"
    again = CronSchedule.parse(str(schedule))
    start = utc(2024, 2, 27, 13, 7, 3)
    assert upcoming(again, start, 5) == upcoming(schedule, start, 5)
    assert previous(again, start, 5) == previous(schedule, start, 5)


def test_steps_and_ranges_fire_where_expected() -> None:
    start = utc(2024, 1, 1) - US
    assert [t.minute for t in upcoming(CronSchedule.parse("10/20 * * * *"), start, 4)] == [
        10,
        30,
        50,
        10,
    ]
    assert [t.hour for t in upcoming(CronSchedule.parse("0 9-17/4 * * *"), start, 4)] == [
        9,
        13,
        17,
        9,
    ]
    months = upcoming(CronSchedule.parse("0 0 1 JAN-DEC/3 *"), start, 5)
    assert [t.month for t in months] == [1, 4, 7, 10, 1]


def test_weekday_numbering() -> None:
    start = utc(2024, 5, 1)  # a Wednesday
    sunday_zero = upcoming(CronSchedule.parse("0 0 * * 0"), start, 2)
    sunday_seven = upcoming(CronSchedule.parse("0 0 * * 7"), start, 2)
    sunday_name = upcoming(CronSchedule.parse("0 0 * * sun"), start, 2)
    assert sunday_zero == sunday_seven == sunday_name == [utc(2024, 5, 5), utc(2024, 5, 12)]
    weekdays = upcoming(CronSchedule.parse("0 9 * * MON-FRI"), utc(2024, 5, 3, 10), 3)
    assert weekdays == [utc(2024, 5, 6, 9), utc(2024, 5, 7, 9), utc(2024, 5, 8, 9)]
    assert all(t.isoweekday() == 7 for t in upcoming(CronSchedule.parse("@weekly"), start, 3))


def test_day_of_month_and_day_of_week_either_rule() -> None:
    # Both restricted: the 13th of the month OR any Friday.
    schedule = CronSchedule.parse("0 0 13 * FRI")
    days = [t.date() for t in upcoming(schedule, utc(2024, 9, 1), 6)]
    assert days == [
        date(2024, 9, 6),
        date(2024, 9, 13),  # a Friday and the 13th: once
        date(2024, 9, 20),
        date(2024, 9, 27),
        date(2024, 10, 4),
        date(2024, 10, 11),
    ]
    assert date(2024, 10, 13) in [t.date() for t in upcoming(schedule, utc(2024, 10, 12), 1)]
    # Only day-of-month restricted: just the 13th.
    dom_only = CronSchedule.parse("0 0 13 * *")
    assert [t.date() for t in upcoming(dom_only, utc(2024, 9, 1), 2)] == [
        date(2024, 9, 13),
        date(2024, 10, 13),
    ]
    # Only day-of-week restricted ("?" is unrestricted too): just Fridays.
    dow_only = CronSchedule.parse("0 0 ? * FRI")
    assert [t.date() for t in upcoming(dow_only, utc(2024, 9, 1), 2)] == [
        date(2024, 9, 6),
        date(2024, 9, 13),
    ]
    # A starred step counts as unrestricted (as in Vixie cron): odd days that are Mondays.
    both = CronSchedule.parse("0 0 */2 * MON")
    assert [t.date() for t in upcoming(both, utc(2024, 9, 1), 3)] == [
        date(2024, 9, 9),
        date(2024, 9, 23),
        date(2024, 10, 7),
    ]
    # "1-31" is restricted: every day of the month OR Mondays, so every day.
    every_day = CronSchedule.parse("0 0 1-31 * MON")
    assert [t.day for t in upcoming(every_day, utc(2024, 9, 1), 3)] == [2, 3, 4]


def test_leap_days() -> None:
    schedule = CronSchedule.parse("0 0 29 2 *")
    assert upcoming(schedule, utc(2021, 1, 1), 3) == [
        utc(2024, 2, 29),
        utc(2028, 2, 29),
        utc(2032, 2, 29),
    ]
    # 2100 is not a leap year
    assert schedule.next_after(utc(2096, 3, 1)) == utc(2104, 2, 29)
    assert schedule.latest_at_or_before(utc(2027, 1, 1)) == utc(2024, 2, 29)
    assert schedule.latest_at_or_before(utc(2103, 1, 1)) is None  # beyond the 5-year lookback
    assert schedule.latest_at_or_before(utc(2103, 1, 1), lookback_years=10) == utc(2096, 2, 29)


def test_rare_schedules_are_fast_enough() -> None:
    # Not a timing assertion: these would take ages if time were scanned second by second.
    assert CronSchedule.parse("0 0 29 2 1").next_after(utc(2024, 3, 1)) == utc(2025, 2, 3)
    leap = CronSchedule.parse("59 59 23 29 2 *")
    t = utc(2000, 1, 1)
    for _ in range(200):
        t = leap.next_after(t)
    assert (t.month, t.day, t.hour, t.minute, t.second) == (2, 29, 23, 59, 59)
    # Feb 29 on a Sunday ("*/7" is a starred day-of-week, so both must match): every 28 or
    # 40 years.
    rare = CronSchedule.parse("0 0 29 2 */7")
    assert rare.next_after(utc(2090, 1, 1)) == utc(2128, 2, 29)
    assert rare.latest_at_or_before(utc(2127, 1, 1), lookback_years=50) == utc(2088, 2, 29)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("", "invalid cron expression '': it is empty"),
        ("   ", "it is empty"),
        ("* * * *", "it has 4 fields; expected 5"),
        ("* * * * * * *", "it has 7 fields"),
        ("@reboot", "unknown macro '@reboot'"),
        ("60 * * * *", "minute field '60': value 60 is out of range 0-59"),
        ("* 24 * * *", "hour field '24': value 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month field '0': value 0 is out of range 1-31"),
        ("* * 32 * *", "day-of-month field '32'"),
        ("* * * 13 *", "month field '13': value 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week field '8': value 8 is out of range 0-7"),
        ("60 * * * * *", "second field '60'"),
        ("* * * FOO *", "month field 'FOO': 'FOO' is not a number or a month name (JAN-DEC)"),
        ("* * * * FUN", "'FUN' is not a number or a weekday name (SUN-SAT)"),
        ("* * * * JAN", "day-of-week field 'JAN'"),
        ("* * * MON *", "month field 'MON'"),
        ("x * * * *", "minute field 'x': 'x' is not a number"),
        ("5-1 * * * *", "minute field '5-1': range '5-1' starts after it ends (5 > 1)"),
        ("*/0 * * * *", "minute field '*/0': step in '*/0' is zero"),
        ("*/x * * * *", "step 'x' in '*/x' is not a number"),
        ("*/ * * * *", "step '' in '*/' is not a number"),
        ("1,,2 * * * *", "minute field '1,,2': empty list item"),
        ("1, * * * *", "empty list item"),
        ("-5 * * * *", "minute field '-5': missing value"),
        ("1-2-3 * * * *", "'2-3' is not a number"),
        ("* * * * 7/2", "'7/2' starts after 6"),
        ("*-5 * * * *", "'*' is not a number"),
        ("0 0 30 2 *", "it never fires: no month in '2' has a day '30'"),
        ("0 0 31 APR,JUN,SEP,NOV *", "it never fires"),
        ("0 0 30,31 2 */7", "it never fires"),
    ],
)
def test_invalid_expressions(expr: str, fragment: str) -> None:
    with pytest.raises(InvalidCronError) as info:
        CronSchedule.parse(expr)
    message = str(info.value)
    assert fragment in message
    assert message.startswith(f"invalid cron expression {expr!r}")


def test_impossible_dates_are_fine_with_the_either_rule() -> None:
    # Both restricted: fires on Mondays of February, even if never on the 30th.
    schedule = CronSchedule.parse("0 0 30 2 MON")
    assert schedule.next_after(utc(2024, 1, 1)) == utc(2024, 2, 5)


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "", "../etc/passwd", "Europe", "not a zone"])
def test_unknown_time_zone(tz: str) -> None:
    with pytest.raises(InvalidCronError, match="time zone"):
        CronSchedule.parse("0 9 * * *", tz)


def test_non_string_expression() -> None:
    with pytest.raises(InvalidCronError, match="expected a string, got int"):
        CronSchedule.parse(5)  # type: ignore[arg-type]  # a non-string must be rejected


def test_schedules_are_hashable_values() -> None:
    a = CronSchedule.parse("0 9 * * *", "Europe/Paris")
    b = CronSchedule("0 9 * * *", "Europe/Paris")
    c = CronSchedule.parse("0 9 * * *")
    assert a == b
    assert a != c
    assert len({a, b, c}) == 2
    assert a.expr == "0 9 * * *"
    assert a.tz == "Europe/Paris"
    assert "Europe/Paris" in repr(a)
    with pytest.raises(AttributeError):
        a.expr = "x"  # type: ignore[misc]  # frozen: assigning must raise


# -- time zones and DST --------------------------------------------------------------------


def test_schedule_follows_local_time_across_dst() -> None:
    schedule = CronSchedule.parse("0 9 * * *", "America/New_York")
    assert upcoming(schedule, utc(2024, 3, 9), 2) == [utc(2024, 3, 9, 14), utc(2024, 3, 10, 13)]


def test_spring_forward_gap_fires_after_the_gap_paris() -> None:
    # 2024-03-31: Paris clocks jump from 02:00 to 03:00 (01:00Z).
    schedule = CronSchedule.parse("30 2 * * *", "Europe/Paris")
    assert walls(upcoming(schedule, utc(2024, 3, 30, 12), 3), PARIS) == [
        "2024-03-31 03:00:00+0200",
        "2024-04-01 02:30:00+0200",
        "2024-04-02 02:30:00+0200",
    ]
    assert schedule.latest_at_or_before(utc(2024, 3, 31, 1)) == utc(2024, 3, 31, 1)
    assert schedule.latest_at_or_before(utc(2024, 3, 31, 1) - US) == utc(2024, 3, 30, 1, 30)


def test_several_ticks_in_one_gap_fire_once() -> None:
    schedule = CronSchedule.parse("0,15,30,45 2 * * *", "Europe/Paris")
    assert walls(upcoming(schedule, utc(2024, 3, 30, 12), 3), PARIS) == [
        "2024-03-31 03:00:00+0200",
        "2024-04-01 02:00:00+0200",
        "2024-04-01 02:15:00+0200",
    ]
    with_end = CronSchedule.parse("*/30 2-3 * * *", "Europe/Paris")
    assert walls(upcoming(with_end, utc(2024, 3, 30, 23), 3), PARIS) == [
        "2024-03-31 03:00:00+0200",
        "2024-03-31 03:30:00+0200",
        "2024-04-01 02:00:00+0200",
    ]
    every = CronSchedule.parse("*/15 * * * *", "Europe/Paris")
    assert walls(upcoming(every, utc(2024, 3, 31, 0, 30), 4), PARIS) == [
        "2024-03-31 01:45:00+0100",
        "2024-03-31 03:00:00+0200",
        "2024-03-31 03:15:00+0200",
        "2024-03-31 03:30:00+0200",
    ]
    assert walls(previous(every, utc(2024, 3, 31, 1, 15), 4), PARIS) == [
        "2024-03-31 03:15:00+0200",
        "2024-03-31 03:00:00+0200",
        "2024-03-31 01:45:00+0100",
        "2024-03-31 01:30:00+0100",
    ]


def test_spring_forward_gap_new_york() -> None:
    # 2024-03-10: New York clocks jump from 02:00 to 03:00 (07:00Z).
    schedule = CronSchedule.parse("15 2 * * *", "America/New_York")
    assert walls(upcoming(schedule, utc(2024, 3, 9, 12), 3), NEW_YORK) == [
        "2024-03-10 03:00:00-0400",
        "2024-03-11 02:15:00-0400",
        "2024-03-12 02:15:00-0400",
    ]
    hourly = CronSchedule.parse("@hourly", "America/New_York")
    assert walls(upcoming(hourly, local(NEW_YORK, 2024, 3, 10, 0, 30), 3), NEW_YORK) == [
        "2024-03-10 01:00:00-0500",
        "2024-03-10 03:00:00-0400",
        "2024-03-10 04:00:00-0400",
    ]


def test_fall_back_overlap_fires_once_when_hour_is_restricted() -> None:
    # 2024-10-27: Paris clocks go back from 03:00 to 02:00 (01:00Z); 02:xx happens twice.
    schedule = CronSchedule.parse("30 2 * * *", "Europe/Paris")
    assert walls(upcoming(schedule, utc(2024, 10, 26, 12), 3), PARIS) == [
        "2024-10-27 02:30:00+0200",
        "2024-10-28 02:30:00+0100",
        "2024-10-29 02:30:00+0100",
    ]
    second_pass = local(PARIS, 2024, 10, 27, 2, 45, fold=1)
    assert schedule.latest_at_or_before(second_pass) == utc(2024, 10, 27, 0, 30)
    assert schedule.next_after(local(PARIS, 2024, 10, 27, 2, 15, fold=1)) == utc(
        2024, 10, 28, 1, 30
    )
    two_hours = CronSchedule.parse("0,30 1-3 * * *", "America/New_York")
    # 2024-11-03: New York clocks go back from 02:00 to 01:00 (06:00Z).
    assert walls(upcoming(two_hours, local(NEW_YORK, 2024, 11, 3, 0, 50), 6), NEW_YORK) == [
        "2024-11-03 01:00:00-0400",
        "2024-11-03 01:30:00-0400",
        "2024-11-03 02:00:00-0500",
        "2024-11-03 02:30:00-0500",
        "2024-11-03 03:00:00-0500",
        "2024-11-03 03:30:00-0500",
    ]


def test_fall_back_overlap_fires_in_both_passes_when_hour_is_unrestricted() -> None:
    every = CronSchedule.parse("*/15 * * * *", "Europe/Paris")
    fired = upcoming(every, utc(2024, 10, 27, 0, 20), 10)
    assert walls(fired, PARIS) == [
        "2024-10-27 02:30:00+0200",
        "2024-10-27 02:45:00+0200",
        "2024-10-27 02:00:00+0100",
        "2024-10-27 02:15:00+0100",
        "2024-10-27 02:30:00+0100",
        "2024-10-27 02:45:00+0100",
        "2024-10-27 03:00:00+0100",
        "2024-10-27 03:15:00+0100",
        "2024-10-27 03:30:00+0100",
        "2024-10-27 03:45:00+0100",
    ]
    assert {b - a for a, b in itertools.pairwise(fired)} == {timedelta(minutes=15)}
    assert previous(every, fired[-1], 10) == fired[::-1]
    # "*/1" and "0-23" cover every hour too
    for expr in ["0 */1 * * *", "0 0-23 * * *", "0 * * * *"]:
        hourly = CronSchedule.parse(expr, "America/New_York")
        assert walls(upcoming(hourly, local(NEW_YORK, 2024, 11, 3, 0, 30), 3), NEW_YORK) == [
            "2024-11-03 01:00:00-0400",
            "2024-11-03 01:00:00-0500",
            "2024-11-03 02:00:00-0500",
        ]


def test_overlap_from_inside_each_pass() -> None:
    every = CronSchedule.parse("*/15 * * * *", "America/New_York")
    first_pass = local(NEW_YORK, 2024, 11, 3, 1, 50)
    second_pass = local(NEW_YORK, 2024, 11, 3, 1, 5, fold=1)
    assert walls([every.next_after(first_pass)], NEW_YORK) == ["2024-11-03 01:00:00-0500"]
    assert walls([every.next_after(second_pass)], NEW_YORK) == ["2024-11-03 01:15:00-0500"]
    assert walls([found(every.latest_at_or_before(first_pass))], NEW_YORK) == [
        "2024-11-03 01:45:00-0400"
    ]
    assert walls([found(every.latest_at_or_before(second_pass))], NEW_YORK) == [
        "2024-11-03 01:00:00-0500"
    ]
    late = CronSchedule.parse("59 * * * *", "America/New_York")
    after = local(NEW_YORK, 2024, 11, 3, 2, 30)
    assert walls([found(late.latest_at_or_before(after))], NEW_YORK) == ["2024-11-03 01:59:00-0500"]
    restricted = CronSchedule.parse("*/15 1 * * *", "America/New_York")
    assert walls([restricted.next_after(first_pass)], NEW_YORK) == ["2024-11-04 01:00:00-0500"]
    assert walls([found(restricted.latest_at_or_before(second_pass))], NEW_YORK) == [
        "2024-11-03 01:45:00-0400"
    ]


# -- a brute-force oracle around DST transitions -----------------------------------------

Predicate = Callable[[datetime], bool]

ORACLE_SCHEDULES: list[tuple[str, Predicate, bool]] = [
    ("*/15 * * * *", lambda w: w.minute % 15 == 0, True),
    ("45 * * * *", lambda w: w.minute == 45, True),
    ("*/20 0-23 * * *", lambda w: w.minute % 20 == 0, True),
    ("30 2 * * *", lambda w: w.hour == 2 and w.minute == 30, False),
    ("0 2 * * *", lambda w: w.hour == 2 and w.minute == 0, False),
    ("0,30 1-3 * * *", lambda w: 1 <= w.hour <= 3 and w.minute in (0, 30), False),
    ("*/10 2,3 * * *", lambda w: w.hour in (2, 3) and w.minute % 10 == 0, False),
    ("59 1 * * *", lambda w: w.hour == 1 and w.minute == 59, False),
    ("5 */2 * * *", lambda w: w.hour % 2 == 0 and w.minute == 5, False),
]

TRANSITIONS: list[tuple[str, datetime]] = [
    ("Europe/Paris", utc(2024, 3, 31, 1)),
    ("Europe/Paris", utc(2024, 10, 27, 1)),
    ("America/New_York", utc(2024, 3, 10, 7)),
    ("America/New_York", utc(2024, 11, 3, 6)),
    ("Australia/Lord_Howe", utc(2024, 4, 6, 15)),  # back by 30 minutes
    ("Australia/Lord_Howe", utc(2024, 10, 5, 15, 30)),  # forward by 30 minutes
    ("UTC", utc(2024, 6, 1)),
]


def oracle(
    zone: ZoneInfo, matches: Predicate, hour_all: bool, a: datetime, b: datetime
) -> list[datetime]:
    """Firing instants in [a, b), found minute by minute from the documented policy."""
    out: list[datetime] = []
    u = a
    while u < b:
        here = u.astimezone(zone)
        wall = here.replace(tzinfo=None, fold=0)
        fires = False
        if matches(wall):
            twice = (
                wall.replace(tzinfo=zone).utcoffset()
                != wall.replace(tzinfo=zone, fold=1).utcoffset()
            )
            fires = not twice or here.fold == 0 or hour_all
        before = (u - timedelta(minutes=1)).astimezone(zone).replace(tzinfo=None)
        skipped = before + timedelta(minutes=1)
        while not fires and skipped < wall:  # wall-clock minutes jumped over just now
            fires = matches(skipped)
            skipped += timedelta(minutes=1)
        if fires:
            out.append(u)
        u += timedelta(minutes=1)
    return out


@pytest.mark.parametrize(("tz", "moment"), TRANSITIONS)
def test_matches_brute_force_oracle_around_transitions(tz: str, moment: datetime) -> None:
    zone = ZoneInfo(tz)
    a, b = moment - timedelta(hours=6), moment + timedelta(hours=6)
    for expr, matches, hour_all in ORACLE_SCHEDULES:
        schedule = CronSchedule.parse(expr, tz)
        expected = oracle(zone, matches, hour_all, a, b)
        assert expected, expr
        forward: list[datetime] = []
        t = a - US
        while (t := schedule.next_after(t)) < b:
            forward.append(t)
        assert walls(forward, zone) == walls(expected, zone), expr
        backward: list[datetime] = []
        s: datetime | None = b - US
        while s is not None and (s := schedule.latest_at_or_before(s)) is not None and s >= a:
            backward.append(s)
            s -= US
        assert backward == expected[::-1], expr


# -- properties ------------------------------------------------------------------------------

EXPRESSIONS = [
    "* * * * *",
    "*/15 * * * *",
    "30 2 * * *",
    "0,30 1-3 * * *",
    "0 9 * * MON-FRI",
    "0 0 13 * FRI",
    "0 0 29 2 *",
    "15 */3 1,15 * *",
    "*/20 * * * * *",
    "5 0 2 * * SUN",
    "@hourly",
    "0 0 31 * *",
]
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]

instants = st.datetimes(
    min_value=datetime(1995, 1, 1), max_value=datetime(2045, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=100, database=None, deadline=None)
@given(st.sampled_from(EXPRESSIONS), st.sampled_from(ZONES), instants)
def test_next_and_latest_are_consistent(expr: str, tz: str, instant: datetime) -> None:
    schedule = CronSchedule.parse(expr, tz)
    n = schedule.next_after(instant)
    assert n > instant
    assert n.tzinfo is UTC
    assert schedule.latest_at_or_before(n) == n
    assert schedule.next_after(n - US) == n
    before = schedule.latest_at_or_before(n - US, lookback_years=10)
    assert before is None or before <= instant
    p = schedule.latest_at_or_before(instant)
    assert p is not None
    assert p <= instant
    assert schedule.next_after(p - US) == p
    assert schedule.next_after(p) > instant
    assert schedule.next_after(p) == n


def _field_text(values: list[int], star: bool) -> str:
    return "*" if star else ",".join(str(v) for v in values)


@settings(max_examples=60, database=None, deadline=None)
@given(
    st.lists(st.integers(1, 31), min_size=1, max_size=4),
    st.lists(st.integers(1, 12), min_size=1, max_size=3),
    st.lists(st.integers(0, 7), min_size=1, max_size=3),
    st.booleans(),
    st.booleans(),
    st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 1, 1)),
)
def test_day_rules_match_a_day_by_day_search(
    doms: list[int],
    months: list[int],
    dows: list[int],
    dom_star: bool,
    dow_star: bool,
    start: date,
) -> None:
    expr = (
        f"0 0 {_field_text(doms, dom_star)} {_field_text(months, False)} "
        f"{_field_text(dows, dow_star)}"
    )
    try:
        schedule = CronSchedule.parse(expr)
    except InvalidCronError as error:
        assume("never fires" not in str(error))  # skip those; fail on any other error
        raise
    dom_set = set(range(1, 32)) if dom_star else set(doms)
    dow_set = set(range(7)) if dow_star else {d % 7 for d in dows}

    def day_matches(day: date) -> bool:
        if day.month not in months:
            return False
        dom_ok = day.day in dom_set
        dow_ok = day.isoweekday() % 7 in dow_set
        if dom_star or dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    day = start + timedelta(days=1)
    while not day_matches(day):
        day += timedelta(days=1)
    origin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    assert schedule.next_after(origin) == datetime(day.year, day.month, day.day, tzinfo=UTC)
    back = start
    while not day_matches(back) and back > start - timedelta(days=366 * 5):
        back -= timedelta(days=1)
    latest = schedule.latest_at_or_before(origin)
    if day_matches(back):
        assert latest == datetime(back.year, back.month, back.day, tzinfo=UTC)


field_items = st.one_of(
    st.just("*"),
    st.integers(0, 59).map(str),
    st.tuples(st.integers(0, 59), st.integers(0, 59)).map(lambda ab: f"{min(ab)}-{max(ab)}"),
    st.integers(1, 61).map(lambda n: f"*/{n}"),
    st.tuples(st.integers(0, 59), st.integers(1, 30)).map(lambda an: f"{an[0]}/{an[1]}"),
)


@settings(max_examples=60, database=None, deadline=None)
@given(
    st.lists(field_items, min_size=1, max_size=3).map(",".join),
    st.lists(field_items, min_size=1, max_size=3).map(",".join),
    st.sampled_from(["*", "*/2", "9-17", "0,12", "23"]),
    st.sampled_from(["*", "?", "1", "*/5", "28-31", "13"]),
    st.sampled_from(["*", "2", "JAN-MAR", "*/4"]),
    st.sampled_from(["*", "?", "0", "7", "MON-FRI", "*/3", "6"]),
    st.sampled_from(ZONES),
    instants,
)
def test_normalized_form_means_the_same(
    sec: str, minute: str, hour: str, dom: str, month: str, dow: str, tz: str, instant: datetime
) -> None:
    expr = f"{sec} {minute} {hour} {dom} {month} {dow}"
    try:
        schedule = CronSchedule.parse(expr, tz)
    except InvalidCronError as error:
        assume("never fires" not in str(error))  # skip those; fail on any other error
        raise
    again = CronSchedule.parse(str(schedule), tz)
    assert str(again) == str(schedule)
    assert upcoming(again, instant, 3) == upcoming(schedule, instant, 3)
    assert again.latest_at_or_before(instant) == schedule.latest_at_or_before(instant)


def test_limits_of_the_calendar() -> None:
    every_minute = CronSchedule.parse("* * * * *")
    with pytest.raises(InvalidInputError, match="does not fire after"):
        every_minute.next_after(utc(9999, 12, 31, 23, 59))
    assert every_minute.latest_at_or_before(utc(1, 1, 1, 0, 0, 30)) == utc(1, 1, 1)
    with pytest.raises(InvalidInputError, match="too close to the limits"):
        CronSchedule.parse("* * * * *", "America/New_York").latest_at_or_before(utc(1, 1, 1))
