"""``cancel_on`` and ``timeouts`` on PostgreSQL (mixed into
:class:`~perdure.store.postgres.store.PostgresStore` as :class:`FlowCancelling`).

- **cancel_on**: ``send_events`` calls :meth:`FlowCancelling._cancel_for_events` inside its
  transaction, after the first round trip (so the event is deduplicated and the registry
  fresh) and before its own runs are created. Only functions with a ``CancelOn`` whose
  pattern matches an event's name are looked at (:func:`perdure.engine.flow.cancel.cancellers`);
  their runs that have not ended, inside the option's window, are read (index
  ``runs_active_by_function``; a ``match`` on a string or integer is pre-filtered in SQL), the
  decision is :func:`perdure.engine.flow.cancel.cancels`, and the chosen runs are cancelled
  in id order (the lock order every statement of this backend keeps).
- **timeouts**: :meth:`FlowCancelling._set_finish_by` gives first-claimed runs of functions
  with a finish timeout their deadline (one statement after the claim, only when such runs
  were claimed); :meth:`FlowCancelling.cancel_overdue` (the deadline sweeper) locks overdue
  runs with ``SKIP LOCKED`` (sweepers of several processes share the work), cancels them and
  reads the next deadline.

Cancelling is the store's one cancel statement (``CANCEL_RUN``: fences the worker, drops the
waits, fails a parent's ``invoke`` step, notifies), with a ``reason``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Final, LiteralString

from perdure import serde
from perdure.engine.flow.cancel import cancel_reason, cancellers, cancels, match_filter
from perdure.engine.flow.deadlines import next_deadline, overdue
from perdure.errors import StoreUnavailableError
from perdure.functions import FunctionRecord
from perdure.store.base import ClaimedRun, EventIn
from perdure.store.postgres import queries as q
from perdure.store.postgres.plan import EventPlan
from perdure.store.postgres.pool import Pool, in_transaction
from perdure.store.postgres.schema import Conn
from perdure.store.rows import FunctionCache
from perdure.store.rules import CANCELLED_ERROR

log = logging.getLogger("perdure.store")

_ACTIVE: Final = "status IN ('queued', 'running', 'sleeping', 'waiting')"
_NOW: Final = "perdure_now(%(now)s::float8)"


def _active_runs(window: bool, match: bool) -> LiteralString:
    sql: LiteralString = "SELECT id, input FROM runs WHERE function_id = %(fid)s AND " + _ACTIVE
    if window:
        sql += " AND created_at >= " + _NOW + " - %(window)s::float8"
    if match:
        sql += " AND (input::json #>> %(path)s::text[]) = %(value)s::text"
    return sql


# Keyed by (window given, match pre-filter given).
ACTIVE_RUNS: Final[dict[tuple[bool, bool], LiteralString]] = {
    (w, m): _active_runs(w, m) for w in (False, True) for m in (False, True)
}
OVERDUE: Final[LiteralString] = (
    "SELECT id, status, created_at, started_at, start_by, finish_by, " + _NOW + " FROM runs "
    "WHERE id IN (SELECT id FROM runs WHERE start_by <= " + _NOW + " AND start_by IS NOT NULL"
    " AND started_at IS NULL AND status = 'queued'"
    " UNION SELECT id FROM runs WHERE finish_by <= " + _NOW + " AND finish_by IS NOT NULL"
    " AND " + _ACTIVE + ") "
    "ORDER BY id LIMIT %(limit)s FOR NO KEY UPDATE SKIP LOCKED"
)
NEXT_DEADLINE: Final[LiteralString] = (
    "SELECT (SELECT min(start_by) FROM runs WHERE start_by IS NOT NULL"
    " AND started_at IS NULL AND status = 'queued'),"
    " (SELECT min(finish_by) FROM runs WHERE finish_by IS NOT NULL AND " + _ACTIVE + ")"
)
SET_FINISH_BY: Final[LiteralString] = (
    "UPDATE runs r SET finish_by = r.started_at + v.secs"
    " FROM json_to_recordset(%(runs)s::json) AS v(id text, token int8, secs float8)"
    " WHERE r.id = v.id AND r.lease_token = v.token AND r.finish_by IS NULL"
    " AND r.started_at IS NOT NULL"
)


def _pre_filter(value: Any) -> str | None:
    """The text ``#>>`` gives for a value the SQL pre-filter may compare (strings and
    integers), else ``None``."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


class FlowCancelling:
    """``cancel_on`` and ``timeouts`` for the PostgreSQL store."""

    _pool: Pool
    _wake_channel: str
    _done_channel: str
    _origin: str
    _now_param: Callable[[], float | None]
    _announce: Callable[..., None]
    _finish_after: dict[str, float]
    _registry: FunctionCache

    def _cancel_params(self, run_id: str, reason: str | None) -> dict[str, Any]:
        return {
            "now": self._now_param(),
            "id": run_id,
            "error": CANCELLED_ERROR,
            "reason": reason,
            "wake_channel": self._wake_channel,
            "done_channel": self._done_channel,
            "origin": self._origin,
        }

    async def _cancel_in_tx(self, conn: Conn, reasons: dict[str, str]) -> list[str]:
        """Cancel runs (id -> reason) inside the open transaction, in id order; the ids
        cancelled."""
        if not reasons:
            return []
        ordered = sorted(reasons)
        cursors = []
        async with conn.pipeline():
            for run_id in ordered:
                params = self._cancel_params(run_id, reasons[run_id])
                cursors.append(await conn.execute(q.CANCEL_RUN, params))
        out = []
        for run_id, cur in zip(ordered, cursors, strict=True):
            row = await cur.fetchone()
            if row is not None and row[0]:
                out.append(run_id)
        return out

    async def _cancel_for_events(
        self, conn: Conn, events: Sequence[EventIn], registry: Sequence[FunctionRecord]
    ) -> dict[str, list[str]]:
        """Cancel the runs these (new, stored) events cancel, inside the caller's open
        transaction; per event id, the runs it cancelled."""
        reasons: dict[str, str] = {}
        by_event: dict[str, list[str]] = {}
        now = self._now_param()
        for ev in events:
            for target in cancellers(registry, ev.name):
                option = target.option
                params: dict[str, Any] = {"fid": target.function_id, "now": now}
                window = option.timeout_seconds
                if window is not None:
                    params["window"] = window
                pre = match_filter(option, ev.obj)
                text = None if pre is None else _pre_filter(pre[1])
                if pre is not None and text is not None:
                    params.update(path=pre[0], value=text)
                sql = ACTIVE_RUNS[(window is not None, text is not None)]
                rows = await (await conn.execute(sql, params)).fetchall()
                for run_id, run_input in rows:
                    if run_id in reasons:
                        continue
                    if cancels(option, serde.loads(run_input), ev.obj):
                        reasons[run_id] = cancel_reason(ev.id, ev.name)
                        by_event.setdefault(ev.id, []).append(run_id)
        done = set(await self._cancel_in_tx(conn, reasons))
        return {ev_id: [r for r in ids if r in done] for ev_id, ids in by_event.items()}

    def _note_functions(self, records: Sequence[FunctionRecord]) -> None:
        """Remember the finish timeouts of functions this process registers (the functions
        its workers claim runs of)."""
        if not hasattr(self, "_finish_after"):
            self._finish_after = {}
        for r in records:
            t = r.flow.timeouts
            if t is not None and t.finish_seconds is not None:
                self._finish_after[r.id] = t.finish_seconds
            else:
                self._finish_after.pop(r.id, None)

    async def _set_finish_by(self, claimed: Sequence[ClaimedRun]) -> None:
        """Set the finish deadline of claimed runs of functions with a finish timeout (no
        round trip when there are none). A failure is logged: the next claim of the run sets
        it (the deadline counts from the run's first start either way)."""
        finish = getattr(self, "_finish_after", None)
        if not finish:
            return
        rows = [
            {"id": c.id, "token": c.token, "secs": finish[c.function_id]}
            for c in claimed
            if c.function_id in finish
        ]
        if not rows:
            return
        params = {"runs": serde.dumps(rows)}

        async def op(conn: Conn) -> None:
            await conn.execute(SET_FINISH_BY, params)

        try:
            await self._pool.run(op)
        except StoreUnavailableError as exc:
            log.warning("could not set the finish deadline of claimed runs: %s", exc)

    async def cancel_overdue(self, limit: int = 500) -> tuple[list[str], float | None]:
        """Cancel runs past their start or finish deadline (``timeouts``); the ids cancelled
        and when the next deadline falls."""
        params = {"now": self._now_param(), "limit": limit}

        async def body(conn: Conn) -> tuple[list[str], float | None]:
            rows = await (await conn.execute(OVERDUE, params)).fetchall()
            reasons: dict[str, str] = {}
            for run_id, status, created_at, started_at, start_by, finish_by, now in rows:
                why = overdue(status, created_at, started_at, start_by, finish_by, now)
                if why is not None:
                    reasons[run_id] = why
            done = await self._cancel_in_tx(conn, reasons)
            if len(rows) >= limit:
                return done, float(rows[0][6])
            nxt = await (await conn.execute(NEXT_DEADLINE, {})).fetchone()
            assert nxt is not None
            return done, next_deadline(nxt[0], nxt[1])

        async def op(conn: Conn) -> tuple[list[str], float | None]:
            return await in_transaction(conn, body)

        done, nxt = await self._pool.run(op)
        self._announce(bool(done), done)
        return done, nxt

    async def _cancel_in_send(self, conn: Conn, plan: EventPlan) -> list[str]:
        """``send_events``' hook: cancel what the plan's new events cancel (in its open
        transaction); their waits are no longer resolved; the ids cancelled."""
        by_event = await self._cancel_for_events(conn, plan.stored, self._registry.records)
        if not by_event:
            return []
        for sent in plan.out:
            sent.cancelled = by_event.get(sent.id, [])
        gone = {r for ids in by_event.values() for r in ids}
        plan.resolved = {k: v for k, v in plan.resolved.items() if k[0] not in gone}
        return sorted(gone)
