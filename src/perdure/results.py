"""Waiting for run outcomes (``handle.result()``) without a read per waiter.

A waiter is told at once by a worker of this process (through the hub) when it finishes the
run; otherwise one poller per event loop reads every awaited run in one query, backing off from
``_POLL_SECONDS`` to ``_POLL_MAX_SECONDS`` while nothing ends, cut short by the store's
notifications. Runs a local worker holds are not polled: that worker reports them itself.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from perdure.errors import RunNotFoundError
from perdure.runtime.runtime import Runtime
from perdure.types import TERMINAL_STATUSES

_RECENT = 4096
_POLL_SECONDS = 0.1
_POLL_MAX_SECONDS = 1.0


@dataclass(slots=True)
class RunOutcome:
    """How a run ended: its terminal status, and its output or error (JSON text)."""

    status: str
    output: str | None
    error: str | None


class ResultWaiter:
    """The awaited outcomes of one runtime's runs."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._waiters: dict[str, list[asyncio.Future[RunOutcome]]] = {}
        self._pollers: dict[
            asyncio.AbstractEventLoop, tuple[asyncio.Task[None], asyncio.Event]
        ] = {}
        self._recent: collections.OrderedDict[str, RunOutcome] = collections.OrderedDict()
        self._closing = False
        runtime.hub.on_finished(self.finished)
        runtime.hub.on_finished_elsewhere(self._finished_elsewhere)

    def finished(self, run_id: str, status: str, output: str | None, error: str | None) -> None:
        """A run of this process ended (its outcome committed): settle its waiters."""
        outcome = RunOutcome(status, output, error)
        self._recent[run_id] = outcome
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        for fut in self._waiters.pop(run_id, ()):
            _settle(fut, outcome)

    def _finished_elsewhere(self, run_ids: Sequence[str]) -> None:
        """The store says these runs ended (another process, or a notification): look now."""
        held = self.runtime.hub.held_locally
        if any(r in self._waiters and not held(r) for r in run_ids):
            for loop, (_, poll_now) in list(self._pollers.items()):
                with contextlib.suppress(RuntimeError):  # that loop is closed
                    loop.call_soon_threadsafe(poll_now.set)

    async def wait(self, run_id: str, timeout: float | None, *, check_first: bool) -> RunOutcome:
        """Wait for a run's outcome (``check_first``: read it once before waiting)."""
        recent = self._recent.get(run_id)
        if recent is not None:
            return recent
        store = self.runtime.store
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[RunOutcome] = loop.create_future()
        self._waiters.setdefault(run_id, []).append(fut)
        try:
            if check_first:
                row = await store.get_run(run_id)
                if row is None:
                    raise RunNotFoundError(f"no run with id {run_id!r}")
                if row.status in TERMINAL_STATUSES:
                    return RunOutcome(row.status, row.output, row.error)
            poller = self._pollers.get(loop)
            if poller is None or poller[0].done():
                poll_now = asyncio.Event()
                task = loop.create_task(self._poll(poll_now))
                self._pollers[loop] = (task, poll_now)
            try:
                return await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise TimeoutError(f"run {run_id} did not finish within {timeout}s") from None
        finally:
            waiters = self._waiters.get(run_id)
            if waiters is not None and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    del self._waiters[run_id]

    async def _poll(self, poll_now: asyncio.Event) -> None:
        """While anyone in this loop awaits a result, read the awaited runs' states (one query
        per 500 runs), for runs ended by other processes."""
        loop = asyncio.get_running_loop()
        interval = _POLL_SECONDS
        held = self.runtime.hub.held_locally
        try:
            while self.runtime.is_open and self._waiters and not self._is_closing():
                poll_now.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await poll_now.wait()
                if self._is_closing():
                    break
                interval = min(interval * 1.5, _POLL_MAX_SECONDS)
                one_loop = len(self._pollers) == 1
                mine = [
                    r
                    for r, futs in self._waiters.items()
                    if (one_loop or any(f.get_loop() is loop for f in futs)) and not held(r)
                ]
                for start in range(0, len(mine), 500):
                    try:
                        ended = await self.runtime.store.ended_runs(mine[start : start + 500])
                    except Exception:  # the store is down or closing: try again later
                        break
                    for run in ended:
                        interval = _POLL_SECONDS
                        outcome = RunOutcome(run.status, run.output, run.error)
                        for fut in self._waiters.get(run.id, ()):
                            _settle(fut, outcome)
        finally:
            if self._pollers.get(loop, (None,))[0] is asyncio.current_task():
                del self._pollers[loop]

    def _is_closing(self) -> bool:
        return self._closing

    def reopen(self) -> None:
        """The runtime was opened (again): polling may resume."""
        self._closing = False

    async def close(self) -> None:
        """Let the pollers finish their current read rather than cancel them mid-query."""
        self._closing = True
        for loop, (task, poll_now) in list(self._pollers.items()):
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(poll_now.set)
            if loop is asyncio.get_running_loop():
                try:
                    await asyncio.wait_for(asyncio.shield(task), 2.0)
                except (TimeoutError, Exception):
                    task.cancel()
            else:
                loop.call_soon_threadsafe(task.cancel)


def _settle(fut: asyncio.Future[RunOutcome], outcome: RunOutcome) -> None:
    """Resolve a result future, from its own loop or another thread's."""

    def settle() -> None:
        if not fut.done():
            fut.set_result(outcome)

    loop = fut.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        settle()
    else:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)
