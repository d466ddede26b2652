"""One prepared statement straight through libpq, for the dedicated connections' hot path.

A single-row checkpoint, end or run creation is one short statement on a connection that
nothing else uses at that moment (:class:`~perdure.store.postgres.pool.Dedicated`). Through
psycopg's cursor it cost ~145 µs of client CPU per statement on the benchmark machine; the
statement itself (``PQsendQueryPrepared`` and reading its result) costs ~25 µs of it. This
module sends it with :mod:`psycopg.pq` directly: parameters dumped and rows loaded by psycopg's
own (C) :class:`~psycopg.adapt.Transformer`, so values come back exactly as a cursor gives
them, errors are psycopg's own classes (a deadlock is still ``TransactionRollback``, a lost
connection ``OperationalError``), and the wait for the socket is one reader callback on the
event loop. Measured on one connection, ``synchronous_commit=off``, a single-row ``INSERT``:
psycopg's async cursor 164-177 µs a statement (144-147 µs CPU), this path 138-143 µs
(85-103 µs CPU).

Only statements whose every parameter is cast in the SQL (``%(name)s::type``) belong here:
parameters travel as text, without type OIDs, and the server takes their types from the casts
(the rule of :mod:`perdure.store.postgres.queries` already).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, LiteralString

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import PyFormat, Transformer
from psycopg.pq import ExecStatus
from psycopg.rows import TupleRow

_PARAM = re.compile(r"%\((\w+)\)s|%%")
_OK = (ExecStatus.TUPLES_OK, ExecStatus.COMMAND_OK)


class Compiled:
    """A statement in libpq's form: ``$n`` placeholders, and the parameters' names in order."""

    __slots__ = ("formats", "name", "names", "sql")

    def __init__(self, name: bytes, sql: bytes, names: tuple[str, ...]) -> None:
        self.name = name
        self.sql = sql
        self.names = names
        self.formats = [PyFormat.TEXT] * len(names)


_compiled: dict[str, Compiled] = {}


def compiled(stmt: LiteralString) -> Compiled:
    """``stmt`` (psycopg's ``%(name)s`` placeholders) compiled once per process."""
    found = _compiled.get(stmt)
    if found is not None:
        return found
    names: list[str] = []

    def place(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:
            return "%"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    sql = _PARAM.sub(place, stmt)
    found = Compiled(f"perdure_raw_{len(_compiled)}".encode(), sql.encode(), tuple(names))
    _compiled[stmt] = found
    return found


class RawConn:
    """Prepared statements of one connection, executed through libpq (one caller at a time:
    the owner serializes its use, as :class:`~perdure.store.postgres.pool.Dedicated` does)."""

    def __init__(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        self.conn = conn
        self._prepared: set[bytes] = set()
        self._tx = Transformer(conn)

    async def execute(self, stmt: LiteralString, params: dict[str, Any]) -> list[TupleRow]:
        """Run ``stmt`` with ``params`` in its own transaction (autocommit); its rows."""
        c = compiled(stmt)
        pg = self.conn.pgconn
        if c.name not in self._prepared:
            pg.send_prepare(c.name, c.sql)
            self._check(await self._result())
            self._prepared.add(c.name)
        tx = self._tx
        values = tx.dump_sequence([params[n] for n in c.names], c.formats)
        pg.send_query_prepared(c.name, values)
        res = self._check(await self._result())
        if res.status != ExecStatus.TUPLES_OK:
            return []
        tx.set_pgresult(res)
        try:
            return tx.load_rows(0, res.ntuples, tuple)
        finally:
            tx.set_pgresult(None)

    def _check(self, res: Any) -> Any:
        if res is None:
            raise psycopg.OperationalError("the connection returned no result")
        if res.status not in _OK:
            raise pg_errors.error_from_result(res, encoding=self.conn.info.encoding)
        return res

    async def _result(self) -> Any:
        """The last result of the statement just sent (waiting on the socket as needed)."""
        pg = self.conn.pgconn
        loop = asyncio.get_running_loop()
        while pg.flush():
            await _ready(loop, pg.socket, write=True)
        last = None
        while True:
            pg.consume_input()
            if pg.is_busy():
                await _ready(loop, pg.socket)
                continue
            res = pg.get_result()
            if res is None:
                return last
            last = res


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, write: bool = False) -> None:
    fut: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await fut
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
