"""What one server saw of the Inngest apps' syncs: each app's last registration (with its SDK
and framework) and the outcome of each sync ``PUT`` it sent (``-u`` polling, a resync from the
dashboard). It is kept in memory, per server process: the registry in the database says which
apps and functions exist, this log adds when they last synced here and what went wrong. A
restarted server (or another server of the same database) starts with an empty log."""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["AppSeen", "SyncAttempt", "SyncLog", "same_url"]


def same_url(url: str) -> str:
    """The form URLs are compared in (without a trailing ``/``)."""
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class SyncAttempt:
    """One sync: when (epoch seconds), whether it worked, why not, and how it came:
    ``register`` (the app posted ``/fn/register``), ``poll`` (the ``-u`` poller's ``PUT``) or
    ``resync`` (a ``PUT`` asked for through the API)."""

    at: float
    ok: bool
    error: str | None
    source: str


@dataclass(slots=True)
class AppSeen:
    """What the log knows of one app."""

    app_id: str
    url: str
    sdk: str | None = None
    framework: str | None = None
    last_synced_at: float | None = None
    last_attempt: SyncAttempt | None = None


class SyncLog:
    """The log (see the module docstring)."""

    def __init__(self) -> None:
        self.apps: dict[str, AppSeen] = {}
        self.puts: dict[str, SyncAttempt] = {}
        """The last ``PUT`` outcome, by URL (:func:`same_url`)."""

    def registered(self, app_id: str, url: str, sdk: str | None, framework: str | None) -> None:
        """The app registered (its functions are in the registry now)."""
        now = time.time()
        seen = self.apps.setdefault(app_id, AppSeen(app_id, url))
        seen.url, seen.sdk, seen.framework = url, sdk, framework
        seen.last_synced_at = now
        seen.last_attempt = SyncAttempt(now, True, None, "register")

    def refused(self, app_id: str, url: str, message: str) -> None:
        """A registration of the app was refused (nothing was written)."""
        seen = self.apps.setdefault(app_id, AppSeen(app_id, url))
        seen.url = url or seen.url
        seen.last_attempt = SyncAttempt(time.time(), False, message, "register")

    def put(self, url: str, ok: bool, error: str | None, source: str) -> SyncAttempt:
        """The outcome of a sync ``PUT`` to ``url``."""
        attempt = SyncAttempt(time.time(), ok, error, source)
        self.puts[same_url(url)] = attempt
        return attempt
