"""A TCP proxy in front of PostgreSQL that a test can take down and bring back (an outage as
clients see it: every connection dropped, new ones refused)."""

from __future__ import annotations

import asyncio
import contextlib


class Proxy:
    """A TCP proxy in front of PostgreSQL that a test can take down and bring back."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.handlers: set[asyncio.Task[None]] = set()
        self.up = False

    async def start(self) -> None:
        self.up = True
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.up = False
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        # A handler still connecting upstream sees ``up`` false and drops its client; abort
        # what is open until every handler is gone (one that connected during the first pass
        # registers its streams after it, which a single pass would leave open for good).
        while self.handlers:
            for w in list(self.writers):
                w.transport.abort()
            self.writers.clear()
            await asyncio.wait(set(self.handlers), timeout=0.1)

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self._forward(cr, cw)
        finally:
            self.handlers.discard(task)

    async def _forward(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            sr, sw = await asyncio.open_connection(*self.target)
        except OSError:
            cw.transport.abort()
            return
        if not self.up:  # taken down while connecting upstream
            cw.transport.abort()
            sw.transport.abort()
            return
        self.writers |= {cw, sw}

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.transport.abort()

        await asyncio.gather(pipe(cr, sw), pipe(sr, cw))
        self.writers -= {cw, sw}
