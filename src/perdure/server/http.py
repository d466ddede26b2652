"""HTTP plumbing shared by the routes: JSON responses, the error shape, bounded body reading.

Every error response has one shape, ``{"error": {"code": "...", "message": "..."}}``, where
``code`` is stable (clients branch on it) and ``message`` is for humans. The codes:

===================== ====== ==========================================================
code                  status meaning
===================== ====== ==========================================================
``malformed_json``    400    the body is not valid JSON (the message says where)
``invalid_input``     400    valid JSON, wrong shape or value (the message says which)
``host_not_allowed``  400    the ``Host`` header names a host not on the allow-list
``unauthorized``      401    missing or wrong ``Authorization: Bearer <token>``
``origin_not_allowed`` 403   a browser request from a page of another site (``Origin``)
``forbidden``         403    the key's scopes do not allow this request
``csrf_failed``       403    a request with a session cookie lacked its ``X-CSRF-Token``
``not_found``         404    no such route
``function_not_found`` 404   no function with that id is registered
``run_not_found``     404    no run with that id
``schedule_not_found`` 404   no schedule with that id
``key_not_found``     404    no API key with that id in the key's environment
``method_not_allowed`` 405   the route exists, not with this method (see ``Allow``)
``schedule_exists``   409    a schedule with that id already exists
``run_not_ended``     409    a replay of a run that has not ended
``payload_too_large`` 413    the body, an event, or a run's input is over its limit
``unsupported_media_type`` 415 a body that is not ``Content-Type: application/json``
``unavailable``       503    the database is unreachable; retry after ``Retry-After``
``internal_error``    500    a bug; the server logs it
===================== ====== ==========================================================
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from perdure.errors import (
    ForbiddenError,
    FunctionNotFoundError,
    InvalidInputError,
    KeyNotFoundError,
    PayloadTooLargeError,
    RunNotEndedError,
    RunNotFoundError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    StoreUnavailableError,
)

log = logging.getLogger("perdure.server")

BODY_LIMIT = 8 * 1024 * 1024
"""The largest request body accepted, in bytes (HTTP 413 above)."""

DRAIN_LIMIT = 64 * 1024 * 1024
"""An oversized body up to this size is read and discarded before the 413 is sent, so that the
client, still writing, sees the response rather than a reset connection. Reading stops there:
the 413 then closes the connection (``Connection: close``), and so does any 413 whose body was
not read to its end."""

RETRY_AFTER_SECONDS = 2


class JSONResponse(Response):
    """A JSON response encoded with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """An HTTP error with a stable code and a precise message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one error shape."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def too_large(message: str, *, close: bool = False) -> ApiError:
    """A 413 error (``close``: ask the server to close the connection)."""
    return ApiError(413, "payload_too_large", message, {"Connection": "close"} if close else None)


def map_error(exc: BaseException) -> ApiError | None:
    """The HTTP error for a perdure error (``None``: not a known client-facing error)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, PayloadTooLargeError):
        return ApiError(413, exc.code, exc.message)
    if isinstance(exc, InvalidInputError):
        return ApiError(400, exc.code, exc.message)
    if isinstance(exc, ForbiddenError):
        return ApiError(403, exc.code, exc.message)
    if isinstance(
        exc, FunctionNotFoundError | RunNotFoundError | ScheduleNotFoundError | KeyNotFoundError
    ):
        return ApiError(404, exc.code, exc.message)
    if isinstance(exc, ScheduleExistsError | RunNotEndedError):
        return ApiError(409, exc.code, exc.message)
    if isinstance(exc, StoreUnavailableError):
        return ApiError(
            503,
            exc.code,
            f"the database is unavailable: {exc.message}",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return None


Handler = Callable[[Request], Awaitable[Response]]


def endpoint(handler: Handler) -> Handler:
    """Wrap a route handler: perdure errors become their HTTP error, anything else is logged
    and becomes a 500 with no detail (never a traceback to the client)."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            for name, value in request.path_params.items():
                if "\x00" in value:
                    raise ApiError(400, "invalid_input", f"{name} must not contain NUL characters")
            return await handler(request)
        except Exception as exc:
            api = map_error(exc)
            if api is None:
                log.exception("%s %s failed", request.method, request.url.path)
                return error_response(
                    500, "internal_error", "internal server error (logged by the server)"
                )
            if api.status >= 500:
                log.warning("%s %s: %s", request.method, request.url.path, api.message)
            return error_response(api.status, api.code, api.message, api.headers)

    return wrapped


# ---------------------------------------------------------------------- request bodies


async def _discard(stream: AsyncIterator[bytes], seen: int) -> bool:
    """Read and drop the rest of a body, up to :data:`DRAIN_LIMIT` bytes in all. Whether the
    body was read to its end (False: the connection must be closed)."""
    async for chunk in stream:
        seen += len(chunk)
        if seen > DRAIN_LIMIT:
            return False
    return True


async def read_body(request: Request, limit: int = BODY_LIMIT) -> bytes:
    """The request body, at most ``limit`` bytes: a declared ``Content-Length`` over the limit
    is refused before reading, and streamed bytes are counted as they arrive (a body without a
    length, or longer than it said, is cut off at the limit). Nothing past the limit is kept in
    memory."""
    declared_header = request.headers.get("content-length")
    declared: int | None = None
    if declared_header is not None:
        try:
            declared = int(declared_header)
            if declared < 0:
                raise ValueError
        except ValueError:
            raise ApiError(
                400, "invalid_input", f"invalid Content-Length header {declared_header!r}"
            ) from None
    stream = request.stream()
    try:
        if declared is not None and declared > limit:
            drained = declared <= DRAIN_LIMIT and await _discard(stream, 0)
            raise too_large(
                f"the request body is {declared} bytes, over the limit of {limit} bytes",
                close=not drained,
            )
        body = bytearray()
        async for chunk in stream:
            if len(body) + len(chunk) > limit:
                seen = len(body) + len(chunk)
                body.clear()
                drained = await _discard(stream, seen)
                raise too_large(
                    f"the request body is over the limit of {limit} bytes", close=not drained
                )
            body += chunk
    except ClientDisconnect:
        raise ApiError(
            400, "invalid_input", "the client disconnected before sending the whole body"
        ) from None
    return bytes(body)


def parse_json(body: bytes, *, what: str = "the request body") -> Any:
    """Decode JSON, with an error saying exactly where it is malformed."""
    if not body.strip():
        raise ApiError(400, "malformed_json", f"{what} is empty; send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            400,
            "malformed_json",
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
            f"(byte {exc.pos})",
        ) from None


async def read_json(request: Request, limit: int = BODY_LIMIT, *, optional: bool = False) -> Any:
    """Read and decode a JSON body (``optional``: an empty body is ``None``)."""
    body = await read_body(request, limit)
    if optional and not body.strip():
        return None
    return parse_json(body)


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # pragma: no cover - orjson yields only JSON types


def query_params(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, refusing unknown and repeated ones."""
    out: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in allowed:
            expected = ", ".join(allowed) if allowed else "none"
            raise ApiError(
                400, "invalid_input", f"unknown query parameter {key!r} (expected: {expected})"
            )
        if key in out:
            raise ApiError(400, "invalid_input", f"query parameter {key!r} is repeated")
        out[key] = value
    return out
