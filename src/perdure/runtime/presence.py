"""A worker's row in the workers registry (:mod:`perdure.store.operations`).

A worker writes one small upsert when it starts and then every ``interval`` seconds (its id,
host, pid, app, hosted functions, slots total and in use): the cost is one tiny write every few
seconds per worker, never one per run. It marks its row stopped on a clean shutdown. A worker
that dies without stopping (SIGKILL, a lost machine) stops beating: once its last heartbeat is
older than ``stale_after`` (three intervals) it is no longer live. Every worker also deletes,
at most every ten minutes, the rows of workers not seen for :data:`FORGET_AFTER` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from perdure.errors import StoreUnavailableError
from perdure.store.base import Store
from perdure.store.operations import WorkerBeat

__all__ = ["DEFAULT_INTERVAL", "FORGET_AFTER", "Presence"]

log = logging.getLogger("perdure.worker")

DEFAULT_INTERVAL = 5.0
"""Seconds between a worker's beats, unless its lease asks for more often (a third of it)."""
FORGET_AFTER = 3600.0
"""Rows of workers not seen for this long are deleted (``?all=true`` lists the others)."""
_PRUNE_EVERY = 600.0
STALE_BEATS = 3
"""A worker whose last beat is older than this many intervals is not live."""


class Presence:
    """Keeps one worker's registry row fresh (started by :class:`~perdure.runtime.Worker`)."""

    def __init__(
        self, store: Store, snapshot: Callable[[float], WorkerBeat], interval: float
    ) -> None:
        if interval <= 0:
            raise ValueError("the heartbeat interval must be positive")
        self.store = store
        self.interval = interval
        self.stale_after = interval * STALE_BEATS
        self._snapshot = snapshot
        self._last_prune = float("-inf")

    async def beat(self) -> None:
        """Write the row now (a store outage is logged; the next beat tries again)."""
        try:
            await self.store.beat_worker(self._snapshot(self.stale_after))
            now = self.store.now()
            if now - self._last_prune >= _PRUNE_EVERY:
                self._last_prune = now
                await self.store.prune_workers(now - FORGET_AFTER)
        except StoreUnavailableError as exc:
            log.warning("worker heartbeat (registry) failed: %s", exc)

    async def run(self) -> None:
        """Beat every interval until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await self.beat()

    async def stopped(self, worker_id: str) -> None:
        """Mark the row stopped (a clean shutdown; best effort)."""
        with contextlib.suppress(Exception):
            await self.store.stop_worker(worker_id)
