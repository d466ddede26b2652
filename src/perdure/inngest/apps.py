"""The Inngest apps of one server, for the REST API (:class:`perdure.server.apps.AppSource`):
the apps of the registry with what the server's sync log saw of them, and a resync, which
sends the app's URL the sync ``PUT`` (as the Inngest dev server does, signed in self-hosted
mode) and records the outcome."""

from __future__ import annotations

import httpx

from perdure.inngest.auth import InngestKeys
from perdure.inngest.sync import AppPoller, AppRegistry, PollState, sync_put
from perdure.inngest.sync_log import SyncAttempt, same_url
from perdure.inngest.watch import stored_apps
from perdure.server.apps import AppInfo, AppNotFoundError, SyncInfo

__all__ = ["AppDirectory"]


def _info(attempt: SyncAttempt | None) -> SyncInfo | None:
    if attempt is None:
        return None
    return SyncInfo(attempt.at, attempt.ok, attempt.error, attempt.source)


def _latest(*attempts: SyncAttempt | None) -> SyncAttempt | None:
    present = [a for a in attempts if a is not None]
    return max(present, key=lambda a: a.at) if present else None


class AppDirectory:
    """The apps of ``registry`` (see the module docstring); ``poller``'s ``PUT`` outcomes go
    to the registry's sync log too, and its URLs are listed even before they register."""

    def __init__(
        self,
        registry: AppRegistry,
        *,
        poller: AppPoller | None = None,
        server_kind: str = "dev",
        keys: InngestKeys | None = None,
    ) -> None:
        self.registry = registry
        self.log = registry.log
        self.poller = poller
        self.server_kind = server_kind
        self.keys = keys
        if poller is not None:
            poller.on_result = self._polled

    def _polled(self, state: PollState) -> None:
        self.log.put(state.url, state.ok, state.error, "poll")

    async def list_apps(self) -> list[AppInfo]:
        """The registry's apps by id, then apps the log saw refused, then the poller's URLs
        that match no app."""
        stored = stored_apps(await self.registry.app.query.list_functions())
        out: list[AppInfo] = []
        urls: set[str] = set()
        for app in stored:
            out.append(self._app(app.id, app.url, sorted(f.id for f in app.functions)))
            urls.add(same_url(app.url))
        known = {a.id for a in stored}
        for app_id in sorted(set(self.log.apps) - known):
            seen = self.log.apps[app_id]
            out.append(self._app(app_id, seen.url, []))
            urls.add(same_url(seen.url))
        polled = [] if self.poller is None else list(self.poller.states)
        for url in polled:
            if same_url(url) not in urls:
                attempt = _info(self.log.puts.get(same_url(url)))
                out.append(AppInfo(None, url, [], None, None, None, attempt))
        return out

    def _app(self, app_id: str, url: str, functions: list[str]) -> AppInfo:
        seen = self.log.apps.get(app_id)
        put = self.log.puts.get(same_url(url)) if url else None
        last = _latest(None if seen is None else seen.last_attempt, put)
        return AppInfo(
            id=app_id,
            url=url,
            functions=functions,
            sdk=None if seen is None else seen.sdk,
            framework=None if seen is None else seen.framework,
            last_synced_at=None if seen is None else seen.last_synced_at,
            last_attempt=_info(last),
        )

    async def resync(self, app_id: str) -> tuple[AppInfo, SyncInfo]:
        """PUT the app's URL and record the outcome (the app's registration, if the SDK
        makes it, arrives meanwhile through ``/fn/register``)."""
        app = next((a for a in await self.list_apps() if a.id == app_id), None)
        if app is None or not app.url:
            raise AppNotFoundError(app_id)
        state = PollState(app.url)
        async with httpx.AsyncClient() as http:
            await sync_put(http, state, self.server_kind, self.keys)
        attempt = self.log.put(app.url, state.ok, state.error, "resync")
        after = next((a for a in await self.list_apps() if a.id == app_id), app)
        info = _info(attempt)
        assert info is not None
        return after, info
