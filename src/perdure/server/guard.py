"""Refusing requests that a web page of another site could make a browser send.

A developer's browser can reach ``perdure dev`` on localhost, and any page it visits may try:

- **DNS rebinding**: a name the attacker controls resolves to 127.0.0.1, so the page's own
  origin reaches the server. The browser still sends that name in ``Host``: requests whose
  ``Host`` is not on the allow-list are answered 400 ``host_not_allowed``.
- **Cross-site requests** that need no CORS preflight: a form post or a ``fetch`` with a
  ``text/plain``, form or multipart body. Every request with a body (or a ``Content-Type``)
  must be ``application/json``, else 415 ``unsupported_media_type``; and a state-changing
  request whose ``Origin`` names another host is answered 403 ``origin_not_allowed`` (that
  also covers a bodiless cross-site POST).

Nothing is executed for a refused request. The allow-list: entries are host names or IP
addresses, optionally with ``:port`` (without a port any port matches), ``*.example.com`` for
the subdomains of a name, or ``*`` for any host (which turns the ``Host`` and ``Origin`` checks
off; the ``Content-Type`` rule always holds).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from perdure.errors import InvalidInputError
from perdure.server.http import error_response

ALLOWED_HOSTS_ENV = "PERDURE_ALLOWED_HOSTS"
"""The environment variable of the allow-list (comma-separated), when none is passed."""

LOOPBACK_HOSTS = ("localhost", "*.localhost", "127.0.0.1", "::1")
"""The default allow-list of a server without authentication: this machine's names (any port;
every 127.x.y.z address counts as loopback too)."""

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class _Entry:
    host: str  # lower case, IPv6 without brackets; "" for "*"
    port: int | None
    suffix: bool = False  # "*.example.com": any subdomain

    def matches(self, host: str, port: int | None) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.suffix:
            return host.endswith("." + self.host)
        return host == self.host or (_is_loopback(self.host) and _is_loopback(host))


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback IP address (an entry naming one allows them all)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> tuple[str, int | None]:
    """``host[:port]`` or ``[v6][:port]`` as (lower-case host, port); ValueError if malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError(value)
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(value)
        port_text = rest[1:] if rest else None
    elif value.count(":") > 1:  # a bare IPv6 address
        host, port_text = value, None
    else:
        host, sep, port_text_raw = value.partition(":")
        port_text = port_text_raw if sep else None
    port: int | None = None
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(value)
        port = int(port_text)
    host = host.lower().rstrip(".")
    if not host or not host.isascii() or any(c in host for c in "/\\@?#[], \t"):
        raise ValueError(value)
    return host, port


class HostAllowList:
    """The hosts a server answers for (see the module docstring for the entry syntax)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.any = False
        self._entries: list[_Entry] = []
        self.text: list[str] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            self.text.append(entry)
            if entry == "*":
                self.any = True
                continue
            suffix = entry.startswith("*.")
            try:
                host, port = _split_host(entry[2:] if suffix else entry)
            except ValueError:
                raise InvalidInputError(
                    f"allowed host {entry!r} is not a host name or address, optionally with "
                    "':port' ('*.example.com' and '*' are allowed too)"
                ) from None
            self._entries.append(_Entry(host, port, suffix))
        if not self.text:
            raise InvalidInputError("the list of allowed hosts is empty")

    @classmethod
    def parse(cls, text: str) -> HostAllowList:
        """A comma-separated list (the ``PERDURE_ALLOWED_HOSTS`` format)."""
        return cls(text.split(","))

    def allows(self, host: str, port: int | None) -> bool:
        """Whether ``host`` (lower case, IPv6 without brackets) and ``port`` are allowed."""
        return self.any or any(e.matches(host, port) for e in self._entries)

    def allows_header(self, value: str) -> bool:
        """Whether a ``Host`` header value is allowed (a malformed one is not)."""
        if self.any:
            return True
        try:
            host, port = _split_host(value)
        except ValueError:
            return False
        return self.allows(host, port)


def resolve_allowed_hosts(
    allowed_hosts: Sequence[str] | str | None, *, authenticated: bool
) -> HostAllowList:
    """The allow-list a server uses: ``allowed_hosts`` if given (a sequence, or a
    comma-separated string), else ``PERDURE_ALLOWED_HOSTS`` if set, else the default: the
    loopback names for a server without authentication, any host for one that requires a
    bearer token (a browser never attaches that token by itself, so a rebound page cannot use
    the API)."""
    if allowed_hosts is None:
        allowed_hosts = os.environ.get(ALLOWED_HOSTS_ENV) or None
    if allowed_hosts is None:
        return HostAllowList(("*",) if authenticated else LOOPBACK_HOSTS)
    if isinstance(allowed_hosts, str):
        return HostAllowList.parse(allowed_hosts)
    return HostAllowList(allowed_hosts)


def _has_body(scope: Scope) -> bool:
    headers = Headers(scope=scope)
    return headers.get("transfer-encoding") is not None or headers.get(
        "content-length", "0"
    ).strip() not in ("", "0")


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json"


class RequestGuard:
    """ASGI middleware: the ``Host``, ``Origin`` and ``Content-Type`` checks of the module
    docstring, before anything else sees the request."""

    def __init__(self, app: ASGIApp, hosts: HostAllowList) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            # the body is not read: close the connection rather than drain it
            status, code, message = refusal
            headers = {"Connection": "close"} if _has_body(scope) else None
            await error_response(status, code, message, headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        headers = Headers(scope=scope)
        allowed = ", ".join(self.hosts.text)
        host = headers.get("host")
        if not self.hosts.any and (host is None or not self.hosts.allows_header(host)):
            shown = "no Host header" if host is None else f"the Host header {host!r}"
            return (
                400,
                "host_not_allowed",
                f"{shown} is not an allowed host (allowed: {allowed}; set "
                f"{ALLOWED_HOSTS_ENV} to serve other names)",
            )
        method = scope["method"]
        origin = headers.get("origin")
        if origin is not None and method not in _SAFE_METHODS and not self.hosts.any:
            parts = urlsplit(origin)
            ok = parts.scheme in ("http", "https") and parts.netloc
            if not ok or not self.hosts.allows_header(parts.netloc):
                return (
                    403,
                    "origin_not_allowed",
                    f"requests from pages of {origin!r} are not allowed (allowed hosts: {allowed})",
                )
        content_type = headers.get("content-type")
        # an unsafe request with a form content type and an empty body is refused too: an
        # empty HTML form posts exactly that
        typed = content_type is not None and method not in _SAFE_METHODS
        if (_has_body(scope) or typed) and not _is_json(content_type or ""):
            shown = "no Content-Type" if content_type is None else f"Content-Type {content_type!r}"
            return (
                415,
                "unsupported_media_type",
                f"a request body must be JSON with 'Content-Type: application/json', not {shown}",
            )
        return None
