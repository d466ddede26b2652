"""API keys with scopes, dashboard sessions, and the audit trail of an environment.

**Tokens.** A key's token is ``pdk_<env>_<48 hex digits>`` (192 random bits from
:mod:`secrets`). Only its SHA-256 is stored (with its first characters, to tell keys apart in
a list): the token is shown once, when the key is created. A slow password hash would add
nothing for 192 random bits and cost a hash per request. The environment in the token says
which environment's tables to look the key up in; a key is stored in its environment's
tables, so it can only ever be found, and used, there.

**Scopes.** ``admin`` (everything, keys included), ``read`` (every read of the API and the
dashboard), ``ingest`` (sending events only: an event key), ``worker`` (what a service that
runs functions needs: read, send events, start runs, register functions). What each HTTP
route needs is decided in :mod:`perdure.server.auth`.

**Sessions.** The dashboard logs in with a token: the server opens a session (a random token
in an HTTP-only cookie, stored hashed, valid :data:`SESSION_SECONDS`) bound to the key, with a
CSRF token that every state-changing request must echo in ``X-CSRF-Token``. Revoking a key
ends its sessions.

**Audit.** Who cancelled, reran or replayed which run, and who created or revoked which key,
is appended to the environment's audit trail (``actor``: ``key:<id>`` for a key, ``dev`` for
``perdure dev``, ``cli:<user>`` for the command line, ``app:<name>`` for code).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from perdure.environments import ENV_NAME
from perdure.errors import InvalidInputError, KeyNotFoundError
from perdure.store.access import AuditIn, AuditRow, KeyRow, NewKey, SessionRow
from perdure.store.base import Store

if TYPE_CHECKING:
    from perdure.client import Client

SCOPES: Final = ("admin", "read", "ingest", "worker")
"""Every scope a key may have."""

GRANTS: Final[dict[str, frozenset[str]]] = {
    "admin": frozenset(SCOPES),
    "worker": frozenset({"worker", "read", "ingest"}),
    "read": frozenset({"read"}),
    "ingest": frozenset({"ingest"}),
}
"""What each scope allows: a scope also allows the scopes it includes."""

TOKEN_PREFIX: Final = "pdk_"
SESSION_PREFIX: Final = "pds_"
SESSION_SECONDS: Final = 12 * 3600.0
"""How long a dashboard session lasts (it does not slide: log in again after it)."""
_SECRET_HEX: Final = 48
_SHOWN: Final = 12  # characters of the secret kept as the key's prefix


def token_hash(token: str) -> str:
    """The stored form of a token (SHA-256, hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_env(token: str, prefix: str = TOKEN_PREFIX) -> str | None:
    """The environment a key's (or session's) token names, ``None`` if it is not one."""
    if not token.startswith(prefix):
        return None
    env, sep, secret = token[len(prefix) :].rpartition("_")
    if not sep or len(secret) != _SECRET_HEX or not ENV_NAME.match(env):
        return None
    if any(c not in "0123456789abcdef" for c in secret):
        return None
    return env


def new_token(env: str, prefix: str = TOKEN_PREFIX) -> str:
    """A new random token of environment ``env``."""
    return f"{prefix}{env}_{secrets.token_hex(_SECRET_HEX // 2)}"


def allows(scopes: Iterable[str], need: str) -> bool:
    """Whether a key with ``scopes`` may do what needs scope ``need``."""
    return any(need in GRANTS.get(s, frozenset()) for s in scopes)


def check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """The scopes, validated: at least one, each in :data:`SCOPES`, no repeats."""
    if isinstance(scopes, str) or not scopes:
        raise InvalidInputError(f"a key needs at least one scope: {', '.join(SCOPES)}")
    out: list[str] = []
    for s in scopes:
        if s not in SCOPES:
            raise InvalidInputError(f"unknown scope {s!r}: use {', '.join(SCOPES)}")
        if s not in out:
            out.append(s)
    return tuple(out)


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key and its token (shown once: only its hash is stored)."""

    key: KeyRow
    token: str


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """A new dashboard session: the cookie's token and the CSRF token."""

    token: str
    csrf: str
    expires_at: float
    key: KeyRow


class Keys:
    """The keys, sessions and audit trail of an app's environment (``app.keys``)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def _store(self) -> Store:
        await self._client.open()
        return self._client.runtime.store

    @property
    def env(self) -> str:
        """The environment these keys belong to."""
        return self._client.runtime.env

    async def create(
        self,
        name: str,
        scopes: Sequence[str],
        *,
        expires_in: timedelta | None = None,
        actor: str | None = None,
    ) -> CreatedKey:
        """Create a key with ``scopes`` (see :data:`SCOPES`); the token is in the result
        and nowhere else. ``expires_in``: the key stops working after that long."""
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidInputError("a key needs a name of 1 to 200 characters")
        valid = check_scopes(scopes)
        store = await self._store()
        expires_at = None
        if expires_in is not None:
            if expires_in <= timedelta(0):
                raise InvalidInputError("expires_in must be positive")
            expires_at = store.now() + expires_in.total_seconds()
        token = new_token(self.env)
        key_id = "key_" + secrets.token_hex(8)
        prefix = token[: len(TOKEN_PREFIX) + len(self.env) + 1 + _SHOWN]
        row = await store.create_key(
            NewKey(key_id, name.strip(), valid, token_hash(token), prefix, actor, expires_at)
        )
        if actor is not None:
            await self.record(actor, "key.create", target=key_id, detail={"scopes": list(valid)})
        return CreatedKey(row, token)

    async def list(self) -> list[KeyRow]:
        """Every key of the environment (revoked ones too), newest first."""
        return await (await self._store()).list_keys()

    async def revoke(self, key_id: str, *, actor: str | None = None) -> KeyRow:
        """Revoke a key at once (its sessions end too); idempotent. Raises
        :class:`~perdure.errors.KeyNotFoundError` for an unknown id."""
        row = await (await self._store()).revoke_key(key_id)
        if row is None:
            raise KeyNotFoundError(f"no key with id {key_id!r} in environment {self.env!r}")
        if actor is not None:
            await self.record(actor, "key.revoke", target=key_id)
        return row

    async def authenticate(self, token: str) -> KeyRow | None:
        """The live key whose token this is, else ``None`` (unknown, revoked, expired, or
        a token of another environment)."""
        if token_env(token) != self.env:
            return None
        store = await self._store()
        row = await store.key_by_hash(token_hash(token))
        if row is None or not row.live(store.now()):
            return None
        return row

    async def touch(self, key_id: str) -> None:
        """Record that a key was used now."""
        await (await self._store()).touch_key(key_id)

    async def open_session(self, key: KeyRow) -> OpenedSession:
        """A new dashboard session for a live key."""
        store = await self._store()
        token = new_token(self.env, SESSION_PREFIX)
        csrf = secrets.token_urlsafe(24)
        expires_at = store.now() + SESSION_SECONDS
        if key.expires_at is not None:
            expires_at = min(expires_at, key.expires_at)
        await store.create_session(token_hash(token), key.id, csrf, expires_at)
        return OpenedSession(token, csrf, expires_at, key)

    async def session(self, token: str) -> SessionRow | None:
        """The live session of a cookie's token (its key live too), else ``None``."""
        if token_env(token, SESSION_PREFIX) != self.env:
            return None
        store = await self._store()
        row = await store.get_session(token_hash(token))
        now = store.now()
        if row is None or now >= row.expires_at or not row.key.live(now):
            return None
        return row

    async def close_session(self, token: str) -> None:
        """End a session (unknown tokens are ignored)."""
        if token_env(token, SESSION_PREFIX) == self.env:
            await (await self._store()).delete_session(token_hash(token))

    async def record(
        self,
        actor: str,
        action: str,
        *,
        run_id: str | None = None,
        target: str | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        """Append one action to the audit trail."""
        entry = AuditIn(actor, action, run_id, target, dict(detail) if detail else None)
        await (await self._store()).record_audit([entry])

    async def audit(
        self, run_id: str | None = None, *, before: int | None = None, limit: int = 100
    ) -> builtins.list[AuditRow]:
        """The audit trail, newest first (of one run when ``run_id`` is given)."""
        return await (await self._store()).list_audit(run_id, before, limit)
