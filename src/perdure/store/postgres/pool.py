"""The PostgreSQL store's connections: one :class:`psycopg_pool.AsyncConnectionPool`, how a
piece of work runs on it (failures translated, aborted transactions retried), and the two
shapes of a write: one autocommit statement, or several statements in one transaction sent in
*pipeline mode* (``BEGIN``, the statements and ``COMMIT`` travel together: one round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from perdure import faults
from perdure.errors import StoreUnavailableError
from perdure.store.postgres import queries as q
from perdure.store.postgres.raw import RawConn
from perdure.store.postgres.schema import PgConfig

T = TypeVar("T")
Conn = psycopg.AsyncConnection[TupleRow]
Statement = tuple[LiteralString, dict[str, Any]]

_MAX_RETRIES = 8


def unavailable(exc: BaseException) -> StoreUnavailableError:
    """The error a caller sees when PostgreSQL cannot be reached."""
    return StoreUnavailableError(f"PostgreSQL is unavailable: {exc}")


class Pool:
    """The connection pool of one store (closed until :meth:`open`, and after :meth:`close`:
    work then raises :class:`~perdure.errors.StoreUnavailableError`)."""

    def __init__(self, cfg: PgConfig, name: str) -> None:
        self._cfg = cfg
        self._name = name
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._closed = False
        self._check_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the pool and wait for its first connections."""
        cfg = self._cfg
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            cfg.conninfo,
            kwargs={"autocommit": True, **cfg.kwargs},
            min_size=cfg.pool_min_size,
            max_size=cfg.pool_max_size,
            timeout=cfg.pool_timeout,
            open=False,
            name=self._name,
        )
        self._pool = pool
        await pool.open(wait=True, timeout=cfg.pool_timeout)

    async def close(self) -> None:
        """Close every connection (idempotent; the pool stays closed)."""
        self._closed = True
        task, self._check_task = self._check_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def run(self, fn: Callable[[Conn], Awaitable[T]], *, read: bool = False) -> T:
        """Run ``fn`` on a pooled connection, translating connection failures into
        StoreUnavailableError and retrying transactions PostgreSQL rolled back (deadlocks,
        serialization failures). A read is also retried once after a connection error."""
        attempt = 0
        while True:
            pool = self._pool
            if pool is None or self._closed:
                raise StoreUnavailableError("the store is closed")
            try:
                async with pool.connection() as conn:
                    return await fn(conn)
            except psycopg.errors.TransactionRollback as exc:
                if attempt >= _MAX_RETRIES:
                    raise StoreUnavailableError(f"PostgreSQL kept aborting: {exc}") from exc
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
            except PoolClosed as exc:
                raise StoreUnavailableError("the store is closed") from exc
            except PoolTimeout as exc:
                self._recheck()
                raise unavailable(exc) from exc
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._recheck()
                if not read or attempt >= 1:
                    raise unavailable(exc) from exc
            attempt += 1

    async def read_all(self, stmt: LiteralString, params: dict[str, Any]) -> list[TupleRow]:
        """The rows of one read."""

        async def op(conn: Conn) -> list[TupleRow]:
            return await (await conn.execute(stmt, params)).fetchall()

        return await self.run(op, read=True)

    async def read_one(self, stmt: LiteralString, params: dict[str, Any]) -> TupleRow | None:
        """The first row of one read."""

        async def op(conn: Conn) -> TupleRow | None:
            return await (await conn.execute(stmt, params)).fetchone()

        return await self.run(op, read=True)

    def _recheck(self) -> None:
        """After a connection error, test the idle connections in the background."""
        pool = self._pool
        if pool is None or self._closed:
            return
        if self._check_task is None or self._check_task.done():
            self._check_task = asyncio.get_running_loop().create_task(
                _check(pool), name="perdure-pg-pool-check"
            )


async def _check(pool: AsyncConnectionPool[Conn]) -> None:
    with contextlib.suppress(Exception):
        await pool.check()


async def write_one(conn: Conn, stmt: LiteralString, params: dict[str, Any]) -> list[TupleRow]:
    """One statement, its own transaction."""
    faults.hit("before_commit")
    cur = await conn.execute(stmt, params)
    rows = await cur.fetchall() if cur.description is not None else []
    faults.hit("after_commit")
    return rows


async def transaction(conn: Conn, statements: Sequence[Statement]) -> list[list[TupleRow]]:
    """Several statements in one transaction and one round trip (pipeline mode)."""
    cursors = []
    try:
        async with conn.pipeline():
            await conn.execute(q.BEGIN)
            for stmt, params in statements:
                cursors.append(await conn.execute(stmt, params))
            faults.hit("before_commit")
            await conn.execute(q.COMMIT)
    except BaseException:
        await rollback_quietly(conn)
        raise
    faults.hit("after_commit")
    out = []
    for cur in cursors:
        out.append(await cur.fetchall() if cur.description is not None else [])
    return out


async def in_transaction(conn: Conn, body: Callable[[Conn], Awaitable[T]]) -> T:
    """``body`` inside ``BEGIN`` .. ``COMMIT`` (for statements that depend on each other's
    results; rolled back on any error)."""
    try:
        await conn.execute(q.BEGIN)
        result = await body(conn)
        faults.hit("before_commit")
        await conn.execute(q.COMMIT)
    except BaseException:
        await rollback_quietly(conn)
        raise
    faults.hit("after_commit")
    return result


async def rollback_quietly(conn: Conn) -> None:
    """Roll back an open transaction, if the connection still has one (errors ignored)."""
    if conn.closed:
        return
    if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        with contextlib.suppress(Exception):
            await conn.rollback()


class Dedicated:
    """One connection outside the pool for a serialized caller (the worker's committer, the
    starts of single runs): no pool checkout and return per statement.

    It is opened on first use and reopened after a failure; failures are translated as by
    :meth:`Pool.run` (the caller sees :class:`~perdure.errors.StoreUnavailableError`, aborted
    transactions are retried). A call that arrives while the connection is busy, or while
    it is being opened, runs on the pool instead: concurrent callers never queue behind it.
    """

    def __init__(self, cfg: PgConfig, pool: Pool) -> None:
        self._cfg = cfg
        self._pool = pool
        self._conn: Conn | None = None
        self._raw: RawConn | None = None
        self._busy = False
        self._closed = False

    async def run(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` on the dedicated connection (or on the pool when it is busy)."""
        if self._busy or self._closed:
            return await self._pool.run(fn)
        self._busy = True
        try:
            return await self._run(fn)
        finally:
            self._busy = False

    async def write_one(self, stmt: LiteralString, params: dict[str, Any]) -> list[TupleRow]:
        """:func:`write_one` on the dedicated connection, sent through libpq directly
        (:mod:`perdure.store.postgres.raw`); on the pool, when busy, through psycopg."""
        if self._busy or self._closed:
            return await self._pool.run(lambda conn: write_one(conn, stmt, params))
        return await self.run(lambda conn: self._raw_write(conn, stmt, params))

    async def _raw_write(
        self, conn: Conn, stmt: LiteralString, params: dict[str, Any]
    ) -> list[TupleRow]:
        raw = self._raw
        if raw is None or raw.conn is not conn:
            raw = self._raw = RawConn(conn)
        faults.hit("before_commit")
        rows = await raw.execute(stmt, params)
        faults.hit("after_commit")
        return rows

    async def _run(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                conn = self._conn
                if conn is None or conn.closed:
                    conn = self._conn = await self._connect()
                try:
                    return await fn(conn)
                finally:
                    if conn.info.transaction_status != TransactionStatus.IDLE:
                        await self.drop()  # interrupted mid-statement: never reuse it
            except psycopg.errors.TransactionRollback as exc:
                if attempt >= _MAX_RETRIES:
                    raise StoreUnavailableError(f"PostgreSQL kept aborting: {exc}") from exc
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
            except (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError) as exc:
                await self.drop()
                if self._closed:
                    raise StoreUnavailableError("the store is closed") from exc
                raise unavailable(exc) from exc
            attempt += 1

    async def _connect(self) -> Conn:
        if self._closed:
            raise StoreUnavailableError("the store is closed")
        cfg = self._cfg
        conn = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(cfg.conninfo, autocommit=True, **cfg.kwargs),
            cfg.pool_timeout,
        )
        if self.closed:  # closed while connecting
            await conn.close()
            raise StoreUnavailableError("the store is closed")
        return conn

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def drop(self) -> None:
        """Close the connection (the next call opens a new one)."""
        conn, self._conn = self._conn, None
        self._raw = None
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """Close the connection for good: later calls go to the (closed) pool."""
        self._closed = True
        await self.drop()
