"""The ASGI application: routes, authentication, error handling, the dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from perdure._version import __version__
from perdure.app import App
from perdure.errors import InvalidInputError
from perdure.runtime import Runtime
from perdure.server import openapi
from perdure.server.access_api import AccessApi
from perdure.server.api import Api
from perdure.server.apps import AppsApi, AppSource
from perdure.server.auth import AccessGuard, Authenticator, EnvApps, EnvRouter
from perdure.server.bulk import BulkApi
from perdure.server.dashboard import dashboard_routes
from perdure.server.guard import RequestGuard, resolve_allowed_hosts
from perdure.server.http import (
    RETRY_AFTER_SECONDS,
    Handler,
    JSONResponse,
    endpoint,
    error_response,
)
from perdure.server.live import LiveRuns
from perdure.server.metrics import HttpMetrics, Metrics
from perdure.server.schedules import ScheduleApi

log = logging.getLogger("perdure.server")

HEALTH_TIMEOUT = 5.0
"""Seconds ``/health`` waits for the database before answering 503."""


class TraceHeaders:
    """ASGI middleware: a request with a W3C ``traceparent`` header is handled in that trace
    context when the app traces (docs/observability.md), so the runs it starts and the events
    it sends continue the caller's trace."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = self.runtime.tracer
        if tracer is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if "traceparent" not in headers:
            await self.app(scope, receive, send)
            return
        with tracer.incoming(headers):
            await self.app(scope, receive, send)


class ExtraHeaders:
    """ASGI middleware: adds fixed headers to every HTTP response (the Inngest routes need
    ``X-Inngest-Server-Kind`` on all of them)."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, sending)


def _by_method(handlers: Mapping[str, Handler]) -> tuple[Handler, list[str]]:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch, list(handlers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        hint = (
            " (the API is described at /openapi.json)"
            if request.url.path.startswith("/api/")
            else ""
        )
        return error_response(404, "not_found", f"no route for {where}{hint}", headers)
    if exc.status_code == 405:
        allowed = headers.get("Allow", "")
        return error_response(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.url.path} (allowed: {allowed})",
            headers,
        )
    code = "invalid_input" if exc.status_code == 400 else f"http_{exc.status_code}"
    return error_response(exc.status_code, code, exc.detail, headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error (logged by the server)")


def check_api_token(token: str) -> str:
    """``token`` if it can be an API token, else InvalidInputError saying why: 1 or more
    printable ASCII characters without spaces (what an ``Authorization`` header carries
    unchanged; any other token could never match)."""
    if not token.strip():
        raise InvalidInputError("api_token is empty")
    for index, char in enumerate(token):
        if not "!" <= char <= "~":
            raise InvalidInputError(
                f"the API token has a space or a character that is not printable ASCII at "
                f"index {index}: a token must be printable ASCII without spaces (an HTTP "
                "header cannot carry any other token unchanged, so it could never match)"
            )
    return token


def create_app(
    app: App,
    *,
    dev: bool,
    api_token: str | None = None,
    allowed_hosts: Sequence[str] | str | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    response_headers: Mapping[str, str] | None = None,
    apps: AppSource | None = None,
) -> Starlette:
    """The HTTP server of ``app``: the REST API under ``/api/v1``, the dashboard, ``/health``,
    ``/openapi.json``, ``/metrics`` (Prometheus, :mod:`perdure.server.metrics`; the app's
    runtime counts into them from then on) and the login routes under ``/auth``.

    Outside ``dev`` every route but ``/health`` (and the login page) needs a key
    (:mod:`perdure.server.auth`): a key made by ``perdure keys create`` or ``POST
    /api/v1/keys``, sent as ``Authorization: Bearer <token>`` or through the dashboard's
    session, or ``api_token``, an ``admin`` token of ``app``'s environment (printable ASCII
    without spaces; InvalidInputError otherwise). A request is answered from its key's
    environment. ``dev`` turns authentication off (``api_token`` must then be ``None``).

    ``allowed_hosts``: the ``Host`` names served (see :mod:`perdure.server.guard`); ``None``:
    ``PERDURE_ALLOWED_HOSTS`` if set, else the loopback names in ``dev`` and any host
    otherwise. Every request body must be ``application/json`` (415 otherwise).

    ``extra_routes`` are mounted beside the API (the Inngest-compatible routes, see
    :mod:`perdure.inngest.routes`, which authenticate themselves); ``response_headers`` are
    added to every response. ``apps``: the Inngest SDK apps ``/api/v1/apps`` lists and
    resyncs (none: an empty list).
    """
    if dev and api_token is not None:
        raise InvalidInputError("a dev server has no authentication: it takes no api_token")
    if api_token is not None:
        check_api_token(api_token)
    auth = not dev
    hosts = resolve_allowed_hosts(allowed_hosts, authenticated=auth)
    envs = EnvApps(app)
    authenticator = Authenticator(envs, api_token) if auth else None
    apis = EnvRouter(envs, Api)
    scheds = EnvRouter(envs, ScheduleApi)
    access = AccessApi(envs, authenticator)
    bulk = EnvRouter(envs, BulkApi)
    live = EnvRouter(envs, lambda a: LiveRuns(a.query))
    spec = openapi.document(auth=auth)

    async def health(request: Request) -> Response:
        async def ping() -> None:
            await app.query.ping()

        try:
            await asyncio.wait_for(ping(), HEALTH_TIMEOUT)
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                reason = f"no answer within {HEALTH_TIMEOUT:g}s"
            log.warning("health check failed: %s", reason)
            return JSONResponse(
                {"status": "unavailable", "database": reason, "version": __version__},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return JSONResponse({"status": "ok", "database": "ok", "version": __version__})

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(spec)

    events, events_methods = _by_method(
        {"GET": apis.route(lambda a: a.list_events), "POST": apis.route(lambda a: a.send_events)}
    )
    metrics = Metrics(app)
    app.runtime.metrics = metrics
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/auth/login", endpoint(access.login), methods=["POST"]),
        Route("/auth/logout", endpoint(access.logout), methods=["POST"]),
        Route("/auth/session", endpoint(access.session), methods=["GET"]),
        Route("/api/v1/events", events, methods=events_methods),
        Route("/api/v1/events/{event_id:path}", apis.route(lambda a: a.get_event), methods=["GET"]),
        Route("/api/v1/functions", apis.route(lambda a: a.list_functions), methods=["GET"]),
        Route(
            "/api/v1/functions/{function_id:path}/stats",
            apis.route(lambda a: a.function_stats),
            methods=["GET"],
        ),
        Route(
            "/api/v1/functions/{function_id:path}/runs",
            apis.route(lambda a: a.start_run),
            methods=["POST"],
        ),
        Route(
            "/api/v1/functions/{function_id:path}/pause",
            apis.route(lambda a: a.pause_function),
            methods=["POST"],
        ),
        Route(
            "/api/v1/functions/{function_id:path}/resume",
            apis.route(lambda a: a.resume_function),
            methods=["POST"],
        ),
        Route(
            "/api/v1/functions/{function_id:path}",
            apis.route(lambda a: a.get_function),
            methods=["GET"],
        ),
        Route("/api/v1/workers", apis.route(lambda a: a.list_workers), methods=["GET"]),
        Route("/api/v1/runs", apis.route(lambda a: a.list_runs), methods=["GET"]),
        Route("/api/v1/runs/stream", live.route(lambda x: x.stream), methods=["GET"]),
        Route("/api/v1/runs/bulk/cancel", bulk.route(lambda b: b.cancel), methods=["POST"]),
        Route("/api/v1/runs/bulk/rerun", bulk.route(lambda b: b.rerun), methods=["POST"]),
        Route("/api/v1/runs/{run_id}", apis.route(lambda a: a.get_run), methods=["GET"]),
        Route("/api/v1/runs/{run_id}/cancel", apis.route(lambda a: a.cancel_run), methods=["POST"]),
        Route("/api/v1/runs/{run_id}/rerun", apis.route(lambda a: a.rerun_run), methods=["POST"]),
        Route("/api/v1/runs/{run_id}/replay", apis.route(lambda a: a.replay_run), methods=["POST"]),
        Route("/api/v1/audit", endpoint(access.audit), methods=["GET"]),
        *extra_routes,
        *dashboard_routes(),
    ]
    keys, keys_methods = _by_method(
        {"GET": endpoint(access.list_keys), "POST": endpoint(access.create_key)}
    )
    schedules, schedules_methods = _by_method(
        {"GET": scheds.route(lambda s: s.list), "POST": scheds.route(lambda s: s.create)}
    )
    schedule, schedule_methods = _by_method(
        {"GET": scheds.route(lambda s: s.get), "DELETE": scheds.route(lambda s: s.delete)}
    )
    # The Inngest SDK apps are the server's own environment's: other environments list none.
    apps_api = EnvRouter(envs, lambda a: AppsApi(apps if a is app else None))
    routes += [
        Route("/api/v1/keys", keys, methods=keys_methods),
        Route("/api/v1/keys/{key_id}", endpoint(access.revoke_key), methods=["DELETE"]),
        Route("/api/v1/apps", apps_api.route(lambda x: x.list), methods=["GET"]),
        Route(
            "/api/v1/apps/{app_id:path}/resync",
            apps_api.route(lambda x: x.resync),
            methods=["POST"],
        ),
        Route("/api/v1/schedules", schedules, methods=schedules_methods),
        Route("/api/v1/schedules/{schedule_id}", schedule, methods=schedule_methods),
        Route(
            "/api/v1/schedules/{schedule_id}/pause",
            scheds.route(lambda s: s.pause),
            methods=["POST"],
        ),
        Route(
            "/api/v1/schedules/{schedule_id}/resume",
            scheds.route(lambda s: s.resume),
            methods=["POST"],
        ),
        Route(
            "/api/v1/schedules/{schedule_id}/trigger",
            scheds.route(lambda s: s.trigger),
            methods=["POST"],
        ),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            await app.open()
        except Exception as exc:  # the server still starts; /health reports it
            log.warning("cannot open the database yet: %s", exc)
        try:
            yield
        finally:
            await envs.close()

    routes = merge_methods(routes)
    server = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    server.add_middleware(TraceHeaders, runtime=app.runtime)
    server.add_middleware(
        AccessGuard, auth=authenticator, env=app.env, own_routes=list(extra_routes)
    )
    server.add_middleware(RequestGuard, hosts=hosts)  # outermost: before authentication
    if response_headers:
        server.add_middleware(ExtraHeaders, headers=response_headers)  # refusals carry them too
    server.add_middleware(HttpMetrics, metrics=metrics, routes=routes)  # counts refusals too
    server.state.perdure_app = app

    def close_streams() -> None:
        for each in live.instances():
            each.watcher.close()

    server.state.perdure_close_streams = close_streams  # serve() calls it before shutting down
    server.state.perdure_metrics = metrics
    server.state.perdure_envs = envs
    return server


def merge_methods(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """The routes with those of one path (the API's and an extra route's, e.g. ``GET`` and
    ``POST /api/v1/functions``) joined into one route per path, so that a 405 lists every
    method the path has in ``Allow``."""
    groups: dict[str, list[Route]] = {}
    for route in routes:
        if isinstance(route, Route) and route.methods:
            groups.setdefault(route.path, []).append(route)
    out: list[BaseRoute] = []
    for route in routes:
        group = groups.get(route.path) if isinstance(route, Route) else None
        if group is None or len(group) == 1:
            out.append(route)
            continue
        if route is not group[0]:
            continue
        handlers: dict[str, Any] = {}
        for r in group:
            for method in sorted(r.methods or ()):
                handlers.setdefault(method, r.endpoint)

        async def dispatch(request: Request, handlers: dict[str, Any] = handlers) -> Response:
            handler = handlers.get(request.method) or handlers["GET"]
            response: Response = await handler(request)
            return response

        out.append(Route(route.path, dispatch, methods=list(handlers)))
    return out
