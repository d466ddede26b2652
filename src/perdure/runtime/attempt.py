"""One execution attempt of a claimed run, as the runtime hands it to a driver.

An :class:`Attempt` is the run's lease seen from the code that executes it: the claimed run and
its recorded steps, fenced writes, the lease check before a step body, and the abort signal
(the lease was lost, the run was cancelled, the worker is stopping). Drivers see nothing else of
the runtime.

Lease certainty: each attempt knows until when its last claim or renewal *guarantees* the lease
(the store's time before the request plus three quarters of the lease). A step body starts only
before that instant, or after one round trip that renews the lease (or finds it lost and stops
the run): a worker that was paused past its lease starts no side effect after waking up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

from perdure._signals import LeaseLost
from perdure.errors import StoreUnavailableError
from perdure.runtime.ports import HostedFunction
from perdure.runtime.runtime import Runtime
from perdure.store.base import ClaimedRun, StepWrite, StoredStep

log = logging.getLogger("perdure.worker")

_ATTEMPT_ENDS = frozenset({"completed", "failed", "retrying"})
_WAITS = frozenset({"sleep", "wait", "invoke"})  # no body executes: no step duration


class Attempt:
    """The claimed run ``run`` of ``function``, leased by worker ``worker_id``."""

    __slots__ = (
        "_abort_callbacks",
        "_held",
        "_lease_seconds",
        "_now",
        "_sure_seconds",
        "aborted",
        "attempt",
        "committer",
        "crashes",
        "first",
        "function",
        "input",
        "lease_sure_until",
        "run_id",
        "runtime",
        "steps",
        "store",
        "token",
        "worker_id",
    )

    def __init__(
        self,
        runtime: Runtime,
        function: HostedFunction,
        run: ClaimedRun,
        *,
        worker_id: str,
        lease_seconds: float,
        sure_until: float,
    ) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.committer = runtime.committer
        self._now = self.store.now
        self.function = function
        self.run_id = run.id
        self.token = run.token
        self.attempt = run.attempt
        self.crashes = run.crashes
        self.first = run.first
        """This attempt starts the run (no attempt before it)."""
        self.input = run.input
        self.steps = run.steps
        self.worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._sure_seconds = lease_seconds * 0.75
        self.lease_sure_until = sure_until
        """The store's time until which this worker is sure to hold the lease."""
        self.aborted = False
        self._abort_callbacks: list[Callable[[], None]] = []
        self._held: list[StepWrite] = []

    def now(self) -> float:
        """The store's clock."""
        return self._now()

    # ------------------------------------------------------------------ abort

    def on_abort(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the attempt is aborted (lease lost, cancelled, stop)."""
        self._abort_callbacks.append(callback)

    def abort(self) -> None:
        """The lease is gone (or the worker gives the run back): stop the attempt."""
        if self.aborted:
            return
        self.aborted = True
        for callback in self._abort_callbacks:
            callback()

    def renewed(self, asked_at: float) -> None:
        """A renewal asked at ``asked_at`` (store time) succeeded."""
        sure = asked_at + self._sure_seconds
        if sure > self.lease_sure_until:
            self.lease_sure_until = sure

    # ------------------------------------------------------------------ lease checks

    async def ensure_lease(self) -> None:
        """Before a step body starts: return at once while the lease is certain; otherwise
        renew it with one round trip, or stop the run (:class:`LeaseLost`)."""
        if self.aborted or self._now() >= self.lease_sure_until:
            await self.confirm_lease()

    async def confirm_lease(self) -> None:
        """Renew the lease now, or raise :class:`LeaseLost` (after aborting) if it was lost or
        cannot be confirmed."""
        if not self.aborted:
            asked_at = self._now()
            try:
                lost = await self.store.heartbeat(
                    self.worker_id, [(self.run_id, self.token)], self._lease_seconds
                )
            except StoreUnavailableError as exc:
                log.warning("run %s: cannot confirm the lease (%s); stopping it", self.run_id, exc)
            else:
                if not lost and not self.aborted:
                    self.renewed(asked_at)
                    return
                log.info("run %s: lease lost; stopping it before its next step", self.run_id)
        self.abort()
        raise LeaseLost()

    # ------------------------------------------------------------------ durable writes

    def step_write(self, key: str, seq: int, kind: str, status: str, **fields: Any) -> StepWrite:
        """A checkpoint of this run, fenced by its lease (one that ends a step attempt started
        at ``started_at`` counts its duration)."""
        op = StepWrite(self.run_id, self.token, key, seq, kind, status, **fields)
        if op.started_at is not None and status in _ATTEMPT_ENDS and kind not in _WAITS:
            metrics = self.runtime.metrics
            if metrics.enabled:
                metrics.step_ended(self.function.id, kind, max(0.0, self._now() - op.started_at))
        return op

    async def write(self, op: StepWrite) -> None:
        """Make a checkpoint durable (grouped with other runs' writes), together with the
        held ones (:meth:`hold`). Stop the run (:class:`LeaseLost`) if it is fenced off, or if
        the store is unavailable: that is not the function's failure (it must neither spend an
        attempt nor reach user code); the run is replayed from its checkpoints once its lease
        expires."""
        if self.aborted:
            raise LeaseLost()
        await self._commit([*self.take_held(), op])

    def hold(self, op: StepWrite) -> None:
        """Keep a completed step's checkpoint to send with the next write: the next step's
        (before its body starts, :meth:`flush`), or the attempt's outcome. A sequential run of
        n steps then costs n + 1 commits, and a step body still never starts before the
        previous step's result is durable."""
        if self.aborted:
            raise LeaseLost()
        self._held.append(op)

    @property
    def holding(self) -> bool:
        """Whether checkpoints are held (see :meth:`hold`)."""
        return bool(self._held)

    async def flush(self) -> None:
        """Make the held checkpoints durable now (before a step body, a sent event, ...)."""
        if self.aborted:
            raise LeaseLost()
        if self._held:
            ops, self._held = self._held, []
            await self._commit(ops)

    def take_held(self) -> list[StepWrite]:
        """The held checkpoints, for the runtime to commit with the outcome (in front of it)."""
        ops, self._held = self._held, []
        return ops

    async def _commit(self, ops: list[StepWrite]) -> None:
        try:
            results = await self.committer.call_many(ops)
        except StoreUnavailableError as exc:
            self._store_down(exc)
        if not all(results):
            self.abort()
            raise LeaseLost()

    def write_soon(self, op: StepWrite) -> None:
        """Queue a checkpoint without waiting for it (bookkeeping nobody depends on)."""
        if not self.aborted:
            self.committer.submit(op).add_done_callback(_ignore_result)

    @contextlib.asynccontextmanager
    async def store_call(self) -> AsyncIterator[None]:
        """Around the engine's own store calls inside a step (sending events, creating a child
        run): the store being unavailable stops the run, as in :meth:`write`."""
        try:
            yield
        except StoreUnavailableError as exc:
            self._store_down(exc)

    def _store_down(self, exc: StoreUnavailableError) -> NoReturn:
        log.warning(
            "run %s: the store is unavailable (%s); the run stops here and resumes from its "
            "checkpoints when its lease expires",
            self.run_id,
            exc,
        )
        self.abort()
        raise LeaseLost() from exc

    async def expire_step(self, key: str) -> StoredStep:
        """A wait or invoke step whose deadline passed: time it out (unless it was resolved
        meanwhile) and return it as now recorded."""
        await self.flush()
        async with self.store_call():
            step = await self.store.expire_step(self.run_id, self.token, key)
        if step is None:
            self.abort()
            raise LeaseLost()
        return step


def _ignore_result(fut: Any) -> None:
    if not fut.cancelled():
        with contextlib.suppress(BaseException):
            fut.result()
