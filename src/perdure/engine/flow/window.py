"""The rate limit's sliding window: an exact bound, O(1) per decision. Pure arithmetic.

A rate limit of ``limit`` per ``period`` keeps, per key, the times of the last ``limit``
admissions in a ring of ``limit`` slots (the store keeps one row per slot and one head row:
the next slot to overwrite, which holds the oldest of those admissions, and the time of the
latest). A run is admitted at ``t`` when the ring is not yet full or its oldest entry is at or
before ``t - period``; it then overwrites that slot. Recorded times never go backwards (``t`` is
``max(now, latest)``, so clocks of several processes that differ by a little cannot reorder
the ring). Hence the guarantee, for the recorded times, in *every* window, not only aligned
ones:

    any half-open window ``(a, a + period]`` holds at most ``limit`` admissions.

(An entry ``t`` is in the window ending at ``e`` when ``t + period > e``: every comparison,
including the expiry of a key's state, uses that one floating-point sum, so that rounding can
never make two of them disagree.)

Proof: the recorded times ``r_1 <= r_2 <= ...`` are sorted. If a window held ``limit + 1`` of
them they would be consecutive, ``r_j .. r_{j+limit}``, and admitting ``r_{j+limit}`` required
the slot it overwrote, ``r_j``, to be at or before ``r_{j+limit} - period <= a``: but ``r_j > a``.
(``tests/flow/test_window.py`` checks it with hypothesis against a brute-force count.)

Unlike GCRA (which lets ``limit`` through in a burst and then paces them, so that two windows
may together see up to ``2 * limit`` in one period's span), this never admits more than
``limit`` within any ``period``, and unlike a fixed window it has no boundary burst.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Ring", "RingState", "WindowDecision", "decide", "resize"]


@dataclass(frozen=True, slots=True)
class RingState:
    """The head row of one key: the ring's size (the limit it was built for), the next slot
    to overwrite, and the latest admission time."""

    size: int
    head: int
    last: float


@dataclass(frozen=True, slots=True)
class WindowDecision:
    """``allowed``; ``at``: the time recorded for it; ``retry_at``: when the next admission
    would be allowed (refused) or ``None``; ``state``: the head row after (unchanged when
    refused); ``expires_at``: when the key's state is no longer needed (every slot out of the
    window)."""

    allowed: bool
    at: float
    retry_at: float | None
    state: RingState
    expires_at: float


def decide(
    state: RingState | None, oldest: float | None, now: float, limit: int, period: float
) -> WindowDecision:
    """Admit or refuse one run at ``now``. ``state`` is the key's head row (``None``: never
    seen, or expired) with ``state.size == limit``; ``oldest`` the time in slot ``state.head``
    (``None``: the slot is still empty)."""
    if limit < 1 or not period > 0:
        raise ValueError(f"invalid rate limit {limit}/{period}")
    if state is None:
        state = RingState(limit, 0, now)
        oldest = None
    if state.size != limit:
        raise ValueError("resize the ring to the limit first")
    at = max(now, state.last)
    if oldest is not None and oldest + period > at:  # the same sum as expires_at
        return WindowDecision(False, at, oldest + period, state, state.last + period)
    after = RingState(limit, (state.head + 1) % limit, at)
    return WindowDecision(True, at, None, after, at + period)


def resize(state: RingState, slots: Sequence[float | None], limit: int) -> list[float]:
    """The ring rebuilt for a changed ``limit``: ``slots`` are the old ring's slot times by
    slot index; the result is the newest ``limit`` of them, oldest first (slot 0 onwards),
    with the next slot to overwrite at ``len(result) % limit``."""
    size = len(slots)
    ordered = [slots[(state.head + i) % size] for i in range(size)]
    times = [t for t in ordered if t is not None]
    return times[-limit:]


class Ring:
    """The ring of one key in memory: the same decisions as the stores make over their rows
    (used by the tests, and as the reference for the stores' code)."""

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.state: RingState | None = None
        self.slots: list[float | None] = [None] * limit

    def admit(self, now: float) -> WindowDecision:
        """Decide one run at ``now``, and apply it."""
        if self.state is not None and self.state.last + self.period <= now:
            self.state, self.slots = None, [None] * self.limit  # expired: pruned
        oldest = None if self.state is None else self.slots[self.state.head]
        decision = decide(self.state, oldest, now, self.limit, self.period)
        if decision.allowed:
            head = 0 if self.state is None else self.state.head
            self.slots[head] = decision.at
            self.state = decision.state
        return decision

    def set_limit(self, limit: int) -> None:
        """Change the limit (as a re-registration does)."""
        if limit == self.limit:
            return
        if self.state is None:
            self.limit, self.slots = limit, [None] * limit
            return
        kept = resize(self.state, self.slots, limit)
        self.slots = [*kept, *([None] * (limit - len(kept)))]
        self.state = RingState(limit, len(kept) % limit, self.state.last)
        self.limit = limit
