"""Keys, sessions and the audit trail on SQLite (a mixin of
:class:`~perdure.store.sqlite.store.SqliteStore`; records and rules in
:mod:`perdure.store.access`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, LiteralString, TypeVar

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
from perdure.store.sqlite.writer import Tx

T = TypeVar("T")

_KEY_INSERT: Final[LiteralString] = (
    "INSERT INTO api_keys (id, name, scopes, token_hash, prefix, created_by, created_at,"
    " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_KEY_BY_ID: Final[LiteralString] = "SELECT " + KEY_COLUMNS + " FROM api_keys WHERE id = ?"
_KEY_BY_HASH: Final[LiteralString] = "SELECT " + KEY_COLUMNS + " FROM api_keys WHERE token_hash = ?"
_KEYS: Final[LiteralString] = (
    "SELECT " + KEY_COLUMNS + " FROM api_keys ORDER BY created_at DESC, id DESC"
)
_KEY_REVOKE: Final[LiteralString] = (
    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?"
)
_KEY_TOUCH: Final[LiteralString] = "UPDATE api_keys SET last_used_at = ? WHERE id = ?"
_SESSIONS_OF_KEY_DELETE: Final[LiteralString] = "DELETE FROM sessions WHERE key_id = ?"
_SESSIONS_EXPIRED_DELETE: Final[LiteralString] = "DELETE FROM sessions WHERE expires_at <= ?"
_SESSION_INSERT: Final[LiteralString] = (
    "INSERT INTO sessions (token_hash, key_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)"
)
_SESSION_SELECT: Final[LiteralString] = (
    "SELECT s.csrf, s.created_at, s.expires_at, "
    + ", ".join("k." + c.strip() for c in KEY_COLUMNS.split(","))
    + " FROM sessions s JOIN api_keys k ON k.id = s.key_id WHERE s.token_hash = ?"
)
_SESSION_DELETE: Final[LiteralString] = "DELETE FROM sessions WHERE token_hash = ?"
_AUDIT_INSERT: Final[LiteralString] = (
    "INSERT INTO audit (at, actor, action, run_id, target, detail) VALUES (?, ?, ?, ?, ?, ?)"
)
_AUDIT_LIST: Final[dict[tuple[bool, bool], LiteralString]] = {
    (by_run, paged): "SELECT "
    + AUDIT_COLUMNS
    + " FROM audit WHERE "
    + ("run_id = :run" if by_run else "1 = 1")
    + (" AND seq < :before" if paged else "")
    + " ORDER BY seq DESC LIMIT :limit"
    for by_run in (False, True)
    for paged in (False, True)
}


class Access:
    """Keys, sessions and audit."""

    if TYPE_CHECKING:

        def now(self) -> float: ...

        async def _write(self, op: Callable[[Tx], T], small: bool = False) -> T: ...

        async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T: ...

    async def create_key(self, key: NewKey) -> KeyRow:
        """Store a key; return it as stored."""
        for what, value in (("key name", key.name), ("created_by", key.created_by)):
            inputs.require_storable(what, value)

        def op(tx: Tx) -> KeyRow:
            tx.conn.execute(
                _KEY_INSERT,
                (
                    key.id,
                    key.name,
                    scopes_text(key.scopes),
                    key.token_hash,
                    key.prefix,
                    key.created_by,
                    tx.now,
                    key.expires_at,
                ),
            )
            return key_from_row(tx.conn.execute(_KEY_BY_ID, (key.id,)).fetchone())

        return await self._write(op)

    async def list_keys(self) -> list[KeyRow]:
        """Every key, newest first."""
        return await self._read(lambda c: [key_from_row(r) for r in c.execute(_KEYS)])

    async def key_by_hash(self, token_hash: str) -> KeyRow | None:
        """The key of a token hash."""
        row = await self._read(lambda c: c.execute(_KEY_BY_HASH, (token_hash,)).fetchone())
        return None if row is None else key_from_row(row)

    async def revoke_key(self, key_id: str) -> KeyRow | None:
        """Revoke a key and end its sessions."""
        if not inputs.storable(key_id):
            return None

        def op(tx: Tx) -> KeyRow | None:
            if tx.conn.execute(_KEY_REVOKE, (tx.now, key_id)).rowcount == 0:
                return None
            tx.conn.execute(_SESSIONS_OF_KEY_DELETE, (key_id,))
            return key_from_row(tx.conn.execute(_KEY_BY_ID, (key_id,)).fetchone())

        return await self._write(op)

    async def touch_key(self, key_id: str) -> None:
        """Record that the key was just used."""
        await self._write(lambda tx: tx.conn.execute(_KEY_TOUCH, (tx.now, key_id)), small=True)

    async def create_session(
        self, token_hash: str, key_id: str, csrf: str, expires_at: float
    ) -> None:
        """Open a session (and delete the expired ones)."""

        def op(tx: Tx) -> None:
            tx.conn.execute(_SESSIONS_EXPIRED_DELETE, (tx.now,))
            tx.conn.execute(_SESSION_INSERT, (token_hash, key_id, csrf, tx.now, expires_at))

        await self._write(op)

    async def get_session(self, token_hash: str) -> SessionRow | None:
        """The session of a token hash, with its key."""
        row = await self._read(lambda c: c.execute(_SESSION_SELECT, (token_hash,)).fetchone())
        return None if row is None else session_from_row(row)

    async def delete_session(self, token_hash: str) -> None:
        """End a session."""
        await self._write(lambda tx: tx.conn.execute(_SESSION_DELETE, (token_hash,)))

    async def record_audit(self, entries: Sequence[AuditIn]) -> None:
        """Append to the audit trail."""
        for e in entries:
            for what, value in (("actor", e.actor), ("run_id", e.run_id), ("target", e.target)):
                inputs.require_storable(what, value)

        def op(tx: Tx) -> None:
            tx.conn.executemany(
                _AUDIT_INSERT,
                [
                    (tx.now, e.actor, e.action, e.run_id, e.target, detail_text(e.detail))
                    for e in entries
                ],
            )

        if entries:
            await self._write(op)

    async def list_audit(
        self, run_id: str | None = None, before: int | None = None, limit: int = 100
    ) -> list[AuditRow]:
        """The audit trail, newest first."""
        if not inputs.storable(run_id):
            return []
        cursor = inputs.seq_cursor(before)
        sql = _AUDIT_LIST[(run_id is not None, cursor is not None)]
        args = {"run": run_id, "before": cursor, "limit": inputs.row_limit(limit)}
        return await self._read(lambda c: [audit_from_row(r) for r in c.execute(sql, args)])
