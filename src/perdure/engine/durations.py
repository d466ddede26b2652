"""Durations: parse them from timedeltas, numbers of seconds or strings, and format them.

A duration string is one or more ``<number><unit>`` parts, optionally separated by whitespace,
whose values add up: ``"1h30m"``, ``"500ms"``, ``"2d"``, ``"1.5h"``, ``"1w 2d"``. The units are
``ms`` (milliseconds), ``s`` (seconds), ``m`` (minutes), ``h`` (hours), ``d`` (days) and ``w``
(weeks), lower case. A bare number such as ``"30"`` or ``"2.5"`` is a number of seconds. Numbers
are plain decimals (no sign, no exponent). Durations are never negative.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

from perdure._error_base import InvalidInputError

__all__ = ["format_duration", "to_seconds", "to_timedelta"]

_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_BARE_NUMBER = re.compile(rf"{_NUMBER}")
# One part: a number immediately followed by a run of letters (checked against _UNITS).
_PART = re.compile(rf"\s*({_NUMBER})([A-Za-z]*)\s*")


def _invalid(value: object, problem: str) -> InvalidInputError:
    return InvalidInputError(f"invalid duration {value!r}: {problem}")


def _parse_string(text: str) -> float:
    stripped = text.strip()
    if not stripped:
        raise _invalid(text, "empty string")
    if _BARE_NUMBER.fullmatch(stripped):
        return float(stripped)
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None or match.end() == pos:
            rest = text[pos:].strip()
            raise _invalid(text, f"expected <number><unit> at {rest!r} (units: ms, s, m, h, d, w)")
        number, unit = match.group(1), match.group(2)
        if not unit:
            raise _invalid(text, f"number {number!r} has no unit (units: ms, s, m, h, d, w)")
        factor = _UNITS.get(unit)
        if factor is None:
            raise _invalid(text, f"unknown unit {unit!r} (units: ms, s, m, h, d, w)")
        total += float(number) * factor
        pos = match.end()
    return total


def to_seconds(value: timedelta | int | float | str) -> float:
    """The number of seconds in ``value``: a timedelta, a number of seconds, or a string.

    Raises :class:`~perdure.errors.InvalidInputError` naming the bad input when ``value`` is
    negative, not finite, a bool, an empty or malformed string, or of another type.
    """
    if isinstance(value, bool):
        raise _invalid(value, "a bool is not a duration")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            raise _invalid(value, "too large") from None
    elif isinstance(value, str):
        seconds = _parse_string(value)
    else:
        raise InvalidInputError(
            f"invalid duration {value!r}: expected a timedelta, a number of seconds or a "
            f"duration string such as '1h30m', got {type(value).__name__}"
        )
    if math.isnan(seconds) or math.isinf(seconds):
        raise _invalid(value, "not a finite number")
    if seconds < 0:
        raise _invalid(value, "negative")
    return seconds + 0.0  # turns -0.0 into 0.0


def to_timedelta(value: timedelta | int | float | str) -> timedelta:
    """``value`` (as accepted by :func:`to_seconds`) as a :class:`~datetime.timedelta`."""
    seconds = to_seconds(value)
    if isinstance(value, timedelta):
        return value
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise _invalid(value, "too large for a timedelta") from None


def format_duration(seconds: float) -> str:
    """A compact human form of a number of seconds: ``"1h30m"``, ``"250ms"``, ``"2d3h"``, ``"0s"``.

    The value is rounded to the millisecond (so anything under half a millisecond is ``"0s"``);
    the units used are ``d``, ``h``, ``m``, ``s`` and ``ms``, largest first, zero parts left out.
    The result is accepted by :func:`to_seconds`.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise _invalid(seconds, f"expected a number of seconds, got {type(seconds).__name__}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise _invalid(seconds, "not a finite number")
    if seconds < 0:
        raise _invalid(seconds, "negative")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)
