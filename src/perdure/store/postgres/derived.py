"""Reruns and replays on PostgreSQL: a new run linked to the one it comes from, created with
the steps it keeps, in one transaction (see :meth:`perdure.store.base.Store.
create_derived_run`). The SQL is here, beside the one method that uses it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from perdure.store import inputs
from perdure.store.base import CreatedRun, NewRun, RunOrigin
from perdure.store.postgres import flow
from perdure.store.postgres import queries as q
from perdure.store.postgres.plan import one_run_params
from perdure.store.postgres.pool import Pool, in_transaction
from perdure.store.postgres.schema import Conn

RUN_EXISTS: Final = "SELECT 1 FROM runs WHERE id = %(orig)s FOR KEY SHARE"
LINK_RUN: Final = (
    "UPDATE runs SET rerun_of = %(rerun_of)s, replay_of = %(replay_of)s,"
    " replay_from_step = %(from_step)s WHERE id = %(id)s"
)
COPY_STEPS: Final = (
    "INSERT INTO steps (run_id, key, seq, kind, status, output, error, attempts, wake_at,"
    " started_at, ended_at, name, input) SELECT %(id)s, key, seq, kind, status, output,"
    " error, attempts, wake_at, started_at, ended_at, name, input FROM steps"
    " WHERE run_id = %(orig)s AND status = 'completed' AND seq < %(from_seq)s"
)


class DerivedRuns:
    """:meth:`create_derived_run` (mixed into :class:`~perdure.store.postgres.store.
    PostgresStore`)."""

    _pool: Pool
    _channel: tuple[str, str]
    _now_param: Callable[[], float | None]
    _announce: Callable[..., None]

    async def create_derived_run(self, run: NewRun, origin: RunOrigin) -> CreatedRun | None:
        """Create a rerun or replay of ``origin.run_id`` with the steps it keeps."""
        inputs.require_storable_runs([run])
        if not inputs.all_storable((origin.run_id, origin.from_step)):
            return None
        now = self._now_param()
        replay = origin.kind == "replay"
        link = {
            "id": run.id,
            "orig": origin.run_id,
            "rerun_of": None if replay else origin.run_id,
            "replay_of": origin.run_id if replay else None,
            "from_step": origin.from_step if replay else None,
            "from_seq": origin.from_seq,
        }

        async def body(conn: Conn) -> CreatedRun | None:
            if await (await conn.execute(RUN_EXISTS, link)).fetchone() is None:
                return None
            if run.flow is not None:
                created = (await flow.insert_flow_runs(conn, [run], now, *self._channel))[0]
            else:
                await conn.execute(q.CREATE_ONE, one_run_params(run, now, *self._channel))
                created = CreatedRun(run.id, True)
            await conn.execute(LINK_RUN, {**link, "id": created.id})
            if replay:
                await conn.execute(COPY_STEPS, {**link, "id": created.id})
            return created

        async def op(conn: Conn) -> CreatedRun | None:
            return await in_transaction(conn, body)

        created = await self._pool.run(op)
        self._announce(created is not None)
        return created
