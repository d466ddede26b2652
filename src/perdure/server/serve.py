"""Serving the ASGI app with uvicorn inside the caller's event loop.

``perdure dev`` runs the server and a worker in one asyncio loop; the caller owns signal
handling (uvicorn's own handlers are disabled) and stops the server by cancelling
:func:`serve`, which then shuts down gracefully.

Slow or idle clients cannot hold connections: a request's head (line and headers) must arrive
within :data:`HEADER_TIMEOUT` seconds of the connection opening or of the previous response,
a body that stalls for :data:`BODY_TIMEOUT` seconds is cut off, an idle keep-alive connection
is closed after :data:`KEEP_ALIVE_TIMEOUT` seconds, a head is at most :data:`MAX_HEAD_BYTES`
bytes (400 above), and beyond :data:`MAX_CONNECTIONS` open connections requests are answered
503 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

GRACEFUL_SECONDS = 5
HEADER_TIMEOUT = 10.0
"""Seconds a client has to send a request's line and headers."""
BODY_TIMEOUT = 30.0
"""Seconds a request body may stall (no byte received) before the connection is closed."""
KEEP_ALIVE_TIMEOUT = 5
"""Seconds an idle keep-alive connection is kept open."""
MAX_HEAD_BYTES = 16 * 1024
"""The largest request line and headers, in bytes."""
MAX_CONNECTIONS = 1024
"""Open connections (and requests in progress) beyond which requests are answered 503."""


class _TimedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on reading each request's head and on
    stalls in its body (uvicorn itself only times out idle keep-alive connections)."""

    header_timeout = HEADER_TIMEOUT
    body_timeout = BODY_TIMEOUT
    _read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._head_expired)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.SEND_BODY:
            self._arm(self.body_timeout, self._body_expired)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm(self.header_timeout, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        super().connection_lost(exc)

    def _arm(self, delay: float, callback: Any) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = self.loop.call_later(delay, callback)

    def _busy(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _head_expired(self) -> None:
        # still no complete head, and no response in progress (which re-arms when it ends)
        if self.conn.their_state is h11.IDLE and not self._busy():
            self._close()

    def _body_expired(self) -> None:
        if self.conn.their_state is h11.SEND_BODY:
            self._close()

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


class _Server(uvicorn.Server):
    before_shutdown: Callable[[], None] | None = None
    """Called when shutting down, before the open requests are awaited (it ends the
    dashboard's live streams, which would otherwise hold the shutdown for its timeout)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The caller handles SIGINT/SIGTERM and cancels serve().
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.before_shutdown is not None:
            self.before_shutdown()
        await super().shutdown(sockets=sockets)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port). Raises ``OSError``
    with a readable message when the address cannot be used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot listen on {display_host(host)}:{port}: {exc.strerror or exc}"
        ) from None
    return sock


def display_host(host: str) -> str:
    """``host`` as written in a URL."""
    return f"[{host}]" if ":" in host else host


def socket_url(sock: socket.socket, host: str) -> str:
    """The base URL a listening socket serves."""
    port = sock.getsockname()[1]
    return f"http://{display_host(host)}:{port}"


async def serve(
    asgi: Any,
    sock: socket.socket,
    *,
    log_level: str = "warning",
    access_log: bool = False,
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    keep_alive_timeout: int = KEEP_ALIVE_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> None:
    """Serve ``asgi`` on ``sock`` until cancelled, then shut down gracefully (open requests
    get up to a few seconds). The timeouts and the connection limit are described in the
    module docstring."""
    protocol = type(
        "PerdureH11Protocol",
        (_TimedH11,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
    config = uvicorn.Config(
        asgi,
        http=protocol,
        log_config=None,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        timeout_keep_alive=keep_alive_timeout,
        limit_concurrency=max_connections,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        server_header=False,
    )
    server = _Server(config)
    server.before_shutdown = getattr(getattr(asgi, "state", None), "perdure_close_streams", None)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.wait({task})
    finally:
        server.should_exit = True
        await asyncio.wait({task})
    task.result()
