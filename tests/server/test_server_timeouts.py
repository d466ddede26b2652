"""Slow and idle clients cannot hold connections: the server of :func:`perdure.server.serve`
(the one ``perdure dev`` and ``perdure server`` run), on a real socket, with short timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import perdure
from perdure.server import bind_socket, create_app, serve

HEALTH = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
DEADLINE = 20.0  # generous: how long a test waits for the server to close a connection


@contextlib.contextmanager
def serving(asgi: Any, app: perdure.App | None = None, **options: Any) -> Iterator[int]:
    """Run ``serve(asgi, ...)`` in a thread of its own; yield the port."""
    sock = bind_socket("127.0.0.1", 0)
    port: int = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    tasks: list[asyncio.Task[None]] = []
    ready = threading.Event()

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            if app is not None:
                await stack.enter_async_context(app)
            await serve(asgi, sock, **options)

    def run() -> None:
        asyncio.set_event_loop(loop)
        tasks.append(loop.create_task(main()))
        ready.set()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(tasks[0])
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(DEADLINE)
    try:
        _wait_until_serving(port)
        yield port
    finally:
        loop.call_soon_threadsafe(tasks[0].cancel)
        thread.join(DEADLINE)
        sock.close()
        assert not thread.is_alive(), "the server did not stop"


def _wait_until_serving(port: int) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                if _read_until_closed(s).startswith(b"HTTP/1.1 "):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the server never answered")
        time.sleep(0.05)


def _read_until_closed(sock: socket.socket, timeout: float = DEADLINE) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def _closed_after(sock: socket.socket) -> float:
    """Seconds until the server closes ``sock`` (fails after :data:`DEADLINE`)."""
    start = time.monotonic()
    try:
        _read_until_closed(sock)
    except TimeoutError:
        raise AssertionError(f"the connection was still open after {DEADLINE} s") from None
    return time.monotonic() - start


@pytest.fixture
def app(sqlite_url: str) -> perdure.App:
    return perdure.App("timeouts", sqlite_url)


def test_a_client_that_never_finishes_its_headers_is_disconnected(app: perdure.App) -> None:
    with serving(create_app(app, dev=True, api_token=None), app, header_timeout=1.0) as port:
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        try:
            for s in socks:
                s.sendall(b"GET /api/v1/runs HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            waited = [_closed_after(s) for s in socks]
        finally:
            for s in socks:
                s.close()
    assert max(waited) < 10, waited


def test_trickling_header_bytes_does_not_extend_the_deadline(app: perdure.App) -> None:
    asgi = create_app(app, dev=True, api_token=None)
    with (
        serving(asgi, app, header_timeout=1.0) as port,
        socket.create_connection(("127.0.0.1", port)) as s,
    ):
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < DEADLINE:
            try:
                s.sendall(b"X")  # one byte of a header name, forever
            except OSError:
                closed = True
                break
            s.settimeout(0.2)
            try:
                if s.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:
                closed = True
                break
        elapsed = time.monotonic() - start
    assert closed and elapsed < 10, elapsed


def test_a_silent_connection_and_an_idle_keep_alive_are_closed(app: perdure.App) -> None:
    asgi = create_app(app, dev=True, api_token=None)
    with serving(asgi, app, header_timeout=1.0, keep_alive_timeout=1) as port:
        with socket.create_connection(("127.0.0.1", port)) as silent:
            assert _closed_after(silent) < 10
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            s.settimeout(DEADLINE)
            first = s.recv(65536)
            assert first.startswith(b"HTTP/1.1 200"), first
            s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")  # then stalls
            rest = _read_until_closed(s)
            assert b"HTTP/1.1" not in rest  # no second response: the head never completed


def test_a_stalled_body_is_cut_off(app: perdure.App) -> None:
    asgi = create_app(app, dev=True, api_token=None)
    with serving(asgi, app, header_timeout=1.0, body_timeout=1.0) as port:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(
                b"POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[{"
            )
            assert _closed_after(s) < 10
        # the server still works
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(
                b"POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                b'Content-Type: application/json\r\nContent-Length: 15\r\n\r\n{"name": "a.b"}'
            )
            assert _read_until_closed(s).startswith(b"HTTP/1.1 200")


def test_a_slow_response_is_not_cut_by_the_header_timeout() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/slow":
            await asyncio.sleep(2.5)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    with (
        serving(slow, header_timeout=0.5) as port,
        socket.create_connection(("127.0.0.1", port)) as s,
    ):
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = _read_until_closed(s)
    assert response.startswith(b"HTTP/1.1 200") and b"\r\ndone\r\n" in response, response


def test_connections_beyond_the_limit_are_answered_503(app: perdure.App) -> None:
    asgi = create_app(app, dev=True, api_token=None)
    with serving(asgi, app, max_connections=4, header_timeout=30.0) as port:
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        try:
            deadline = time.monotonic() + DEADLINE
            while True:  # until the server has accepted the four
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(
                        b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                    )
                    response = _read_until_closed(s)
                if response.startswith(b"HTTP/1.1 503"):
                    break
                assert time.monotonic() < deadline, response
                time.sleep(0.05)
        finally:
            for s in held:
                s.close()
