"""The storage protocol every backend implements, and the records it exchanges.

The database is both the source of truth and the queue. A run row is also its queue item:
``available_at`` says when it may be claimed (``NULL`` for terminal runs and for runs waiting
without a timeout); a claimed run's ``available_at`` is its lease expiry, so a run whose worker
died becomes claimable again exactly when its lease runs out. ``lease_token`` is the fencing
token: every claim increments it, and every write a worker makes for a run names the token it
claimed with, so the writes of a worker whose lease was taken over are rejected.

Times are float seconds since the epoch, read from the database's clock (PostgreSQL) or the
store's :class:`~perdure.clock.Clock` (SQLite, which has no server).

Conformance: ``tests/store/`` is one suite that every backend passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from perdure.clock import Clock
from perdure.engine.flow.keys import RunFlow
from perdure.functions import FunctionRecord
from perdure.store.access import AccessStore
from perdure.store.app_syncs import AppSyncStore
from perdure.store.operations import OperationsStore
from perdure.store.records import EventIn as EventIn
from perdure.store.records import EventRow as EventRow
from perdure.store.records import FireResult as FireResult
from perdure.store.records import NewSchedule as NewSchedule
from perdure.store.records import ScheduleRow as ScheduleRow
from perdure.store.run_filter import RunFilter as RunFilter  # re-exported: part of the protocol
from perdure.store.traces import TraceStore


@dataclass(slots=True)
class NewRun:
    """A run to create. ``input`` is the JSON text of the triggering event."""

    id: str
    function_id: str
    input: str
    event_id: str | None = None
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    parent_step: str | None = None
    lease_owner: str | None = None
    lease_seconds: float = 0.0
    flow: RunFlow | None = None
    """The run's flow-control state (``None``: its function has none); such runs are created
    through the backend's flow-control path."""


@dataclass(slots=True)
class CreatedRun:
    """The result of creating a run: its id, whether it is new (idempotency may say no), and,
    for a new run created already leased (``NewRun.lease_owner``), its lease token."""

    id: str
    created: bool
    token: int | None = None
    skipped: bool = False
    """Flow control recorded the run as skipped (it never executes; see ``runs.reason``)."""


@dataclass(slots=True)
class StoredStep:
    """A step as recorded. ``output`` and ``error`` are JSON text."""

    key: str
    seq: int
    kind: str
    status: str
    output: str | None
    error: str | None
    attempts: int
    wake_at: float | None
    started_at: float | None = None
    ended_at: float | None = None
    name: str | None = None
    """The step's name as the user wrote it, when the key is a derived one (an Inngest SDK
    step's key is the SHA-1 of its id)."""
    input: str | None = None
    """What the step was given, as JSON text (a ``run`` step's arguments, the data of an
    ``invoke``, the events of a ``send``, a ``wait``'s event and match), if anything. Claims
    do not bring it back (a replay never needs it)."""


@dataclass(slots=True)
class ClaimedRun:
    """A run a worker has just claimed, with everything needed to execute it."""

    id: str
    function_id: str
    token: int
    input: str
    attempt: int
    steps: dict[str, StoredStep]
    crashes: int
    first: bool = False
    """This claim starts the run: it had never been claimed (no ``started_at``)."""
    taken_over: bool = False
    """The run was ``running`` under a lease that expired (its worker stalled or died)."""


@dataclass(frozen=True, slots=True)
class DueBacklog:
    """The runs due now and not claimed (a lease expiry makes a run due again), by function:
    ``functions[function_id] = (count, oldest available_at)``; ``now`` is the store's time."""

    now: float
    functions: dict[str, tuple[int, float]]


@dataclass(slots=True)
class Claim:
    """The result of a claim: the runs, and when the next run comes due."""

    runs: list[ClaimedRun]
    next_due: float | None


@dataclass(slots=True)
class WaitSpec:
    """What a ``wait_for_event`` step waits for."""

    event_name: str
    match_path: str | None
    match_value: str | None
    expression: str | None
    expires_at: float | None


@dataclass(slots=True)
class StepWrite:
    """A step checkpoint (fenced by ``token``). ``wait`` registers an event wait; ``child``
    creates the run of an ``invoke`` step in the same transaction."""

    run_id: str
    token: int
    key: str
    seq: int
    kind: str
    status: str
    output: str | None = None
    error: str | None = None
    attempts: int = 1
    wake_at: float | None = None
    started_at: float | None = None
    wait: WaitSpec | None = None
    child: NewRun | None = None
    name: str | None = None
    """The step's name when ``key`` is derived from it (kept by later writes without one)."""
    input: str | None = None
    """What the step was given, JSON text (kept by later writes without one)."""


OutcomeKind = Literal["complete", "fail", "retry", "suspend", "release"]


@dataclass(slots=True)
class Outcome:
    """The end of an execution attempt of a run (fenced by ``token``).

    - ``complete``: the run completed with ``output``;
    - ``fail``: the run failed with ``error``;
    - ``retry``: the attempt failed with ``error``, retry at ``available_at``;
    - ``suspend``: the run waits (``status`` sleeping, waiting or queued) until
      ``available_at`` (``None``: until an event or a child resumes it). If one of
      ``watch_keys`` (its wait and invoke steps) was resolved meanwhile, it is due at once;
    - ``release``: the worker gives the run back (shutdown); it is due at once.
    """

    run_id: str
    token: int
    kind: OutcomeKind
    output: str | None = None
    error: str | None = None
    available_at: float | None = None
    status: str = "queued"
    watch_keys: tuple[str, ...] = ()


WriteOp = StepWrite | Outcome


@dataclass(frozen=True, slots=True)
class KeyLoad:
    """A queued, due run's concurrency keys (``keys[i]`` is counted under its function's
    ``concurrency[i]``) and how many runs hold a live lease on each key now: what a read needs
    to say why the run waits (:meth:`Store.concurrency_load`)."""

    now: float
    keys: tuple[str | None, str | None]
    running: dict[str, int]

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> KeyLoad:
        """From ``(now, key1, key2, running on key1, running on key2)``."""
        now, k1, k2, n1, n2 = row
        running = {k: int(n) for k, n in ((k1, n1), (k2, n2)) if k is not None}
        return cls(float(now), (k1, k2), running)


class EndedRun(NamedTuple):
    """A run that reached a terminal status, with what a result waiter needs of it."""

    id: str
    status: str
    output: str | None
    error: str | None


@dataclass(slots=True)
class RunRow:
    """A run as stored (client view)."""

    id: str
    function_id: str
    status: str
    input: str
    output: str | None
    error: str | None
    attempt: int
    event_id: str | None
    idempotency_key: str | None
    parent_run_id: str | None
    parent_step: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    available_at: float | None
    lease_owner: str | None
    reason: str | None = None
    rerun_of: str | None = None
    """The run this one reruns (:meth:`Store.create_derived_run`), if any."""
    replay_of: str | None = None
    """The run this one replays from a step, if any."""
    replay_from_step: str | None = None
    """The key of the step a replay executes from (the steps before it were copied)."""


@dataclass(frozen=True, slots=True)
class RunOrigin:
    """What a derived run (a rerun or a replay) comes from: the original run and, for a
    replay, the step it executes from (``from_step``, the step's key, at position
    ``from_seq``): the original's completed steps at positions before ``from_seq`` are
    copied into the new run."""

    run_id: str
    kind: Literal["rerun", "replay"]
    from_step: str | None = None
    from_seq: int = 0


@dataclass(slots=True)
class SentEvent:
    """The result of storing one event."""

    id: str
    duplicate: bool
    run_ids: list[str]
    cancelled: list[str] = field(default_factory=list)
    """The runs the event cancelled (``cancel_on``)."""
    skipped: list[str] = field(default_factory=list)
    """The runs among ``run_ids`` that flow control recorded as skipped (rate limit,
    idempotency, singleton): they never execute; their ``reason`` says why."""

    @classmethod
    def of(
        cls, event_id: str, created: Sequence[CreatedRun], cancelled: Sequence[str] = ()
    ) -> SentEvent:
        """The answer for a stored event from the runs it created or joined (a debounce or
        batch run it joined appears once)."""
        ids = list(dict.fromkeys(c.id for c in created))
        skipped = [c.id for c in created if c.skipped]
        return cls(event_id, False, ids, cancelled=list(cancelled), skipped=skipped)


RunTiming = tuple[str, float | None, float | None]
"""A run's ``(status, started_at, ended_at)``."""


class Store(AccessStore, AppSyncStore, OperationsStore, TraceStore, Protocol):
    """What the engine needs from a database. All methods are coroutines except ``now``
    (the operations part, workers, pauses and bounded pruning, is
    :class:`~perdure.store.operations.OperationsStore`)."""

    url: str
    clock: Clock
    #: How often workers look for work committed by other processes when nothing woke them.
    poll_interval: float

    def now(self) -> float:
        """The store's notion of the current time (seconds since the epoch)."""
        ...

    async def open(self) -> None:
        """Connect and apply migrations."""
        ...

    async def close(self) -> None:
        """Release every resource."""
        ...

    def on_wake(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the event loop) whenever new work may be claimable: local
        commits that create or resume runs, and notifications from other processes."""
        ...

    def on_finished(self, callback: Callable[[Sequence[str]], None]) -> None:
        """Call ``callback`` with run ids when runs reach a terminal state (best effort; used to
        wake ``handle.result()`` callers)."""
        ...

    async def ping(self) -> None:
        """Raise if the database is unreachable."""
        ...

    # functions
    async def register_functions(self, records: Sequence[FunctionRecord]) -> None:
        """Create or replace function records."""
        ...

    async def list_functions(self) -> list[FunctionRecord]:
        """Every registered function."""
        ...

    async def remove_functions(self, ids: Sequence[str]) -> None:
        """Delete function records (unknown ids are ignored) and bump the registry version:
        events stop routing to them and their crons stop. Their runs are kept."""
        ...

    # client side
    async def create_runs(self, runs: Sequence[NewRun]) -> list[CreatedRun]:
        """Create runs (due now); an existing ``(function_id, idempotency_key)`` returns the
        existing run. A run with a ``lease_owner`` is created already claimed by that worker
        (status running, lease token 1, lease for ``lease_seconds``): a worker in the starting
        process executes it without a claim round trip."""
        ...

    async def create_derived_run(self, run: NewRun, origin: RunOrigin) -> CreatedRun | None:
        """Create ``run`` (due now; not leased; through the flow-control path when it has
        ``flow``) as a rerun or replay of ``origin.run_id``, in one transaction: the new run
        records the link (``rerun_of``, or ``replay_of`` and ``replay_from_step``) and, for a
        replay, gets copies of the original's completed steps at positions before
        ``origin.from_seq``. ``None`` (and nothing written) if the original run is unknown."""
        ...

    async def send_events(self, events: Sequence[EventIn]) -> list[SentEvent]:
        """Store events (deduplicated by id within the dedupe window), start the runs of the
        functions they trigger and resume the runs waiting for them, in one transaction."""
        ...

    async def cancel_run(self, run_id: str, reason: str | None = None) -> RunRow | None:
        """Cancel a non-terminal run (``reason``: why, JSON text as
        :func:`perdure.engine.flow.reasons.reason` makes it, shown with the run); return the
        run (``None`` if unknown)."""
        ...

    async def get_run(self, run_id: str) -> RunRow | None:
        """One run."""
        ...

    async def get_runs(self, run_ids: Sequence[str]) -> list[RunRow]:
        """Several runs (missing ids are left out)."""
        ...

    async def ended_runs(self, run_ids: Sequence[str]) -> list[EndedRun]:
        """The runs among ``run_ids`` that have ended (a terminal status), with their outcome;
        runs still in progress and unknown ids are left out (what result waiters poll: the
        filter runs in the database, so runs in progress cost no row)."""
        ...

    async def get_steps(self, run_id: str) -> list[StoredStep]:
        """The recorded steps of a run, in call order."""
        ...

    async def list_runs(self, flt: RunFilter) -> list[RunRow]:
        """Runs, newest first, filtered."""
        ...

    async def ended_since(self, since: float, limit: int) -> list[str]:
        """The ids of the runs that ended at or after ``since`` (store time), the earliest
        end first, at most ``limit`` (an indexed read)."""
        ...

    async def list_events(self, name: str | None, before: int | None, limit: int) -> list[EventRow]:
        """Events, newest first; ``before`` is a sequence-number cursor."""
        ...

    async def get_event(self, event_id: str) -> EventRow | None:
        """The newest stored event with this id, with the runs it started."""
        ...

    async def waits_resolved_by(self, event: EventRow, limit: int) -> list[tuple[str, str]]:
        """``(run id, step key)`` of the ``wait`` steps ``event`` resolved (their output is
        the event, recorded when it was received), by run id, at most ``limit``."""
        ...

    async def run_timings(self, function_id: str, limit: int) -> list[RunTiming]:
        """The ``limit`` most recently created runs of a function (an indexed read), newest
        first: ``(status, started_at, ended_at)`` of each."""
        ...

    # worker side

    async def claim(
        self, worker_id: str, function_ids: Sequence[str], limit: int, lease_seconds: float
    ) -> Claim:
        """Lease up to ``limit`` due runs of the given functions, with their recorded steps."""
        ...

    async def commit(self, ops: Sequence[WriteOp]) -> list[bool]:
        """Apply checkpoints and outcomes in one transaction; each is fenced by its token and
        the result says whether it was applied (False: the lease was lost)."""
        ...

    async def heartbeat(
        self, worker_id: str, leases: Sequence[tuple[str, int]], lease_seconds: float
    ) -> list[str]:
        """Extend the leases; return the ids of runs whose lease was lost."""
        ...

    async def expire_step(self, run_id: str, token: int, key: str) -> StoredStep | None:
        """Time out a waiting (``wait``) or invoking (``invoke``) step whose deadline passed,
        unless it was resolved meanwhile; return the step as now recorded (``None`` if the
        lease was lost)."""
        ...

    async def next_due(self, function_ids: Sequence[str]) -> float | None:
        """When the earliest run of these functions comes due."""
        ...

    async def due_backlog(self) -> DueBacklog:
        """The runs due and not claimed, by function (one read on the due index, no lock)."""
        ...

    # cron and maintenance
    async def cron_last_tick(self, function_id: str, trigger: str) -> float | None:
        """The last tick fired for a cron trigger."""
        ...

    async def fire_cron(
        self,
        function_id: str,
        trigger: str,
        tick: float,
        run: NewRun | None,
        overlap: str = "allow",
    ) -> bool:
        """Advance the trigger's last tick to ``tick`` and create ``run`` (if given), once
        across all schedulers: False if another scheduler already advanced past it. With
        ``overlap="skip"``, the run is not created while the previous run this method created
        for the trigger has not ended (the tick still advances: True)."""
        ...

    async def prune(self, finished_before: float, limit: int) -> int:
        """Delete terminal runs (and their steps) that ended before the given time."""
        ...

    async def cancel_overdue(self, limit: int = 500) -> tuple[list[str], float | None]:
        """Cancel runs past their start or finish deadline (``timeouts``), with the reason;
        return the ids cancelled and when the next deadline falls (``None``: no deadline)."""
        ...

    # flow control (reads)
    async def concurrency_load(self, run_id: str) -> KeyLoad | None:
        """For a run that is due and holds a concurrency key: its keys and their live leases
        now (``None`` otherwise). A read: nothing is locked or written."""
        ...

    # schedules (created at run time; see docs/schedules.md)
    async def create_schedule(self, schedule: NewSchedule) -> ScheduleRow | None:
        """Create a schedule; ``None`` (and nothing changed) if one has that id."""
        ...

    async def get_schedule(self, schedule_id: str) -> ScheduleRow | None:
        """One schedule."""
        ...

    async def list_schedules(
        self, function_id: str | None, after: str | None, limit: int
    ) -> list[ScheduleRow]:
        """Schedules by id (those of ``function_id`` when given; ids after ``after``)."""
        ...

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, *, cursor: float, next_at: float, revision: str
    ) -> ScheduleRow | None:
        """Pause or resume a schedule (``None``: unknown). A change sets ``revision``;
        resuming also moves the cursor forward to ``cursor`` (ticks of the pause never run)
        and sets ``next_at``. Pausing a paused schedule, or resuming an active one, changes
        nothing."""
        ...

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule; whether it existed."""
        ...

    async def due_schedules(
        self, function_ids: Sequence[str], now: float, limit: int
    ) -> list[ScheduleRow]:
        """Active schedules of these functions whose ``next_at`` is due, earliest first."""
        ...

    async def next_schedule_at(self, function_ids: Sequence[str]) -> float | None:
        """The earliest ``next_at`` of the active schedules of these functions."""
        ...

    async def fire_schedule(
        self,
        schedule_id: str,
        revision: str,
        tick: float,
        next_at: float,
        run: NewRun | None,
        missed: int,
    ) -> FireResult:
        """Handle a tick, once across all schedulers, in one transaction: if the schedule
        still has ``revision``, is active and its cursor is before ``tick``, move the cursor to
        ``tick`` (``next_at`` the next tick), add ``missed`` to its missed ticks, and create
        ``run`` unless its overlap policy is ``skip`` and its previous run has not ended
        (then count a skipped tick)."""
        ...

    async def trigger_schedule(self, schedule_id: str, run: NewRun) -> CreatedRun | None:
        """Create ``run`` now for the schedule, whatever its cron, pause and overlap, and
        record it as the schedule's previous run (``None``: unknown schedule)."""
        ...
