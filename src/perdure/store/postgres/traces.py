"""The trace context of runs on PostgreSQL (a mixin of
:class:`~perdure.store.postgres.store.PostgresStore`; see :mod:`perdure.store.traces`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, LiteralString

from perdure.store.postgres.pool import Conn, Pool, write_one

_SET: Final[LiteralString] = (
    "UPDATE runs SET trace = %(trace)s WHERE id = %(id)s AND lease_token = %(token)s"
    " AND status = 'running' RETURNING id"
)
_READ: Final[LiteralString] = (
    "SELECT id, trace FROM runs WHERE id = ANY(%(ids)s::text[]) AND trace IS NOT NULL"
)


class Traces:
    """Reads and writes ``runs.trace``."""

    _pool: Pool

    async def set_run_trace(self, run_id: str, token: int, trace: str) -> bool:
        """Record ``trace`` for the run while ``token`` is its lease token."""
        params = {"trace": trace, "id": run_id, "token": token}

        async def op(conn: Conn) -> bool:
            return bool(await write_one(conn, _SET, params))

        return await self._pool.run(op)

    async def run_traces(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The recorded trace of each of ``run_ids`` that has one."""
        if not run_ids:
            return {}
        rows = await self._pool.read_all(_READ, {"ids": list(dict.fromkeys(run_ids))})
        return {row[0]: row[1] for row in rows}
