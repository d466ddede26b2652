"""The PostgreSQL store's clock: the database's, estimated locally without a round trip.

Leases use the database clock. :class:`DbClock` answers ``now()`` with the local clock plus the
offset to the database clock measured on recent round trips that read it (claims, heartbeats,
pings): the estimate with the shortest round trip wins, and an old one slowly loses its credit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class DbClock:
    """The database's clock, as estimated from the samples it was given."""

    __slots__ = ("_offset", "_sample_at", "_sample_score")

    def __init__(self) -> None:
        self._offset = 0.0
        self._sample_score = float("inf")
        self._sample_at = 0.0

    def now(self) -> float:
        """The database's time (seconds since the epoch), estimated."""
        return time.time() + self._offset

    def sample(self, db_now: float, t0: float, t1: float) -> None:
        """Learn from a round trip sent at local time ``t0``, answered at ``t1``, that read the
        database time ``db_now``."""
        mono = time.monotonic()
        score = t1 - t0
        if score <= self._sample_score + (mono - self._sample_at) * 0.001:
            self._offset = db_now - (t0 + t1) / 2
            self._sample_score = score
            self._sample_at = mono

    async def wait(self, event: asyncio.Event, deadline: float | None, cap: float | None) -> None:
        """Wait until ``event`` is set, ``deadline`` (database time) passes, or ``cap``
        seconds elapse."""
        timeout = cap
        if deadline is not None:
            until = max(0.0, deadline - self.now())
            timeout = until if timeout is None else min(timeout, until)
        if event.is_set() or (timeout is not None and timeout <= 0):
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # not wait_for: see SystemClock.wait
                await event.wait()
