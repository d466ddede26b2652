"""The scheduler: cron triggers and schedules fire one run per tick, however many schedulers
share the database; ended runs are pruned.

Every worker runs a scheduler for the functions it hosts. It fires two kinds of schedules:

- **Decorator cron triggers** (``perdure.cron(...)`` on ``@app.function``). The database keeps
  each trigger's last tick (``cron_ticks``) and the run it last started.
- **Schedules created at run time** (``app.schedules.create(...)``, the REST API, the CLI): rows
  of the ``schedules`` table with their own data, paused or not (see docs/schedules.md and
  :mod:`perdure.runtime.schedule_runs`).

**One run per tick.** Firing a tick moves the schedule's cursor (its last tick) forward and
creates the tick's run in one transaction, on condition that the cursor is still before the
tick (and, for a schedule, that it still has the revision the scheduler read and is active).
Two schedulers racing for a tick therefore create one run; the run also carries the
idempotency key ``cron:<trigger>:<tick ms>`` or ``schedule:<id>:<tick ms>``.

**Overlap.** ``overlap="skip"`` (the default of schedules) starts nothing while the schedule's
previous run has not ended: the tick is recorded (the cursor moves; a schedule counts it in
``skipped_overlap``) and no run is created. The check is made in the firing transaction, with
the schedule's row locked. ``allow`` (the default of decorator triggers) always starts the run.

**Catch-up after downtime** (no scheduler ran when ticks were due), by
:func:`perdure.engine.ticks.plan_ticks`: ``latest`` (the default, and today's behaviour of
decorator triggers) runs the most recent missed tick once, if it is within the catch-up window
(default 24 hours; a tick less than a minute late is always on time); ``none`` runs nothing
that is more than a minute late; ``all`` runs every missed tick within the window, oldest first,
at most 1,000 (the most recent). The others are *missed*: a decorator trigger's run says how
many ticks were missed before it (``data.missed``, counted up to 1,000); a schedule counts them
in ``missed``. A trigger or schedule never fires for instants before it existed (or, for a
schedule, before it was last resumed).

**Waking up.** After each pass the scheduler sleeps until the earliest next tick of its
triggers and schedules (no polling for ticks). A schedule created, resumed or triggered in this
process wakes it at once (:meth:`Scheduler.wake`); changes made by other processes are seen
within :attr:`Scheduler.poll_interval` (the store's poll interval, at least one second). A
store outage makes a pass fail: the scheduler logs it and tries again a second later.

**Paused functions** (``app.pause``): their decorator cron triggers and their schedules skip
the ticks due while they are paused (the cursor moves past them; a schedule counts them as
missed); after the resume, the next tick runs as usual. This is Inngest's behaviour too.

Schedulers also prune ended runs past their retention (each function's, else the app's), at
most every 10 minutes, in the background and in bounded batches (:mod:`.retention`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from perdure.engine.ticks import next_tick, plan_ticks
from perdure.errors import StoreUnavailableError
from perdure.functions import CronTrigger
from perdure.runtime import retention
from perdure.runtime.schedule_runs import (
    SCHEDULE_EVENT,
    ScheduleFirer,
    cron_run,
    trigger_key,
)
from perdure.types import iso_utc

if TYPE_CHECKING:
    from perdure.runtime.ports import HostedFunction
    from perdure.runtime.runtime import Runtime

__all__ = ["CRON_EVENT", "Scheduler", "trigger_key"]

log = logging.getLogger("perdure.scheduler")

CRON_EVENT = SCHEDULE_EVENT
_PRUNE_EVERY = 600.0
_RETRY_AFTER_OUTAGE = 1.0


class Scheduler:
    """Fires the cron triggers and the schedules of some functions, and prunes old runs."""

    def __init__(
        self,
        runtime: Runtime,
        functions: list[HostedFunction],
        *,
        poll_interval: float | None = None,
    ) -> None:
        self.runtime = runtime
        self.triggers: list[tuple[HostedFunction, CronTrigger]] = []
        self.function_ids: list[str] = []
        self.schedules = ScheduleFirer(runtime, {})
        self._poll_interval = poll_interval
        self._cron_due: dict[tuple[str, str], float] = {}  # (function, trigger key) -> next tick
        self._wake = asyncio.Event()
        self._last_prune = float("-inf")
        self._pruning: asyncio.Task[int] | None = None
        self.set_functions(functions)
        self._wake.clear()

    def set_functions(self, functions: list[HostedFunction]) -> None:
        """Fire the triggers and schedules of these functions from now on (functions were
        synced or removed while the worker runs); a trigger kept keeps its next tick."""
        self.triggers = [
            (f, t) for f in functions for t in f.triggers if isinstance(t, CronTrigger)
        ]
        self.function_ids = [f.id for f in functions]
        self.schedules = ScheduleFirer(self.runtime, {f.id: f.record().flow for f in functions})
        keys = {(f.id, trigger_key(t)) for f, t in self.triggers}
        self._cron_due = {k: v for k, v in self._cron_due.items() if k in keys}
        self.wake()

    @property
    def poll_interval(self) -> float:
        """How often changes made by other processes are looked for (seconds)."""
        if self._poll_interval is not None:
            return self._poll_interval
        return max(self.runtime.store.poll_interval, 1.0)

    @poll_interval.setter
    def poll_interval(self, seconds: float) -> None:
        self._poll_interval = seconds
        self.wake()

    def wake(self) -> None:
        """Schedules changed: look again now."""
        self._wake.set()

    async def run(self, first: float | None = None) -> None:
        """Loop until cancelled; ``first`` is the result of a first :meth:`tick` already done."""
        store = self.runtime.store
        next_at = first
        done_first = first is not None
        while True:
            if not done_first:
                self._wake.clear()  # before the pass: a change during it wakes the next one
                try:
                    next_at = await self.tick()
                except StoreUnavailableError as exc:
                    log.warning("scheduler: store unavailable (%s)", exc)
                    next_at = store.now() + _RETRY_AFTER_OUTAGE
                except Exception:  # a bug must not stop every schedule of the process
                    log.exception("scheduler: a pass failed; trying again")
                    next_at = None
            done_first = False
            await store.clock.wait(self._wake, next_at, self.poll_interval)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Cancelled while a wake-up completed the wait: Python 3.11's wait_for (under
                # the clocks' wait) may return normally instead of raising; stop anyway.
                raise asyncio.CancelledError

    async def tick(self) -> float | None:
        """Fire what is due; return when to look again (``None``: after a poll interval)."""
        store = self.runtime.store
        now = store.now()
        paused = set(await store.paused_functions()) if self.function_ids else set()
        times = [await self._cron_pass(now, paused), await self.schedules.fire_due(now, paused)]
        if now - self._last_prune >= _PRUNE_EVERY and self._pruning is None:
            self._last_prune = now
            self._pruning = asyncio.get_running_loop().create_task(self._prune(now))
            self._pruning.add_done_callback(self._pruned)
        due = [t for t in times if t is not None]
        return min(due) if due else None

    async def _prune(self, now: float) -> int:
        """Prune ended runs past their function's retention, in bounded batches
        (:mod:`perdure.runtime.retention`), then old events (with the App's retention)."""
        store = self.runtime.store
        default = self.runtime.retention
        plan = retention.cutoffs(await store.list_functions(), now, default)
        pruned = await retention.prune(store, plan)
        if default is not None:
            await store.prune(now - default.total_seconds(), 0)  # events, event ids, gates
        if pruned:
            log.info("pruned %d ended runs past their retention", pruned)
        return pruned

    @property
    def pruning(self) -> asyncio.Task[int] | None:
        """The pruning started by the last pass, while it runs (its result: runs deleted)."""
        return self._pruning

    def _pruned(self, task: asyncio.Task[int]) -> None:
        self._pruning = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("pruning failed (%s); trying again later", task.exception())

    async def close(self) -> None:
        """Stop a pruning in progress."""
        task = self._pruning
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _cron_pass(self, now: float, paused: set[str]) -> float | None:
        """Fire the decorator triggers that are due (a paused function's ticks are skipped);
        the earliest next tick."""
        earliest: float | None = None
        for fdef, trig in list(self.triggers):
            key = (fdef.id, trigger_key(trig))
            due = self._cron_due.get(key)
            if due is None or due <= now:
                due = await self._fire_trigger(fdef, trig, now, fdef.id in paused)
                self._cron_due[key] = due
            earliest = due if earliest is None else min(earliest, due)
        return earliest

    async def _fire_trigger(
        self, fdef: HostedFunction, trig: CronTrigger, now: float, paused: bool = False
    ) -> float:
        """Handle the due ticks of one trigger (``paused``: move past them, start nothing);
        its next tick."""
        store = self.runtime.store
        key = trigger_key(trig)
        last = await store.cron_last_tick(fdef.id, key)
        if last is None:  # a new trigger starts at its next tick
            await store.fire_cron(fdef.id, key, now, None)
            last = now
        plan = plan_ticks(trig.schedule, last, now, trig.catchup, trig.catchup_seconds)
        if plan is None:
            return next_tick(trig.schedule, last)
        if not plan.fire or paused:
            await store.fire_cron(fdef.id, key, plan.latest, None)
            if paused:
                log.info("cron %s skipped %s: paused", fdef.id, iso_utc(plan.latest))
                return next_tick(trig.schedule, plan.latest)
        for index, tick in enumerate(plan.fire):
            run = cron_run(fdef, trig, key, tick, plan.missed if index == 0 else 0)
            if await store.fire_cron(fdef.id, key, tick, run, trig.overlap):
                log.info("cron %s handled tick %s", fdef.id, iso_utc(tick))
        return next_tick(trig.schedule, plan.latest)
