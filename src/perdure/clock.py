"""Clocks. Every time perdure reads for scheduling goes through a :class:`Clock`.

Production uses :class:`SystemClock`; tests may use :class:`perdure.testing.ManualClock` to make a
7-day sleep pass in milliseconds. Times are float seconds since the epoch (UTC).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Protocol


class Clock(Protocol):
    """A source of time that can also wait for a deadline."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def wait(self, event: asyncio.Event, deadline: float | None, cap: float | None) -> None:
        """Wait until ``event`` is set, ``deadline`` (clock time) passes, or ``cap`` real seconds.

        Returns early, without raising, in every case.
        """
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    async def wait(self, event: asyncio.Event, deadline: float | None, cap: float | None) -> None:
        """Wait for the event, the deadline or the cap, whichever comes first."""
        timeout = cap
        if deadline is not None:
            until = max(0.0, deadline - time.time())
            timeout = until if timeout is None else min(timeout, until)
        if event.is_set() or (timeout is not None and timeout <= 0):
            await asyncio.sleep(0)  # always yield, so a caller's loop can never spin
            return
        with contextlib.suppress(TimeoutError):
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that arrives as the event is set, and a stopping worker would wait forever.
            async with asyncio.timeout(timeout):
                await event.wait()
