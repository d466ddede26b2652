"""GCRA (the generic cell rate algorithm), for throttle and rate limit. Pure arithmetic.

A limit of ``limit`` per ``period`` paces admissions one every ``interval = period / limit``
seconds. The state of one key is a single number, the *theoretical arrival time* ``tat``: when
the next admission would be on pace. An admission at ``now`` is allowed when ``tat`` is no
further ahead of ``now`` than the *tolerance* (``burst`` intervals), and pushes ``tat`` one
interval on from ``max(tat, now)``. After a quiet stretch ``burst + 1`` admissions pass at once;
sustained traffic is admitted at the pace, whatever the window boundaries (no double burst
across a boundary, unlike fixed windows).

- :func:`admit` (rate limit: admit or refuse now), and
- :func:`schedule` (throttle: the time the admission is allowed, which the caller then takes,
  so excess work is delayed, in order, never dropped).

Inngest's throttle ``burst`` counts runs allowed on top of the pace. Over any interval of
length ``d`` GCRA admits at most ``burst + 1 + d / interval``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Decision", "Rate", "admit", "schedule"]


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` admissions per ``period`` seconds, with ``burst`` more ahead of the pace."""

    limit: int
    period: float
    burst: int = 0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.burst < 0 or not self.period > 0:
            raise ValueError(f"invalid rate {self!r}")

    @property
    def interval(self) -> float:
        """Seconds between admissions at the sustained pace."""
        return self.period / self.limit

    @property
    def tolerance(self) -> float:
        """How far ahead of now the state may run and still admit."""
        return self.burst * self.interval


@dataclass(frozen=True, slots=True)
class Decision:
    """``allowed``; ``at``: when it is (or would be) allowed; ``tat``: the new state (unchanged
    when refused)."""

    allowed: bool
    at: float
    tat: float


def admit(rate: Rate, tat: float | None, now: float) -> Decision:
    """Admit one at ``now`` or refuse it (the state is ``None`` for a key never seen)."""
    base = now if tat is None or tat < now else tat
    allowed_at = base - rate.tolerance
    if allowed_at > now:
        return Decision(False, allowed_at, now if tat is None else tat)
    return Decision(True, now, base + rate.interval)


def schedule(rate: Rate, tat: float | None, now: float) -> Decision:
    """The earliest time at or after ``now`` one admission is allowed, and the state after
    taking it then. ``allowed`` says whether that time is ``now``."""
    base = now if tat is None or tat < now else tat
    at = max(now, base - rate.tolerance)
    return Decision(at <= now, at, base + rate.interval)
