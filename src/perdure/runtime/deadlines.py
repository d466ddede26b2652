"""The deadline sweeper: cancels runs whose ``timeouts`` passed, at the deadline.

A run of a function with ``timeouts=perdure.Timeouts(start, finish)`` carries ``start_by``
(set when it is created) and ``finish_by`` (set when it is first claimed). The sweeper asks the
store to cancel the runs past either (:meth:`~perdure.store.base.Store.cancel_overdue`: an
indexed read of the overdue runs, the store's one cancel with the reason, and the earliest
deadline still ahead), then sleeps until that deadline. It never scans runs:

- the earliest deadline is a timer on the store's clock (a :class:`~perdure.testing.ManualClock`
  moves it in tests);
- new deadlines wake it early: a commit of this process that creates work, a notification
  from another process (PostgreSQL), a run of a function with a finish timeout claimed by
  this worker (:meth:`DeadlineSweeper.claimed`), and otherwise a re-check every
  ``recheck`` seconds (runs created by other processes on SQLite, which has no notifications).

Every worker hosting a function with timeouts runs one (``perdure worker``, ``app.worker()``);
it cancels overdue runs of every function, so a run whose function has no free worker is
still cancelled on time. Several sweepers share the work (PostgreSQL locks overdue runs with
``SKIP LOCKED``; SQLite serializes writers); cancelling twice is a no-op. A cancelled run
that a local worker is executing is aborted at once (others stop at their next step: the
cancel moved the run's fencing token).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from perdure.engine.flow.deadlines import next_deadline
from perdure.errors import StoreUnavailableError
from perdure.runtime.metrics import count_ended

if TYPE_CHECKING:
    from perdure.runtime.ports import HostedFunction
    from perdure.runtime.runtime import Runtime

log = logging.getLogger("perdure.deadlines")

_BATCH = 500
_BUSY_PAUSE = 0.05  # real seconds: overdue runs locked by another sweeper are being cancelled


class DeadlineSweeper:
    """Cancels runs past their start or finish deadline (see the module's docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        functions: Sequence[HostedFunction],
        *,
        recheck: float = 1.0,
        min_gap: float = 0.5,
    ) -> None:
        self.runtime = runtime
        self.recheck = recheck
        self.min_gap = min_gap
        self._finish: dict[str, float] = {}
        self.set_functions(functions)
        self._wake = asyncio.Event()
        self._woken = False
        self._next: float | None = None
        self.cancelled = 0
        """How many runs this sweeper cancelled (for tests and logs)."""

    def set_functions(self, functions: Sequence[HostedFunction]) -> None:
        """The functions whose claimed runs get a finish deadline noted (see :meth:`claimed`)."""
        finish: dict[str, float] = {}
        for fn in functions:
            t = fn.record().flow.timeouts
            if t is not None and t.finish_seconds is not None:
                finish[fn.id] = t.finish_seconds
        self._finish = finish

    @staticmethod
    def wanted(functions: Sequence[HostedFunction]) -> bool:
        """Whether any of these functions has timeouts (else a worker runs no sweeper)."""
        return any(fn.record().flow.timeouts is not None for fn in functions)

    def wake(self) -> None:
        """New deadlines may exist (work was created or resumed): look again soon."""
        self._woken = True
        self._wake.set()

    def claimed(self, function_id: str, at: float) -> None:
        """A run of ``function_id`` was claimed at ``at`` (store time): its finish deadline
        falls at ``at + finish`` at the earliest."""
        finish = self._finish.get(function_id)
        if finish is None:
            return
        due = at + finish
        if self._next is None or due < self._next:
            self._next = due
            self._wake.set()

    async def sweep(self) -> float | None:
        """Cancel what is overdue now; return the next deadline."""
        done, nxt = await self.runtime.store.cancel_overdue(_BATCH)
        for run_id in done:
            self.runtime.hub.abort(run_id)
        await count_ended(self.runtime.metrics, self.runtime.store, done, "cancelled")
        if done:
            self.cancelled += len(done)
            log.info("cancelled %d run(s) past their timeouts", len(done))
        return nxt

    async def run(self) -> None:
        """Loop until cancelled."""
        store = self.runtime.store
        clock = store.clock
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            self._woken = False
            noted, self._next = self._next, None
            try:
                nxt = await self.sweep()
            except StoreUnavailableError as exc:
                log.warning("deadline sweeper: store unavailable (%s)", exc)
                self._next = noted
                await asyncio.sleep(1.0)
                continue
            # A claim noted during the sweep may not have been visible to it.
            self._next = next_deadline(nxt, self._next)
            checked = loop.time()
            if self._next is not None and self._next <= store.now():
                await asyncio.sleep(_BUSY_PAUSE)  # another sweeper holds them, or a full batch
                continue
            while True:
                await clock.wait(self._wake, self._next, self.recheck)
                if self._woken:
                    # Coalesce bursts of wake-ups (every commit that creates work sets it).
                    gap = self.min_gap - (loop.time() - checked)
                    if gap > 0:
                        await asyncio.sleep(gap)
                    break
                if not self._wake.is_set():
                    break  # the deadline, or the re-check interval
                self._wake.clear()  # a claim moved the timer earlier: wait for it
