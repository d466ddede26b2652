"""Flow control on SQLite: creating runs that carry flow-control state.

Runs whose function has flow control (:attr:`perdure.store.base.NewRun.flow`) are created here,
inside the writer's transaction (so every decision is serialized with every other write): the
keys their limits are counted under, the priority (a head start: ``available_at`` is moved
earlier, or later for a negative factor, as Inngest does) and the start deadline go into the
run's row. The decisions themselves are pure (:mod:`perdure.engine.flow`).
"""

from __future__ import annotations

from collections.abc import Sequence

from perdure.store.base import CreatedRun, NewRun
from perdure.store.sqlite import flow_gates
from perdure.store.sqlite import queries as q
from perdure.store.sqlite.writer import Tx


def insert_flow_run(tx: Tx, run: NewRun, *, available_at: float | None = None) -> CreatedRun:
    """Insert one run with its flow-control columns (an existing idempotency key wins)."""
    flow = run.flow
    assert flow is not None
    now = tx.now
    due = now - flow.priority if available_at is None else available_at
    start_by = None if flow.start_timeout is None else now + flow.start_timeout
    ck1, ck2 = flow.concurrency_keys
    cur = tx.conn.execute(
        q.INSERT_FLOW_RUN,
        (
            run.id,
            run.function_id,
            run.input,
            run.event_id,
            run.idempotency_key,
            run.parent_run_id,
            run.parent_step,
            due,
            now,
            flow.priority,
            ck1,
            ck2,
            flow.throttle_key,
            flow.singleton_key,
            start_by,
        ),
    )
    if cur.rowcount == 1 or run.idempotency_key is None:
        return CreatedRun(run.id, True)
    existing = tx.conn.execute(q.RUN_BY_KEY, (run.function_id, run.idempotency_key)).fetchone()
    return CreatedRun(existing[0], False)


def insert_flow_runs(
    tx: Tx, runs: Sequence[NewRun], end_run: flow_gates.EndRun | None = None
) -> list[CreatedRun]:
    """Create runs under flow control, in order (through the creation-time gates of
    :mod:`.flow_gates` when they have any and are not invoked by a parent run; ``end_run``
    finishes a run a singleton cancels)."""
    out = [
        flow_gates.create_gated(tx, run, end_run)
        if run.flow is not None and run.flow.create_gated and run.parent_run_id is None
        else insert_flow_run(tx, run)
        for run in runs
    ]
    if any(c.created for c in out):
        tx.wake = True
    return out
