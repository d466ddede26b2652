"""The Inngest apps' sync state on PostgreSQL (a mixin of
:class:`~perdure.store.postgres.store.PostgresStore`; records in
:mod:`perdure.store.app_syncs`). Each write is one statement, its own transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, LiteralString

from perdure.store import inputs
from perdure.store.app_syncs import (
    APP_SYNC_COLUMNS,
    AppSyncIn,
    AppSyncRow,
    SyncKind,
    app_sync_from_row,
)
from perdure.store.postgres.pool import Conn, Pool, write_one

_UPSERT: Final[LiteralString] = (
    "WITH t AS (SELECT perdure_now(%(now)s::float8) AS now)"
    " INSERT INTO app_syncs AS s (kind, name, url, sdk, framework, synced_at, attempt_at,"
    " attempt_ok, attempt_error, attempt_source)"
    " SELECT %(kind)s, %(name)s, coalesce(%(url)s::text, ''), %(sdk)s, %(framework)s,"
    " CASE WHEN %(synced)s::boolean THEN t.now END, t.now, %(ok)s::boolean, %(error)s,"
    " %(source)s FROM t"
    " ON CONFLICT (kind, name) DO UPDATE SET url = coalesce(%(url)s::text, s.url),"
    " sdk = CASE WHEN %(synced)s::boolean THEN excluded.sdk ELSE s.sdk END,"
    " framework = CASE WHEN %(synced)s::boolean THEN excluded.framework ELSE s.framework END,"
    " synced_at = CASE WHEN %(synced)s::boolean THEN excluded.synced_at ELSE s.synced_at END,"
    " attempt_at = excluded.attempt_at, attempt_ok = excluded.attempt_ok,"
    " attempt_error = excluded.attempt_error, attempt_source = excluded.attempt_source"
    " RETURNING " + APP_SYNC_COLUMNS
)
_LIST: Final[LiteralString] = "SELECT " + APP_SYNC_COLUMNS + " FROM app_syncs ORDER BY kind, name"
_DELETE: Final[LiteralString] = (
    "DELETE FROM app_syncs WHERE kind = %(kind)s AND name = ANY(%(names)s::text[]) RETURNING name"
)


class AppSyncs:
    """Reads and writes ``app_syncs``."""

    _pool: Pool

    if TYPE_CHECKING:

        def _now_param(self) -> float | None: ...

    async def record_app_sync(self, sync: AppSyncIn) -> AppSyncRow:
        """Upsert the row of ``(sync.kind, sync.name)`` with this attempt."""
        inputs.require_valid_app_sync(sync)
        params = {
            "kind": sync.kind,
            "name": sync.name,
            "url": sync.url,
            "sdk": sync.sdk,
            "framework": sync.framework,
            "synced": sync.synced,
            "now": self._now_param(),
            "ok": sync.ok,
            "error": sync.error,
            "source": sync.source,
        }

        async def op(conn: Conn) -> AppSyncRow:
            return app_sync_from_row((await write_one(conn, _UPSERT, params))[0])

        return await self._pool.run(op)

    async def list_app_syncs(self) -> list[AppSyncRow]:
        """Every row, by kind then name."""
        return [app_sync_from_row(r) for r in await self._pool.read_all(_LIST, {})]

    async def delete_app_syncs(self, kind: SyncKind, names: Sequence[str]) -> int:
        """Delete the rows of ``names`` of ``kind``."""
        wanted = [n for n in dict.fromkeys(names) if inputs.storable(n)]
        if not wanted:
            return 0
        params = {"kind": kind, "names": wanted}

        async def op(conn: Conn) -> int:
            return len(await write_one(conn, _DELETE, params))

        return await self._pool.run(op)
