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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from perdure import faults, ids, serde
from perdure._signals import Fatal, LeaseLost, Suspend
from perdure.batching import Batcher
from perdure.context import Context, SyncContext
from perdure.engine.backoff import backoff_delay
from perdure.errors import (
    NonRetriableError,
    PayloadTooLargeError,
    SerializationError,
    StepError,
    StoreUnavailableError,
    describe,
)
from perdure.execution import RunExecution
from perdure.store.base import ClaimedRun, Outcome, Store, WriteOp

if TYPE_CHECKING:
    from perdure.app import App
    from perdure.functions import FunctionDef
    from perdure.scheduler import Scheduler

log = logging.getLogger("perdure.worker")


class Worker:
    """Executes the runs of an app's functions. Use ``async with app.worker(): ...`` or
    :meth:`run` (the ``perdure worker`` command)."""

    def __init__(
        self,
        app: App,
        *,
        concurrency: int = 500,
        sync_concurrency: int = 32,
        lease_seconds: float = 30.0,
        poll_interval: float | None = None,
        functions: Sequence[str] | None = None,
        worker_id: str | None = None,
        schedule: bool = True,
    ) -> None:
        self.app = app
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        # How long a claim or a renewal makes this worker sure of a lease: a quarter of the
        # lease is left as margin (clock estimates, the time to start a step body).
        self.lease_sure_seconds = lease_seconds * 0.75
        self._poll_interval = poll_interval
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{ids.new_id()[-6:]}"
        self._function_ids = list(functions) if functions is not None else None
        self.schedule = schedule
        self.scheduler: Scheduler | None = None
        self.step_pool = ThreadPoolExecutor(sync_concurrency, thread_name_prefix="perdure-step")
        self.sync_pool = ThreadPoolExecutor(sync_concurrency, thread_name_prefix="perdure-fn")
        self._active: dict[str, RunExecution] = {}
        self._reserved = 0
        self._saturated = False
        self._wake = asyncio.Event()
        self._next_due: float | None = None
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._run_tasks: set[asyncio.Task[None]] = set()
        self._started = False
        self.committer: Batcher[WriteOp, bool] = Batcher(self._commit, max_batch=2000)

    @property
    def store(self) -> Store:
        """The app's store."""
        return self.app.store

    @property
    def function_ids(self) -> list[str]:
        """The ids of the functions this worker hosts."""
        if self._function_ids is not None:
            return self._function_ids
        return list(self.app.functions)

    async def _commit(self, ops: Sequence[WriteOp]) -> list[bool]:
        return await self.store.commit(ops)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register the functions and start claiming."""
        if self._started:
            return
        self._started = True
        await self.app.open()
        unknown = [f for f in self.function_ids if f not in self.app.functions]
        if unknown:
            raise ValueError(f"unknown function id(s) for this worker: {', '.join(unknown)}")
        await self.app.register()
        self.store.on_wake(self.wake)
        self.app._workers.append(self)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._claim_loop(), name="perdure-claim"),
            loop.create_task(self._heartbeat_loop(), name="perdure-heartbeat"),
        ]
        if self.schedule:
            from perdure.scheduler import Scheduler

            hosted = [self.app.functions[f] for f in self.function_ids]
            self.scheduler = Scheduler(self.app, hosted)
            # The first pass happens before start() returns: a new trigger's starting point is
            # recorded, and ticks missed while no worker ran are caught up.
            first = await self.scheduler.tick()
            self._tasks.append(loop.create_task(self.scheduler.run(first), name="perdure-cron"))

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let running runs finish for up to ``grace`` seconds, then give the
        rest back (they are due at once for another worker)."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._run_tasks:
            await asyncio.wait(set(self._run_tasks), timeout=grace)
        for ex in list(self._active.values()):
            ex.abort()
        with contextlib.suppress(Exception):
            await self.store.commit(
                [Outcome(ex.run_id, ex.token, "release") for ex in self._active.values()]
            )
        if self._run_tasks:
            await asyncio.wait(set(self._run_tasks), timeout=2.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.committer.drain()
        if self in self.app._workers:
            self.app._workers.remove(self)
        self.step_pool.shutdown(wait=False, cancel_futures=True)
        self.sync_pool.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Run until cancelled (SIGINT/SIGTERM in the CLI)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping

    def _stop_requested(self) -> bool:
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
        return self.store.poll_interval

    @property
    def free_slots(self) -> int:
        """How many more runs this worker can take now."""
        return self.concurrency - len(self._active) - self._reserved

    def reserve(self, function_id: str) -> bool:
        """Reserve a slot for a run started in this process (see :meth:`App.start`)."""
        if (
            self._started
            and not self._stopping
            and self.free_slots > 0
            and function_id in self.app.functions
            and (self._function_ids is None or function_id in self._function_ids)
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
        clock = self.store.clock
        must_claim = True
        while not self.stopping:
            free = self.free_slots
            if free > 0 and must_claim:
                self._wake.clear()
                want = min(free, 1000)
                asked_at = self.store.now()
                try:
                    claim = await self.store.claim(
                        self.id, self.function_ids, want, self.lease_seconds
                    )
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
            if self._stop_requested():
                break
            now = self.store.now()
            if self._wake.is_set() or (self._next_due is not None and self._next_due <= now):
                must_claim = True
                continue
            if self.free_slots > 0:
                # A cheap read for work committed by other processes.
                try:
                    due = await self.store.next_due(self.function_ids)
                except StoreUnavailableError:
                    continue
                self._next_due = due
                must_claim = due is not None and due <= self.store.now()

    def _launch(self, claimed: ClaimedRun, asked_at: float) -> None:
        fdef = self.app.functions.get(claimed.function_id)
        if fdef is None:  # pragma: no cover - claims are filtered by function id
            return
        ex = RunExecution(self, fdef, claimed)
        ex.lease_sure_until = asked_at + self.lease_sure_seconds
        self._active[claimed.id] = ex
        task = asyncio.get_running_loop().create_task(self._execute(ex), name=claimed.id)
        self._run_tasks.add(task)
        task.add_done_callback(self._run_tasks.discard)

    # ------------------------------------------------------------------ executing

    async def _execute(self, ex: RunExecution) -> None:
        fdef = ex.fdef
        try:
            faults.hit("after_claim")
            outcome: Outcome | None
            if self._too_many_crashes(ex, fdef):
                outcome = Outcome(
                    ex.run_id,
                    ex.token,
                    "fail",
                    error=serde.dumps(
                        {
                            "type": "WorkerCrashError",
                            "message": (
                                f"the run was interrupted by {fdef.max_crashes} worker crashes"
                                f" (max_crashes={fdef.max_crashes}); it is failed to protect"
                                " the workers"
                            ),
                        }
                    ),
                )
            else:
                outcome = await self._attempt(ex, fdef)
            if outcome is None:
                return
            ok = await self.committer.call(outcome)
            faults.hit("after_outcome")
            if ok:
                if outcome.kind in ("complete", "fail"):
                    self.app._run_finished(
                        ex.run_id,
                        "completed" if outcome.kind == "complete" else "failed",
                        outcome.output,
                        outcome.error,
                    )
                else:
                    self.note_due(outcome.available_at)
        except LeaseLost:
            pass
        except asyncio.CancelledError:
            if not ex.aborted:
                raise
        except StoreUnavailableError as exc:
            log.warning(
                "run %s: the store is unavailable (%s); the lease will expire and "
                "the run will be retried",
                ex.run_id,
                exc,
            )
        except Exception:  # pragma: no cover - a bug in perdure
            log.exception("run %s: internal error", ex.run_id)
        finally:
            self._active.pop(ex.run_id, None)
            if self._saturated and not self._stopping:
                self._wake.set()

    @staticmethod
    def _too_many_crashes(ex: RunExecution, fdef: FunctionDef) -> bool:
        return ex.crashes > fdef.max_crashes

    async def _attempt(self, ex: RunExecution, fdef: FunctionDef) -> Outcome | None:
        try:
            if fdef.is_async:
                # The run's own task is what abort() cancels: no extra task per run.
                ex.task = asyncio.current_task()
                result = await fdef.fn(Context(ex))
            else:
                # The pool's size bounds how many sync functions run at once; others queue.
                fut = asyncio.get_running_loop().run_in_executor(
                    self.sync_pool, fdef.fn, SyncContext(ex)
                )
                ex.task = fut
                result = await fut
        except Suspend:
            return ex.suspension()
        except LeaseLost:
            return None
        except asyncio.CancelledError:
            if ex.aborted:
                return None
            raise
        except StoreUnavailableError as exc:
            # The store failed under the function (not the function itself): no attempt is
            # spent; the lease expires and the run is replayed from its checkpoints.
            log.warning("run %s: the store is unavailable (%s); stopping it here", ex.run_id, exc)
            return None
        except Fatal as fatal:
            return self._fail(ex, fatal.error)
        except (StepError, NonRetriableError) as exc:
            return self._fail(ex, exc)
        except Exception as exc:
            if ex.aborted:
                return None
            policy = fdef.retry
            failed = ex.attempt + 1
            if failed > policy.retries:
                return self._fail(ex, exc)
            delay = getattr(exc, "delay_seconds", None)
            if delay is None:
                delay = backoff_delay(policy, failed)
            return Outcome(
                ex.run_id,
                ex.token,
                "retry",
                error=serde.dumps(describe(exc)),
                available_at=self.store.now() + delay,
            )
        if ex.aborted:
            return None
        if ex.suspended:
            return ex.suspension()
        try:
            output = serde.dumps_limited(result, "the run's output", self.app.limits.run_output)
        except (PayloadTooLargeError, SerializationError) as exc:
            return self._fail(ex, exc)
        return Outcome(ex.run_id, ex.token, "complete", output=output)

    @staticmethod
    def _fail(ex: RunExecution, exc: BaseException) -> Outcome:
        return Outcome(ex.run_id, ex.token, "fail", error=serde.dumps(describe(exc)))

    def abort_run(self, run_id: str) -> None:
        """Stop executing a run (it was cancelled)."""
        ex = self._active.get(run_id)
        if ex is not None:
            ex.abort()

    # ------------------------------------------------------------------ leases

    async def _heartbeat_loop(self) -> None:
        interval = self.lease_seconds / 3
        while not self.stopping:
            await asyncio.sleep(interval)
            leases = [(ex.run_id, ex.token) for ex in self._active.values()]
            if not leases:
                continue
            asked_at = self.store.now()
            try:
                lost = await self.store.heartbeat(self.id, leases, self.lease_seconds)
            except StoreUnavailableError as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            for run_id in lost:
                ex = self._active.get(run_id)
                if ex is not None:
                    log.info("run %s: lease lost; stopping it here", run_id)
                    ex.abort()
            sure = asked_at + self.lease_sure_seconds
            for run_id, token in leases:
                ex = self._active.get(run_id)
                if ex is not None and ex.token == token and ex.lease_sure_until < sure:
                    ex.lease_sure_until = sure

    async def confirm_lease(self, ex: RunExecution) -> None:
        """Renew the lease of ``ex`` now, or raise :class:`LeaseLost` (after stopping the run)
        if it was lost or cannot be confirmed. Called before a step body starts when the last
        claim or renewal no longer guarantees the lease."""
        if not ex.aborted:
            asked_at = self.store.now()
            try:
                lost = await self.store.heartbeat(
                    self.id, [(ex.run_id, ex.token)], self.lease_seconds
                )
            except StoreUnavailableError as exc:
                log.warning("run %s: cannot confirm the lease (%s); stopping it", ex.run_id, exc)
            else:
                if not lost and not ex.aborted:
                    sure = asked_at + self.lease_sure_seconds
                    ex.lease_sure_until = max(ex.lease_sure_until, sure)
                    return
                log.info("run %s: lease lost; stopping it before its next step", ex.run_id)
        ex.abort()
        raise LeaseLost()
