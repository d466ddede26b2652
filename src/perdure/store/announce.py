"""Wake-up announcements: the ``on_wake`` and ``on_finished`` callbacks of a store."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class Announcer:
    """Holds a store's callbacks and calls them (on the event loop that calls :meth:`announce`).

    ``wake`` callbacks learn that work may be claimable; ``finished`` callbacks get the ids of
    runs that reached a terminal state.
    """

    __slots__ = ("_finished", "_wake")

    def __init__(self) -> None:
        self._wake: list[Callable[[], None]] = []
        self._finished: list[Callable[[Sequence[str]], None]] = []

    def on_wake(self, callback: Callable[[], None]) -> None:
        """Register a wake-up callback."""
        self._wake.append(callback)

    def on_finished(self, callback: Callable[[Sequence[str]], None]) -> None:
        """Register a callback for finished runs."""
        self._finished.append(callback)

    def announce(self, wake: bool, finished: Sequence[str] = ()) -> None:
        """Call the wake-up callbacks (if ``wake``) and the finished callbacks (if any run
        finished)."""
        if wake:
            for cb in list(self._wake):
                cb()
        if finished:
            for fcb in list(self._finished):
                fcb(finished)
