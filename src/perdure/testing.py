"""Helpers for testing perdure functions.

:class:`ManualClock` makes time stand still until you move it: a run that sleeps 7 days resumes as
soon as the test calls ``clock.advance(timedelta(days=7))``::

    clock = ManualClock()
    app = perdure.App("test", "sqlite:///test.db", clock=clock)
    async with app.worker():
        handle = await app.start(weekly_digest)
        await clock.advance(days=7)
        assert await handle.result(timeout=5) == ...

Leases, retries, sleeps, wait and invoke timeouts and cron ticks all follow the clock.
Both stores honour it (PostgreSQL reads the manual time instead of the database server's clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | float | None = None) -> None:
        if start is None:
            self._now = time.time()
        elif isinstance(start, datetime):
            self._now = start.timestamp()
        else:
            self._now = float(start)
        self._events: set[asyncio.Event] = set()

    def now(self) -> float:
        """The current (manual) time."""
        return self._now

    async def advance(
        self,
        delta: timedelta | float | None = None,
        *,
        days: float = 0,
        hours: float = 0,
        minutes: float = 0,
        seconds: float = 0,
    ) -> None:
        """Move time forward and wake everything waiting on the clock."""
        step = delta.total_seconds() if isinstance(delta, timedelta) else float(delta or 0)
        step += days * 86400 + hours * 3600 + minutes * 60 + seconds
        if step < 0:
            raise ValueError("a clock only moves forward")
        self._now += step
        for event in list(self._events):
            event.set()
        await asyncio.sleep(0)

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (not backwards)."""
        target = when.timestamp()
        if target < self._now:
            raise ValueError("a clock only moves forward")
        self._now = target
        for event in list(self._events):
            event.set()

    async def wait(self, event: asyncio.Event, deadline: float | None, cap: float | None) -> None:
        """Wait for the event, the deadline (manual time) or ``cap`` real seconds."""
        if event.is_set() or (deadline is not None and deadline <= self._now):
            await asyncio.sleep(0)
            return
        self._events.add(event)
        try:
            if cap is None:
                await event.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(cap):  # not wait_for: see SystemClock.wait
                        await event.wait()
        finally:
            self._events.discard(event)
