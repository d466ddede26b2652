"""The dashboard's routes: one HTML page per path, the static files under ``/static``, and
``/`` redirecting to ``/runs``.

Pages are plain HTML shells: each loads ``app.css`` and its own ES module, which fetches its
data from ``/api/v1`` (the server renders no data into a page). The shells are read once, when
the routes are built, and served with a strict Content-Security-Policy (scripts and styles from
this origin only, no framing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).with_name("static")
"""The directory of the dashboard's files (HTML, CSS, JS), served at ``/static``."""

PAGES: dict[str, str] = {
    "/runs": "runs.html",
    "/runs/{run_id}": "run.html",
    "/events": "events.html",
    "/events/{event_id}": "event.html",
    "/functions": "functions.html",
    "/functions/{function_id:path}": "function.html",
    "/schedules": "schedules.html",
    "/workers": "workers.html",
    "/apps": "apps.html",
    "/login": "login.html",
}
"""Each page route and the HTML file under :data:`STATIC_DIR` it serves."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
"""Headers of every dashboard page and static file."""

_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


class _Static(StaticFiles):
    """StaticFiles with :data:`SECURITY_HEADERS` on every response (``no-cache``: the browser
    revalidates with the ETag, so an upgraded perdure never runs stale scripts)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *_RAW_HEADERS]
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, sending)


def _page(html: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return HTMLResponse(html, headers=SECURITY_HEADERS)

    return serve


async def _home(request: Request) -> Response:
    return RedirectResponse("/runs", status_code=307)


def dashboard_routes() -> list[BaseRoute]:
    """The dashboard's routes: ``/`` (a redirect to ``/runs``), every page of :data:`PAGES`
    (``GET`` and ``HEAD``), and ``/static/...``."""
    routes: list[BaseRoute] = [Route("/", _home, methods=["GET"])]
    for path, name in PAGES.items():
        html = (STATIC_DIR / name).read_text(encoding="utf-8")
        routes.append(Route(path, _page(html), methods=["GET"]))
    routes.append(Mount("/static", app=_Static(directory=STATIC_DIR), name="static"))
    return routes
