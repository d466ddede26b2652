"""The rate limit's sliding window (engine/flow/window.py): exact in every window, refuses
only when the window is full, survives limit changes. Property-based."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perdure.engine.flow.window import Ring, RingState, decide, resize

steps = st.lists(
    st.one_of(
        st.floats(min_value=0, max_value=30, allow_nan=False),
        st.floats(min_value=-0.5, max_value=0, allow_nan=False),  # clocks a little behind
    ),
    min_size=1,
    max_size=200,
)


def in_window(times: list[float], end: float, period: float) -> int:
    return sum(1 for t in times if t <= end and t + period > end)


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=8),
    period=st.floats(min_value=0.5, max_value=100, allow_nan=False),
    deltas=steps,
)
def test_no_window_holds_more_than_the_limit(
    limit: int, period: float, deltas: list[float]
) -> None:
    ring = Ring(limit, period)
    now, admitted = 1000.0, []
    for d in deltas:
        now += d
        decision = ring.admit(now)
        if decision.allowed:
            assert decision.at >= now
            admitted.append(decision.at)
        else:
            # Refused only when the window ending at the decision time is full.
            assert in_window(admitted, decision.at, period) >= limit
            assert decision.retry_at is not None and decision.retry_at > decision.at
    assert admitted == sorted(admitted)  # recorded times never go backwards
    # The count in any window is largest for a window ending at an admission.
    for end in admitted:
        assert in_window(admitted, end, period) <= limit


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=6),
    new_limit=st.integers(min_value=1, max_value=6),
    period=st.floats(min_value=1, max_value=50, allow_nan=False),
    before=steps,
    after=steps,
)
def test_a_changed_limit_holds_for_the_kept_and_new_admissions(
    limit: int, new_limit: int, period: float, before: list[float], after: list[float]
) -> None:
    ring = Ring(limit, period)
    now, admitted = 1000.0, []
    for d in before:
        now += d
        if (dec := ring.admit(now)).allowed:
            admitted.append(dec.at)
    ring.set_limit(new_limit)
    kept = sorted(t for t in ring.slots if t is not None)
    assert len(kept) <= new_limit
    assert not kept or kept == admitted[-len(kept) :]  # the newest are kept
    later = list(kept)
    for d in after:
        now += d
        if (dec := ring.admit(now)).allowed:
            later.append(dec.at)
    for end in later:
        assert in_window(later, end, period) <= new_limit


def test_decide_admits_a_fresh_key_and_refuses_a_full_window() -> None:
    first = decide(None, None, 10.0, 2, 60.0)
    assert first.allowed and first.state == RingState(2, 1, 10.0) and first.expires_at == 70.0
    second = decide(first.state, None, 11.0, 2, 60.0)
    assert second.allowed and second.state.head == 0
    third = decide(second.state, 10.0, 12.0, 2, 60.0)
    assert not third.allowed and third.retry_at == 70.0 and third.state == second.state
    assert decide(second.state, 10.0, 70.0, 2, 60.0).allowed  # 10 left (10, 70]


def test_decide_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="invalid"):
        decide(None, None, 0.0, 0, 1.0)
    with pytest.raises(ValueError, match="resize"):
        decide(RingState(3, 0, 0.0), None, 1.0, 2, 1.0)


def test_resize_keeps_the_newest_in_ring_order() -> None:
    # Ring of 3, next slot to overwrite is 1 (the oldest): order is slot 1, 2, 0.
    state = RingState(3, 1, 30.0)
    assert resize(state, [30.0, 10.0, 20.0], 2) == [20.0, 30.0]
    assert resize(state, [30.0, 10.0, 20.0], 5) == [10.0, 20.0, 30.0]
    assert resize(RingState(3, 2, 5.0), [1.0, 5.0, None], 2) == [1.0, 5.0]
