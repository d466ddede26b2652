"""Retry policies and the delay before each retry."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from perdure.errors import InvalidInputError

__all__ = ["RetryPolicy", "attempts_left", "backoff_delay"]


def _check_number(name: str, value: object, minimum: float, inclusive: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidInputError(f"{name} must be finite, got {value!r}")
    if value < minimum or (not inclusive and value == minimum):
        relation = ">=" if inclusive else ">"
        raise InvalidInputError(f"{name} must be {relation} {minimum:g}, got {value!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how fast to retry a failed step or run.

    ``retries`` is how many times to try again after the first attempt fails (so up to
    ``retries + 1`` attempts in all). The delay before retry *n* is capped at
    ``min(max_delay, initial_delay * factor ** (n - 1))`` seconds; see :func:`backoff_delay`.
    """

    retries: int = 4
    initial_delay: float = 1.0
    max_delay: float = 300.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise InvalidInputError(f"retries must be an integer, got {self.retries!r}")
        if self.retries < 0:
            raise InvalidInputError(f"retries must be >= 0, got {self.retries}")
        _check_number("initial_delay", self.initial_delay, 0.0)
        _check_number("max_delay", self.max_delay, 0.0)
        _check_number("factor", self.factor, 1.0)
        if self.max_delay < self.initial_delay:
            raise InvalidInputError(
                f"max_delay ({self.max_delay:g}) must be >= initial_delay ({self.initial_delay:g})"
            )


def _cap(policy: RetryPolicy, failed_attempts: int) -> float:
    initial, limit, factor = policy.initial_delay, policy.max_delay, policy.factor
    if initial == 0:
        return 0.0
    if factor == 1:
        return min(limit, initial)
    # Compare exponents rather than computing factor ** n, which overflows for large n.
    if (failed_attempts - 1) * math.log(factor) >= math.log(limit / initial):
        return limit
    return min(limit, initial * factor ** (failed_attempts - 1))


def backoff_delay(
    policy: RetryPolicy,
    failed_attempts: int,
    rand: Callable[[], float] = random.random,
) -> float:
    """The delay in seconds before the next attempt, after ``failed_attempts`` (>= 1) failures.

    Exponential backoff with "equal jitter": with ``cap = min(max_delay, initial_delay *
    factor ** (failed_attempts - 1))``, the delay is uniform in ``[cap / 2, cap]``
    (``cap / 2 + cap / 2 * rand()``). Half of the delay is guaranteed, so a retry never comes
    back almost at once at a dependency that is failing (as full jitter, uniform in ``[0, cap]``,
    allows), and the random half still spreads out the retries of many runs that failed
    together. ``rand`` returns a float in ``[0, 1)`` (values outside ``[0, 1]`` are clamped);
    pass a fixed one for deterministic delays.
    """
    if isinstance(failed_attempts, bool) or not isinstance(failed_attempts, int):
        raise InvalidInputError(f"failed_attempts must be an integer, got {failed_attempts!r}")
    if failed_attempts < 1:
        raise InvalidInputError(f"failed_attempts must be >= 1, got {failed_attempts}")
    cap = _cap(policy, failed_attempts)
    r = rand()
    r = 0.0 if math.isnan(r) else min(1.0, max(0.0, r))
    half = cap / 2
    return min(cap, half + half * r)


def attempts_left(policy: RetryPolicy, failed_attempts: int) -> bool:
    """Whether another attempt is allowed after ``failed_attempts`` (>= 0) failed attempts."""
    if isinstance(failed_attempts, bool) or not isinstance(failed_attempts, int):
        raise InvalidInputError(f"failed_attempts must be an integer, got {failed_attempts!r}")
    if failed_attempts < 0:
        raise InvalidInputError(f"failed_attempts must be >= 0, got {failed_attempts}")
    return failed_attempts <= policy.retries
