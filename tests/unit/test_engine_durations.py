"""Tests for perdure.engine.durations."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perdure.engine.durations import format_duration, to_seconds, to_timedelta
from perdure.errors import InvalidInputError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
        ("90s", 90.0),
        ("1w2d", 777600.0),
        ("30", 30.0),
        ("2.5", 2.5),
        ("0", 0.0),
        ("0s", 0.0),
        (".5s", 0.5),
        ("1h 30m", 5400.0),
        ("  1h\t30m 15s ", 5415.0),
        ("1m1ms", 60.001),
        ("10m", 600.0),
    ],
)
def test_to_seconds_parses_strings(text: str, seconds: float) -> None:
    assert to_seconds(text) == pytest.approx(seconds)


def test_to_seconds_accepts_numbers_and_timedeltas() -> None:
    assert to_seconds(timedelta(minutes=2, milliseconds=5)) == pytest.approx(120.005)
    assert to_seconds(0) == 0.0
    assert to_seconds(12) == 12.0
    assert to_seconds(0.25) == 0.25
    assert isinstance(to_seconds(3), float)
    assert math.copysign(1.0, to_seconds(-0.0)) == 1.0


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-5s", "'-5s'"),
        ("5x", "unknown unit 'x'"),
        ("5H", "unknown unit 'H'"),
        ("5 m", "no unit"),
        ("1h30", "no unit"),
        ("h", "expected <number><unit>"),
        ("1h,2m", "expected <number><unit> at ',2m'"),
        ("nan", "'nan'"),
        ("inf", "'inf'"),
        ("1e3s", "unknown unit 'e'"),
        ("9" * 400 + "w", "not a finite number"),
        (-1, "negative"),
        (-0.5, "negative"),
        (timedelta(seconds=-1), "negative"),
        (float("nan"), "not a finite number"),
        (float("inf"), "not a finite number"),
        (True, "bool"),
        (False, "bool"),
        (None, "got NoneType"),
        ([1], "got list"),
        (10**400, "too large"),
    ],
)
def test_to_seconds_rejects_bad_input(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        to_seconds(value)
    message = str(info.value)
    assert fragment in message
    assert message.startswith(f"invalid duration {value!r}"[:40])


def test_to_timedelta() -> None:
    assert to_timedelta("1h30m") == timedelta(hours=1, minutes=30)
    assert to_timedelta(90) == timedelta(seconds=90)
    assert to_timedelta("500ms") == timedelta(milliseconds=500)
    original = timedelta(days=1, microseconds=1)
    assert to_timedelta(original) == original
    with pytest.raises(InvalidInputError, match="negative"):
        to_timedelta(timedelta(seconds=-1))
    with pytest.raises(InvalidInputError, match="too large"):
        to_timedelta(1e300)
    with pytest.raises(InvalidInputError, match="unknown unit"):
        to_timedelta("3y")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "0s"),
        (0.25, "250ms"),
        (1, "1s"),
        (59.5, "59s500ms"),
        (60, "1m"),
        (90, "1m30s"),
        (5400, "1h30m"),
        (3600, "1h"),
        (86400 + 3 * 3600, "1d3h"),
        (604800, "7d"),
        (3661.001, "1h1m1s1ms"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), True, "1s"])
def test_format_duration_rejects_bad_input(value: Any) -> None:
    with pytest.raises(InvalidInputError, match="invalid duration"):
        format_duration(value)


@settings(max_examples=100, database=None, deadline=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_format_duration_round_trips_milliseconds(millis: int) -> None:
    text = format_duration(millis / 1000)
    assert round(to_seconds(text) * 1000) == millis


@settings(max_examples=100, database=None, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10_000),
            st.sampled_from(["ms", "s", "m", "h", "d", "w"]),
        ),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["", " ", "  "]),
)
def test_to_seconds_sums_parts(parts: list[tuple[int, str]], separator: str) -> None:
    factors = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = separator.join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * factors[unit] for n, unit in parts)
    assert to_seconds(text) == pytest.approx(expected)
