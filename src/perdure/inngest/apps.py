"""The Inngest apps of one server, for the REST API (:class:`perdure.server.apps.AppSource`):
the apps of the registry with what the sync log (in the database) saw of them, and a resync, which
sends the app's URL the sync ``PUT`` (as the Inngest dev server does, signed in self-hosted
mode) and records the outcome."""

from __future__ import annotations

import httpx

from perdure.inngest.auth import InngestKeys
from perdure.inngest.sync import AppPoller, AppRegistry, PollState, sync_put
from perdure.inngest.sync_log import SyncAttempt, SyncView, same_url
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


def _app(view: SyncView, app_id: str, url: str, functions: list[str]) -> AppInfo:
    seen = view.apps.get(app_id)
    put = view.puts.get(same_url(url)) if url else None
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

    async def _polled(self, state: PollState) -> None:
        await self.log.put(state.url, state.ok, state.error, "poll")

    async def list_apps(self) -> list[AppInfo]:
        """The registry's apps by id, then apps the log saw refused, then the URLs the log or
        the poller knows that match no app."""
        stored = stored_apps(await self.registry.app.query.list_functions())
        view = await self.log.read()
        out: list[AppInfo] = []
        urls: set[str] = set()
        for app in stored:
            out.append(_app(view, app.id, app.url, sorted(f.id for f in app.functions)))
            urls.add(same_url(app.url))
        known = {a.id for a in stored}
        for app_id in sorted(set(view.apps) - known):
            seen = view.apps[app_id]
            out.append(_app(view, app_id, seen.url, []))
            urls.add(same_url(seen.url))
        polled = [] if self.poller is None else list(self.poller.states)
        for url in polled:
            if same_url(url) not in urls:
                urls.add(same_url(url))
                attempt = _info(view.puts.get(same_url(url)))
                out.append(AppInfo(None, url, [], None, None, None, attempt))
        return out

    async def resync(self, app_id: str) -> tuple[AppInfo, SyncInfo]:
        """PUT the app's URL and record the outcome (the app's registration, if the SDK
        makes it, arrives meanwhile through ``/fn/register``)."""
        app = next((a for a in await self.list_apps() if a.id == app_id), None)
        if app is None or not app.url:
            raise AppNotFoundError(app_id)
        state = PollState(app.url)
        async with httpx.AsyncClient() as http:
            await sync_put(http, state, self.server_kind, self.keys)
        attempt = await self.log.put(app.url, state.ok, state.error, "resync")
        after = next((a for a in await self.list_apps() if a.id == app_id), app)
        info = _info(attempt)
        assert info is not None
        return after, info
