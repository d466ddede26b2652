"""Who is asking, and may they: API keys, dashboard sessions, scopes and CSRF.

Every request but ``/health`` needs a key outside ``dev`` (the login page ``/login``, its
static files and ``POST /auth/login`` are how a browser gets one). A key comes as
``Authorization: Bearer <token>`` (a key made by ``perdure keys create`` or the API, or the
server's own ``--api-token``, an ``admin`` key of the server's environment) or as the
dashboard's session cookie. The routes of apps on the Inngest SDKs (``/fn/...``, ``/e/...``,
``/v0/...``, ``/v1/...``) are authenticated by their own signing and event keys
(:mod:`perdure.inngest.auth`) and pass through here untouched.

What each request needs (:func:`required_scope`): reads (``GET``/``HEAD``) need ``read``;
``POST /api/v1/events`` needs ``ingest``; starting a run and registering functions need
``worker``; everything else (cancel, rerun, replay, bulk actions, pause, schedules, keys)
needs ``admin``; ``/api/v1/keys`` needs ``admin`` to read too. A request with a session
cookie that changes state must carry ``X-CSRF-Token`` equal to its session's CSRF token
(403 ``csrf_failed`` otherwise); a bearer request needs none (a browser never attaches a
bearer token by itself). Without a key: 401 on the API, a redirect to ``/login`` for a page.

The request's environment is its key's: the server routes the request to that environment's
tables (:class:`EnvApps`), so a key of one environment finds nothing of another (404).

Lookups are cached for :data:`CACHE_SECONDS` (a revoked key or ended session stops working
within that time on other servers, at once on the server that revoked it), and a key's
``last_used_at`` is written at most once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.requests import Request, cookie_parser
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from perdure.app import App
from perdure.keys import GRANTS, SESSION_PREFIX, Keys, allows, same_secret, token_env
from perdure.server.http import Handler, endpoint, error_response

log = logging.getLogger("perdure.server")

SESSION_COOKIE: Final = "perdure_session"
CSRF_HEADER: Final = "x-csrf-token"
CACHE_SECONDS: Final = 5.0
_TOUCH_EVERY: Final = 60.0
_CACHE_MAX: Final = 10_000
_SAFE: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_OPEN_PATHS: Final = frozenset({"/health", "/login"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from: their environment, scopes and how they authenticated."""

    env: str
    scopes: frozenset[str]
    actor: str
    """What the audit trail records: ``key:<id>``, ``token`` (the server's ``--api-token``)
    or ``dev``."""
    via: Literal["bearer", "session", "dev"]
    key_id: str | None = None
    key_name: str | None = None
    csrf: str | None = None

    def may(self, need: str) -> bool:
        """Whether these scopes allow what needs ``need``."""
        return allows(self.scopes, need)


def principal_of(request: Request) -> Principal:
    """The request's principal (set by :class:`AccessGuard`)."""
    found = request.scope.get("state", {}).get("perdure_principal")
    if not isinstance(found, Principal):  # pragma: no cover - the guard always sets it
        raise RuntimeError("no principal: the route is not behind AccessGuard")
    return found


def actor_of(request: Request) -> str:
    """Who the audit trail records for this request."""
    return principal_of(request).actor


def required_scope(method: str, path: str) -> str:
    """The scope a request needs (see the module docstring)."""
    if path.startswith("/api/v1/keys"):
        return "admin"
    if method in _SAFE:
        return "read"
    if path == "/api/v1/events":
        return "ingest"
    if path == "/api/v1/functions" or (
        path.startswith("/api/v1/functions/") and path.endswith("/runs")
    ):
        return "worker"
    return "admin"


class EnvApps:
    """The app of each environment the server answers for: the server's own app for its
    environment, and a client-only app (no worker, no functions) per other environment a
    key names, opened on first use on the same database."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._apps: dict[str, App] = {}
        self._lock = asyncio.Lock()

    async def get(self, env: str) -> App:
        """The app of ``env``, opened."""
        if env == self.app.env:
            return self.app
        found = self._apps.get(env)
        if found is not None:
            return found
        async with self._lock:
            found = self._apps.get(env)
            if found is None:
                found = App(
                    self.app.name,
                    self.app.database_url,
                    env=env,
                    clock=self.app.clock,
                    limits=self.app.limits,
                    retention=None,
                )
                await found.open()
                self._apps[env] = found
        return found

    async def close(self) -> None:
        """Close the apps opened for other environments."""
        apps, self._apps = list(self._apps.values()), {}
        for app in apps:
            await app.close()


class EnvRouter:
    """Route handlers of a per-environment object (``Api``, ``ScheduleApi``...): each
    request is answered by the instance of its principal's environment."""

    def __init__(self, envs: EnvApps, factory: Callable[[App], Any]) -> None:
        self._envs = envs
        self._factory = factory
        self._by_env: dict[str, Any] = {}

    def instances(self) -> list[Any]:
        """The instances made so far (one per environment that had a request)."""
        return list(self._by_env.values())

    def route(self, pick: Callable[[Any], Handler]) -> Handler:
        """The handler that calls ``pick(instance)`` of the request's environment."""

        async def handle(request: Request) -> Response:
            env = principal_of(request).env
            inst = self._by_env.get(env)
            if inst is None:
                inst = self._by_env[env] = self._factory(await self._envs.get(env))
            return await pick(inst)(request)

        return endpoint(handle)


@dataclass(slots=True)
class _Cache:
    entries: dict[str, tuple[float, Principal | None]] = field(default_factory=dict)

    def get(self, key: str) -> tuple[bool, Principal | None]:
        hit = self.entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: str, value: Principal | None) -> None:
        if len(self.entries) >= _CACHE_MAX:
            self.entries.clear()
        self.entries[key] = (time.monotonic() + CACHE_SECONDS, value)

    def drop(self, key: str) -> None:
        self.entries.pop(key, None)


class Authenticator:
    """Finds the principal of a bearer token or a session cookie (cached)."""

    def __init__(self, envs: EnvApps, static_token: str | None) -> None:
        self.envs = envs
        self.static_token = static_token
        self._bearers = _Cache()
        self._sessions = _Cache()
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def keys(self, env: str) -> Keys:
        """The keys of an environment."""
        return (await self.envs.get(env)).keys

    async def bearer(self, token: str) -> Principal | None:
        """The principal of a bearer token, ``None`` if it is not a live key."""
        if self.static_token is not None and same_secret(token, self.static_token):
            return Principal(self.envs.app.env, GRANTS["admin"], "token", "bearer")
        env = token_env(token)
        if env is None:
            return None
        hit, found = self._bearers.get(token)
        if hit:
            return found
        key = await (await self.keys(env)).authenticate(token)
        found = None
        if key is not None:
            scopes = frozenset(key.scopes)
            found = Principal(env, scopes, f"key:{key.id}", "bearer", key.id, key.name)
            self._touch(env, key.id)
        self._bearers.put(token, found)
        return found

    async def session(self, token: str) -> Principal | None:
        """The principal of a session cookie, ``None`` if it is not a live session."""
        env = token_env(token, SESSION_PREFIX)
        if env is None:
            return None
        hit, found = self._sessions.get(token)
        if hit:
            return found
        row = await (await self.keys(env)).session(token)
        found = None
        if row is not None:
            k = row.key
            found = Principal(
                env, frozenset(k.scopes), f"key:{k.id}", "session", k.id, k.name, row.csrf
            )
        self._sessions.put(token, found)
        return found

    def forget_session(self, token: str) -> None:
        """Drop a session from the cache (after logout)."""
        self._sessions.drop(token)

    def forget_all(self) -> None:
        """Drop every cached lookup (after this server revoked a key)."""
        self._bearers.entries.clear()
        self._sessions.entries.clear()

    def _touch(self, env: str, key_id: str) -> None:
        now = time.monotonic()
        if now - self._touched.get(key_id, -_TOUCH_EVERY) < _TOUCH_EVERY:
            return
        self._touched[key_id] = now

        async def touch() -> None:
            try:
                await (await self.keys(env)).touch(key_id)
            except Exception as exc:
                log.debug("could not record the use of key %s: %s", key_id, exc)

        task = asyncio.get_running_loop().create_task(touch())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class AccessGuard:
    """ASGI middleware: sets the request's :class:`Principal` and refuses what it may not do
    (see the module docstring). ``dev``: no authentication, every request is the ``dev``
    admin of the app's environment. ``own_routes``: routes that authenticate themselves (the
    Inngest-compatible ones), passed through untouched."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: Authenticator | None,
        env: str,
        own_routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.auth = auth
        self.env = env
        self.own_routes = [r for r in own_routes if not getattr(r, "path", "").startswith("/api/")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        state = scope.setdefault("state", {})
        if self.auth is None:
            state["perdure_principal"] = Principal(self.env, GRANTS["admin"], "dev", "dev")
            await self.app(scope, receive, send)
            return
        if any(r.matches(scope)[0] is not Match.NONE for r in self.own_routes):
            await self.app(scope, receive, send)
            return
        method: str = scope.get("method", "GET")
        refusal = await self._check(scope, state, method, path)
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    async def _check(
        self, scope: Scope, state: dict[str, Any], method: str, path: str
    ) -> Response | None:
        assert self.auth is not None
        headers = Headers(scope=scope)
        principal, problem = await self._principal(headers)
        if principal is not None:
            state["perdure_principal"] = principal
        if path in _OPEN_PATHS or path.startswith("/static/") or path == "/auth/login":
            return None
        if principal is None:
            if _is_page(path) and method in _SAFE:
                target = path + (
                    f"?{scope['query_string'].decode()}" if scope.get("query_string") else ""
                )
                return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
            return error_response(
                401,
                "unauthorized",
                problem
                or "this route needs an API token: send 'Authorization: Bearer <token>' (a "
                "key from `perdure keys create`), or log in to the dashboard",
                {"WWW-Authenticate": 'Bearer realm="perdure"'},
            )
        if principal.via == "session" and method not in _SAFE:
            sent = headers.get(CSRF_HEADER)
            if not sent or principal.csrf is None or not same_secret(sent, principal.csrf):
                return error_response(
                    403,
                    "csrf_failed",
                    "a request made with the session cookie must send its CSRF token in "
                    "X-CSRF-Token (see GET /auth/session)",
                )
        if path.startswith("/auth/"):
            return None
        need = required_scope(method, path)
        if not principal.may(need):
            return error_response(
                403,
                "forbidden",
                f"this key ({', '.join(sorted(principal.scopes))}) cannot do this: "
                f"{method} {path} needs the {need!r} scope",
            )
        return None

    async def _principal(self, headers: Headers) -> tuple[Principal | None, str | None]:
        assert self.auth is not None
        header = headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return None, "the Authorization header must be 'Bearer <token>'"
            found = await self.auth.bearer(value.strip())
            return (
                found,
                None if found else "the API token is not valid (unknown, revoked or expired)",
            )
        cookie = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
        if cookie:
            found = await self.auth.session(cookie)
            return found, None if found else "the session has ended: log in again"
        return None, None


def _is_page(path: str) -> bool:
    """Whether ``path`` is a dashboard page (not the API, the auth routes or assets)."""
    return not path.startswith(("/api/", "/auth/", "/static/")) and path not in (
        "/metrics",
        "/openapi.json",
    )
