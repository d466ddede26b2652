"""The worker: claims due runs of the functions it hosts, executes them, keeps their leases.

- **Claims** are batched: one claim takes up to the worker's free slots in one transaction.
- **Wake-ups** without poll delay where possible: a commit in this process that creates or
  resumes work wakes the claim loop at once; the earliest due time (a sleep, a retry, a lease
  expiry) is a precise timer; only work created by *other* processes on SQLite is found by a
  cheap read every ``poll_interval`` (PostgreSQL notifies instead).
- **Group checkpointing**: the checkpoints and outcomes of all runs in flight are written by one
  :class:`~perdure.batching.Batcher`, one transaction per flush; each run waits for its own
  checkpoint to be durable before its function goes on.
- **Leases** are renewed by a heartbeat every third of the lease; a run whose lease is lost
  (taken over after an expiry, or cancelled) is stopped at its next step and none of its writes
  land (fencing by token). A step body starts only while the worker is sure it still holds the
  lease: each run knows until when its last claim or renewal guarantees it (the store's time
  before the request, plus three quarters of the lease); past that -- the process was paused,
  or its heartbeats failed -- the lease is confirmed with one round trip before the body runs,
  so a worker that wakes up after its run was taken over starts no side effect.
- **Crash cap**: a run claimed after its previous worker died counts a crash; past the
  function's ``max_crashes`` it fails with a clear error instead of taking down more workers.
- **Drivers** execute the attempts (:mod:`perdure.runtime.driver`): the worker hosts the
  functions of its drivers and knows nothing of the code they run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from perdure import faults, ids, logs
from perdure._signals import LeaseLost
from perdure.engine.attempts import crashed_too_often
from perdure.engine.failures import worker_crashes
from perdure.errors import StoreUnavailableError
from perdure.functions import FunctionRecord
from perdure.runtime.attempt import Attempt
from perdure.runtime.deadlines import DeadlineSweeper
from perdure.runtime.driver import Driver, HostedFunction
from perdure.runtime.presence import DEFAULT_INTERVAL, Presence
from perdure.runtime.runtime import Runtime
from perdure.runtime.scheduler import Scheduler
from perdure.store.base import ClaimedRun, Outcome, WriteOp
from perdure.store.operations import WorkerBeat

if TYPE_CHECKING:
    from perdure.runtime.otel import AttemptSpan

log = logging.getLogger("perdure.worker")

_TERMINAL = {"complete": "completed", "fail": "failed"}


class Worker:
    """Executes the runs of the functions its drivers host. Use ``async with app.worker():``
    or the ``perdure worker`` command."""

    def __init__(
        self,
        runtime: Runtime,
        drivers: Sequence[Driver],
        *,
        concurrency: int = 500,
        lease_seconds: float = 30.0,
        poll_interval: float | None = None,
        functions: Sequence[str] | None = None,
        worker_id: str | None = None,
        schedule: bool = True,
        heartbeat_interval: float | None = None,
    ) -> None:
        self.runtime = runtime
        self.drivers = list(drivers)
        self.concurrency = concurrency
        self._lease_seconds = lease_seconds
        # How long a claim or a renewal makes this worker sure of a lease: a quarter of the
        # lease is left as margin (clock estimates, the time to start a step body).
        self.lease_sure_seconds = lease_seconds * 0.75
        self._poll_interval = poll_interval
        self._id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{ids.new_id()[-6:]}"
        self._function_ids = list(functions) if functions is not None else None
        # The registry row's cadence (docs/operations.md): every few seconds, not per run.
        self.heartbeat_interval = heartbeat_interval or min(DEFAULT_INTERVAL, lease_seconds / 3)
        self.presence: Presence | None = None
        self._apps = ""
        self.schedule = schedule
        self.scheduler: Scheduler | None = None
        self.deadlines: DeadlineSweeper | None = None
        self._active: dict[str, Attempt] = {}
        self._reserved = 0
        self._saturated = False
        self._wake = asyncio.Event()
        self._next_due: float | None = None
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._run_tasks: set[asyncio.Task[None]] = set()
        self._started = False
        # Hosts functions under claim-time flow control (concurrency, throttle): a run that
        # ends or suspends may free a slot another due run waits for, so the claim loop looks
        # again (other processes' frees are found at the latest by poll_interval).
        self._gated = False

    @property
    def id(self) -> str:
        """This worker's id (the lease owner it writes)."""
        return self._id

    @property
    def lease_seconds(self) -> float:
        """The lease this worker takes on a run, renewed by heartbeats."""
        return self._lease_seconds

    def _hosted(self, function_id: str) -> tuple[Driver, HostedFunction] | None:
        for driver in self.drivers:
            fn = driver.functions.get(function_id)
            if fn is not None:
                return driver, fn
        return None

    @property
    def functions(self) -> dict[str, HostedFunction]:
        """Every function of this worker's drivers, by id."""
        out: dict[str, HostedFunction] = {}
        for driver in reversed(self.drivers):
            out.update(driver.functions)
        return out

    @property
    def function_ids(self) -> list[str]:
        """The ids of the functions this worker hosts (claims runs of)."""
        if self._function_ids is not None:
            return self._function_ids
        return list(self.functions)

    def _beat(self, stale_after: float) -> WorkerBeat:
        """This worker's registry row now (:class:`~perdure.runtime.presence.Presence`)."""
        return WorkerBeat(
            id=self._id,
            host=socket.gethostname(),
            pid=os.getpid(),
            app=self._apps,
            functions=tuple(self.function_ids),
            slots=self.concurrency,
            slots_used=len(self._active) + self._reserved,
            stale_after=stale_after,
        )

    def holds(self, run_id: str) -> bool:
        """Whether this worker is executing the run now."""
        return run_id in self._active

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register the functions and start claiming."""
        if self._started:
            return
        self._started = True
        await self.runtime.open()
        functions = self.functions
        unknown = [f for f in self.function_ids if f not in functions]
        if unknown:
            raise ValueError(f"unknown function id(s) for this worker: {', '.join(unknown)}")
        store = self.runtime.store
        records = [f.record() for f in functions.values()]
        await store.register_functions(records)
        self._gated = any(r.flow.claim_gated for r in records)
        self._apps = _apps_of(records)
        self.presence = Presence(store, self._beat, self.heartbeat_interval)
        await self.presence.beat()
        store.on_wake(self.wake)
        self.runtime.hub.attach(self)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._claim_loop(), name="perdure-claim"),
            loop.create_task(self._heartbeat_loop(), name="perdure-heartbeat"),
            loop.create_task(self._recover(), name="perdure-recover"),
            loop.create_task(self.presence.run(), name="perdure-presence"),
        ]
        if self.schedule:
            hosted = [functions[f] for f in self.function_ids]
            self.scheduler = Scheduler(self.runtime, hosted)
            # The first pass happens before start() returns: a new trigger's starting point is
            # recorded, and ticks missed while no worker ran are caught up.
            first = await self.scheduler.tick()
            self._tasks.append(loop.create_task(self.scheduler.run(first), name="perdure-cron"))
            self._start_sweeper(hosted)

    async def _recover(self) -> None:
        client = self.runtime.client
        if client is None:
            return
        try:
            await client.recover()
        except Exception as exc:  # the store is away: the next worker to start tries again
            log.warning("recovery after a crash failed (%s)", exc)

    def _start_sweeper(self, hosted: list[HostedFunction]) -> None:
        if self.deadlines is None and DeadlineSweeper.wanted(hosted):
            self.deadlines = DeadlineSweeper(self.runtime, hosted)
            self.runtime.store.on_wake(self.deadlines.wake)
            task = asyncio.get_running_loop().create_task(
                self.deadlines.run(), name="perdure-deadlines"
            )
            self._tasks.append(task)

    def refresh(self) -> None:
        """The drivers' functions changed while the worker runs (an Inngest app synced, or
        its functions were removed): claim, schedule and watch the deadlines of what they
        host now. Functions given explicitly to the worker stay as they are."""
        if not self._started or self._stopping:
            return
        functions = self.functions
        hosted = [functions[f] for f in self.function_ids if f in functions]
        records = [f.record() for f in hosted]
        self._gated = any(r.flow.claim_gated for r in records)
        self._apps = _apps_of(records)
        if self.scheduler is not None:
            self.scheduler.set_functions(hosted)
            if self.deadlines is not None:
                self.deadlines.set_functions(hosted)
            else:
                self._start_sweeper(hosted)
        self.wake()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let running runs finish for up to ``grace`` seconds, then give the
        rest back (they are due at once for another worker)."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._run_tasks:
            await asyncio.wait(set(self._run_tasks), timeout=grace)
        for attempt in list(self._active.values()):
            attempt.abort()
        releases: list[WriteOp] = []
        for attempt in self._active.values():
            # Held checkpoints go first: a graceful stop does not re-execute finished steps.
            releases += attempt.take_held()
            releases.append(Outcome(attempt.run_id, attempt.token, "release"))
        with contextlib.suppress(Exception):
            await self.runtime.store.commit(releases)
        if self._run_tasks:
            await asyncio.wait(set(self._run_tasks), timeout=2.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.scheduler is not None:
            await self.scheduler.close()
        with contextlib.suppress(RuntimeError):  # the runtime was closed under us
            await self.runtime.committer.drain()
        if self.presence is not None:
            await self.presence.stopped(self._id)
        self.runtime.hub.detach(self)
        for driver in self.drivers:
            with contextlib.suppress(Exception):  # a driver failing to close stops nothing else
                await driver.close()

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping

    def wake(self) -> None:
        """New work may be due: claim now."""
        self._wake.set()

    def note_due(self, at: float | None) -> None:
        """A run of ours comes due at ``at``: make sure the claim loop wakes then."""
        if at is not None and (self._next_due is None or at < self._next_due):
            self._next_due = at
            self._wake.set()

    # ------------------------------------------------------------------ claiming

    @property
    def poll_interval(self) -> float:
        """Seconds between checks for work committed by other processes: the option, else the
        store's default (SQLite 0.1 s, which has no notifications; PostgreSQL 2 s, a safety net
        behind LISTEN/NOTIFY)."""
        if self._poll_interval is not None:
            return self._poll_interval
        return self.runtime.store.poll_interval

    @property
    def free_slots(self) -> int:
        """How many more runs this worker can take now."""
        return self.concurrency - len(self._active) - self._reserved

    def reserve(self, function_id: str) -> bool:
        """Reserve a slot for a run started in this process (see :meth:`Client.start`)."""
        if (
            self._started
            and not self._stopping
            and self.free_slots > 0
            and (function_id in self._function_ids if self._function_ids is not None else True)
            and self._hosted(function_id) is not None
        ):
            self._reserved += 1
            return True
        return False

    def unreserve(self) -> None:
        """Give back a reserved slot."""
        self._reserved -= 1
        if self._saturated:
            self._wake.set()

    def launch_started(self, claimed: ClaimedRun, asked_at: float) -> None:
        """Execute a run created already leased to this worker (no claim round trip);
        ``asked_at`` is the store's time before the run was created."""
        self._launch(claimed, asked_at)

    async def _claim_loop(self) -> None:
        store = self.runtime.store
        clock = store.clock
        must_claim = True
        while not self.stopping:
            free = self.free_slots
            if free > 0 and must_claim:
                self._wake.clear()
                want = min(free, 1000)
                asked_at = store.now()
                try:
                    claim = await store.claim(self.id, self.function_ids, want, self.lease_seconds)
                except StoreUnavailableError as exc:
                    log.warning("claim failed, retrying: %s", exc)
                    await asyncio.sleep(0.5)
                    continue
                self._next_due = claim.next_due
                for claimed in claim.runs:
                    self._launch(claimed, asked_at)
                # Claimed as many as asked: more may be due, claim again when a slot frees.
                self._saturated = len(claim.runs) >= want
                if self._saturated and self.free_slots > 0:
                    await asyncio.sleep(0)
                    continue
            must_claim = False
            if free <= 0:
                # Full: claim again when a slot frees.
                self._saturated = True
                self._wake.clear()
            deadline = self._next_due if free > 0 else None
            await clock.wait(self._wake, deadline, self.poll_interval)
            if self._stopping:
                break
            now = store.now()
            if self._wake.is_set() or (self._next_due is not None and self._next_due <= now):
                must_claim = True
                continue
            if self.free_slots > 0:
                # A cheap read for work committed by other processes.
                try:
                    due = await store.next_due(self.function_ids)
                except StoreUnavailableError:
                    continue
                self._next_due = due
                must_claim = due is not None and due <= store.now()

    def _launch(self, claimed: ClaimedRun, asked_at: float) -> None:
        hosted = self._hosted(claimed.function_id)
        if hosted is None:  # pragma: no cover - claims are filtered by function id
            return
        driver, fn = hosted
        if claimed.first or claimed.taken_over:
            metrics = self.runtime.metrics
            if claimed.first:
                metrics.run_started(claimed.function_id)
            if claimed.taken_over:
                metrics.lease_taken_over(claimed.function_id)
        attempt = Attempt(
            self.runtime,
            fn,
            claimed,
            worker_id=self._id,
            lease_seconds=self._lease_seconds,
            sure_until=asked_at + self.lease_sure_seconds,
        )
        self._active[claimed.id] = attempt
        if self.deadlines is not None:
            self.deadlines.claimed(claimed.function_id, asked_at)
        task = asyncio.get_running_loop().create_task(
            self._execute(driver, attempt), name=claimed.id
        )
        self._run_tasks.add(task)
        task.add_done_callback(self._run_tasks.discard)

    # ------------------------------------------------------------------ executing

    async def _execute(self, driver: Driver, attempt: Attempt) -> None:
        logs.set_attempt(attempt.run_id, attempt.function.id, attempt.attempt)
        span: AttemptSpan | None = None
        outcome: Outcome | None = None
        ok = False
        try:
            faults.hit("after_claim")
            max_crashes = attempt.function.max_crashes
            if crashed_too_often(attempt.crashes, max_crashes):
                error = worker_crashes(max_crashes).to_json()
                outcome = Outcome(attempt.run_id, attempt.token, "fail", error=error)
            elif self.runtime.tracer is None:
                outcome = await driver.execute(attempt)
            else:
                span = await self._traced(attempt)
                outcome = await driver.execute(attempt)
                if outcome is not None:
                    await span.before(outcome)
            if outcome is None:
                return
            held = attempt.take_held()
            if held:
                # The last checkpoints travel with the outcome, in front of it: one commit.
                results = await self.runtime.committer.call_many([*held, outcome])
                ok = results[-1]
            else:
                ok = await self.runtime.committer.call(outcome)
            faults.hit("after_outcome")
            if ok:
                status = _TERMINAL.get(outcome.kind)
                if status is not None:
                    self.runtime.metrics.run_ended(attempt.function.id, status)
                    self.runtime.hub.finished(attempt.run_id, status, outcome.output, outcome.error)
                else:
                    self.note_due(outcome.available_at)
        except LeaseLost:
            pass
        except asyncio.CancelledError:
            if not attempt.aborted:
                raise
        except StoreUnavailableError as exc:
            log.warning(
                "run %s: the store is unavailable (%s); the lease will expire and "
                "the run will be retried",
                attempt.run_id,
                exc,
            )
        except Exception:  # pragma: no cover - a bug in perdure or a driver
            log.exception("run %s: internal error", attempt.run_id)
        finally:
            if span is not None:
                span.end(outcome if ok else None)
            # A worker that stalled past its lease may have claimed its own run again: only
            # this attempt's entry is removed.
            if self._active.get(attempt.run_id) is attempt:
                del self._active[attempt.run_id]
            if (self._saturated or self._gated) and not self._stopping:
                self._wake.set()

    async def _traced(self, attempt: Attempt) -> AttemptSpan:
        """Start the span of an attempt (tracing is on), linked to the run's earlier ones."""
        tracer, store = self.runtime.tracer, self.runtime.store
        assert tracer is not None
        recorded = None
        if not attempt.first:
            try:
                recorded = (await store.run_traces([attempt.run_id])).get(attempt.run_id)
            except StoreUnavailableError as exc:  # the links are lost, nothing else
                log.warning("run %s: cannot read its trace context (%s)", attempt.run_id, exc)
        return tracer.attempt(
            store,
            attempt.run_id,
            attempt.function.id,
            attempt.attempt,
            attempt.token,
            attempt.input,
            recorded,
        )

    def abort_run(self, run_id: str) -> None:
        """Stop executing a run (it was cancelled)."""
        attempt = self._active.get(run_id)
        if attempt is not None:
            attempt.abort()

    # ------------------------------------------------------------------ leases

    async def _heartbeat_loop(self) -> None:
        interval = self._lease_seconds / 3
        store = self.runtime.store
        while not self.stopping:
            await asyncio.sleep(interval)
            leases = [(a.run_id, a.token) for a in self._active.values()]
            if not leases:
                continue
            asked_at = store.now()
            try:
                lost = await store.heartbeat(self._id, leases, self._lease_seconds)
            except StoreUnavailableError as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            for run_id in lost:
                attempt = self._active.get(run_id)
                if attempt is not None:
                    log.info("run %s: lease lost; stopping it here", run_id)
                    attempt.abort()
            for run_id, token in leases:
                attempt = self._active.get(run_id)
                if attempt is not None and attempt.token == token:
                    attempt.renewed(asked_at)


def _apps_of(records: Sequence[FunctionRecord]) -> str:
    """The apps of the hosted functions (comma-separated: an Inngest driver hosts several)."""
    return ",".join(sorted({r.app for r in records}))
