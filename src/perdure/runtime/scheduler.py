"""The cron scheduler: one run per tick, however many schedulers share the database.

Every worker hosting cron-triggered functions runs a scheduler. For each trigger the database
keeps the last tick fired (``cron_ticks``); firing a tick advances it and creates the tick's run
in one transaction, conditionally on the stored tick being older, and the run carries the
idempotency key ``cron:<trigger>:<tick>``. Two schedulers racing for the same tick therefore
create one run.

Catch-up policy after downtime (no scheduler running when ticks were due): the missed ticks are
*coalesced*: only the most recent missed tick runs, once, as soon as a scheduler is back, and only
if it is no older than the trigger's catch-up window (``perdure.cron(..., catchup=...)``, default
24 hours; ``0`` never catches up; a tick less than a minute late is always on time). Older missed
ticks are skipped; the run's event says how many ticks were missed (``data.missed``, counted up to
1,000). A trigger seen for the first time starts at its next tick: nothing is caught up from before
it existed.

Schedulers also prune ended runs older than the app's ``retention``, at most every 10 minutes.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from perdure import ids, serde
from perdure.engine.flow.keys import run_flow
from perdure.errors import StoreUnavailableError
from perdure.functions import CronTrigger
from perdure.store.base import NewRun
from perdure.types import Event, iso_utc

if TYPE_CHECKING:
    from perdure.runtime.ports import HostedFunction
    from perdure.runtime.runtime import Runtime

log = logging.getLogger("perdure.scheduler")

CRON_EVENT = "perdure/scheduled.timer"
_MAX_COUNT = 1000
_PRUNE_EVERY = 600.0
_ON_TIME = 60.0  # a tick fired less than this late is on time, whatever the catch-up window


def trigger_key(trigger: CronTrigger) -> str:
    """The stable key of a cron trigger (a changed schedule starts afresh)."""
    return f"{trigger.expr}@{trigger.tz}"


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class Scheduler:
    """Fires the cron triggers of some functions, and prunes old runs."""

    def __init__(self, runtime: Runtime, functions: list[HostedFunction]) -> None:
        self.runtime = runtime
        self.triggers = [
            (f, t) for f in functions for t in f.triggers if isinstance(t, CronTrigger)
        ]
        self._wake = asyncio.Event()
        self._last_prune = 0.0

    async def run(self, first: float | None = None) -> None:
        """Loop until cancelled; ``first`` is the result of a first :meth:`tick` already done."""
        store = self.runtime.store
        next_at = first
        while True:
            if first is None:
                try:
                    next_at = await self.tick()
                except StoreUnavailableError as exc:
                    log.warning("scheduler: store unavailable (%s)", exc)
                    next_at = store.now() + 1.0
            first = None
            self._wake.clear()
            await store.clock.wait(self._wake, next_at, 60.0)

    async def tick(self) -> float | None:
        """Fire what is due; return when to look again."""
        store = self.runtime.store
        now = store.now()
        earliest: float | None = None
        for fdef, trig in self.triggers:
            key = trigger_key(trig)
            last = await store.cron_last_tick(fdef.id, key)
            if last is None:
                await store.fire_cron(fdef.id, key, now, None)
                last = now
            sched = trig.schedule
            due = sched.next_after(_at(last)).timestamp()
            if due <= now:
                latest_dt = sched.latest_at_or_before(_at(now))
                latest = latest_dt.timestamp() if latest_dt is not None else due
                missed = self._count(trig, last, latest)
                run = None
                if now - latest <= max(trig.catchup_seconds, _ON_TIME):
                    run = self._run(fdef, trig, key, latest, missed)
                if await store.fire_cron(fdef.id, key, latest, run) and run is not None:
                    log.info("cron %s fired tick %s", fdef.id, iso_utc(latest))
                last = max(last, latest)
                due = sched.next_after(_at(last)).timestamp()
            earliest = due if earliest is None else min(earliest, due)
        if self.runtime.retention is not None and now - self._last_prune >= _PRUNE_EVERY:
            self._last_prune = now
            cutoff = now - self.runtime.retention.total_seconds()
            pruned = await store.prune(cutoff, 10_000)
            if pruned:
                log.info("pruned %d runs that ended before %s", pruned, iso_utc(cutoff))
        return earliest

    @staticmethod
    def _count(trig: CronTrigger, last: float, latest: float) -> int:
        """How many ticks fell in (last, latest), before the one that runs."""
        count = 0
        cursor = _at(last)
        while count < _MAX_COUNT:
            cursor = trig.schedule.next_after(cursor)
            if cursor.timestamp() >= latest:
                break
            count += 1
        return count

    @staticmethod
    def _run(fdef: HostedFunction, trig: CronTrigger, key: str, tick: float, missed: int) -> NewRun:
        event = Event(
            name=CRON_EVENT,
            data={
                "cron": trig.expr,
                "tz": trig.tz,
                "scheduled_at": iso_utc(tick),
                "missed": missed,
            },
            id=f"cron-{fdef.id}-{int(tick * 1000)}",
            ts=int(tick * 1000),
        )
        obj = event.to_dict()
        run = NewRun(
            ids.new_id(),
            fdef.id,
            serde.dumps(obj),
            idempotency_key=f"cron:{key}:{int(tick * 1000)}",
        )
        run.flow = run_flow(fdef.id, fdef.record().flow, obj)
        return run
