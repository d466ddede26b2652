"""Tests for perdure.engine.triggers."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perdure.engine.triggers import EventPattern, validate_event_name
from perdure.errors import InvalidInputError


@pytest.mark.parametrize(
    "name", ["order.placed", "app/user.created", "a", "x" * 256, "événement.créé", "a-b_c:d"]
)
def test_valid_event_names(name: str) -> None:
    assert validate_event_name(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "event name is empty"),
        ("x" * 257, "257 characters long, over the limit of 256"),
        ("order placed", "contains whitespace at index 5"),
        ("order\tplaced", "contains whitespace at index 5"),
        ("tab\x00", "non-printable character '\\x00' at index 3"),
        ("a\u200bb", "non-printable"),
        ("order.*", "contains '*' at index 6"),
        (None, "must be a string, got NoneType"),
        (42, "must be a string, got int"),
    ],
)
def test_invalid_event_names(name: Any, fragment: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_event_name(name)
    assert fragment in str(info.value)


def test_exact_pattern() -> None:
    pattern = EventPattern.parse("order.placed")
    assert pattern.is_exact
    assert pattern.prefix == "order.placed"
    assert pattern.matches("order.placed")
    assert not pattern.matches("order.placed.x")
    assert not pattern.matches("order.place")
    assert str(pattern) == "order.placed"


def test_trailing_wildcard() -> None:
    pattern = EventPattern.parse("order.*")
    assert not pattern.is_exact
    assert pattern.prefix == "order."
    assert pattern.matches("order.placed")
    assert pattern.matches("order.item.added")
    assert not pattern.matches("order")
    assert not pattern.matches("orders.placed")
    assert not pattern.matches("x.order.placed")


def test_star_matches_everything() -> None:
    pattern = EventPattern.parse("*")
    assert pattern.prefix == ""
    for name in ["a", "order.placed", "app/x.y.z", "*"]:
        assert pattern.matches(name)


def test_inner_and_multiple_wildcards() -> None:
    pattern = EventPattern.parse("app/*.created")
    assert pattern.matches("app/user.created")
    assert pattern.matches("app/team.member.created")
    assert not pattern.matches("app/user.deleted")
    assert not pattern.matches("app.created")

    pattern = EventPattern.parse("a*b*c")
    assert pattern.matches("abc")
    assert pattern.matches("a.x.b.y.c")
    assert not pattern.matches("acb")
    assert not pattern.matches("ab")

    overlapping = EventPattern.parse("ab*ba")
    assert not overlapping.matches("aba")
    assert overlapping.matches("abba")

    assert EventPattern.parse("*.failed").matches("step.failed")
    assert not EventPattern.parse("*.failed").matches("failed")


def test_patterns_are_values() -> None:
    assert EventPattern.parse("a.*") == EventPattern.parse("a.*")
    assert len({EventPattern.parse("a.*"), EventPattern.parse("a.*"), EventPattern.parse("b")}) == 2
    with pytest.raises(AttributeError):
        EventPattern.parse("a").pattern = "b"  # type: ignore[misc]  # frozen: must raise


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [("", "event pattern is empty"), ("a *", "whitespace"), ("*" * 300, "over the limit")],
)
def test_invalid_patterns(pattern: str, fragment: str) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        EventPattern.parse(pattern)


_ALPHABET = "ab.*"


@settings(max_examples=100, database=None, deadline=None)
@given(
    st.text(alphabet=_ALPHABET, min_size=1, max_size=8),
    st.text(alphabet="ab.", min_size=1, max_size=8),
)
def test_matches_agrees_with_a_glob(pattern: str, name: str) -> None:
    # fnmatchcase is a reference glob: with no "?" or "[" in the alphabet, only "*" is special.
    assert EventPattern.parse(pattern).matches(name) == fnmatch.fnmatchcase(name, pattern)
