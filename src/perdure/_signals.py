"""Control-flow signals. They derive from ``BaseException`` so that user code's
``except Exception`` cannot swallow them."""

from __future__ import annotations

from perdure.errors import PerdureError


class Signal(BaseException):
    """Base of perdure's internal control-flow signals."""


class Suspend(Signal):
    """The run is suspending (a sleep, a wait, a retry backoff); unwind the function."""


class LeaseLost(Signal):
    """This worker no longer owns the run (taken over, or cancelled); stop at once."""


class Fatal(Signal):
    """The run must fail at once with ``error`` (no retry): replay mismatch, misuse."""

    def __init__(self, error: PerdureError) -> None:
        super().__init__(str(error))
        self.error = error
