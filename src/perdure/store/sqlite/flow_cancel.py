"""``cancel_on`` and ``timeouts`` on SQLite, inside the writer's transaction.

- **cancel_on**: :func:`cancel_for_event` is called by ``send_events`` for each new event,
  before the event's own runs are created: it looks only at functions with a ``CancelOn``
  whose pattern matches the event's name (:func:`perdure.engine.flow.cancel.cancellers`),
  selects their runs that have not ended inside the option's window (index
  ``runs_active_by_function``; a ``match`` on a scalar is pre-filtered in SQL with
  ``json_extract``), and cancels those :func:`perdure.engine.flow.cancel.cancels` accepts.
- **timeouts**: :func:`set_finish_by` (called by the claim) gives first-claimed runs of
  functions with a finish timeout their deadline; :func:`cancel_overdue` (the deadline
  sweeper) cancels runs past ``start_by``/``finish_by`` (indexes ``runs_start_by``,
  ``runs_finish_by``) and says when the next deadline falls.

Cancelling is the store's one cancel (``CANCEL_RUN`` + ``end_run``: the worker is fenced, the
waits dropped, a parent's ``invoke`` step fails, the run is announced), with a ``reason``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, LiteralString

from perdure import serde
from perdure.engine.flow.cancel import cancel_reason, cancellers, cancels, match_filter
from perdure.engine.flow.deadlines import next_deadline, overdue
from perdure.functions import FunctionRecord
from perdure.store.base import ClaimedRun, EventIn
from perdure.store.rules import CANCELLED_ERROR
from perdure.store.sqlite import commit as cm
from perdure.store.sqlite import queries as q
from perdure.store.sqlite.writer import Tx

_ACTIVE: Final = "status IN ('queued', 'running', 'sleeping', 'waiting')"
_INT64 = (-(2**63), 2**63 - 1)


def _active_runs(window: bool, match: bool) -> LiteralString:
    sql: LiteralString = "SELECT id, input FROM runs WHERE function_id = ? AND " + _ACTIVE
    if window:
        sql += " AND created_at >= ?"
    if match:
        sql += " AND json_extract(input, ?) IS ?"
    return sql


# Keyed by (window given, match pre-filter given).
ACTIVE_RUNS: Final[dict[tuple[bool, bool], LiteralString]] = {
    (w, m): _active_runs(w, m) for w in (False, True) for m in (False, True)
}
OVERDUE: Final[LiteralString] = (
    "SELECT id, status, created_at, started_at, start_by, finish_by FROM runs "
    "WHERE start_by <= ? AND start_by IS NOT NULL AND started_at IS NULL AND status = 'queued' "
    "UNION SELECT id, status, created_at, started_at, start_by, finish_by FROM runs "
    "WHERE finish_by <= ? AND finish_by IS NOT NULL AND " + _ACTIVE + " LIMIT ?"
)
NEXT_DEADLINE: Final[LiteralString] = (
    "SELECT (SELECT min(start_by) FROM runs WHERE start_by IS NOT NULL "
    "AND started_at IS NULL AND status = 'queued'), "
    "(SELECT min(finish_by) FROM runs WHERE finish_by IS NOT NULL AND " + _ACTIVE + ")"
)
SET_FINISH_BY: Final[LiteralString] = (
    "UPDATE runs SET finish_by = started_at + ? WHERE id = ? AND finish_by IS NULL "
    "AND started_at IS NOT NULL"
)


def cancel_with_reason(tx: Tx, run_id: str, reason: str) -> bool:
    """Cancel a run that has not ended, recording ``reason``; whether it was cancelled."""
    parent = tx.conn.execute(q.CANCEL_RUN, (tx.now, CANCELLED_ERROR, reason, run_id)).fetchone()
    if parent is None:
        return False
    cm.end_run(tx, run_id, parent, "failed", None, CANCELLED_ERROR)
    return True


def _sqlite_path(parts: list[str]) -> str:
    return "$" + "".join(f'."{p}"' for p in parts)


def cancel_for_event(
    tx: Tx, registry: Sequence[FunctionRecord], ev: EventIn, spare: Iterable[str] = ()
) -> list[str]:
    """Cancel the runs ``ev`` cancels (none of ``spare``: runs created by the same send);
    the ids cancelled."""
    targets = cancellers(registry, ev.name)
    if not targets:
        return []
    conn = tx.conn
    skip = set(spare)
    out: list[str] = []
    why = cancel_reason(ev.id, ev.name)
    for target in targets:
        option = target.option
        args: list[object] = [target.function_id]
        since = target.since(tx.now)
        if since is not None:
            args.append(since)
        pre = match_filter(option, ev.obj)
        if pre is not None:
            value = pre[1]
            if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
                pre = None  # not bindable: checked in Python only
            else:
                args += [_sqlite_path(pre[0]), value]
        sql = ACTIVE_RUNS[(since is not None, pre is not None)]
        for run_id, run_input in conn.execute(sql, args).fetchall():
            if run_id in skip:
                continue
            if not cancels(option, serde.loads(run_input), ev.obj):
                continue
            if cancel_with_reason(tx, run_id, why):
                skip.add(run_id)
                out.append(run_id)
    return out


def set_finish_by(
    tx: Tx, registry: Sequence[FunctionRecord], claimed: Sequence[ClaimedRun]
) -> None:
    """Give claimed runs of functions with a finish timeout their deadline (``started_at +
    finish``), if they have none yet (their first claim)."""
    finish = {
        r.id: r.flow.timeouts.finish_seconds
        for r in registry
        if r.flow.timeouts is not None and r.flow.timeouts.finish_seconds is not None
    }
    if not finish:
        return
    rows = [(finish[c.function_id], c.id) for c in claimed if c.function_id in finish]
    if rows:
        tx.conn.executemany(SET_FINISH_BY, rows)


def cancel_overdue(tx: Tx, limit: int) -> tuple[list[str], float | None]:
    """Cancel up to ``limit`` runs past their start or finish deadline; the ids cancelled and
    when the next deadline falls (now, if more are overdue)."""
    conn, now = tx.conn, tx.now
    out: list[str] = []
    rows = conn.execute(OVERDUE, (now, now, limit)).fetchall()
    for run_id, status, created_at, started_at, start_by, finish_by in rows:
        why = overdue(status, created_at, started_at, start_by, finish_by, now)
        if why is not None and cancel_with_reason(tx, run_id, why):
            out.append(run_id)
    if len(rows) >= limit:
        return out, now
    start_min, finish_min = conn.execute(NEXT_DEADLINE).fetchone()
    return out, next_deadline(start_min, finish_min)
