"""Keys, sessions and the audit trail on PostgreSQL (a mixin of
:class:`~perdure.store.postgres.store.PostgresStore`; records and rules in
:mod:`perdure.store.access`). Each write is one statement, its own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, LiteralString

from perdure.store import inputs
from perdure.store.access import (
    AUDIT_COLUMNS,
    KEY_COLUMNS,
    AuditIn,
    AuditRow,
    KeyRow,
    NewKey,
    SessionRow,
    audit_from_row,
    detail_text,
    key_from_row,
    scopes_text,
    session_from_row,
)
from perdure.store.postgres.pool import Conn, Pool, write_one

_NOW: Final[LiteralString] = "perdure_now(%(now)s::float8)"

_KEY_INSERT: Final[LiteralString] = (
    "INSERT INTO api_keys (id, name, scopes, token_hash, prefix, created_by, created_at,"
    " expires_at) VALUES (%(id)s, %(name)s, %(scopes)s, %(hash)s, %(prefix)s, %(by)s, "
    + _NOW
    + ", %(expires)s::float8) RETURNING "
    + KEY_COLUMNS
)
_KEY_BY_HASH: Final[LiteralString] = (
    "SELECT " + KEY_COLUMNS + " FROM api_keys WHERE token_hash = %(hash)s"
)
_KEYS: Final[LiteralString] = (
    "SELECT " + KEY_COLUMNS + " FROM api_keys ORDER BY created_at DESC, id DESC"
)
_KEY_REVOKE: Final[LiteralString] = (
    "WITH k AS (UPDATE api_keys SET revoked_at = coalesce(revoked_at, "
    + _NOW
    + ") WHERE id = %(id)s RETURNING "
    + KEY_COLUMNS
    + "), s AS (DELETE FROM sessions WHERE key_id IN (SELECT id FROM k))"
    " SELECT * FROM k"
)
_KEY_TOUCH: Final[LiteralString] = (
    "UPDATE api_keys SET last_used_at = " + _NOW + " WHERE id = %(id)s"
)
_SESSION_INSERT: Final[LiteralString] = (
    "WITH gone AS (DELETE FROM sessions WHERE expires_at <= " + _NOW + ")"
    " INSERT INTO sessions (token_hash, key_id, csrf, created_at, expires_at)"
    " VALUES (%(hash)s, %(key)s, %(csrf)s, " + _NOW + ", %(expires)s::float8)"
)
_SESSION_SELECT: Final[LiteralString] = (
    "SELECT s.csrf, s.created_at, s.expires_at, "
    + ", ".join("k." + c.strip() for c in KEY_COLUMNS.split(","))
    + " FROM sessions s JOIN api_keys k ON k.id = s.key_id WHERE s.token_hash = %(hash)s"
)
_SESSION_DELETE: Final[LiteralString] = "DELETE FROM sessions WHERE token_hash = %(hash)s"
_AUDIT_INSERT: Final[LiteralString] = (
    "INSERT INTO audit (at, actor, action, run_id, target, detail)"
    " SELECT " + _NOW + ", e.actor, e.action, e.run_id, e.target, e.detail"
    " FROM unnest(%(actors)s::text[], %(actions)s::text[], %(runs)s::text[],"
    " %(targets)s::text[], %(details)s::text[])"
    " AS e(actor, action, run_id, target, detail)"
)
_AUDIT_LIST: Final[dict[tuple[bool, bool], LiteralString]] = {
    (by_run, paged): "SELECT "
    + AUDIT_COLUMNS
    + " FROM audit WHERE "
    + ("run_id = %(run)s" if by_run else "true")
    + (" AND seq < %(before)s" if paged else "")
    + " ORDER BY seq DESC LIMIT %(limit)s"
    for by_run in (False, True)
    for paged in (False, True)
}


class Access:
    """Keys, sessions and audit."""

    _pool: Pool

    if TYPE_CHECKING:

        def _now_param(self) -> float | None: ...

    async def _write(self, stmt: LiteralString, params: dict[str, Any]) -> list[Any]:
        async def op(conn: Conn) -> list[Any]:
            return await write_one(conn, stmt, {"now": self._now_param(), **params})

        return await self._pool.run(op)

    async def create_key(self, key: NewKey) -> KeyRow:
        """Store a key; return it as stored."""
        for what, value in (("key name", key.name), ("created_by", key.created_by)):
            inputs.require_storable(what, value)
        params = {
            "id": key.id,
            "name": key.name,
            "scopes": scopes_text(key.scopes),
            "hash": key.token_hash,
            "prefix": key.prefix,
            "by": key.created_by,
            "expires": key.expires_at,
        }
        return key_from_row((await self._write(_KEY_INSERT, params))[0])

    async def list_keys(self) -> list[KeyRow]:
        """Every key, newest first."""
        return [key_from_row(r) for r in await self._pool.read_all(_KEYS, {})]

    async def key_by_hash(self, token_hash: str) -> KeyRow | None:
        """The key of a token hash."""
        row = await self._pool.read_one(_KEY_BY_HASH, {"hash": token_hash})
        return None if row is None else key_from_row(row)

    async def revoke_key(self, key_id: str) -> KeyRow | None:
        """Revoke a key and end its sessions."""
        if not inputs.storable(key_id):
            return None
        rows = await self._write(_KEY_REVOKE, {"id": key_id})
        return key_from_row(rows[0]) if rows else None

    async def touch_key(self, key_id: str) -> None:
        """Record that the key was just used."""
        await self._write(_KEY_TOUCH, {"id": key_id})

    async def create_session(
        self, token_hash: str, key_id: str, csrf: str, expires_at: float
    ) -> None:
        """Open a session (and delete the expired ones)."""
        params = {"hash": token_hash, "key": key_id, "csrf": csrf, "expires": expires_at}
        await self._write(_SESSION_INSERT, params)

    async def get_session(self, token_hash: str) -> SessionRow | None:
        """The session of a token hash, with its key."""
        row = await self._pool.read_one(_SESSION_SELECT, {"hash": token_hash})
        return None if row is None else session_from_row(row)

    async def delete_session(self, token_hash: str) -> None:
        """End a session."""
        await self._write(_SESSION_DELETE, {"hash": token_hash})

    async def record_audit(self, entries: Sequence[AuditIn]) -> None:
        """Append to the audit trail."""
        for e in entries:
            for what, value in (("actor", e.actor), ("run_id", e.run_id), ("target", e.target)):
                inputs.require_storable(what, value)
        if not entries:
            return
        params = {
            "actors": [e.actor for e in entries],
            "actions": [e.action for e in entries],
            "runs": [e.run_id for e in entries],
            "targets": [e.target for e in entries],
            "details": [detail_text(e.detail) for e in entries],
        }
        await self._write(_AUDIT_INSERT, params)

    async def list_audit(
        self, run_id: str | None = None, before: int | None = None, limit: int = 100
    ) -> list[AuditRow]:
        """The audit trail, newest first."""
        if not inputs.storable(run_id):
            return []
        cursor = inputs.seq_cursor(before)
        sql = _AUDIT_LIST[(run_id is not None, cursor is not None)]
        args = {"run": run_id, "before": cursor, "limit": inputs.row_limit(limit)}
        return [audit_from_row(r) for r in await self._pool.read_all(sql, args)]
