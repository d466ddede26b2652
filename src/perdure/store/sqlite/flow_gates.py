"""Creation-time flow control on SQLite: idempotency, rate limit, singleton, debounce, batch.

Called by :func:`perdure.store.sqlite.flow.insert_flow_runs` for each run whose
:attr:`~perdure.engine.flow.keys.RunFlow.create_gated` is set, inside the writer's transaction:
SQLite has one writer, so reading the state, deciding (:mod:`perdure.engine.flow.gates`,
:mod:`perdure.engine.flow.window`) and writing are serialized with every other write of every
process. The order of the gates is documented in :mod:`perdure.engine.flow.gates`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, LiteralString

from perdure.engine.flow import gates, window
from perdure.engine.flow.keys import RunFlow
from perdure.store.base import CreatedRun, NewRun
from perdure.store.rules import CANCELLED_ERROR
from perdure.store.sqlite import queries as q
from perdure.store.sqlite.writer import Tx

#: ``end_run(tx, run_id, (parent_run, parent_step), status, output, error)`` of
#: :mod:`perdure.store.sqlite.commit` (passed in: commit imports this module's caller).
EndRun = Callable[[Tx, str, tuple[str | None, str | None], str, str | None, str | None], None]

_PRUNE_BATCH = 500

INSERT_GATED: Final[LiteralString] = (
    "INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key, "
    "parent_run_id, parent_step, available_at, created_at, ended_at, priority, "
    "concurrency_key, concurrency_key2, throttle_key, singleton_key, gate_key, batch_size, "
    "start_by, reason, error) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
IDEMPOTENCY_USED: Final[LiteralString] = (
    "SELECT run_id, expires_at FROM flow_idempotency WHERE key = ? AND expires_at > ?"
)
IDEMPOTENCY_MARK: Final[LiteralString] = (
    "INSERT INTO flow_idempotency (key, run_id, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, expires_at = excluded.expires_at"
)
RATE_HEAD: Final[LiteralString] = (
    "SELECT h.size, h.head, h.last, h.expires_at, s.at FROM flow_rate_heads h "
    "LEFT JOIN flow_rate_slots s ON s.key = h.key AND s.slot = h.head WHERE h.key = ?"
)
RATE_SLOTS: Final[LiteralString] = "SELECT slot, at FROM flow_rate_slots WHERE key = ?"
RATE_CLEAR: Final[LiteralString] = "DELETE FROM flow_rate_slots WHERE key = ?"
RATE_SLOT: Final[LiteralString] = (
    "INSERT INTO flow_rate_slots (key, slot, at) VALUES (?, ?, ?) "
    "ON CONFLICT (key, slot) DO UPDATE SET at = excluded.at"
)
RATE_SET_HEAD: Final[LiteralString] = (
    "INSERT INTO flow_rate_heads (key, size, head, last, expires_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET size = excluded.size, head = excluded.head, "
    "last = excluded.last, expires_at = excluded.expires_at"
)
SINGLETON_ACTIVE: Final[LiteralString] = (
    "SELECT id FROM runs WHERE function_id = ? AND singleton_key = ? AND gate_key IS NULL "
    "AND status NOT IN ('completed', 'failed', 'cancelled', 'skipped') ORDER BY id"
)
GATE_OPEN: Final[LiteralString] = (
    "SELECT id, status, created_at, available_at, batch_size FROM runs "
    "WHERE function_id = ? AND gate_key = ?"
)
GATE_RELEASE: Final[LiteralString] = "UPDATE runs SET gate_key = NULL WHERE id = ?"
DEBOUNCE_PUSH: Final[LiteralString] = (
    "UPDATE runs SET input = ?, event_id = ?, available_at = ?, reason = ? WHERE id = ?"
)
BATCH_ADD: Final[LiteralString] = (
    "UPDATE runs SET input = substr(input, 1, length(input) - 1) || ',' || ? || ']', "
    "batch_size = ?, available_at = ?, gate_key = CASE WHEN ? THEN NULL ELSE gate_key END, "
    "reason = ? WHERE id = ?"
)
PRUNE_RATE: Final[LiteralString] = (
    "SELECT key FROM flow_rate_heads WHERE expires_at <= ? ORDER BY expires_at LIMIT ?"
)
PRUNE_RATE_HEAD: Final[LiteralString] = (
    "DELETE FROM flow_rate_heads WHERE key = ? AND expires_at <= ?"
)
PRUNE_IDEMPOTENCY: Final[LiteralString] = (
    "DELETE FROM flow_idempotency WHERE key IN (SELECT key FROM flow_idempotency "
    "WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)"
)


def create_gated(tx: Tx, run: NewRun, end_run: EndRun | None) -> CreatedRun:
    """Create one run through the creation-time gates (the run has no parent)."""
    flow = run.flow
    assert flow is not None
    conn, now = tx.conn, tx.now
    if run.idempotency_key is not None:
        found = conn.execute(q.RUN_BY_KEY, (run.function_id, run.idempotency_key)).fetchone()
        if found is not None:
            return CreatedRun(found[0], False)
    spec = flow.spec
    if flow.idempotency_key is not None:
        used = conn.execute(IDEMPOTENCY_USED, (flow.idempotency_key, now)).fetchone()
        if used is not None:
            why = gates.idempotency_reason(flow.idempotency_key, used[0], used[1])
            return _skip(tx, run, why)
    if flow.rate_key is not None and spec.rate_limit is not None:
        rl = spec.rate_limit
        decision = _rate_decide(tx, flow.rate_key, rl.limit, rl.period_seconds)
        if not decision.allowed:
            why = gates.rate_limit_reason(
                flow.rate_key, rl.limit, rl.period_seconds, decision.retry_at
            )
            return _skip(tx, run, why)
    if flow.singleton_key is not None and spec.singleton is not None:
        active = [
            r[0] for r in conn.execute(SINGLETON_ACTIVE, (run.function_id, flow.singleton_key))
        ]
        action = gates.singleton_action(spec.singleton.mode, active[0] if active else None)
        if action == "skip":
            return _skip(tx, run, gates.singleton_skip_reason(flow.singleton_key, active[0]))
        if action == "cancel":
            why = gates.singleton_cancel_reason(flow.singleton_key, run.id)
            for other in active:
                _cancel(tx, other, why, end_run)
    if flow.debounce_key is not None:
        out = _debounce(tx, run, flow)
    elif flow.batch_key is not None:
        out = _batch(tx, run, flow)
    else:
        _insert(tx, run, "queued", now - flow.priority)
        out = CreatedRun(run.id, True)
    if flow.idempotency_key is not None:
        expires = now + gates.IDEMPOTENCY_SECONDS
        conn.execute(IDEMPOTENCY_MARK, (flow.idempotency_key, out.id, expires))
    return out


def _insert(
    tx: Tx,
    run: NewRun,
    status: str,
    due: float | None,
    *,
    gate_key: str | None = None,
    batch_size: int | None = None,
    reason: str | None = None,
    run_input: str | None = None,
) -> None:
    flow = run.flow
    assert flow is not None
    now = tx.now
    ck1, ck2 = flow.concurrency_keys
    skipped = status == "skipped"
    start_by = None if flow.start_timeout is None or skipped else now + flow.start_timeout
    tx.conn.execute(
        INSERT_GATED,
        (
            run.id,
            run.function_id,
            status,
            run.input if run_input is None else run_input,
            run.event_id,
            run.idempotency_key,
            run.parent_run_id,
            run.parent_step,
            due,
            now,
            now if skipped else None,
            flow.priority,
            ck1,
            ck2,
            flow.throttle_key,
            flow.singleton_key,
            gate_key,
            batch_size,
            start_by,
            reason,
            gates.SKIPPED_ERROR if skipped else None,
        ),
    )


def _skip(tx: Tx, run: NewRun, reason: str) -> CreatedRun:
    """Record the run as skipped (terminal, never executed) with its reason."""
    _insert(tx, run, "skipped", None, reason=reason)
    tx.finished.append(run.id)
    return CreatedRun(run.id, True, skipped=True)


def _cancel(tx: Tx, run_id: str, reason: str, end_run: EndRun | None) -> None:
    """Cancel a run with the store's cancel (fences its worker, fails a parent's invoke
    step, announces it) and record why."""
    parent = tx.conn.execute(q.CANCEL_RUN, (tx.now, CANCELLED_ERROR, reason, run_id)).fetchone()
    if parent is None:
        return
    if end_run is not None:
        end_run(tx, run_id, parent, "failed", None, CANCELLED_ERROR)


def _rate_decide(tx: Tx, key: str, limit: int, period: float) -> window.WindowDecision:
    """The sliding-window decision for one run of ``key``, applied to the ring's rows."""
    conn, now = tx.conn, tx.now
    row = conn.execute(RATE_HEAD, (key,)).fetchone()
    state: window.RingState | None = None
    oldest: float | None = None
    if row is not None and row[3] > now:
        state, oldest = window.RingState(row[0], row[1], row[2]), row[4]
    elif row is not None:
        conn.execute(RATE_CLEAR, (key,))  # every slot is out of the window: start afresh
    if state is not None and state.size != limit:
        slots: list[float | None] = [None] * state.size
        for slot, at in conn.execute(RATE_SLOTS, (key,)):
            if 0 <= slot < state.size:
                slots[slot] = at
        kept = window.resize(state, slots, limit)
        conn.execute(RATE_CLEAR, (key,))
        conn.executemany(RATE_SLOT, [(key, i, at) for i, at in enumerate(kept)])
        state = window.RingState(limit, len(kept) % limit, state.last)
        oldest = kept[0] if len(kept) == limit else None
    decision = window.decide(state, oldest, now, limit, period)
    if decision.allowed:
        slot = 0 if state is None else state.head
        conn.execute(RATE_SLOT, (key, slot, decision.at))
        after = decision.state
        conn.execute(RATE_SET_HEAD, (key, after.size, after.head, after.last, decision.expires_at))
    return decision


def _open_gate(tx: Tx, run: NewRun, key: str) -> tuple[str, float, float, int] | None:
    """The function's open debounce/batch run of ``key`` (id, created_at, available_at,
    batch_size), releasing the key from a run that no longer accumulates (cancelled)."""
    row = tx.conn.execute(GATE_OPEN, (run.function_id, key)).fetchone()
    if row is None:
        return None
    if row[1] != "queued":
        tx.conn.execute(GATE_RELEASE, (row[0],))
        return None
    return row[0], row[2], row[3], row[4] or 0


def _debounce(tx: Tx, run: NewRun, flow: RunFlow) -> CreatedRun:
    db = flow.spec.debounce
    key = flow.debounce_key
    assert db is not None and key is not None
    now = tx.now
    found = _open_gate(tx, run, key)
    if found is None:
        due = gates.debounce_due(now, now, db.period_seconds, db.timeout_seconds)
        why = gates.debounce_reason(key, due)
        _insert(tx, run, "queued", due, gate_key=key, reason=why)
        tx.wake = True
        return CreatedRun(run.id, True)
    open_id, first, _, _ = found
    due = gates.debounce_due(first, now, db.period_seconds, db.timeout_seconds)
    why = gates.debounce_reason(key, due)
    tx.conn.execute(DEBOUNCE_PUSH, (run.input, run.event_id, due, why, open_id))
    return CreatedRun(open_id, False)


def _batch(tx: Tx, run: NewRun, flow: RunFlow) -> CreatedRun:
    bt = flow.spec.batch
    key = flow.batch_key
    assert bt is not None and key is not None
    now = tx.now
    found = _open_gate(tx, run, key)
    if found is None:
        step = gates.batch_open(now, bt.max_size, bt.timeout_seconds)
        why = gates.batch_reason(key, step)
        _insert(
            tx,
            run,
            "queued",
            step.due,
            gate_key=None if step.closes else key,
            batch_size=step.size,
            reason=why,
            run_input=f"[{run.input}]",
        )
        tx.wake = True
        return CreatedRun(run.id, True)
    open_id, _, due, size = found
    step = gates.batch_add(size, bt.max_size, now, due)
    why = gates.batch_reason(key, step)
    tx.conn.execute(BATCH_ADD, (run.input, step.size, step.due, step.closes, why, open_id))
    if step.closes:
        tx.wake = True
    return CreatedRun(open_id, False)


def prune(tx: Tx) -> None:
    """Delete expired creation-time state: rate-limit rings whose every slot left the window,
    idempotency keys older than 24 hours."""
    conn, now = tx.conn, tx.now
    for (key,) in conn.execute(PRUNE_RATE, (now, _PRUNE_BATCH)).fetchall():
        if conn.execute(PRUNE_RATE_HEAD, (key, now)).rowcount:
            conn.execute(RATE_CLEAR, (key,))
    conn.execute(PRUNE_IDEMPOTENCY, (now, _PRUNE_BATCH))
