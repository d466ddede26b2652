"""Reruns and replays on SQLite: a new run linked to the one it comes from, created with the
steps it keeps, in the writer's transaction (see :meth:`perdure.store.base.Store.
create_derived_run`)."""

from __future__ import annotations

from perdure.store.base import CreatedRun, NewRun, RunOrigin
from perdure.store.sqlite import commit as cm
from perdure.store.sqlite import queries as q
from perdure.store.sqlite.writer import Tx


def create_derived_run(tx: Tx, run: NewRun, origin: RunOrigin) -> CreatedRun | None:
    """Create ``run`` linked to ``origin`` with the steps a replay keeps (``None``: the
    original run is unknown, nothing is written)."""
    conn = tx.conn
    if conn.execute(q.RUN_EXISTS, (origin.run_id,)).fetchone() is None:
        return None
    created = cm.insert_runs(tx, [run])[0]
    replay = origin.kind == "replay"
    conn.execute(
        q.LINK_RUN,
        (
            None if replay else origin.run_id,
            origin.run_id if replay else None,
            origin.from_step if replay else None,
            created.id,
        ),
    )
    if replay:
        conn.execute(q.COPY_STEPS, (created.id, origin.run_id, origin.from_seq))
    tx.wake = True
    return created
