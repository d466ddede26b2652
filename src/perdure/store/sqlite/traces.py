"""The trace context of runs on SQLite (a mixin of
:class:`~perdure.store.sqlite.store.SqliteStore`; see :mod:`perdure.store.traces`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, LiteralString, TypeVar

from perdure.store.sqlite.writer import Tx

T = TypeVar("T")

_SET: Final[LiteralString] = (
    "UPDATE runs SET trace = ? WHERE id = ? AND lease_token = ? AND status = 'running'"
)
_READ: Final[LiteralString] = "SELECT id, trace FROM runs WHERE trace IS NOT NULL AND id IN ({ids})"
_CHUNK = 500


class Traces:
    """Reads and writes ``runs.trace``."""

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Tx], T], small: bool = False) -> T: ...

        async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T: ...

    async def set_run_trace(self, run_id: str, token: int, trace: str) -> bool:
        """Record ``trace`` for the run while ``token`` is its lease token."""

        def op(tx: Tx) -> bool:
            return tx.conn.execute(_SET, (trace, run_id, token)).rowcount > 0

        return await self._write(op, small=True)

    async def run_traces(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The recorded trace of each of ``run_ids`` that has one."""
        wanted = list(dict.fromkeys(run_ids))

        def op(conn: sqlite3.Connection) -> dict[str, str]:
            out: dict[str, str] = {}
            for at in range(0, len(wanted), _CHUNK):
                chunk = wanted[at : at + _CHUNK]
                sql = _READ.format(ids=", ".join("?" * len(chunk)))
                out.update((row[0], row[1]) for row in conn.execute(sql, chunk))
            return out

        if not wanted:
            return {}
        return await self._read(op)
