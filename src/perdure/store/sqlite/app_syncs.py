"""The Inngest apps' sync state on SQLite (a mixin of
:class:`~perdure.store.sqlite.store.SqliteStore`; records in :mod:`perdure.store.app_syncs`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, LiteralString, TypeVar

from perdure.store import inputs
from perdure.store.app_syncs import (
    APP_SYNC_COLUMNS,
    AppSyncIn,
    AppSyncRow,
    SyncKind,
    app_sync_from_row,
)
from perdure.store.sqlite.writer import Tx

T = TypeVar("T")

_UPSERT: Final[LiteralString] = (
    "INSERT INTO app_syncs (kind, name, url, sdk, framework, synced_at, attempt_at, attempt_ok,"
    " attempt_error, attempt_source) VALUES (:kind, :name, coalesce(:url, ''), :sdk,"
    " :framework, CASE WHEN :synced THEN :now END, :now, :ok, :error, :source)"
    " ON CONFLICT (kind, name) DO UPDATE SET url = coalesce(:url, url),"
    " sdk = CASE WHEN :synced THEN excluded.sdk ELSE sdk END,"
    " framework = CASE WHEN :synced THEN excluded.framework ELSE framework END,"
    " synced_at = CASE WHEN :synced THEN excluded.synced_at ELSE synced_at END,"
    " attempt_at = excluded.attempt_at, attempt_ok = excluded.attempt_ok,"
    " attempt_error = excluded.attempt_error, attempt_source = excluded.attempt_source"
    " RETURNING " + APP_SYNC_COLUMNS
)
_LIST: Final[LiteralString] = "SELECT " + APP_SYNC_COLUMNS + " FROM app_syncs ORDER BY kind, name"
_DELETE: Final[LiteralString] = "DELETE FROM app_syncs WHERE kind = ? AND name = ?"


class AppSyncs:
    """Reads and writes ``app_syncs``."""

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Tx], T], small: bool = False) -> T: ...

        async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T: ...

    async def record_app_sync(self, sync: AppSyncIn) -> AppSyncRow:
        """Upsert the row of ``(sync.kind, sync.name)`` with this attempt."""
        inputs.require_valid_app_sync(sync)

        def op(tx: Tx) -> AppSyncRow:
            params = {
                "kind": sync.kind,
                "name": sync.name,
                "url": sync.url,
                "sdk": sync.sdk,
                "framework": sync.framework,
                "synced": sync.synced,
                "now": tx.now,
                "ok": sync.ok,
                "error": sync.error,
                "source": sync.source,
            }
            return app_sync_from_row(tx.conn.execute(_UPSERT, params).fetchall()[0])

        return await self._write(op, small=True)

    async def list_app_syncs(self) -> list[AppSyncRow]:
        """Every row, by kind then name."""
        return await self._read(lambda c: [app_sync_from_row(r) for r in c.execute(_LIST)])

    async def delete_app_syncs(self, kind: SyncKind, names: Sequence[str]) -> int:
        """Delete the rows of ``names`` of ``kind``."""
        wanted = [(kind, n) for n in dict.fromkeys(names) if inputs.storable(n)]

        def op(tx: Tx) -> int:
            return sum(tx.conn.execute(_DELETE, key).rowcount for key in wanted)

        if not wanted:
            return 0
        return await self._write(op, small=True)
