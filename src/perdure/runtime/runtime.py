"""The runtime object: what workers, schedulers and drivers share in one process.

It is deliberately small: the store, the group committer every checkpoint and outcome goes
through, the payload limits, the retention of ended runs, the hub (finished runs, local workers)
and the client operations a step may need. The :class:`~perdure.app.App` owns one; the runtime
never sees the App.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from perdure.clock import Clock
from perdure.environments import DEFAULT_ENV, check_env
from perdure.limits import Limits
from perdure.runtime.batching import Batcher
from perdure.runtime.hub import RunHub
from perdure.runtime.metrics import NO_METRICS, RunMetrics
from perdure.runtime.ports import ClientOps
from perdure.runtime.tracing import resolve as resolve_tracing
from perdure.store import env_url, open_store
from perdure.store.base import Store, WriteOp

if TYPE_CHECKING:
    from perdure.runtime.otel import RunTracer


class Runtime:
    """The shared parts of the runtime, bound to one database (opened on first use)."""

    def __init__(
        self,
        database_url: str,
        *,
        clock: Clock | None = None,
        limits: Limits | None = None,
        retention: timedelta | None = None,
        env: str = DEFAULT_ENV,
        tracing: Any = None,
    ) -> None:
        self.database_url = database_url
        self.env = check_env(env)
        """The environment (:mod:`perdure.environments`): which tables of the database."""
        self.clock = clock
        self.limits = limits or Limits()
        self.retention = retention
        self.hub = RunHub()
        self.metrics: RunMetrics = NO_METRICS
        """Where the runtime's counts go (the HTTP server attaches its Prometheus metrics)."""
        # Automatic tracing is decided now and again when the runtime opens (a provider may be
        # configured after App()); a missing extra for explicit tracing is reported by App().
        self._tracing = tracing
        self.tracer: RunTracer | None = resolve_tracing(tracing)
        """The OpenTelemetry spans of runs and steps, ``None`` when tracing is off
        (:mod:`perdure.runtime.tracing`)."""
        self.client: ClientOps | None = None
        """Set by the client layer: what ``invoke`` and ``send_event`` steps call."""
        self._store: Store | None = None
        self._committer: Batcher[WriteOp, bool] | None = None
        self._open_lock: asyncio.Lock | None = None

    @property
    def is_open(self) -> bool:
        """Whether the store is open."""
        return self._store is not None

    @property
    def store(self) -> Store:
        """The opened store."""
        if self._store is None:
            raise RuntimeError("the app is not open: use `async with app:` or `await app.open()`")
        return self._store

    @property
    def committer(self) -> Batcher[WriteOp, bool]:
        """The group committer of checkpoints and outcomes (one transaction per flush)."""
        if self._committer is None:
            raise RuntimeError("the runtime is not open")
        return self._committer

    @property
    def ops(self) -> ClientOps:
        """The client operations (set by the client layer)."""
        if self.client is None:
            raise RuntimeError("no client operations are attached to this runtime")
        return self.client

    async def open(self) -> None:
        """Connect to the database and apply migrations (idempotent)."""
        if self._store is not None:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self.is_open:  # opened while this call waited for the lock
                return
            if self._tracing is None and self.tracer is None:
                self.tracer = resolve_tracing(None)
            store = open_store(env_url(self.database_url, self.env), clock=self.clock)
            await store.open()
            store.on_finished(self.hub.finished_elsewhere)
            self._committer = Batcher(store.commit, max_batch=2000)
            self._store = store

    async def close(self) -> None:
        """Flush what is queued and close the store."""
        if self._store is None:
            return
        if self._committer is not None:
            await self._committer.drain()
        await self._store.close()
        self._store = None
        self._committer = None
