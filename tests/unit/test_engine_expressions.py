"""Tests for perdure.engine.expressions."""

from __future__ import annotations

from typing import Any

import pytest

from perdure.engine.expressions import Expression, validate
from perdure.errors import InvalidExpressionError

EVENT: dict[str, Any] = {
    "event": {
        "name": "order.placed",
        "data": {
            "amount": 150,
            "price": 9.5,
            "currency": "EUR",
            "tags": ["vip", "eu"],
            "customer": {"id": "c_1", "address": {"country": "FR"}},
            "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}],
            "paid": True,
            "note": None,
        },
    }
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("event.data.amount > 100", True),
        ("event.data.amount >= 150", True),
        ("event.data.amount < 100", False),
        ("event.data.amount == 150", True),
        ("event.data.amount != 150", False),
        ("event.data.price > 9.0", True),
        ("event.data.currency == 'EUR'", True),
        ('event.data.currency == "USD"', False),
        ("event.data.amount > 100 && event.data.currency == 'EUR'", True),
        ("event.data.amount > 100 && event.data.currency == 'USD'", False),
        ("event.data.amount > 1000 || event.data.currency == 'EUR'", True),
        ("!(event.data.amount > 1000)", True),
        ("event.name.startsWith('order.')", True),
        ("event.name.endsWith('.placed')", True),
        ("event.name.contains('der.pl')", True),
        ("event.name.startsWith('user.')", False),
        ("'vip' in event.data.tags", True),
        ("'us' in event.data.tags", False),
        ("event.data.currency in ['EUR', 'GBP']", True),
        ("event.data.customer.address.country == 'FR'", True),
        ("event.data['customer']['id'] == 'c_1'", True),
        ("event.data.items.exists(i, i.sku == 'B')", True),
        ("event.data.items.all(i, i.qty > 1)", False),
        ("size(event.data.items) == 2", True),
        ("has(event.data.customer)", True),
        ("has(event.data.missing)", False),
        ("event.data.paid", True),
        ("event.data.note == null", True),
        ("true", True),
        ("false", False),
    ],
)
def test_evaluate(source: str, expected: bool) -> None:
    assert Expression.compile(source).evaluate(EVENT) is expected


@pytest.mark.parametrize(
    "source",
    [
        "event.data.missing == 1",  # missing field
        "event.data.customer.missing.deeper == 'x'",
        "event.data.items[5].sku == 'A'",  # index out of range
        "event.data.amount + 'x' == 'y'",  # no such overload
        "event.data.currency > 3",  # type mismatch
        "event.data.amount / 0 == 1",  # division by zero
        "9223372036854775807 + 1 > 0",  # overflow
        "int('abc') == 1",  # function error
        "other.value == 1",  # unknown variable
        "nosuchfunction(1)",  # unknown function
        "event.data.amount",  # not a boolean
        "event.data.currency",  # not a boolean
        "event.data.tags",  # not a boolean
    ],
)
def test_runtime_problems_are_false(source: str) -> None:
    assert Expression.compile(source).evaluate(EVENT) is False


def test_missing_field_can_be_guarded() -> None:
    expression = Expression.compile("has(event.data.coupon) && event.data.coupon == 'X'")
    assert expression.evaluate(EVENT) is False
    assert expression.evaluate({"event": {"data": {"coupon": "X"}}}) is True
    # CEL's || and && absorb an error when the other side decides the result.
    assert Expression.compile("event.data.missing == 1 || event.data.amount > 0").evaluate(EVENT)
    assert Expression.compile("event.data.amount > 0 || event.data.missing == 1").evaluate(EVENT)
    assert not Expression.compile("event.data.missing == 1 && false").evaluate(EVENT)


def test_unconvertible_variables_are_false() -> None:
    expression = Expression.compile("x == 1")
    assert expression.evaluate({"x": {1, 2}}) is False
    assert expression.evaluate({"x": object()}) is False
    assert expression.evaluate({"x": 1}) is True
    assert expression.evaluate({}) is False


def test_compile_is_cached_and_immutable() -> None:
    first = Expression.compile("event.data.amount > 1")
    assert Expression.compile("event.data.amount > 1") is first
    assert first.source == "event.data.amount > 1"
    assert str(first) == "event.data.amount > 1"
    assert first == Expression.compile("event.data.amount > 1")
    assert len({first, Expression.compile("event.data.amount > 1")}) == 1
    with pytest.raises(AttributeError):
        first.source = "x"  # type: ignore[misc]  # frozen: assigning must raise


@pytest.mark.parametrize(
    ("source", "fragments"),
    [
        ("event.data.amount >", ["'event.data.amount >'", "Syntax error", "at 1:20"]),
        ("event.data.amount > > 1", ["Syntax error", "at 1:21"]),
        ("'unterminated", ["token recognition error"]),
        ("foo(", ["Syntax error"]),
        ("", ["invalid expression '': it is empty"]),
        ("   ", ["it is empty"]),
    ],
)
def test_compile_errors(source: str, fragments: list[str]) -> None:
    with pytest.raises(InvalidExpressionError) as info:
        Expression.compile(source)
    message = str(info.value)
    assert message.startswith(f"invalid expression {source!r}: ")
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message
    assert "^" not in message  # no caret diagram


def test_compile_rejects_non_strings() -> None:
    with pytest.raises(InvalidExpressionError, match="expected a string, got int"):
        Expression.compile(42)  # type: ignore[arg-type]  # a non-string must be rejected


def test_roots() -> None:
    assert Expression.compile("event.data.a > async.data.b").roots == {"event", "async"}
    assert Expression.compile("true").roots == frozenset()
    bound = Expression.compile("event.data.items.exists(item, item.qty > 1) && [1].all(x, x > 0)")
    assert bound.roots == {"event"}
    # a macro name inside a string literal binds nothing
    quoted = Expression.compile("event.name == '.all(y, ' && y == 1")
    assert quoted.roots == {"event", "y"}


def test_validate_accepts_allowed_roots() -> None:
    assert validate("event.data.amount > 1", {"event"}).source == "event.data.amount > 1"
    waited = validate("event.data.id == async.data.id", {"event", "async"})
    assert waited.evaluate({"event": {"data": {"id": 1}}, "async": {"data": {"id": 1}}}) is True
    assert validate("event.data.items.map(i, i.qty).exists(q, q > 1)", {"event"}).roots == {"event"}


def test_validate_rejects_other_roots() -> None:
    with pytest.raises(InvalidExpressionError) as info:
        validate("event.data.id == async.data.id", {"event"})
    message = str(info.value)
    assert "unknown variable 'async'" in message
    assert "(allowed: event)" in message
    assert "'event.data.id == async.data.id'" in message
    with pytest.raises(InvalidExpressionError, match="unknown variables 'a', 'b'"):
        validate("a == b", {"event", "async"})
    with pytest.raises(InvalidExpressionError, match="Syntax error"):
        validate("event.data.x ==", {"event"})
