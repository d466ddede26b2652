"""The SQLite backend's single writer thread and its group commit.

Every write is a closure queued to one thread. The thread takes everything queued, runs it in
*one* ``BEGIN IMMEDIATE`` transaction (each closure in its own savepoint, so one failing closure
fails alone), commits, and only then resolves the callers' futures. Under load one fsync covers
hundreds of checkpoints; with no load a write costs one commit. ``sqlite3`` releases the GIL
while it waits on the disk, so the event loop keeps executing runs during a commit. A busy
database (another process holding the lock) is retried a few times with a short backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from perdure import faults
from perdure.clock import Clock
from perdure.errors import StoreUnavailableError
from perdure.store.announce import Announcer
from perdure.store.sqlite import queries as q

T = TypeVar("T")

_MAX_BATCH = 2000
_ATTEMPTS = 8


@dataclass(slots=True)
class Tx:
    """What a write closure sees: the connection, the batch's time, and what to announce."""

    conn: sqlite3.Connection
    now: float
    wake: bool = False
    finished: list[str] = field(default_factory=list)


Op = Callable[[Tx], Any]
_Result = tuple[asyncio.Future[Any], Any, BaseException | None]


class _Item:
    __slots__ = ("fut", "loop", "op")

    def __init__(self, op: Op, fut: asyncio.Future[Any], loop: asyncio.AbstractEventLoop):
        self.op = op
        self.fut = fut
        self.loop = loop


def connect(path: str, synchronous: str, busy_ms: int) -> sqlite3.Connection:
    """A connection with the backend's pragmas (WAL, ``synchronous``, busy timeout)."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_ms / 1000
    )
    for pragma in q.PRAGMAS:
        conn.execute(pragma)
    conn.execute(q.SET_SYNCHRONOUS.format(synchronous))
    conn.execute(q.SET_BUSY_TIMEOUT.format(int(busy_ms)))
    return conn


def translate(exc: Exception) -> BaseException:
    """The error a caller sees for a failed write (a locked or broken database is
    :class:`~perdure.errors.StoreUnavailableError`)."""
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailableError(f"SQLite error: {exc}")
    return exc


def _resolve(results: list[_Result]) -> None:
    for fut, value, exc in results:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


class Writer:
    """The writer thread of one store: :meth:`submit` a closure, await its result.

    After each commit, what the batch's closures flagged (``Tx.wake``, ``Tx.finished``) is
    announced on ``loop`` (the store's event loop) through ``announcer``.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        clock: Clock,
        announcer: Announcer,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._announcer = announcer
        self._loop = loop
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._loop_forever, name="perdure-sqlite-writer", daemon=True
        )
        self._thread.start()

    async def submit(self, op: Callable[[Tx], T]) -> T:
        """Run ``op`` in the next group commit; its result once the commit is durable."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Item(op, fut, loop))
        return await fut

    async def stop(self) -> None:
        """Finish the queued writes and stop the thread."""
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    def _loop_forever(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Item]) -> None:
        conn = self._conn
        outcomes: list[tuple[Any, BaseException | None]] = []
        tx = Tx(conn, self._clock.now())
        for attempt in range(_ATTEMPTS):
            last = attempt == _ATTEMPTS - 1
            outcomes = []
            tx = Tx(conn, self._clock.now())
            try:
                conn.execute(q.BEGIN)
            except sqlite3.OperationalError as exc:
                if last:
                    busy = StoreUnavailableError(f"SQLite is busy: {exc}")
                    outcomes = [(None, busy)] * len(batch)
                    break
                time.sleep(0.01 * (attempt + 1))
                continue
            if len(batch) == 1:
                try:
                    outcomes.append((batch[0].op(tx), None))
                except Exception as exc:
                    conn.execute(q.ROLLBACK)
                    outcomes = [(None, translate(exc))]
                    tx.wake = False
                    tx.finished = []
                    break
            for item in batch if len(batch) > 1 else ():
                if item.fut.cancelled():
                    outcomes.append((None, None))
                    continue
                conn.execute(q.SAVEPOINT)
                try:
                    outcomes.append((item.op(tx), None))
                    conn.execute(q.RELEASE)
                except Exception as exc:
                    conn.execute(q.ROLLBACK_TO)
                    conn.execute(q.RELEASE)
                    outcomes.append((None, translate(exc)))
            try:
                faults.hit("before_commit")
                conn.execute(q.COMMIT)
                faults.hit("after_commit")
                break
            except Exception as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute(q.ROLLBACK)
                if last or not isinstance(exc, sqlite3.OperationalError):
                    err = translate(exc)
                    outcomes = [(None, err)] * len(batch)
                    tx.wake = False
                    tx.finished = []
                    break
                time.sleep(0.01 * (attempt + 1))
        self._deliver(batch, outcomes, tx)

    def _deliver(
        self, batch: list[_Item], outcomes: list[tuple[Any, BaseException | None]], tx: Tx
    ) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
        for item, (value, error) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(item.loop, []).append((item.fut, value, error))
        announce = tx.wake or bool(tx.finished)
        for loop, results in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop closed
                if announce and loop is self._loop:
                    # One wake-up of the loop for both the results and the announcement.
                    loop.call_soon_threadsafe(
                        self._resolve_and_announce, results, tx.wake, tx.finished
                    )
                    announce = False
                else:
                    loop.call_soon_threadsafe(_resolve, results)
        if announce:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._announcer.announce, tx.wake, tx.finished)

    def _resolve_and_announce(
        self, results: list[_Result], wake: bool, finished: list[str]
    ) -> None:
        _resolve(results)
        self._announcer.announce(wake, finished)
