"""The routes of keys, sessions and the audit trail.

- ``POST /auth/login`` with ``{"token": "<key>"}``: opens a dashboard session for a live key
  (an HTTP-only ``perdure_session`` cookie) and answers the session (below); 401 for a token
  that is not a live key. The server's own ``--api-token`` cannot open a session: create a key.
- ``GET /auth/session``: ``{"auth", "env", "key": {"id", "name", "scopes"} | null, "scopes",
  "csrf"}``: who the request is, and the CSRF token a browser sends back in ``X-CSRF-Token``
  (``auth`` false and ``csrf`` null in ``dev``).
- ``POST /auth/logout``: ends the session and clears the cookie (204).
- ``GET /api/v1/keys``: the keys of the caller's environment (``admin``), never their tokens;
  ``POST /api/v1/keys`` with ``{"name", "scopes", "expires_in"?}`` (seconds): 201 ``{"key",
  "token"}`` (the token is shown only here); ``DELETE /api/v1/keys/{key_id}``: revokes it at
  once (its sessions end too) and answers the key.
- ``GET /api/v1/audit?run_id=&cursor=&limit=``: the audit trail, newest first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from perdure import views
from perdure.keys import SESSION_PREFIX, same_secret, token_env
from perdure.server.access_models import AuditQuery, KeyIn, Login
from perdure.server.auth import (
    SESSION_COOKIE,
    Authenticator,
    EnvApps,
    Principal,
    principal_of,
)
from perdure.server.http import (
    ApiError,
    JSONResponse,
    error_response,
    query_params,
    read_json,
)
from perdure.server.models import validate


def session_json(p: Principal, *, auth: bool) -> dict[str, Any]:
    """The answer of ``GET /auth/session``."""
    key = (
        None
        if p.key_id is None
        else {"id": p.key_id, "name": p.key_name, "scopes": sorted(p.scopes)}
    )
    return {"auth": auth, "env": p.env, "key": key, "scopes": sorted(p.scopes), "csrf": p.csrf}


class AccessApi:
    """Login, logout, the session, keys and audit (see the module docstring)."""

    def __init__(self, envs: EnvApps, auth: Authenticator | None) -> None:
        self.envs = envs
        self.auth = auth

    async def login(self, request: Request) -> Response:
        """``POST /auth/login``."""
        query_params(request, ())
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_input", 'the body must be {"token": "<key>"}')
        token = validate(Login, body, unknown="unknown field(s) (expected: token)").token.strip()
        if self.auth is None:
            return JSONResponse(session_json(principal_of(request), auth=False))
        if self.auth.static_token is not None and same_secret(token, self.auth.static_token):
            return error_response(
                401,
                "unauthorized",
                "the server's --api-token cannot open a session: create a key with "
                "`perdure keys create` and log in with it",
            )
        env = token_env(token)
        keys = None if env is None else await self.auth.keys(env)
        row = None if keys is None else await keys.authenticate(token)  # not cached: exact
        if keys is None or row is None or env is None:
            return error_response(
                401, "unauthorized", "the key is not valid (unknown, revoked or expired)"
            )
        opened = await keys.open_session(row)
        now = (await self.envs.get(env)).store.now()
        principal = Principal(
            env, frozenset(row.scopes), f"key:{row.id}", "session", row.id, row.name, opened.csrf
        )
        body = session_json(principal, auth=True)
        response = JSONResponse(body)
        response.set_cookie(
            SESSION_COOKIE,
            opened.token,
            max_age=max(1, int(opened.expires_at - now)),
            path="/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
        return response

    async def session(self, request: Request) -> Response:
        """``GET /auth/session``."""
        query_params(request, ())
        return JSONResponse(session_json(principal_of(request), auth=self.auth is not None))

    async def logout(self, request: Request) -> Response:
        """``POST /auth/logout``."""
        query_params(request, ())
        token = request.cookies.get(SESSION_COOKIE)
        if self.auth is not None and token:
            env = token_env(token, SESSION_PREFIX)
            if env is not None:
                await (await self.auth.keys(env)).close_session(token)
            self.auth.forget_session(token)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
        return response

    async def list_keys(self, request: Request) -> Response:
        """``GET /api/v1/keys``."""
        query_params(request, ())
        keys = (await self.envs.get(principal_of(request).env)).keys
        return JSONResponse({"keys": [views.key_json(k) for k in await keys.list()]})

    async def create_key(self, request: Request) -> Response:
        """``POST /api/v1/keys``."""
        query_params(request, ())
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_input", "the body must be a JSON object")
        valid = validate(
            KeyIn, body, unknown="unknown field(s) (expected: name, scopes, expires_in)"
        )
        expires_in = None if valid.expires_in is None else timedelta(seconds=valid.expires_in)
        p = principal_of(request)
        keys = (await self.envs.get(p.env)).keys
        created = await keys.create(valid.name, valid.scopes, expires_in=expires_in, actor=p.actor)
        return JSONResponse(
            {"key": views.key_json(created.key), "token": created.token},
            status_code=201,
            headers={"Location": f"/api/v1/keys/{created.key.id}"},
        )

    async def revoke_key(self, request: Request) -> Response:
        """``DELETE /api/v1/keys/{key_id}``."""
        query_params(request, ())
        p = principal_of(request)
        keys = (await self.envs.get(p.env)).keys
        row = await keys.revoke(request.path_params["key_id"], actor=p.actor)
        if self.auth is not None:
            self.auth.forget_all()
        return JSONResponse(views.key_json(row))

    async def audit(self, request: Request) -> Response:
        """``GET /api/v1/audit``."""
        query = validate(AuditQuery, query_params(request, ("run_id", "cursor", "limit")))
        limit = query.limit
        before = int(query.cursor) if query.cursor else None
        keys = (await self.envs.get(principal_of(request).env)).keys
        rows = await keys.audit(query.run_id or None, before=before, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return JSONResponse(
            {
                "entries": [views.audit_json(a) for a in rows],
                "next_cursor": str(rows[-1].seq) if more and rows else None,
            }
        )
