"""The runs of schedules: how a tick's run is built (the one place), and how the due ticks of
the schedules created at run time are fired (see :mod:`perdure.runtime.scheduler` for the
policies).

The event of a run started by a tick or a trigger is named ``perdure/scheduled.timer``:

- for a decorator cron trigger, ``data`` is ``{"cron", "tz", "scheduled_at", "missed"}``;
- for a schedule, ``data`` is the schedule's own data, and ``event.schedule``
  (:class:`~perdure.types.ScheduleTick`; JSON ``event["schedule"]``) names the schedule, the
  tick and whether it was a manual trigger: ``{"id", "tick", "manual"}``. It is beside
  ``data``, so it never collides with the user's fields. ``ts`` is the tick.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Set
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from perdure import ids, serde
from perdure.engine.cron import CronSchedule
from perdure.engine.flow.keys import run_flow
from perdure.engine.flow.options import FlowControl
from perdure.engine.ticks import check_catchup, next_tick, plan_ticks
from perdure.errors import StoreUnavailableError
from perdure.functions import CronTrigger
from perdure.store.base import NewRun, ScheduleRow
from perdure.types import Event, ScheduleTick, iso_utc

if TYPE_CHECKING:
    from perdure.runtime.ports import HostedFunction
    from perdure.runtime.runtime import Runtime

__all__ = [
    "SCHEDULE_EVENT",
    "ScheduleFirer",
    "cron_run",
    "new_run",
    "schedule_run",
    "trigger_key",
]

log = logging.getLogger("perdure.scheduler")

SCHEDULE_EVENT = "perdure/scheduled.timer"
"""The name of the event of every run a cron trigger or a schedule starts."""

PAGE = 100
"""Due schedules read per pass."""


def trigger_key(trigger: CronTrigger) -> str:
    """The stable key of a cron trigger (a changed expression or zone starts afresh; its
    policies can change without losing its place)."""
    return f"{trigger.expr}@{trigger.tz}"


def new_run(
    function_id: str, flow: FlowControl, event: Event, idempotency_key: str | None
) -> NewRun:
    """The run of a tick or a trigger, started by ``event``, with its flow-control state
    (``flow``: the function's options): every run a schedule or a cron trigger starts is built
    here."""
    obj = event.to_dict()
    run = NewRun(ids.new_id(), function_id, serde.dumps(obj), idempotency_key=idempotency_key)
    run.flow = run_flow(function_id, flow, obj)
    return run


def cron_run(fdef: HostedFunction, trig: CronTrigger, key: str, tick: float, missed: int) -> NewRun:
    """The run of a decorator cron trigger's tick (``missed``: ticks skipped before it)."""
    ms = int(tick * 1000)
    event = Event(
        name=SCHEDULE_EVENT,
        data={"cron": trig.expr, "tz": trig.tz, "scheduled_at": iso_utc(tick), "missed": missed},
        id=f"cron-{fdef.id}-{ms}",
        ts=ms,
    )
    return new_run(fdef.id, fdef.record().flow, event, f"cron:{key}:{ms}")


def schedule_run(
    schedule_id: str,
    function_id: str,
    flow: FlowControl,
    data: dict[str, Any],
    tick: float,
    *,
    manual: bool,
) -> NewRun:
    """The run of a schedule's tick, or (``manual``) of a trigger at ``tick`` (``flow``: the
    options of the function)."""
    ms = int(tick * 1000)
    when = datetime.fromtimestamp(tick, UTC)
    event = Event.scheduled(
        SCHEDULE_EVENT,
        data,
        ids.new_id() if manual else f"schedule-{schedule_id}-{ms}",
        ms,
        ScheduleTick(schedule_id, when, manual),
    )
    key = None if manual else f"schedule:{schedule_id}:{ms}"
    return new_run(function_id, flow, event, key)


class ScheduleFirer:
    """Fires the due ticks of the schedules of some functions (one pass at a time)."""

    def __init__(self, runtime: Runtime, flows: Mapping[str, FlowControl]) -> None:
        self.runtime = runtime
        self.flows = dict(flows)
        """The flow-control options of each function whose schedules this fires, by id."""
        self.function_ids = list(flows)
        self._crons: dict[tuple[str, str], CronSchedule] = {}
        self._broken: dict[str, str] = {}  # schedule id -> revision that could not be read

    def _cron(self, row: ScheduleRow) -> CronSchedule:
        key = (row.cron, row.tz)
        found = self._crons.get(key)
        if found is None:
            found = self._crons[key] = CronSchedule.parse(row.cron, row.tz)
        return found

    async def fire_due(self, now: float, paused: Set[str] = frozenset()) -> float | None:
        """Fire every due tick (those of ``paused`` functions are skipped: counted as missed);
        when the next one is (``None``: nothing is scheduled, or what is due cannot be handled
        by this scheduler now; look again after a poll interval)."""
        if not self.function_ids:
            return None
        store = self.runtime.store
        rows = await store.due_schedules(self.function_ids, now, PAGE)
        progressed = False
        for row in rows:
            if self._broken.get(row.id) == row.revision:
                continue
            try:
                progressed = await self._fire(row, now, row.function_id in paused) or progressed
            except StoreUnavailableError:
                raise
            except Exception:
                # A schedule this process cannot handle (a time zone its tz database lacks):
                # logged once per revision, the others go on.
                self._broken[row.id] = row.revision
                log.exception("schedule %r cannot be fired by this process", row.id)
        if len(rows) == PAGE and progressed:
            return now  # more may be due: another pass at once
        nxt = await store.next_schedule_at(self.function_ids)
        if nxt is not None and nxt <= now:
            return None  # due but not handled here (another scheduler, a broken schedule)
        return nxt

    async def _fire(self, row: ScheduleRow, now: float, paused: bool = False) -> bool:
        """Handle the due ticks of one schedule (``paused``: skip them as missed); whether
        anything changed."""
        store = self.runtime.store
        cron = self._cron(row)
        catchup = check_catchup(row.catchup)
        plan = plan_ticks(cron, row.last_tick, now, catchup, row.catchup_window)
        if plan is None:
            # next_at is ahead of the cursor's next tick (written by a process with other
            # time zone rules): move the cursor a microsecond to repair it.
            result = await store.fire_schedule(
                row.id, row.revision, row.last_tick + 1e-6, next_tick(cron, row.last_tick), None, 0
            )
            return result != "stale"
        if not plan.fire or paused:
            missed = plan.missed + (len(plan.fire) if paused else 0)
            result = await store.fire_schedule(
                row.id, row.revision, plan.latest, next_tick(cron, plan.latest), None, missed
            )
            if result != "stale":
                log.info(
                    "schedule %s missed %d tick(s) (catch-up %s)", row.id, plan.missed, row.catchup
                )
            return result != "stale"
        data = serde.loads(row.data)
        changed = False
        for index, tick in enumerate(plan.fire):
            flow = self.flows[row.function_id]
            run = schedule_run(row.id, row.function_id, flow, data, tick, manual=False)
            missed = plan.missed if index == 0 else 0
            result = await store.fire_schedule(
                row.id, row.revision, tick, next_tick(cron, tick), run, missed
            )
            if result == "stale":
                break
            changed = True
            if result == "fired":
                log.info("schedule %s fired tick %s", row.id, iso_utc(tick))
            else:
                log.info(
                    "schedule %s skipped tick %s: its previous run is still active",
                    row.id,
                    iso_utc(tick),
                )
        return changed
