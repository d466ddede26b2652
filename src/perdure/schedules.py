"""Schedules created at run time: ``app.schedules.create("daily-report", report, "0 9 * * *",
data={...})`` starts a run of ``report`` at every tick, with ``data`` as its
``ctx.event.data``, until it is paused or deleted.

Unlike a decorator cron trigger (``perdure.cron(...)``, fixed in the code), a schedule is data:
any process on the database creates, pauses, resumes, triggers and deletes it (this API, the
REST API under ``/api/v1/schedules``, ``perdure schedules ...``), and the workers hosting its
function fire it (:mod:`perdure.runtime.scheduler`: one run per tick across every scheduler,
the overlap and catch-up policies). The choices are written down in docs/schedules.md.
"""

from __future__ import annotations

import builtins
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from perdure import ids, serde
from perdure.client import Client, RunHandle
from perdure.engine.cron import CronSchedule
from perdure.engine.durations import to_seconds
from perdure.engine.flow.options import FlowControl
from perdure.engine.ticks import check_catchup, check_overlap, next_tick
from perdure.errors import (
    FunctionNotFoundError,
    InvalidInputError,
    PayloadTooLargeError,
    ScheduleExistsError,
    ScheduleNotFoundError,
)
from perdure.functions import function_id_of
from perdure.query import PAGE_MAX, Page
from perdure.runtime.schedule_runs import schedule_run
from perdure.runtime.worker import Worker
from perdure.store.base import NewSchedule, ScheduleRow, Store
from perdure.sync import SyncBridge
from perdure.types import ScheduleInfo, to_datetime

__all__ = ["SCHEDULE_ID_PATTERN", "Schedules", "schedule_info"]

SCHEDULE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
"""A schedule id: 1 to 128 letters, digits and ``. _ : @ -``, starting with a letter or digit
(so that it is a path segment of the REST API and a CLI argument as it is)."""
_ID: Final = re.compile(SCHEDULE_ID_PATTERN, re.ASCII)
DEFAULT_WINDOW: Final = timedelta(hours=24)


def schedule_info(row: ScheduleRow) -> ScheduleInfo:
    """The client view of a stored schedule."""
    last_tick, created_at, updated_at = (
        to_datetime(row.last_tick),
        to_datetime(row.created_at),
        to_datetime(row.updated_at),
    )
    assert last_tick is not None and created_at is not None and updated_at is not None
    return ScheduleInfo(
        id=row.id,
        function_id=row.function_id,
        cron=row.cron,
        tz=row.tz,
        data=serde.loads(row.data),
        overlap=row.overlap,
        catchup=row.catchup,
        catchup_window=row.catchup_window,
        paused=row.paused,
        last_tick=last_tick,
        next_tick=None if row.paused else to_datetime(row.next_at),
        last_run_id=row.last_run_id,
        runs=row.runs,
        skipped_overlap=row.skipped_overlap,
        missed=row.missed,
        created_at=created_at,
        updated_at=updated_at,
    )


def check_schedule_id(value: object) -> str:
    """``value`` if it can be a schedule id, else InvalidInputError saying why."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInputError(
            f"schedule id {value!r} must be 1-128 characters: letters, digits and . _ : @ - "
            "(starting with a letter or a digit)"
        )
    return value


class ScheduleSyncTwins:
    """The ``_sync`` twins of the schedule operations, each running its coroutine on
    ``_bridge``: shared by :class:`Schedules` and the remote client's schedules."""

    _bridge: SyncBridge

    if TYPE_CHECKING:

        async def create(
            self,
            id: str,
            function: Any,
            cron: str,
            *,
            tz: str = "UTC",
            data: dict[str, Any] | None = None,
            overlap: str = "skip",
            catchup: str = "latest",
            catchup_window: timedelta | float | str = DEFAULT_WINDOW,
            paused: bool = False,
        ) -> ScheduleInfo: ...

        async def get(self, id: str) -> ScheduleInfo: ...

        async def list(self, *, function: Any = None) -> builtins.list[ScheduleInfo]: ...

        async def pause(self, id: str) -> ScheduleInfo: ...

        async def resume(self, id: str) -> ScheduleInfo: ...

        async def delete(self, id: str) -> None: ...

        async def trigger(self, id: str) -> RunHandle: ...

    def create_sync(
        self,
        id: str,
        function: Any,
        cron: str,
        *,
        tz: str = "UTC",
        data: dict[str, Any] | None = None,
        overlap: str = "skip",
        catchup: str = "latest",
        catchup_window: timedelta | float | str = DEFAULT_WINDOW,
        paused: bool = False,
    ) -> ScheduleInfo:
        """:meth:`create` for code outside asyncio."""
        return self._bridge.call(
            self.create(
                id,
                function,
                cron,
                tz=tz,
                data=data,
                overlap=overlap,
                catchup=catchup,
                catchup_window=catchup_window,
                paused=paused,
            )
        )

    def get_sync(self, id: str) -> ScheduleInfo:
        """:meth:`get` for code outside asyncio."""
        return self._bridge.call(self.get(id))

    def list_sync(self, *, function: Any = None) -> builtins.list[ScheduleInfo]:
        """:meth:`list` for code outside asyncio."""
        return self._bridge.call(self.list(function=function))

    def pause_sync(self, id: str) -> ScheduleInfo:
        """:meth:`pause` for code outside asyncio."""
        return self._bridge.call(self.pause(id))

    def resume_sync(self, id: str) -> ScheduleInfo:
        """:meth:`resume` for code outside asyncio."""
        return self._bridge.call(self.resume(id))

    def delete_sync(self, id: str) -> None:
        """:meth:`delete` for code outside asyncio."""
        self._bridge.call(self.delete(id))

    def trigger_sync(self, id: str) -> RunHandle:
        """:meth:`trigger` for code outside asyncio."""
        return self._bridge.call(self.trigger(id))


class Schedules(ScheduleSyncTwins):
    """The schedules of an app's database (``app.schedules``). Every method has a ``_sync``
    twin for code outside asyncio."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._bridge: SyncBridge = client.bridge

    async def _store(self) -> Store:
        await self._client.open()
        return self._client.runtime.store

    def _wake_schedulers(self) -> None:
        """Local schedulers look again at once (others within their poll interval)."""
        for worker in self._client.runtime.hub.workers:
            if isinstance(worker, Worker) and worker.scheduler is not None:
                worker.scheduler.wake()

    async def _row(self, schedule_id: str) -> ScheduleRow:
        store = await self._store()
        row = None
        if isinstance(schedule_id, str) and _ID.match(schedule_id):
            row = await store.get_schedule(schedule_id)
        if row is None:
            raise ScheduleNotFoundError(f"no schedule with id {schedule_id!r}")
        return row

    async def _flow(self, store: Store, function_id: str) -> FlowControl:
        """The flow-control options of a function defined here or registered in the
        database (:class:`~perdure.errors.FunctionNotFoundError` if neither)."""
        local = self._client.functions.get(function_id)
        if local is not None:
            flow: FlowControl = local.record().flow
            return flow
        for record in await store.list_functions():
            if record.id == function_id:
                return record.flow
        raise FunctionNotFoundError(f"no function with id {function_id!r} is registered")

    async def create(
        self,
        id: str,
        function: Any,
        cron: str,
        *,
        tz: str = "UTC",
        data: dict[str, Any] | None = None,
        overlap: str = "skip",
        catchup: str = "latest",
        catchup_window: timedelta | float | str = DEFAULT_WINDOW,
        paused: bool = False,
    ) -> ScheduleInfo:
        """Create the schedule ``id``: a run of ``function`` (decorated function or id) at
        every tick of ``cron`` (5 or 6 fields) in the IANA time zone ``tz``, with ``data`` as
        its ``ctx.event.data``; ``ctx.event.schedule`` names the schedule and the tick.

        ``overlap``: ``"skip"`` (no new run while the previous one of this schedule is
        active) or ``"allow"``. ``catchup``, after downtime: ``"latest"`` (the most recent
        missed tick, once), ``"none"`` or ``"all"`` (every missed tick, oldest first, at most
        1,000), within ``catchup_window``. ``paused``: create it paused. The first tick is the
        first after now.

        Raises :class:`~perdure.errors.ScheduleExistsError` if the id is taken,
        :class:`~perdure.errors.FunctionNotFoundError` for an unknown function, and
        :class:`~perdure.errors.InvalidInputError` for any other bad argument (nothing is
        written).
        """
        check_schedule_id(id)
        fid = function_id_of(function)
        if not isinstance(cron, str) or not isinstance(tz, str):
            raise InvalidInputError("cron and tz must be strings")
        schedule = CronSchedule.parse(cron, tz)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidInputError(
                f"schedule data must be a JSON object, not {type(data).__name__}"
            )
        overlap_ = check_overlap(overlap)
        catchup_ = check_catchup(catchup)
        window = to_seconds(catchup_window)
        if not isinstance(paused, bool):
            raise InvalidInputError("paused must be True or False")
        store = await self._store()
        flow = await self._flow(store, fid)
        # the run's input (the tick's event) must fit: checked on the first tick's
        sample = schedule_run(id, fid, flow, data, store.now(), manual=False).input
        size, limit = len(sample.encode()), self._client.runtime.limits.run_input
        if size > limit:
            raise PayloadTooLargeError("the schedule's run input", size, limit)
        start = store.now()
        row = await store.create_schedule(
            NewSchedule(
                id=id,
                function_id=fid,
                cron=cron,
                tz=tz,
                data=serde.dumps(data),
                overlap=overlap_,
                catchup=catchup_,
                catchup_window=window,
                paused=paused,
                start=start,
                next_at=next_tick(schedule, start),
                revision=ids.new_id(),
            )
        )
        if row is None:
            raise ScheduleExistsError(f"a schedule with id {id!r} already exists")
        self._wake_schedulers()
        return schedule_info(row)

    async def get(self, id: str) -> ScheduleInfo:
        """The schedule ``id`` (:class:`~perdure.errors.ScheduleNotFoundError` if none)."""
        return schedule_info(await self._row(id))

    async def page(
        self, *, function: Any = None, after: str | None = None, limit: int = 100
    ) -> Page[ScheduleInfo]:
        """A page of schedules by id: only those of ``function`` when given; ``after`` is
        the cursor (the ``next_cursor`` of the previous page, a schedule id); ``limit`` at
        most (1 to 1,000)."""
        fid = None if function is None else function_id_of(function)
        size = max(1, min(int(limit), PAGE_MAX))
        store = await self._store()
        rows = await store.list_schedules(fid, after, size + 1)
        items = [schedule_info(r) for r in rows[:size]]
        return Page(items, items[-1].id if len(rows) > size else None)

    async def list(self, *, function: Any = None) -> builtins.list[ScheduleInfo]:
        """Every schedule (of ``function`` when given), by id."""
        out: builtins.list[ScheduleInfo] = []
        after: str | None = None
        while True:
            page = await self.page(function=function, after=after, limit=PAGE_MAX)
            out.extend(page.items)
            if page.next_cursor is None:
                return out
            after = page.next_cursor

    async def pause(self, id: str) -> ScheduleInfo:
        """Pause the schedule: no tick fires until it is resumed (a paused schedule may still
        be triggered). Pausing a paused schedule changes nothing."""
        store = await self._store()
        row = None
        if isinstance(id, str) and _ID.match(id):
            row = await store.set_schedule_paused(
                id, True, cursor=0.0, next_at=0.0, revision=ids.new_id()
            )
        if row is None:
            raise ScheduleNotFoundError(f"no schedule with id {id!r}")
        return schedule_info(row)

    async def resume(self, id: str) -> ScheduleInfo:
        """Resume a paused schedule: ticks after now fire (the ticks of the pause never do).
        Resuming an active schedule changes nothing."""
        current = await self._row(id)
        store = await self._store()
        cursor = max(current.last_tick, store.now())
        nxt = next_tick(CronSchedule.parse(current.cron, current.tz), cursor)
        row = await store.set_schedule_paused(
            id, False, cursor=cursor, next_at=nxt, revision=ids.new_id()
        )
        if row is None:
            raise ScheduleNotFoundError(f"no schedule with id {id!r}")
        self._wake_schedulers()
        return schedule_info(row)

    async def delete(self, id: str) -> None:
        """Delete the schedule: it fires no more (its runs are left as they are)."""
        store = await self._store()
        if not (isinstance(id, str) and _ID.match(id) and await store.delete_schedule(id)):
            raise ScheduleNotFoundError(f"no schedule with id {id!r}")

    async def trigger(self, id: str) -> RunHandle:
        """Start one run of the schedule now, whatever its cron, its pause and its overlap
        policy (``ctx.event.schedule.manual`` is true). It counts as the schedule's previous
        run for the overlap policy of the next ticks."""
        current = await self._row(id)
        store = await self._store()
        flow = await self._flow(store, current.function_id)
        data = serde.loads(current.data)
        run = schedule_run(id, current.function_id, flow, data, store.now(), manual=True)
        created = await store.trigger_schedule(id, run)
        if created is None:
            raise ScheduleNotFoundError(f"no schedule with id {id!r}")
        return RunHandle(self._client, created.id, fresh=created.created)
