"""The attempt policy: what happens after a step or a run attempt fails, and after a crash.

One policy for every driver and both levels:

- a **step** whose body raised is retried while its retries last (``RetryPolicy.retries``
  retries after the first attempt); the step then fails for good and :class:`~perdure.errors.
  StepError` is raised inside the function;
- a **run** attempt whose function raised outside any step is retried the same way (its replay
  answers completed steps from their checkpoints); out of retries, the run fails;
- :class:`~perdure.errors.NonRetriableError` (and a :class:`~perdure.errors.StepError` reaching
  the top of the function) fails at once, whatever retries are left;
- :class:`~perdure.errors.RetryAfterError` sets the delay of the next attempt instead of the
  backoff (it still spends an attempt);
- a run claimed after its worker died counts a **crash**; past ``max_crashes`` it fails instead
  of taking down more workers (:func:`crashed_too_often`).

Pure: no I/O, no clock (the caller adds the delay to its own clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from perdure.engine.backoff import RetryPolicy, attempts_left, backoff_delay
from perdure.engine.failures import ErrorInfo
from perdure.errors import NonRetriableError, RetryAfterError, StepError


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt as the policy sees it: the error to record, whether it may be retried,
    and a delay the error asked for (``None``: the policy's backoff)."""

    error: ErrorInfo
    retriable: bool = True
    retry_after: float | None = None

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        """Classify an exception raised by user code."""
        if isinstance(exc, NonRetriableError | StepError):
            return cls(ErrorInfo.of(exc), retriable=False)
        if isinstance(exc, RetryAfterError):
            return cls(ErrorInfo.of(exc), retry_after=exc.delay_seconds)
        return cls(ErrorInfo.of(exc))


def retry_delay(
    policy: RetryPolicy,
    failures: int,
    failure: Failure,
    rand: Callable[[], float] | None = None,
) -> float | None:
    """After ``failures`` (>= 1) failed attempts, the last being ``failure``: the delay in
    seconds before the next attempt, or ``None`` if there is none (fail for good)."""
    if not failure.retriable or not attempts_left(policy, failures):
        return None
    if failure.retry_after is not None:
        return failure.retry_after
    if rand is None:
        return backoff_delay(policy, failures)
    return backoff_delay(policy, failures, rand)


def crashed_too_often(crashes: int, max_crashes: int) -> bool:
    """Whether a run interrupted by ``crashes`` worker crashes must fail now."""
    return crashes > max_crashes
