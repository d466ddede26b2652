"""Serving the ASGI app with uvicorn inside the caller's event loop.

``perdure dev`` runs the server and a worker in one asyncio loop; the caller owns signal
handling (uvicorn's own handlers are disabled) and stops the server by cancelling
:func:`serve`, which then shuts down gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

GRACEFUL_SECONDS = 5


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The caller handles SIGINT/SIGTERM and cancels serve().
        yield


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
    asgi: Any, sock: socket.socket, *, log_level: str = "warning", access_log: bool = False
) -> None:
    """Serve ``asgi`` on ``sock`` until cancelled, then shut down gracefully (open requests
    get up to a few seconds)."""
    config = uvicorn.Config(
        asgi,
        log_config=None,
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        server_header=False,
    )
    server = _Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.wait({task})
    finally:
        server.should_exit = True
        await asyncio.wait({task})
    task.result()
