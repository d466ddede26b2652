"""Cron schedules: parse an expression, find the next and the latest firing instants.

Syntax
------
Five fields, ``minute hour day-of-month month day-of-week``, or six fields with the seconds
first, ``second minute hour day-of-month month day-of-week`` (as in Quartz: ``"0 0 9 * * *"``
fires at 09:00:00 every day). A five-field expression fires at second 0.

Each field is a comma-separated list of items; an item is ``*`` or ``?`` (every value), a value
``a``, a range ``a-b`` (``a <= b``), or one of those followed by a step: ``*/n``, ``a-b/n``,
``a/n`` (from ``a`` to the field's maximum). Ranges: second and minute 0-59, hour 0-23,
day-of-month 1-31, month 1-12 or ``JAN``-``DEC``, day-of-week 0-7 or ``SUN``-``SAT``, where both
0 and 7 are Sunday (``*``, ``?`` and ``a/n`` in day-of-week stop at 6, Saturday). Names are
case-insensitive. Macros: ``@yearly`` and ``@annually`` (``0 0 1 1 *``), ``@monthly``
(``0 0 1 * *``), ``@weekly`` (``0 0 * * 0``), ``@daily`` and ``@midnight`` (``0 0 * * *``),
``@hourly`` (``0 * * * *``).

Day-of-month and day-of-week follow classic (Vixie) cron: a field is *unrestricted* when it is
a single item starting with ``*`` or ``?`` (so ``*/2`` counts as unrestricted, ``1-31`` does
not). When both are restricted, a day matches if either matches; otherwise a day must match both
(which amounts to the restricted one, if any).

An expression that can never fire (``"0 0 30 2 *"``) is rejected when parsed.

Time zones and daylight saving time
-----------------------------------
Fields are matched against the wall-clock time of the schedule's IANA time zone (``tz``). The
firing instants are defined as follows, and are always strictly increasing:

* A wall-clock time that exists once fires at that instant.
* A wall-clock time that does not exist (it falls in a spring-forward gap) fires at the first
  instant after the gap: a job at 02:30 Europe/Paris fires at 03:00 local time on the day the
  clocks jump from 02:00 to 03:00. All the ticks in one gap fire once, together, at that instant
  (together with a tick at exactly the end of the gap, such as 03:00 here, if there is one).
* A wall-clock time that happens twice (a fall-back overlap) fires once, at its first
  occurrence, unless the hour field is unrestricted (its values cover all 24 hours: ``*``,
  ``*/1``, ``0-23``), in which case it fires at both occurrences: ``*/15 * * * *`` keeps firing
  every 15 real minutes through the repeated hour, ``30 1 * * *`` fires once.

:meth:`CronSchedule.next_after` returns the first firing instant strictly after a given instant
and :meth:`CronSchedule.latest_at_or_before` the last one at or before it. Both skip from field to
field (by month, day, hour, minute, second) rather than scanning time, so even an expression that
fires once every few years is resolved in microseconds.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from perdure.engine.cron_fields import (
    MACROS,
    MAX_MONTH_DAYS,
    SPECS,
    Field,
    cron_error,
    parse_field,
    render_field,
)
from perdure.errors import InvalidCronError, InvalidInputError

__all__ = ["CronSchedule"]

_UTC = UTC
_ONE_SECOND = timedelta(seconds=1)

# next_after looks this many years ahead: the Gregorian calendar repeats every 400 years, so an
# expression that fires at all fires within that span.
_LOOKAHEAD_YEARS = 400


def _offset(dt: datetime) -> timedelta:
    offset = dt.utcoffset()
    if offset is None:  # pragma: no cover - an aware datetime always has one
        raise InvalidInputError(f"{dt!r} has no UTC offset")
    return offset


def _load_zone(tz: object, expr: str) -> ZoneInfo:
    if not isinstance(tz, str) or not tz.strip():
        raise cron_error(expr, f"time zone {tz!r} is not an IANA time zone name")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise cron_error(expr, f"unknown time zone {tz!r}") from None


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed cron expression in a time zone; see the module docstring for the rules.

    Build one with :meth:`parse` (or ``CronSchedule(expr, tz)``). Two schedules are equal when
    their ``expr`` and ``tz`` are; ``str()`` gives the normalized expression.
    """

    expr: str
    tz: str = "UTC"
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _seconds: Field = field(init=False, repr=False, compare=False)
    _minutes: Field = field(init=False, repr=False, compare=False)
    _hours: Field = field(init=False, repr=False, compare=False)
    _doms: Field = field(init=False, repr=False, compare=False)
    _months: Field = field(init=False, repr=False, compare=False)
    _dows: Field = field(init=False, repr=False, compare=False)
    _dom_ok: tuple[bool, ...] = field(init=False, repr=False, compare=False)
    _dow_ok: tuple[bool, ...] = field(init=False, repr=False, compare=False)
    _days_either: bool = field(init=False, repr=False, compare=False)
    _dom_only: bool = field(init=False, repr=False, compare=False)
    _hour_all: bool = field(init=False, repr=False, compare=False)
    _normalized: str = field(init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, expr: str, tz: str = "UTC") -> CronSchedule:
        """Parse ``expr`` (5 or 6 fields, or a macro) in the IANA time zone ``tz``.

        Raises :class:`~perdure.errors.InvalidCronError` naming the bad field and value, the
        unknown time zone, or the reason the expression can never fire.
        """
        return cls(expr, tz)

    def __post_init__(self) -> None:
        expr = self.expr
        if not isinstance(expr, str):
            raise InvalidCronError(
                f"invalid cron expression {expr!r}: expected a string, got {type(expr).__name__}"
            )
        text = expr.strip()
        if not text:
            raise cron_error(expr, "it is empty")
        if text.startswith("@"):
            macro = MACROS.get(text.lower())
            if macro is None:
                raise cron_error(expr, f"unknown macro {text!r} (known: {', '.join(MACROS)})")
            text = macro
        parts = text.split()
        if len(parts) == 5:
            parts.insert(0, "0")
        elif len(parts) != 6:
            raise cron_error(
                expr,
                f"it has {len(parts)} fields; expected 5 (minute hour day-of-month month "
                "day-of-week) or 6 (second minute hour day-of-month month day-of-week)",
            )
        parsed = [parse_field(part, spec, expr) for part, spec in zip(parts, SPECS, strict=True)]
        fields = [
            Field(values, spec.low, spec.implicit_high)
            for (values, _), spec in zip(parsed, SPECS, strict=True)
        ]
        seconds, minutes, hours, doms, months, dows = fields
        dom_star, dow_star = parsed[3][1], parsed[5][1]
        set_ = object.__setattr__
        set_(self, "_zone", _load_zone(self.tz, expr))
        set_(self, "_seconds", seconds)
        set_(self, "_minutes", minutes)
        set_(self, "_hours", hours)
        set_(self, "_doms", doms)
        set_(self, "_months", months)
        set_(self, "_dows", dows)
        set_(self, "_dom_ok", tuple(d in doms.values for d in range(32)))
        set_(self, "_dow_ok", tuple(d in dows.values for d in range(7)))
        either = not dom_star and not dow_star
        set_(self, "_days_either", either)
        set_(self, "_dom_only", not either and dows.is_full)
        set_(self, "_hour_all", hours.is_full)
        if not either and not any(
            d <= MAX_MONTH_DAYS[m] for m in months.values for d in doms.values
        ):
            raise cron_error(
                expr,
                f"it never fires: no month in {parts[4]!r} has a day {parts[3]!r}",
            )
        rendered = [
            render_field(seconds, None),
            render_field(minutes, None),
            render_field(hours, None),
            render_field(doms, dom_star),
            render_field(months, None),
            render_field(dows, dow_star),
        ]
        if seconds.values == (0,):
            rendered.pop(0)
        set_(self, "_normalized", " ".join(rendered))

    def __str__(self) -> str:
        """The normalized expression (five fields when it fires at second 0)."""
        return self._normalized

    # -- wall-clock matching ------------------------------------------------------------------

    def _day_matches(self, day: int, weekday: int) -> bool:
        if self._days_either:
            return self._dom_ok[day] or self._dow_ok[weekday]
        return self._dom_ok[day] and self._dow_ok[weekday]

    def _next_day(self, year: int, month: int, day: int) -> int:
        """The first matching day >= ``day`` in the month, or -1."""
        first_weekday, length = calendar.monthrange(year, month)
        if day > length:
            return -1
        if self._dom_only:
            found = self._doms.next(day)
            return found if 0 < found <= length else -1
        weekday = (first_weekday + day) % 7  # cron numbering: 0 is Sunday
        for d in range(day, length + 1):
            if self._day_matches(d, weekday):
                return d
            weekday = (weekday + 1) % 7
        return -1

    def _prev_day(self, year: int, month: int, day: int) -> int:
        """The last matching day <= ``day`` in the month, or -1."""
        first_weekday, length = calendar.monthrange(year, month)
        day = min(day, length)
        if day < 1:
            return -1
        if self._dom_only:
            found = self._doms.prev(day)
            return found if found > 0 else -1
        weekday = (first_weekday + day) % 7
        for d in range(day, 0, -1):
            if self._day_matches(d, weekday):
                return d
            weekday = (weekday - 1) % 7
        return -1

    def _next_wall(self, start: datetime, last_year: int) -> datetime | None:
        """The first matching wall-clock time >= ``start`` (naive, whole second)."""
        y, mo, d = start.year, start.month, start.day
        h, mi, s = start.hour, start.minute, start.second
        while y <= last_year:
            m2 = self._months.next(mo)
            if m2 < 0:
                y, mo, d, h, mi, s = y + 1, 1, 1, 0, 0, 0
                continue
            if m2 != mo:
                mo, d, h, mi, s = m2, 1, 0, 0, 0
            d2 = self._next_day(y, mo, d)
            if d2 < 0:
                mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
                continue
            if d2 != d:
                d, h, mi, s = d2, 0, 0, 0
            h2 = self._hours.next(h)
            if h2 < 0:
                d, h, mi, s = d + 1, 0, 0, 0
                continue
            if h2 != h:
                h, mi, s = h2, 0, 0
            mi2 = self._minutes.next(mi)
            if mi2 < 0:
                h, mi, s = h + 1, 0, 0
                continue
            if mi2 != mi:
                mi, s = mi2, 0
            s2 = self._seconds.next(s)
            if s2 < 0:
                mi, s = mi + 1, 0
                continue
            return datetime(y, mo, d, h, mi, s2)
        return None

    def _prev_wall(self, start: datetime, first_year: int) -> datetime | None:
        """The last matching wall-clock time <= ``start`` (naive, whole second)."""
        y, mo, d = start.year, start.month, start.day
        h, mi, s = start.hour, start.minute, start.second
        while y >= first_year:
            m2 = self._months.prev(mo)
            if m2 < 0:
                y, mo, d, h, mi, s = y - 1, 12, 31, 23, 59, 59
                continue
            if m2 != mo:
                mo, d, h, mi, s = m2, 31, 23, 59, 59
            d2 = self._prev_day(y, mo, d)
            if d2 < 0:
                mo, d, h, mi, s = mo - 1, 31, 23, 59, 59
                continue
            if d2 != d:
                d, h, mi, s = d2, 23, 59, 59
            h2 = self._hours.prev(h)
            if h2 < 0:
                d, h, mi, s = d - 1, 23, 59, 59
                continue
            if h2 != h:
                h, mi, s = h2, 59, 59
            mi2 = self._minutes.prev(mi)
            if mi2 < 0:
                h, mi, s = h - 1, 59, 59
                continue
            if mi2 != mi:
                mi, s = mi2, 59
            s2 = self._seconds.prev(s)
            if s2 < 0:
                mi, s = mi - 1, 59
                continue
            return datetime(y, mo, d, h, mi, s2)
        return None

    # -- wall clock to instants (naive UTC datetimes) -----------------------------------------

    def _offsets(self, wall: datetime) -> tuple[timedelta, timedelta]:
        """The UTC offsets of a wall-clock time at its first and second occurrence (PEP 495).

        Equal: the time exists once. First > second: it happens twice (fall-back). First <
        second: it does not exist (spring-forward gap).
        """
        zone = self._zone
        return (
            _offset(wall.replace(tzinfo=zone, fold=0)),
            _offset(wall.replace(tzinfo=zone, fold=1)),
        )

    def _utc_offset_at(self, instant: datetime) -> timedelta:
        return _offset(instant.replace(tzinfo=_UTC).astimezone(self._zone))

    def _transition(self, before: datetime, after: datetime) -> datetime:
        """The instant the UTC offset changes, between ``before`` (excluded) and ``after``."""
        low = before.replace(microsecond=0)
        base = self._utc_offset_at(low)
        high = after if not after.microsecond else after.replace(microsecond=0) + _ONE_SECOND
        lo, hi = 0, int((high - low).total_seconds())
        # invariant: the offset at low + lo is base, the offset at low + hi is not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._utc_offset_at(low + timedelta(seconds=mid)) == base:
                lo = mid
            else:
                hi = mid
        return low + timedelta(seconds=hi)

    def _first_instant(self, wall: datetime) -> datetime:
        """The first (or only) instant a matching wall-clock time fires at."""
        first, second = self._offsets(wall)
        if first >= second:
            return wall - first
        # In a gap: the first instant after it.
        return self._transition(wall - second, wall - first)

    def _overlap(
        self, wall: datetime, first: timedelta, second: timedelta
    ) -> tuple[datetime, datetime]:
        """The wall-clock span [start, end) of the overlap that the ambiguous ``wall`` is in."""
        change = self._transition(wall - first, wall - second)
        return change + second, change + first

    def _local(self, u: datetime, instant: datetime) -> datetime:
        """The naive UTC ``u`` (that is, ``instant``) in the schedule's time zone."""
        try:
            return u.replace(tzinfo=_UTC).astimezone(self._zone)
        except OverflowError:
            raise InvalidInputError(
                f"{instant.isoformat()} is too close to the limits of the calendar "
                f"for time zone {self.tz!r}"
            ) from None

    # -- public API ---------------------------------------------------------------------------

    def next_after(self, instant: datetime) -> datetime:
        """The first firing instant strictly after ``instant`` (aware), as an aware UTC datetime.

        Raises :class:`~perdure.errors.InvalidInputError` if ``instant`` is naive or within a day
        of the limits of :class:`~datetime.datetime`, or if there is no firing instant before the
        end of year 9999.
        """
        u = _to_utc(instant)
        local = self._local(u, instant)
        wall = local.replace(tzinfo=None, fold=0)
        whole = wall.replace(microsecond=0)
        last_year = min(9999, wall.year + _LOOKAHEAD_YEARS)
        first, second = self._offsets(wall)
        result: datetime | None = None
        try:
            if first > second:  # the local time of `instant` happens twice
                start, end = self._overlap(wall, first, second)
                found = self._next_wall(whole + _ONE_SECOND, last_year)
                if local.fold == 0:  # first pass: `instant` is before the change
                    if found is not None and found < end:
                        result = found - first
                    elif (
                        self._hour_all
                        and (repeat := self._next_wall(start, last_year)) is not None
                        and repeat < end
                    ):
                        result = repeat - second
                    elif found is not None:
                        result = self._first_instant(found)
                else:  # second pass
                    if self._hour_all and found is not None and found < end:
                        result = found - second
                    else:
                        after = self._next_wall(end, last_year)
                        if after is not None:
                            result = self._first_instant(after)
            else:
                found = self._next_wall(whole + _ONE_SECOND, last_year)
                if found is not None:
                    result = self._first_instant(found)
        except OverflowError:
            result = None
        if result is None:
            raise InvalidInputError(
                f"cron expression {self.expr!r} does not fire after {instant.isoformat()} "
                "before the year 10000"
            )
        return result.replace(tzinfo=_UTC)

    def latest_at_or_before(self, instant: datetime, *, lookback_years: int = 5) -> datetime | None:
        """The last firing instant at or before ``instant`` (aware), as an aware UTC datetime.

        The search goes back to the start of the year ``lookback_years`` before the local year
        of ``instant`` (so between 5 and 6 years by default); ``None`` if nothing fires in that
        span. Raises :class:`~perdure.errors.InvalidInputError` if ``instant`` is naive or within a
        day of the limits of :class:`~datetime.datetime`.
        """
        u = _to_utc(instant)
        local = self._local(u, instant)
        wall = local.replace(tzinfo=None, fold=0)
        whole = wall.replace(microsecond=0)
        first_year = max(1, wall.year - max(0, lookback_years))
        first, second = self._offsets(wall)
        try:
            if first > second and local.fold == 1:  # second pass of a repeated time
                start, end = self._overlap(wall, first, second)
                if self._hour_all:
                    found = self._prev_wall(whole, first_year)
                    if found is not None and found >= start:
                        return (found - second).replace(tzinfo=_UTC)
                found = self._prev_wall(end - _ONE_SECOND, first_year)
            else:
                found = self._prev_wall(whole, first_year)
            if found is None:
                return None
            a, b = self._offsets(found)
            if a > b and self._hour_all and found - b <= u:
                return (found - b).replace(tzinfo=_UTC)
            return self._first_instant(found).replace(tzinfo=_UTC)
        except OverflowError:
            return None


def _to_utc(instant: datetime) -> datetime:
    """``instant`` as a naive UTC datetime; it must be aware."""
    if not isinstance(instant, datetime):
        raise InvalidInputError(f"expected a datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidInputError(f"datetime {instant.isoformat()} is naive; give it a time zone")
    return instant.astimezone(_UTC).replace(tzinfo=None)
