"""The apps on the official Inngest SDKs, in the REST API: ``GET /api/v1/apps`` and ``POST
/api/v1/apps/{app_id}/resync``.

The server does not know the Inngest driver: it serves an :class:`AppSource` it is given
(:class:`perdure.inngest.apps.AppDirectory` in ``perdure dev`` and ``perdure server``). A server
given none lists no apps and answers 404 to a resync.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from perdure import views
from perdure.server.http import ApiError, JSONResponse, query_params, read_json


@dataclass(frozen=True, slots=True)
class SyncInfo:
    """One sync attempt: when (epoch seconds), whether it worked, the error, and its source
    (``register``, ``poll`` or ``resync``)."""

    at: float
    ok: bool
    error: str | None
    source: str


@dataclass(frozen=True, slots=True)
class AppInfo:
    """An Inngest SDK app as the API lists it. ``id`` is ``None`` for an app URL this server
    syncs (``-u``) that never registered."""

    id: str | None
    url: str
    functions: list[str]
    sdk: str | None
    framework: str | None
    last_synced_at: float | None
    last_attempt: SyncInfo | None


class AppNotFoundError(LookupError):
    """No app has this id."""


class AppSource(Protocol):
    """Where the API finds the apps."""

    async def list_apps(self) -> list[AppInfo]:
        """The apps, by id (the URLs that never registered last)."""
        ...

    async def resync(self, app_id: str) -> tuple[AppInfo, SyncInfo]:
        """Send the sync ``PUT`` to the app's URL and wait for its answer; the app after it,
        and the attempt. :class:`AppNotFoundError` for an unknown id."""
        ...


def sync_json(info: SyncInfo | None) -> dict[str, Any] | None:
    """A sync attempt as JSON."""
    if info is None:
        return None
    return {"at": views.iso(info.at), "ok": info.ok, "error": info.error, "source": info.source}


def app_json(info: AppInfo) -> dict[str, Any]:
    """An app as JSON: ``last_error`` is the last attempt's error when it failed."""
    last = info.last_attempt
    return {
        "id": info.id,
        "url": info.url,
        "functions": list(info.functions),
        "function_count": len(info.functions),
        "sdk": info.sdk,
        "framework": info.framework,
        "last_synced_at": views.iso(info.last_synced_at),
        "last_attempt": sync_json(last),
        "last_error": None if last is None or last.ok else last.error,
    }


class AppsApi:
    """The route handlers over one app source (or none)."""

    def __init__(self, source: AppSource | None) -> None:
        self.source = source

    async def list(self, request: Request) -> Response:
        """``GET /api/v1/apps``."""
        query_params(request, ())
        apps = [] if self.source is None else await self.source.list_apps()
        return JSONResponse({"apps": [app_json(a) for a in apps]})

    async def resync(self, request: Request) -> Response:
        """``POST /api/v1/apps/{app_id}/resync`` (no body): ``200 {"app", "sync"}``."""
        query_params(request, ())
        body = await read_json(request, optional=True)
        if body not in (None, {}):
            raise ApiError(400, "invalid_input", "a resync takes no body (or {})")
        app_id: str = request.path_params["app_id"]
        try:
            if self.source is None:
                raise AppNotFoundError(app_id)
            app, attempt = await self.source.resync(app_id)
        except AppNotFoundError:
            raise ApiError(404, "app_not_found", f"no Inngest app with id {app_id!r}") from None
        return JSONResponse({"app": app_json(app), "sync": sync_json(attempt)})
