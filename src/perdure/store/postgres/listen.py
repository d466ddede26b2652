"""The LISTEN side of the PostgreSQL backend's wake-ups.

One dedicated connection (outside the pool) listens on the store's channels and hands every
notification to a callback on the event loop. When the connection drops it reconnects by
itself, with exponential backoff, and reports the reconnection (notifications sent meanwhile
are lost, so the store treats a reconnection as "anything may have happened").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from perdure.store.postgres import queries as q

log = logging.getLogger("perdure.store.postgres")

# Seconds between liveness checks of an idle listening connection.
_IDLE_CHECK = 30.0
_BACKOFF_MIN = 0.1
_BACKOFF_MAX = 5.0


class Listener:
    """LISTEN on ``channels``; call ``on_notify(channel, payload)`` for each notification and
    ``on_reconnect()`` after the connection was re-established."""

    def __init__(
        self,
        conninfo: str,
        kwargs: dict[str, Any],
        channels: Sequence[str],
        on_notify: Callable[[str, str], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self._conninfo = conninfo
        self._kwargs = kwargs
        self._channels = list(channels)
        self._on_notify = on_notify
        self._on_reconnect = on_reconnect
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Connect and listen (raises if the first connection fails), then keep listening in
        the background."""
        self._conn = await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="perdure-pg-listener")

    async def close(self) -> None:
        """Stop listening and close the connection."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._close_conn()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, **self._kwargs
        )
        try:
            for channel in self._channels:
                await conn.execute(sql.SQL(q.LISTEN).format(sql.Identifier(channel)))
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _run(self) -> None:
        backoff = _BACKOFF_MIN
        while not self._closed:
            try:
                if self._conn is None:
                    self._conn = await self._connect()
                    backoff = _BACKOFF_MIN
                    log.info("the PostgreSQL listener reconnected")
                    self._on_reconnect()
                await self._listen(self._conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "the PostgreSQL listener lost its connection (%s); retrying in %.1fs",
                    exc,
                    backoff,
                )
                await self._close_conn()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        while not self._closed:
            async for note in conn.notifies(timeout=_IDLE_CHECK):
                self._on_notify(note.channel, note.payload)
            # Idle for a while: make sure the connection is still alive.
            await conn.execute(q.ALIVE)
