"""The SQLite backend's single writer thread and its group commit, and the inline fast path.

Every write is a closure queued to one thread. The thread takes everything queued, runs it in
*one* ``BEGIN IMMEDIATE`` transaction (each closure in its own savepoint, so one failing closure
fails alone), commits, and only then resolves the callers' futures. Under load one fsync covers
hundreds of checkpoints; with no load a write costs one commit. ``sqlite3`` releases the GIL
while it waits on the disk, so the event loop keeps executing runs during a commit. A busy
database (another process holding the lock) is retried a few times with a short backoff.

**Inline writes.** Handing a write to the thread and back costs more than a small write itself
(a thread wake-up each way and two loop iterations). So a *small* write (``submit(op,
small=True)``) submitted on the store's loop while the writer thread is idle (nothing queued
or executing) first yields to the loop once -- writes submitted in the same loop iteration go
to the queue meanwhile and are grouped there, as under load -- and then, if the thread is still
idle, runs on the loop thread itself. When no other callback is due in the loop's current
iteration (asyncio's ready queue is empty: nothing else can submit a write before this one
would run), it does not yield: the yield only costs a loop iteration then. A lock that the
writer thread holds for each batch keeps the two paths from overlapping; a write only goes
inline when nothing is queued before it (FIFO). The inline attempt never waits on another
process's lock (busy timeout 0): on ``SQLITE_BUSY`` it goes to the writer thread, which waits
and retries as for any write.

**WAL checkpoints** are off the commit path: the write connection has
``wal_autocheckpoint=0``; every :data:`CHECKPOINT_ITEMS` committed writes a ``PASSIVE``
checkpoint runs on the reader thread (its own connection: it does not hold up writes) and
copies the bulk of the WAL into the database. Writes committed while it runs keep the WAL from
restarting (it would grow without bound), so the writer thread then finishes the job between
two batches: a second ``PASSIVE`` checkpoint with no write of this process in between, which
only has the pages written meanwhile to copy; the next write restarts the WAL from its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
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

CHECKPOINT_ITEMS = 300
"""Committed writes between two background WAL checkpoints (~13 pages per sequential run of 3
steps, 5 writes: about the 1,000 pages of SQLite's default auto-checkpoint)."""
WAL_LIMIT_BYTES = 4 << 20
"""A WAL file larger than this after a writer-thread batch starts a checkpoint at once (a batch
under load holds many writes: counting writes alone would let the WAL grow); the WAL file is
truncated back to this size when it restarts (``journal_size_limit``)."""
WAL_GROWTH_BYTES = 1 << 20
"""How much the WAL file must grow past its size at the last checkpoint before its size alone
starts another one (see :func:`checkpoint_due`)."""


def checkpoint_due(writes: int, wal_bytes: int, wal_trigger: int) -> bool:
    """Whether a background checkpoint is due after ``writes`` committed writes since the last
    one, with the WAL file at ``wal_bytes`` (0: not measured) and ``wal_trigger`` the size that
    calls for one (:func:`next_wal_trigger`)."""
    return writes >= CHECKPOINT_ITEMS or wal_bytes > wal_trigger


def next_wal_trigger(wal_bytes: int, wal_trigger: int) -> int:
    """The WAL size that calls for the next checkpoint, once one starts at ``wal_bytes``.

    The WAL file's size is its high-water mark, not what it holds: after a checkpoint the log
    restarts from the file's start without shrinking it (below ``journal_size_limit``). A file
    that once grew past the limit would otherwise start a checkpoint after every writer-thread
    batch, and each queued checkpoint sends the next small writes to the writer thread (a
    cascade: measured 2.2 checkpoints per sequential run instead of one per ~75). Only growth
    past the size the last checkpoint saw says that the log holds more than it did."""
    if wal_bytes <= 0:
        return wal_trigger
    return max(WAL_LIMIT_BYTES, wal_bytes + WAL_GROWTH_BYTES)


@dataclass(slots=True)
class Tx:
    """What a write closure sees: the connection, the batch's time, and what to announce."""

    conn: sqlite3.Connection
    now: float
    wake: bool = False
    finished: list[str] = field(default_factory=list)
    steps: list[tuple[Any, ...]] = field(default_factory=list)
    """Step rows of a checkpoint batch not written yet (see ``commit.flush_steps``)."""


Op = Callable[[Tx], Any]
_Result = tuple[asyncio.Future[Any], Any, BaseException | None]
_FALLBACK: Any = object()  # the inline attempt found the database busy: use the writer thread


class _Item:
    __slots__ = ("fut", "loop", "op")

    def __init__(self, op: Op, fut: asyncio.Future[Any], loop: asyncio.AbstractEventLoop):
        self.op = op
        self.fut = fut
        self.loop = loop


_CHECKPOINT_NOW = _Item.__new__(_Item)  # queued: the writer thread checkpoints after its batch


def connect(path: str, synchronous: str, busy_ms: int) -> sqlite3.Connection:
    """A connection with the backend's pragmas (WAL, ``synchronous``, busy timeout)."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_ms / 1000
    )
    for pragma in q.PRAGMAS:
        conn.execute(pragma)
    conn.execute(q.SET_SYNCHRONOUS.format(synchronous))
    conn.execute(q.SET_BUSY_TIMEOUT.format(int(busy_ms)))
    conn.execute(q.NO_AUTOCHECKPOINT)
    conn.execute(q.SET_JOURNAL_SIZE_LIMIT.format(WAL_LIMIT_BYTES))
    return conn


def translate(exc: Exception) -> BaseException:
    """The error a caller sees for a failed write (a locked or broken database is
    :class:`~perdure.errors.StoreUnavailableError`)."""
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailableError(f"SQLite error: {exc}")
    return exc


def _wal_bytes(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", sqlite3.SQLITE_BUSY)
    return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _others_ready(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether other callbacks are due in the loop's current iteration (they could submit
    writes that should group with this one). asyncio's own loop keeps them in ``_ready``; with
    no such queue to look at (another loop implementation), assume there are."""
    ready = getattr(loop, "_ready", None)
    return ready is None or len(ready) > 0


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
    announced on ``loop`` (the store's event loop) through ``announcer``. Background WAL
    checkpoints run on ``reader`` (a one-thread executor) over ``reader_conn``.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        clock: Clock,
        announcer: Announcer,
        loop: asyncio.AbstractEventLoop,
        *,
        busy_ms: int,
        reader: Executor,
        reader_conn: sqlite3.Connection,
        wal_path: str,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._announcer = announcer
        self._loop = loop
        self._reader = reader
        self._rconn = reader_conn
        self._wal_path = wal_path
        self._no_wait: str = q.SET_BUSY_TIMEOUT.format(0)
        self._wait: str = q.SET_BUSY_TIMEOUT.format(int(busy_ms))
        self._lock = threading.Lock()  # held by whoever runs a transaction on ``conn``
        self._waits = True  # ``conn``'s busy timeout is ``busy_ms`` (else 0); ``_lock``
        self._count = threading.Lock()  # guards ``_pending``
        self._pending = 0  # items queued to or executing on the writer thread
        self._candidate = False  # a small write is yielding before going inline
        self._deferred: list[_Item] = []  # writes submitted while it yields (behind it)
        self._since_checkpoint = 0  # writes committed since the last checkpoint (``_lock``)
        self._checkpointing = False  # a background checkpoint is queued or running
        self._wal_trigger = WAL_LIMIT_BYTES  # a WAL file above this starts one (``_lock``)
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._loop_forever, name="perdure-sqlite-writer", daemon=True
        )
        self._thread.start()

    async def submit(self, op: Callable[[Tx], T], small: bool = False, single: bool = False) -> T:
        """Run ``op`` in the next group commit; its result once the commit is durable.

        ``small``: ``op`` is a short write (a few rows) that may run inline on the loop thread
        when the writer thread is idle (see the module's documentation). ``single``: ``op``
        executes exactly one statement, so that inline it runs as its own (autocommit)
        transaction, without ``BEGIN`` and ``COMMIT`` (one statement is atomic by itself);
        grouped on the writer thread it joins the batch's transaction as any write does."""
        loop = asyncio.get_running_loop()
        if self._candidate and loop is self._loop:
            # A small write is yielding before it decides: this one goes behind it (FIFO).
            fut = loop.create_future()
            self._deferred.append(_Item(op, fut, loop))
            return await fut  # type: ignore[no-any-return]
        if small and loop is self._loop and self._pending == 0:
            if _others_ready(loop):
                self._candidate = True
                try:
                    await asyncio.sleep(0)  # writes submitted meanwhile queue (and group) behind
                finally:
                    self._candidate = False
                    deferred, self._deferred = self._deferred, []
            else:
                deferred = []
            if not deferred and self._pending == 0 and self._lock.acquire(blocking=False):
                try:
                    value, tx = self._run_inline(op, single)
                finally:
                    self._lock.release()
                if value is not _FALLBACK:
                    if tx.wake or tx.finished:
                        self._announcer.announce(tx.wake, tx.finished)
                    return value  # type: ignore[no-any-return]
            fut = loop.create_future()
            self._enqueue([_Item(op, fut, loop), *deferred])
            return await fut  # type: ignore[no-any-return]
        fut = loop.create_future()
        self._enqueue([_Item(op, fut, loop)])
        return await fut  # type: ignore[no-any-return]

    def _enqueue(self, items: list[_Item]) -> None:
        """Queue writes to the writer thread, in order."""
        with self._count:
            self._pending += len(items)
        for item in items:
            self._queue.put(item)

    async def stop(self) -> None:
        """Finish the queued writes and stop the thread."""
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    def _run_inline(self, op: Op, single: bool = False) -> tuple[Any, Tx]:
        """One attempt of ``op`` in its own transaction, on the calling thread (``_lock``
        held); ``_FALLBACK`` if the database is busy. Errors are those of the writer path.

        ``single``: ``op`` is one statement, its own (autocommit) transaction: no ``BEGIN``
        and ``COMMIT`` around it (measured: 14-15 us less per write, in both ``synchronous``
        modes); the commit's fault points bracket the statement, and any failure of it (a
        busy database, or its commit) is retried on the writer thread."""
        conn = self._conn
        tx = Tx(conn, 0.0)
        if self._waits:  # set once for a series of inline writes, not per write
            conn.execute(self._no_wait)
            self._waits = False
        if not single:
            try:
                conn.execute(q.BEGIN)
            except sqlite3.OperationalError:
                return _FALLBACK, tx  # the writer thread waits and retries
        tx.now = self._clock.now()
        try:
            if single:
                faults.hit("before_commit")
            value = op(tx)
        except Exception as exc:
            if conn.in_transaction:  # a failed single statement has rolled itself back
                conn.execute(q.ROLLBACK)
            if isinstance(exc, sqlite3.OperationalError) and (single or _busy(exc)):
                return _FALLBACK, tx
            err = translate(exc)
            if err is exc:
                raise
            raise err from exc
        try:
            if not single:
                faults.hit("before_commit")
                conn.execute(q.COMMIT)
            faults.hit("after_commit")
        except Exception as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(q.ROLLBACK)
            if isinstance(exc, sqlite3.OperationalError):
                return _FALLBACK, tx  # retried on the writer thread, as a failed COMMIT is
            raise
        self._committed(1)
        return value, tx

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
            writes = [item for item in batch if item is not _CHECKPOINT_NOW]
            with self._lock:
                if not self._waits:
                    self._conn.execute(self._wait)
                    self._waits = True
                if len(writes) < len(batch):
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute(q.CHECKPOINT)
                    self._checkpointing = False
                if writes:
                    self._run_batch(writes)
                    self._committed(len(writes), _wal_bytes(self._wal_path))
            with self._count:
                self._pending -= len(batch)

    def _committed(self, writes: int, wal_bytes: int = 0) -> None:
        """Count committed writes (``_lock`` held); start a background checkpoint when due."""
        self._since_checkpoint += writes
        if self._checkpointing:
            return
        if not checkpoint_due(self._since_checkpoint, wal_bytes, self._wal_trigger):
            return
        self._since_checkpoint = 0
        self._wal_trigger = next_wal_trigger(wal_bytes, self._wal_trigger)
        self._checkpointing = True
        try:
            self._reader.submit(self._checkpoint)
        except RuntimeError:  # the reader is shut down: the store is closing
            self._checkpointing = False

    def _checkpoint(self) -> None:
        """A PASSIVE checkpoint on the reader thread; then the writer thread's, between two
        batches, so that the WAL can restart (see the module's documentation)."""
        try:
            pages = self._rconn.execute(q.CHECKPOINT).fetchone()[1]
        except sqlite3.Error:
            pages = 1
        if pages == 0:  # the WAL is empty
            self._checkpointing = False
            return
        with self._count:
            self._pending += 1
        self._queue.put(_CHECKPOINT_NOW)  # clears ``_checkpointing`` once done

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
