"""Registering Inngest apps, and the dev server's polling of app URLs.

:class:`AppRegistry` is what ``POST /fn/register`` and ``DELETE /fn/remove`` do: the app's
functions are stored through the normal registry (``store.register_functions``), so every
process on the database routes events to them, and handed to the server's Inngest driver. A
re-sync *replaces* the app's function set: functions it no longer declares are deleted from the
registry (``store.remove_functions``): no event triggers them and their crons stop; their runs
that have not ended are cancelled with a reason naming the function (they cannot execute any
more: see :mod:`perdure.inngest.watch`). A sync whose payload is byte-for-byte the last one
of the app answers ``modified: false`` without writing (Inngest's checksum rule).

:class:`AppPoller` is ``perdure dev -u URL``: it sends the sync ``PUT`` to each URL at start
and then every poll interval (only to the URLs whose last sync failed with ``--no-poll``), as
the Inngest dev server does; in ``perdure dev`` it also looks for apps on local ports while
none is synced (:mod:`perdure.inngest.discovery`, off with ``--no-discovery``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from perdure.app import App
from perdure.errors import InvalidInputError, PerdureError
from perdure.inngest.auth import InngestKeys
from perdure.inngest.discovery import discover
from perdure.inngest.driver import InngestDriver
from perdure.inngest.functions import InngestApp, InngestFunction, parse_register
from perdure.inngest.sync_log import SyncLog
from perdure.inngest.watch import RegistryWatcher, retire_runs

log = logging.getLogger("perdure.inngest")

__all__ = ["AppPoller", "AppRegistry", "ConflictError", "SyncResult", "sync_put"]

_NAMESPACE = uuid.UUID("1f0c6a5e-5b8a-4c1e-9a61-3c8a2f4e7d10")
PING_TIMEOUT = 10.0


class ConflictError(PerdureError):
    """The function id belongs to another app or to a native function."""

    code = "conflict"


@dataclass(frozen=True)
class SyncResult:
    """What a registration did (the ``/fn/register`` answer)."""

    app_id: str
    """A stable UUID for the app (Inngest's ``app_id``)."""
    sync_id: str
    modified: bool
    functions: tuple[str, ...]
    removed: tuple[str, ...]


def app_uuid(app_id: str) -> str:
    """The stable UUID of an app name."""
    return str(uuid.uuid5(_NAMESPACE, app_id))


class AppRegistry:
    """The Inngest apps of one server: registration, removal, and loading at start."""

    def __init__(self, app: App, driver: InngestDriver) -> None:
        self.app = app
        self.driver = driver
        self._checksums: dict[str, str] = {}
        self._lock = asyncio.Lock()
        self.log = SyncLog(app)
        """The syncs the servers of the database saw (:mod:`perdure.inngest.sync_log`)."""
        self.watcher = RegistryWatcher(app, driver)
        """Keeps this server's driver current with syncs made through other servers; its
        listeners hear of every change (see :mod:`perdure.inngest.watch`)."""

    async def load(self) -> list[InngestApp]:
        """Rebuild the driver's functions from the registry (a restarted server hosts the
        apps synced before)."""
        await self.app.open()
        await self.watcher.refresh()
        return self.watcher.apps

    async def register(self, payload: Any, body: bytes = b"") -> SyncResult:
        """Register an app from a ``/fn/register`` payload (``body``: its raw bytes, for the
        unchanged-sync check). InvalidInputError for an invalid payload, ConflictError for a
        function id another app or a native function has; nothing is written then."""
        try:
            return await self._register(payload, body)
        except (InvalidInputError, ConflictError) as exc:
            if isinstance(payload, dict) and isinstance(payload.get("appName"), str):
                url = payload.get("url")
                await self.log.refused(
                    payload["appName"], url if isinstance(url, str) else "", exc.message
                )
            raise

    async def _register(self, payload: Any, body: bytes) -> SyncResult:
        app = parse_register(payload, retry_policy=self.app.retry_policy)
        checksum = hashlib.sha256(body).hexdigest() if body else ""
        async with self._lock:
            await self.app.open()
            store = self.app.store
            records = await store.list_functions()
            existing = {r.id: r for r in records}
            wanted = {f.id for f in app.functions}
            for fid in sorted(wanted):
                other = existing.get(fid)
                if other is None:
                    continue
                fn = InngestFunction.from_record(other)
                if fn is None:
                    raise ConflictError(
                        f"function id {fid!r} is a native perdure function of app "
                        f"{other.app!r}; rename the Inngest function"
                    )
                if fn.app_id != app.id:
                    raise ConflictError(
                        f"function id {fid!r} belongs to the Inngest app {fn.app_id!r}"
                    )
            removed = sorted(
                r.id
                for r in records
                if r.id not in wanted
                and (fn := InngestFunction.from_record(r)) is not None
                and fn.app_id == app.id
            )
            current = {f.id for f in self.driver.functions.values() if f.app_id == app.id}
            unchanged = (
                checksum != ""
                and self._checksums.get(app.id) == checksum
                and not removed
                and current == wanted
                and all(fid in existing for fid in wanted)
            )
            if not unchanged:
                if app.functions:
                    await store.register_functions([f.record() for f in app.functions])
                if removed:
                    await store.remove_functions(removed)
                self.driver.replace_app(app)
                self.watcher.changed()
                if checksum:
                    self._checksums[app.id] = checksum
                log.info(
                    "synced Inngest app %r from %s: %d function(s)%s",
                    app.id,
                    app.url,
                    len(app.functions),
                    f", removed {', '.join(removed)}" if removed else "",
                )
        await self.log.registered(app.id, app.url, app.sdk, app.framework)
        if removed:
            await retire_runs(self.app, removed, app.id)
        return SyncResult(
            app_id=app_uuid(app.id),
            sync_id=str(uuid.uuid4()),
            modified=not unchanged,
            functions=tuple(f.id for f in app.functions),
            removed=tuple(removed),
        )

    async def remove(self, url: str | None = None, app_id: str | None = None) -> list[str]:
        """Remove the apps served at ``url`` (or named ``app_id``) with their functions;
        return the function ids removed."""
        if url is None and app_id is None:
            raise InvalidInputError("give the app's url (or its id) to remove it")
        async with self._lock:
            await self.app.open()
            gone: list[str] = []
            apps: set[str] = set()
            owner: dict[str, str] = {}
            for record in await self.app.store.list_functions():
                fn = InngestFunction.from_record(record)
                if fn is None:
                    continue
                if (url is not None and _same_url(fn.app_url, url)) or fn.app_id == app_id:
                    gone.append(fn.id)
                    apps.add(fn.app_id)
                    owner[fn.id] = fn.app_id
            if gone:
                await self.app.store.remove_functions(gone)
            for name in apps:
                self.driver.replace_app(InngestApp(name, "", None, None, ()))
                self._checksums.pop(name, None)
            if apps:
                self.watcher.changed()
        if apps:
            await self.log.forget(sorted(apps))
        for name in sorted(apps):
            await retire_runs(self.app, [f for f in gone if owner[f] == name], name)
        return sorted(gone)


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


@dataclass
class PollState:
    """What the poller knows of one app URL."""

    url: str
    ok: bool = False
    error: str | None = None
    attempts: int = 0
    last_status: int | None = None
    body: Any = field(default=None, repr=False)


async def sync_put(
    http: httpx.AsyncClient,
    state: PollState,
    server_kind: str,
    keys: InngestKeys | None = None,
    timeout: float = PING_TIMEOUT,
) -> None:
    """Send the sync ``PUT`` to ``state.url`` as the Inngest dev server does (signed with
    ``keys`` in self-hosted mode): the SDK then registers with this server. The outcome
    (``ok``, ``error``, ``last_status``, ``body``) is kept in ``state``."""
    body = orjson.dumps({"url": state.url})
    headers = {"X-Inngest-Server-Kind": server_kind, "Content-Type": "application/json"}
    if keys is not None:
        body, headers["X-Inngest-Signature"] = keys.sign_body(body, time.time())
    try:
        response = await http.put(state.url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        state.ok, state.error, state.last_status = False, f"unreachable: {exc}", None
        return
    state.last_status = response.status_code
    state.body = None
    with contextlib.suppress(ValueError):
        state.body = response.json()
    # Python apps answer 200 with the server's JSON even when registration failed.
    failed = isinstance(state.body, dict) and (
        state.body.get("ok") is False or "error" in state.body
    )
    if response.status_code >= 400 or failed:
        message = None
        if isinstance(state.body, dict):
            message = state.body.get("error") or state.body.get("message")
        state.ok = False
        state.error = f"sync failed ({response.status_code}): {message or response.text[:200]}"
    else:
        state.ok, state.error = True, None


class AppPoller:
    """Sends the sync ``PUT`` to app URLs: once at start, then every ``interval`` seconds to
    every URL (``poll``) or only to those whose last sync failed (``poll=False``). With
    ``keys`` (self-hosted mode) each ``PUT`` is signed."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        interval: float = 5.0,
        poll: bool = True,
        server_kind: str = "dev",
        http: httpx.AsyncClient | None = None,
        keys: InngestKeys | None = None,
        discover_ports: Sequence[int] = (),
        has_apps: Callable[[], bool] | None = None,
    ) -> None:
        if interval <= 0:
            raise InvalidInputError(f"the poll interval must be positive, got {interval:g}")
        self.states = {u: PollState(u) for u in dict.fromkeys(urls)}
        self.discover_ports = list(discover_ports)
        """Local ports probed for SDK apps while ``has_apps()`` is false (autodiscovery,
        :mod:`perdure.inngest.discovery`; empty: off)."""
        self.has_apps = has_apps or (lambda: False)
        self.interval = interval
        self.poll = poll
        self.server_kind = server_kind
        self.keys = keys
        self._http = http
        self._own_http = http is None
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.on_result: Callable[[PollState], Awaitable[None]] | None = None
        """Told the outcome of every ``PUT`` (the sync log: :mod:`perdure.inngest.apps`)."""

    async def ping(self, state: PollState) -> None:
        """One sync ``PUT`` to an app URL; its outcome is kept in ``state`` (and told to
        ``on_result``)."""
        state.attempts += 1
        await sync_put(self._client(), state, self.server_kind, self.keys)
        if self.on_result is not None:
            await self.on_result(state)

    async def tick(self) -> None:
        """One pass: discover apps (while none is synced), then ping the URLs due one."""
        if self.discover_ports and not self.has_apps():
            for url in await discover(self._client(), self.discover_ports):
                if url not in self.states:
                    log.info("discovered an Inngest SDK app at %s", url)
                    self.states[url] = PollState(url)
        due = [s for s in self.states.values() if self.poll or not s.ok or s.attempts == 0]
        await asyncio.gather(*(self.ping(s) for s in due))
        self.passes += 1
        for s in due:
            if s.error is not None:
                log.warning("app %s: %s", s.url, s.error)

    async def run(self) -> None:
        """Ping at once, then every interval, until cancelled."""
        while True:
            await self.tick()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Run in the background of the running loop."""
        if self._task is None and (self.states or self.discover_ports):
            self._task = asyncio.get_running_loop().create_task(self.run(), name="inngest-poll")

    async def stop(self) -> None:
        """Stop polling and close the HTTP client this poller made."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient()
        return self._http
