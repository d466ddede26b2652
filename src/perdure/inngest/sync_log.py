"""What the servers of one database saw of the Inngest apps' syncs: each app's last
registration (with its SDK and framework) and last attempt, and the outcome of the last sync
``PUT`` sent to each app URL (``-u`` polling, a resync from the dashboard). The registry says
which apps and functions exist; this log adds when they last synced and what went wrong.

It is kept in the database (the environment's ``app_syncs`` table,
:mod:`perdure.store.app_syncs`): a restarted server, or another server of the same database,
reports the same. Each attempt is one small upsert; a row holds the last attempt only. A write
that fails (the database unreachable) is logged and dropped: the sync itself is not undone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from perdure.app import App
from perdure.errors import PerdureError
from perdure.store.app_syncs import AppSyncIn, AppSyncRow, clip

__all__ = ["AppSeen", "SyncAttempt", "SyncLog", "SyncView", "same_url"]

log = logging.getLogger("perdure.inngest")


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


@dataclass(frozen=True, slots=True)
class AppSeen:
    """What the log knows of one app."""

    app_id: str
    url: str
    sdk: str | None = None
    framework: str | None = None
    last_synced_at: float | None = None
    last_attempt: SyncAttempt | None = None


@dataclass(frozen=True, slots=True)
class SyncView:
    """The log as read at one moment: the apps by id, the last ``PUT`` by URL
    (:func:`same_url`)."""

    apps: dict[str, AppSeen] = field(default_factory=dict)
    puts: dict[str, SyncAttempt] = field(default_factory=dict)


def _attempt(row: AppSyncRow) -> SyncAttempt:
    return SyncAttempt(row.attempt_at, row.ok, row.error, row.source)


class SyncLog:
    """The log of ``app``'s database (see the module docstring)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def _record(self, sync: AppSyncIn) -> SyncAttempt:
        try:
            await self.app.open()
            return _attempt(await self.app.store.record_app_sync(sync))
        except PerdureError as exc:
            log.warning("could not record a sync of %s %r: %s", sync.kind, sync.name, exc)
            return SyncAttempt(time.time(), sync.ok, sync.error, sync.source)

    async def registered(
        self, app_id: str, url: str, sdk: str | None, framework: str | None
    ) -> None:
        """The app registered (its functions are in the registry now)."""
        sdk, framework = (None if v is None else clip(v) for v in (sdk, framework))
        await self._record(
            AppSyncIn("app", clip(app_id), True, "register", url=clip(url), synced=True, sdk=sdk,
                      framework=framework)
        )  # fmt: skip

    async def refused(self, app_id: str, url: str, message: str) -> None:
        """A registration of the app was refused (nothing was written); an empty ``url``
        keeps the one recorded."""
        await self._record(
            AppSyncIn("app", clip(app_id), False, "register", clip(message), clip(url) or None)
        )

    async def put(self, url: str, ok: bool, error: str | None, source: str) -> SyncAttempt:
        """The outcome of a sync ``PUT`` to ``url``."""
        key = clip(same_url(url))
        return await self._record(
            AppSyncIn("url", key, ok, source, None if error is None else clip(error), clip(url))
        )

    async def forget(self, app_ids: list[str]) -> None:
        """The apps were removed: their rows go (a URL's last ``PUT`` stays)."""
        try:
            await self.app.open()
            await self.app.store.delete_app_syncs("app", app_ids)
        except PerdureError as exc:
            log.warning("could not forget the syncs of %s: %s", ", ".join(app_ids), exc)

    async def read(self) -> SyncView:
        """Every row, as a :class:`SyncView`."""
        await self.app.open()
        view = SyncView()
        for row in await self.app.store.list_app_syncs():
            if row.kind == "app":
                view.apps[row.name] = AppSeen(
                    app_id=row.name,
                    url=row.url,
                    sdk=row.sdk,
                    framework=row.framework,
                    last_synced_at=row.synced_at,
                    last_attempt=_attempt(row),
                )
            else:
                view.puts[row.name] = _attempt(row)
        return view
