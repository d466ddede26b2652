"""Tests for perdure.engine.backoff."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perdure.engine.backoff import RetryPolicy, attempts_left, backoff_delay
from perdure.errors import InvalidInputError


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.retries, policy.initial_delay, policy.max_delay, policy.factor) == (
        4,
        1.0,
        300.0,
        2.0,
    )
    assert hash(policy) == hash(RetryPolicy())


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"retries": -1}, "retries must be >= 0, got -1"),
        ({"retries": 1.5}, "retries must be an integer"),
        ({"retries": True}, "retries must be an integer"),
        ({"initial_delay": -1.0}, "initial_delay must be >= 0"),
        ({"initial_delay": float("nan")}, "initial_delay must be finite"),
        ({"max_delay": float("inf")}, "max_delay must be finite"),
        ({"factor": 0.5}, "factor must be >= 1, got 0.5"),
        ({"factor": 0}, "factor must be >= 1"),
        ({"factor": "2"}, "factor must be a number"),
        ({"initial_delay": 10.0, "max_delay": 5.0}, "max_delay (5) must be >= initial_delay (10)"),
    ],
)
def test_policy_validation(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        RetryPolicy(**kwargs)
    assert fragment in str(info.value)


def test_delay_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(retries=20, initial_delay=1.0, max_delay=60.0, factor=2.0)
    top = [backoff_delay(policy, n, rand=lambda: 1.0) for n in range(1, 10)]
    assert top == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    bottom = [backoff_delay(policy, n, rand=lambda: 0.0) for n in range(1, 10)]
    assert bottom == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff_delay(policy, 3, rand=lambda: 0.5) == 3.0


def test_delay_handles_huge_attempt_counts_and_edge_policies() -> None:
    assert backoff_delay(RetryPolicy(), 10_000, rand=lambda: 1.0) == 300.0
    assert backoff_delay(RetryPolicy(factor=1.0), 50, rand=lambda: 1.0) == 1.0
    assert backoff_delay(RetryPolicy(initial_delay=0.0), 5, rand=lambda: 1.0) == 0.0
    # rand values outside [0, 1] are clamped
    assert backoff_delay(RetryPolicy(), 1, rand=lambda: 7.0) == 1.0
    assert backoff_delay(RetryPolicy(), 1, rand=lambda: -3.0) == 0.5


@pytest.mark.parametrize("attempts", [0, -1, True, 1.0])
def test_delay_rejects_bad_attempt_counts(attempts: Any) -> None:
    with pytest.raises(InvalidInputError, match="failed_attempts"):
        backoff_delay(RetryPolicy(), attempts)


@settings(max_examples=100, database=None, deadline=None)
@given(
    st.floats(min_value=0.001, max_value=100.0),
    st.floats(min_value=1.0, max_value=10.0),
    st.integers(min_value=1, max_value=200),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_delay_stays_within_equal_jitter_bounds(
    initial: float, factor: float, attempts: int, r: float
) -> None:
    policy = RetryPolicy(retries=10, initial_delay=initial, max_delay=1000.0, factor=factor)
    cap = min(1000.0, initial * factor ** (attempts - 1))
    delay = backoff_delay(policy, attempts, rand=lambda: r)
    assert cap / 2 * (1 - 1e-9) <= delay <= cap * (1 + 1e-9)
    assert delay <= policy.max_delay


def test_default_rand_is_random_but_bounded() -> None:
    policy = RetryPolicy()
    delays = {backoff_delay(policy, 4) for _ in range(50)}
    assert all(4.0 <= d <= 8.0 for d in delays)
    assert len(delays) > 1


def test_attempts_left() -> None:
    policy = RetryPolicy(retries=2)
    assert [attempts_left(policy, n) for n in range(5)] == [True, True, True, False, False]
    assert attempts_left(RetryPolicy(retries=0), 0) is True
    assert attempts_left(RetryPolicy(retries=0), 1) is False
    with pytest.raises(InvalidInputError, match="failed_attempts must be >= 0"):
        attempts_left(policy, -1)
