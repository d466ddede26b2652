"""The read side: what the HTTP API, the dashboard and the CLI show.

The server and the CLI never touch the store: they read through a :class:`Query`, which turns
the store's records (:mod:`perdure.store.base`) into the public value types
(:class:`~perdure.types.RunInfo`, :class:`~perdure.types.StepInfo`,
:class:`~perdure.functions.FunctionRecord`, :class:`EventInfo`) and pages them. Writes (start,
send, cancel) are the app's client operations. :mod:`perdure.views` shapes what a query
returns as JSON.

A query reads from a :class:`StoreSource`: something that opens its store on demand (an
:class:`~perdure.App` is one: ``Query(app)``), so a query may be built before the database is
open, and the first read opens it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from perdure import serde
from perdure.engine.flow.admission import blocked_reason
from perdure.engine.flow.gates import input_events
from perdure.errors import FunctionNotFoundError, InvalidInputError, RunNotFoundError
from perdure.functions import FunctionRecord
from perdure.store.base import EventRow, RunFilter, RunRow, Store, StoredStep
from perdure.store.operations import WorkerRow
from perdure.types import Event, RunInfo, RunStatus, StepInfo, WorkerInfo, to_datetime

T = TypeVar("T")

PAGE_MAX = 1000
"""The largest page a query returns (a larger ``limit`` is lowered to it)."""


class StoreSource(Protocol):
    """Where a query finds its store: ``open()`` connects (idempotent), then ``store`` is the
    opened store. :class:`~perdure.App` is a store source."""

    async def open(self) -> None:
        """Connect to the database (idempotent)."""
        ...

    @property
    def store(self) -> Store:
        """The opened store."""
        ...


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, newest first. ``next_cursor`` (``None`` on the last page) is the
    cursor of the next page, as a string."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RunSearch:
    """What a runs listing (or a bulk action, or a live view) selects: every filter given
    must hold.

    ``status``, ``function_id``; ``created_after`` / ``created_before``: the run was created at
    or after / before (aware datetimes); ``run_id``: the run id starts with it; ``event_id``:
    the event that started the run (the first of a batch); ``text``: the run's input (its
    JSON text) contains it, ASCII letters ignoring case; ``ended``: only ended runs (``True``)
    or only runs that have not ended (``False``)."""

    status: str | RunStatus | None = None
    function_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    run_id: str | None = None
    event_id: str | None = None
    text: str | None = None
    ended: bool | None = None

    def run_filter(self, *, before: str | None = None, limit: int = 50) -> RunFilter:
        """The store's filter (``before`` and ``limit`` as given); InvalidInputError for an
        unknown status or a naive datetime."""
        status = self.status
        if status is not None:
            try:
                status = RunStatus(status)
            except ValueError:
                choices = ", ".join(s.value for s in RunStatus)
                raise InvalidInputError(f"status {status!r} is not one of: {choices}") from None
        return RunFilter(
            status=None if status is None else status.value,
            function_id=self.function_id,
            before=before,
            limit=limit,
            created_after=_epoch(self.created_after, "created_after"),
            created_before=_epoch(self.created_before, "created_before"),
            id_prefix=self.run_id or None,
            event_id=self.event_id,
            text=self.text or None,
            ended=self.ended,
        )


@dataclass(frozen=True, slots=True)
class PolledRun:
    """A run as :meth:`Query.poll_runs` read it: ``info`` (without steps), and whether it
    passes a search (:meth:`matches`, the same test as the store's listing)."""

    info: RunInfo
    _row: RunRow

    def matches(self, search: RunSearch) -> bool:
        """Whether the run passes every filter of ``search``."""
        return search.run_filter().matches(self._row)


@dataclass(frozen=True, slots=True)
class EventInfo:
    """A received event: the event object as it was stored (``id``, ``name``, ``data``,
    ``user``, ``ts``), when it was received, and the runs it started. ``seq`` orders events
    (it is the listing cursor)."""

    seq: int
    event: dict[str, Any]
    received_at: datetime
    run_ids: list[str]


@dataclass(frozen=True, slots=True)
class ResumedRun:
    """A run an event resumed: the ``wait`` step (``step_id``) the event satisfied."""

    run_id: str
    step_id: str
    run: RunInfo | None
    """The run (without its steps); ``None`` if it was pruned since."""


@dataclass(frozen=True, slots=True)
class EventDetail:
    """A received event with the runs it started and the runs it resumed."""

    info: EventInfo
    started: list[RunInfo]
    resumed: list[ResumedRun]


STATS_WINDOW = 1000
"""How many of a function's most recent runs its statistics read."""


@dataclass(frozen=True, slots=True)
class FunctionStats:
    """A function's recent record, over its :data:`STATS_WINDOW` most recently created runs
    (``runs`` of them exist): how many are in each status, the success rate (completed
    among completed and failed: a cancelled or skipped run is an operator's or flow
    control's decision, not an outcome of the code; ``None`` when none of them ended so),
    and the percentiles of
    the durations (``ended_at - started_at``, seconds) of the completed and failed runs
    (``None`` when there are none)."""

    window: int
    runs: int
    statuses: dict[str, int]
    success_rate: float | None
    p50: float | None
    p95: float | None
    p99: float | None


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ``values``; ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class Query:
    """The read operations over one store source (see the module docstring)."""

    def __init__(self, source: StoreSource) -> None:
        self._source = source

    async def _store(self) -> Store:
        await self._source.open()
        return self._source.store

    async def ping(self) -> None:
        """Open the database if needed and make one round trip; raise if it is unreachable."""
        store = await self._store()
        await store.ping()

    async def schema_version(self) -> tuple[int, int] | None:
        """``(the database's schema version, the latest this perdure knows)``, or ``None``
        when the backend does not tell."""
        store = await self._store()
        version = getattr(store, "schema_version", None)
        if version is None:
            return None
        current, latest = await version()
        return int(current), int(latest)

    async def list_functions(self) -> list[FunctionRecord]:
        """Every function registered in the database, by id."""
        store = await self._store()
        records = sorted(await store.list_functions(), key=lambda r: r.id)
        paused = await store.paused_functions()
        return [replace(r, paused_at=paused.get(r.id)) for r in records]

    async def list_workers(self, *, include_dead: bool = False) -> list[WorkerInfo]:
        """The live workers, oldest start first; ``include_dead``: also those that stopped
        or died within the last hour (:data:`perdure.runtime.presence.FORGET_AFTER`)."""
        store = await self._store()
        now = store.now()
        rows = await store.list_workers(now - WORKERS_REMEMBERED)
        infos = [worker_info(row, now) for row in rows]
        return infos if include_dead else [w for w in infos if w.live]

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunInfo:
        """One run, with its recorded steps (``steps=False``: without); raises
        :class:`~perdure.errors.RunNotFoundError` for an unknown id."""
        store = await self._store()
        row = await store.get_run(run_id)
        if row is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        info = run_info(row, await store.get_steps(run_id) if steps else [])
        waiting = await _waiting_reason(store, row)
        return info if waiting is None else replace(info, reason=serde.loads(waiting))

    async def list_runs(
        self,
        *,
        status: str | RunStatus | None = None,
        function_id: str | None = None,
        before: str | None = None,
        limit: int = 50,
        search: RunSearch | None = None,
        ended: bool | None = None,
    ) -> Page[RunInfo]:
        """Runs without their steps, newest first: only those in ``status`` and of
        ``function_id`` when given, and those that pass every filter of ``search``
        (``ended``: only ended runs, or only runs that have not ended); ``before`` is the
        cursor (the ``next_cursor`` of the previous page, a run id); ``limit`` runs at most
        (1 to :data:`PAGE_MAX`)."""
        search = replace(search or RunSearch(), ended=ended)
        if status is not None:
            search = replace(search, status=status)
        if function_id is not None:
            search = replace(search, function_id=function_id)
        size = _page_size(limit)
        store = await self._store()
        rows = await store.list_runs(search.run_filter(before=before, limit=size + 1))
        page = rows[:size]
        more = len(rows) > size
        return Page([run_info(r, []) for r in page], page[-1].id if more else None)

    async def poll_runs(self, run_ids: Sequence[str], *, newest: int) -> list[PolledRun]:
        """The live view's one read (:mod:`perdure.server.live`): the ``newest`` runs (1 to
        :data:`PAGE_MAX`) and the runs of ``run_ids`` (at most :data:`PAGE_MAX` of them),
        without their steps, newest first."""
        store = await self._store()
        rows = {r.id: r for r in await store.list_runs(RunFilter(limit=_page_size(newest)))}
        missing = [i for i in dict.fromkeys(run_ids) if i not in rows][:PAGE_MAX]
        if missing:
            rows.update((r.id, r) for r in await store.get_runs(missing))
        return [
            PolledRun(run_info(r, []), r) for r in sorted(rows.values(), key=_row_id, reverse=True)
        ]

    async def list_events(
        self, *, name: str | None = None, before: int | None = None, limit: int = 50
    ) -> Page[EventInfo]:
        """Received events, newest first: only those named ``name`` when given; ``before``
        is the cursor (the ``next_cursor`` of the previous page, as an integer); ``limit``
        events at most (1 to :data:`PAGE_MAX`)."""
        size = _page_size(limit)
        store = await self._store()
        rows = await store.list_events(name, before, size + 1)
        page = rows[:size]
        more = len(rows) > size
        return Page([event_info(r) for r in page], str(page[-1].seq) if more else None)

    async def get_event(self, event_id: str) -> EventInfo | None:
        """A received event by id (the newest, if the id was reused after the dedupe window),
        with the runs it started; ``None`` if unknown."""
        store = await self._store()
        row = await store.get_event(event_id)
        return None if row is None else event_info(row)

    async def event_detail(self, event_id: str, *, limit: int = PAGE_MAX) -> EventDetail | None:
        """A received event (as :meth:`get_event`) with the runs it started and those whose
        ``wait_for_event`` steps it satisfied (``limit`` of each at most, by run id);
        ``None`` if unknown."""
        store = await self._store()
        row = await store.get_event(event_id)
        if row is None:
            return None
        size = _page_size(limit)
        waits = await store.waits_resolved_by(row, size)
        ids = sorted(set(row.run_ids))[:size]
        rows = {r.id: r for r in await store.get_runs([*ids, *(w[0] for w in waits)])}
        started = [run_info(rows[i], []) for i in ids if i in rows]
        resumed = [
            ResumedRun(rid, key, run_info(rows[rid], []) if rid in rows else None)
            for rid, key in waits
        ]
        return EventDetail(event_info(row), started, resumed)

    async def function_stats(self, function_id: str) -> FunctionStats:
        """The statistics of a function's recent runs (see :class:`FunctionStats`); raises
        :class:`~perdure.errors.FunctionNotFoundError` for an unknown function."""
        store = await self._store()
        if not any(r.id == function_id for r in await store.list_functions()):
            raise FunctionNotFoundError(f"no function with id {function_id!r} is registered")
        timings = await store.run_timings(function_id, STATS_WINDOW)
        statuses = {s.value: 0 for s in RunStatus}
        durations: list[float] = []
        for status, started_at, ended_at in timings:
            statuses[status] = statuses.get(status, 0) + 1
            if status in ("completed", "failed") and started_at is not None and ended_at:
                durations.append(max(0.0, ended_at - started_at))
        decided = statuses["completed"] + statuses["failed"]
        return FunctionStats(
            window=STATS_WINDOW,
            runs=len(timings),
            statuses=statuses,
            success_rate=statuses["completed"] / decided if decided else None,
            p50=percentile(durations, 50),
            p95=percentile(durations, 95),
            p99=percentile(durations, 99),
        )


async def _waiting_reason(store: Store, row: RunRow) -> str | None:
    """Why a due run is not executing, computed now (nothing is written: the claim path stays
    as it is): the concurrency limit it waits for, with the live count, or ``None``."""
    if row.available_at is None or row.available_at > store.now():
        return None  # ended, waiting without a deadline, not due yet, or leased
    load = await store.concurrency_load(row.id)
    if load is None:
        return None
    spec = next((r.flow for r in await store.list_functions() if r.id == row.function_id), None)
    if spec is None:
        return None
    return blocked_reason(row.id, spec, load.keys, load.running, load.now)


WORKERS_REMEMBERED = 3600.0
"""How far back ``list_workers(include_dead=True)`` looks (seconds since the last beat)."""


def worker_info(row: WorkerRow, now: float) -> WorkerInfo:
    """A registered worker as :class:`~perdure.types.WorkerInfo`, its status at ``now``."""
    status = "stopped" if row.stopped_at is not None else "live" if row.live(now) else "dead"
    started, beat = to_datetime(row.started_at), to_datetime(row.last_heartbeat)
    assert started is not None and beat is not None
    return WorkerInfo(
        id=row.id,
        host=row.host,
        pid=row.pid,
        app=row.app,
        functions=list(row.functions),
        slots=row.slots,
        slots_used=row.slots_used,
        started_at=started,
        last_heartbeat=beat,
        stopped_at=to_datetime(row.stopped_at),
        stale_after=row.stale_after,
        status=status,
    )


def _epoch(value: datetime | None, name: str) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidInputError(f"{name} must be an aware datetime (with a time zone)")
    return value.timestamp()


def _row_id(row: RunRow) -> str:
    return row.id


def _page_size(limit: int) -> int:
    return max(1, min(int(limit), PAGE_MAX))


def step_info(step: StoredStep) -> StepInfo:
    """The client view of a recorded step."""
    return StepInfo(
        id=step.key,
        kind=step.kind,
        status=step.status,
        output=serde.loads(step.output),
        error=serde.loads(step.error),
        attempts=step.attempts,
        position=step.seq,
        started_at=to_datetime(step.started_at),
        ended_at=to_datetime(step.ended_at),
        wake_at=to_datetime(step.wake_at),
        name=step.name,
        input=None if step.input is None else serde.loads(step.input),
    )


def run_info(row: RunRow, steps: Sequence[StoredStep]) -> RunInfo:
    """The client view of a stored run and its recorded steps."""
    created_at = to_datetime(row.created_at)
    assert created_at is not None
    stored = serde.loads(row.input)
    events = [Event.from_stored(e) for e in input_events(stored)]
    return RunInfo(
        id=row.id,
        function_id=row.function_id,
        status=RunStatus(row.status),
        event=events[0],
        output=serde.loads(row.output),
        error=serde.loads(row.error),
        attempt=row.attempt,
        created_at=created_at,
        started_at=to_datetime(row.started_at),
        ended_at=to_datetime(row.ended_at),
        parent_run_id=row.parent_run_id,
        idempotency_key=row.idempotency_key,
        steps=[step_info(s) for s in steps],
        reason=None if row.reason is None else serde.loads(row.reason),
        events=events if isinstance(stored, list) else None,
        rerun_of=row.rerun_of,
        replay_of=row.replay_of,
        replay_from_step=row.replay_from_step,
    )


def event_info(row: EventRow) -> EventInfo:
    """The client view of a stored event."""
    received_at = to_datetime(row.received_at)
    assert received_at is not None
    event = serde.loads(row.body)
    return EventInfo(row.seq, event, received_at, list(row.run_ids))
