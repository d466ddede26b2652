"""The sync twins' bridge: a private event loop on a daemon thread, for code outside asyncio.

``app.start_sync(...)`` and friends run their coroutine on this loop and block for the result.
The loop starts on first use and stops when the app closes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class SyncBridge:
    """Runs coroutines on a private loop thread and blocks for their results."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        """Whether the loop thread is running."""
        return self._loop is not None

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop and return its result (not from inside asyncio)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("use the async method inside asyncio (this is the sync twin)")
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="perdure-sync", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def stop(self) -> None:
        """Stop the loop thread (from a coroutine running elsewhere)."""
        if self._loop is None:
            return
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def close_with(self, closer: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``closer()`` on the private loop (it may close the app), then stop the loop."""
        if self._loop is None:
            return
        loop = self._loop
        asyncio.run_coroutine_threadsafe(self._close(closer, loop), loop).result()
        self._loop = None
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if not loop.is_running():
            loop.close()

    async def _close(
        self, closer: Callable[[], Coroutine[Any, Any, None]], loop: asyncio.AbstractEventLoop
    ) -> None:
        # While the app closes on this loop, it must not try to stop this loop itself.
        self._loop = None
        try:
            await closer()
        finally:
            self._loop = loop
