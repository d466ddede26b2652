"""Self-hosted mode: the keys of a perdure server that apps on the Inngest SDKs talk to.

:class:`InngestKeys` holds the signing key (and the fallback keys accepted while keys rotate)
and the event keys. With them the server is of kind ``cloud`` (what the SDKs in production
mode expect) and:

- every request to an app (call requests, the sync ``PUT``) has a canonical JSON body and an
  ``X-Inngest-Signature`` made with the primary signing key (:meth:`InngestKeys.sign_body`);
- every answer of an app to a call request must be signed with one of the signing keys and be
  fresh (:meth:`InngestKeys.check_response`); an answer that is not counts as a failed call,
  retried like any other. Streamed answers (HTTP 201) are the exception: the SDKs sign only
  the keep-alive envelope, not the answer inside, so there is nothing to check;
- the Inngest routes need ``Authorization: Bearer <hashed signing key>`` (primary or fallback),
  except ``/e/{key}``, which needs one of the event keys (:func:`guard_routes`).

Keys are never logged and never part of a ``repr``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from perdure.inngest import signing
from perdure.server.http import JSONResponse

__all__ = ["InngestKeys", "ResponseSignatureError", "guard_routes"]

Endpoint = Callable[[Request], Awaitable[Response]]
_EVENT_PATHS = ("/e/{key}",)
_OPEN_PATHS = ("/e", "/e/")  # answer "Event key is required" themselves


class ResponseSignatureError(Exception):
    """An app's answer is not signed with the server's signing keys (or is stale)."""


@dataclass(frozen=True, repr=False)
class InngestKeys:
    """The signing keys (primary first, then fallbacks) and event keys of a server."""

    signing_keys: tuple[str, ...]
    event_keys: tuple[str, ...]
    tolerance: float = signing.DEFAULT_TOLERANCE

    @classmethod
    def create(
        cls,
        signing_key: str,
        fallbacks: Iterable[str] = (),
        event_keys: Iterable[str] = (),
        *,
        tolerance: float = signing.DEFAULT_TOLERANCE,
    ) -> InngestKeys:
        """Validated keys; ValueError (whose message names no key) for a malformed signing key
        or an empty event key."""
        keys = [signing.check_signing_key(signing_key)]
        for fb in fallbacks:
            if fb.strip():
                fb = signing.check_signing_key(fb)
                if signing.secret(fb) not in {signing.secret(k) for k in keys}:
                    keys.append(fb)
        events = tuple(dict.fromkeys(k.strip() for k in event_keys))
        if any(not k for k in events):
            raise ValueError("an event key is empty")
        return cls(tuple(keys), events, tolerance)

    def __repr__(self) -> str:
        return (
            f"InngestKeys({len(self.signing_keys)} signing key(s), "
            f"{len(self.event_keys)} event key(s))"
        )

    @property
    def primary(self) -> str:
        """The key requests to apps are signed with."""
        return self.signing_keys[0]

    # ------------------------------------------------------------------ server -> app

    def sign_body(self, body: bytes, now: float) -> tuple[bytes, str]:
        """``body`` in canonical JSON (the form the Python SDK verifies) and its signature."""
        canonical = signing.canonicalize(body)
        return canonical, signing.sign(canonical, self.primary, now)

    def check_response(
        self, status: int, headers: Mapping[str, str], body: bytes, now: float
    ) -> None:
        """ResponseSignatureError unless an app's answer carries a valid, fresh signature."""
        if status == 201:  # streamed: the SDKs sign only the keep-alive envelope
            return
        header = next((v for k, v in headers.items() if k.lower() == "x-inngest-signature"), None)
        try:
            signing.verify(body, header, self.signing_keys, now, self.tolerance)
        except signing.SignatureError as exc:
            excerpt = body[:300].decode(errors="replace")
            raise ResponseSignatureError(
                f"the app's answer (HTTP {status}) is refused: {exc} (in self-hosted mode every "
                f"answer must be signed with the server's signing key; does the app have "
                f"INNGEST_SIGNING_KEY set to it?) {excerpt}".rstrip()
            ) from None

    # ------------------------------------------------------------------ app -> server

    def authorized(self, authorization: str | None) -> bool:
        """Whether a request carries a signing key (primary or fallback) as its bearer."""
        return signing.bearer_matches(authorization, self.signing_keys)

    def event_key_ok(self, key: str) -> bool:
        """Whether ``key`` is one of the event keys (compared in constant time)."""
        presented = key.encode()
        ok = False
        for k in self.event_keys:
            ok |= hmac.compare_digest(presented, k.encode())
        return ok


def _refusal(status: int, error: str, **extra: object) -> JSONResponse:
    return JSONResponse({**extra, "error": error, "status": status}, status_code=status)


def guard_routes(
    routes: Sequence[BaseRoute], keys: InngestKeys | None, *, required: bool
) -> list[BaseRoute]:
    """``routes`` (the Inngest routes) behind the keys: ``/e/{key}`` needs an event key, every
    other route the signing key as bearer. ``required`` with no ``keys``: a self-hosted server
    started without keys, whose Inngest routes all answer 503. Neither: returned as they are
    (dev mode)."""
    if keys is None and not required:
        return list(routes)
    out: list[BaseRoute] = []
    for route in routes:
        if isinstance(route, Route) and route.path not in _OPEN_PATHS:
            route = Route(
                route.path,
                _guarded(route.endpoint, keys, events=route.path in _EVENT_PATHS),
                methods=sorted(route.methods or ()),
                name=route.name,
            )
        out.append(route)
    return out


def _guarded(endpoint: Endpoint, keys: InngestKeys | None, *, events: bool) -> Endpoint:
    async def guarded(request: Request) -> Response:
        if keys is None:
            what = "event keys (--event-key)" if events else "a signing key (--signing-key)"
            return _refusal(
                503,
                f"this perdure server has no {what}: Inngest SDK apps cannot use it",
                **({"ids": []} if events else {}),
            )
        if events:
            if not keys.event_key_ok(request.path_params.get("key", "")):
                return _refusal(401, "Event key not found", ids=[], message="")
        elif not keys.authorized(request.headers.get("authorization")):
            return _refusal(
                401,
                "unauthorized: send the signing key as 'Authorization: Bearer <hashed key>' "
                "(set INNGEST_SIGNING_KEY in the app)",
                data=None,
            )
        return await endpoint(request)

    return guarded
