"""Creation-time flow control on PostgreSQL: idempotency, rate limit, singleton, debounce,
batch.

Called by :func:`perdure.store.postgres.flow.insert_flow_runs` inside the caller's open
transaction. Decisions that read shared state serialize across processes: the transaction
first takes ``pg_advisory_xact_lock`` on every gate key of its runs, in the order of the keys'
hashes (so that two transactions never wait on each other in a cycle), and only then reads
the state, in later statements (READ COMMITTED: each statement sees what was committed before
it began, so after the locks a transaction sees every earlier decision on its keys). The
decisions are pure (:mod:`perdure.engine.flow.gates`, :mod:`perdure.engine.flow.window`); the
order of the gates is documented there. The same logic as ``store/sqlite/flow_gates.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from perdure.engine.flow import gates, window
from perdure.engine.flow.keys import RunFlow
from perdure.store.base import CreatedRun, NewRun
from perdure.store.postgres import queries as q
from perdure.store.postgres.schema import Conn
from perdure.store.rules import CANCELLED_ERROR

_PRUNE_BATCH = 500

LOCK_KEYS: Final = (
    "SELECT perdure_now(%(now)s::float8), (SELECT count(pg_advisory_xact_lock(h)) FROM"
    " (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest(%(keys)s::text[]) AS k"
    " ORDER BY h OFFSET 0) s)"
)
INSERT_GATED: Final = (
    "WITH ins AS (INSERT INTO runs (id, function_id, status, input, event_id, idempotency_key,"
    " parent_run_id, parent_step, available_at, created_at, ended_at, priority,"
    " concurrency_key, concurrency_key2, throttle_key, singleton_key, gate_key, batch_size,"
    " start_by, reason, error) VALUES (%(id)s, %(fid)s, %(status)s, %(input)s, %(event_id)s,"
    " %(key)s, NULL, NULL, %(due)s::float8, %(t)s::float8, %(ended)s::float8,"
    " %(priority)s::int4, %(ck1)s, %(ck2)s, %(throttle_key)s, %(singleton_key)s,"
    " %(gate_key)s, %(batch_size)s::int4, %(start_by)s::float8, %(reason)s, %(error)s)"
    " ON CONFLICT (function_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
    " DO NOTHING RETURNING id), "
    "nt AS (SELECT pg_notify(%(wake_channel)s, %(origin)s) FROM ins WHERE %(wake)s) "
    "SELECT ins.id, (SELECT count(*) FROM nt) FROM ins"
)
IDEMPOTENCY_USED: Final = (
    "SELECT run_id, expires_at FROM flow_idempotency WHERE key = %(key)s"
    " AND expires_at > %(t)s::float8"
)
IDEMPOTENCY_MARK: Final = (
    "INSERT INTO flow_idempotency (key, run_id, expires_at)"
    " VALUES (%(key)s, %(run_id)s, %(expires)s::float8)"
    " ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, expires_at = excluded.expires_at"
)
RATE_HEAD: Final = (
    "SELECT h.size, h.head, h.last, h.expires_at, s.at FROM flow_rate_heads h"
    " LEFT JOIN flow_rate_slots s ON s.key = h.key AND s.slot = h.head WHERE h.key = %(key)s"
)
RATE_SLOTS: Final = "SELECT slot, at FROM flow_rate_slots WHERE key = %(key)s"
RATE_CLEAR: Final = "DELETE FROM flow_rate_slots WHERE key = %(key)s"
RATE_SLOTS_SET: Final = (
    "INSERT INTO flow_rate_slots (key, slot, at)"
    " SELECT %(key)s, s.slot, s.at FROM unnest(%(slots)s::int4[], %(ats)s::float8[]) AS s(slot, at)"
    " ON CONFLICT (key, slot) DO UPDATE SET at = excluded.at"
)
RATE_ADMIT: Final = (
    "WITH sl AS (INSERT INTO flow_rate_slots (key, slot, at)"
    " VALUES (%(key)s, %(slot)s::int4, %(at)s::float8)"
    " ON CONFLICT (key, slot) DO UPDATE SET at = excluded.at) "
    "INSERT INTO flow_rate_heads (key, size, head, last, expires_at)"
    " VALUES (%(key)s, %(size)s::int4, %(head)s::int4, %(at)s::float8, %(expires)s::float8)"
    " ON CONFLICT (key) DO UPDATE SET size = excluded.size, head = excluded.head,"
    " last = excluded.last, expires_at = excluded.expires_at"
)
SINGLETON_ACTIVE: Final = (
    "SELECT id FROM runs WHERE function_id = %(fid)s AND singleton_key = %(key)s"
    " AND gate_key IS NULL AND status NOT IN ('completed', 'failed', 'cancelled', 'skipped')"
    " ORDER BY id"
)
GATE_OPEN: Final = (
    "SELECT id, status, created_at, available_at, batch_size FROM runs"
    " WHERE function_id = %(fid)s AND gate_key = %(key)s FOR NO KEY UPDATE"
)
GATE_RELEASE: Final = "UPDATE runs SET gate_key = NULL WHERE id = %(id)s"
DEBOUNCE_PUSH: Final = (
    "UPDATE runs SET input = %(input)s, event_id = %(event_id)s,"
    " available_at = %(due)s::float8, reason = %(reason)s WHERE id = %(id)s"
)
BATCH_ADD: Final = (
    "WITH u AS (UPDATE runs SET input = left(input, -1) || ',' || %(input)s || ']',"
    " batch_size = %(size)s::int4, available_at = %(due)s::float8,"
    " gate_key = CASE WHEN %(closes)s THEN NULL ELSE gate_key END, reason = %(reason)s"
    " WHERE id = %(id)s RETURNING id), "
    "nt AS (SELECT pg_notify(%(wake_channel)s, %(origin)s) FROM u WHERE %(closes)s) "
    "SELECT (SELECT count(*) FROM nt)"
)
PRUNE_CANDIDATES: Final = (
    "SELECT key FROM flow_rate_heads WHERE expires_at <= perdure_now(%(now)s::float8)"
    " AND pg_try_advisory_xact_lock(hashtextextended(key, 0))"
    " ORDER BY expires_at LIMIT %(limit)s"
)
PRUNE_RATE: Final = (
    "WITH gone AS (DELETE FROM flow_rate_heads WHERE key = ANY(%(keys)s::text[])"
    " AND expires_at <= perdure_now(%(now)s::float8) RETURNING key) "
    "DELETE FROM flow_rate_slots WHERE key IN (SELECT key FROM gone)"
)
PRUNE_IDEMPOTENCY: Final = (
    "DELETE FROM flow_idempotency WHERE key IN (SELECT key FROM flow_idempotency"
    " WHERE expires_at <= perdure_now(%(now)s::float8) ORDER BY expires_at LIMIT %(limit)s"
    " FOR UPDATE SKIP LOCKED)"
)


def lock_keys(run: NewRun) -> list[str]:
    """The advisory-lock keys of a run's creation-time gates."""
    flow = run.flow
    assert flow is not None
    keys = [flow.rate_key, flow.idempotency_key]
    if run.idempotency_key is not None:
        keys.append(f"k:{run.function_id}:{run.idempotency_key}")
    if flow.singleton_key is not None:
        keys.append(f"s:{run.function_id}:{flow.singleton_key}")
    gate = flow.debounce_key if flow.debounce_key is not None else flow.batch_key
    if gate is not None:
        keys.append(f"g:{run.function_id}:{gate}")
    return [k for k in keys if k is not None]


class Gates:
    """The creation-time gates of one transaction: lock once, then decide run by run."""

    def __init__(self, conn: Conn, now: float | None, wake_channel: str, origin: str) -> None:
        self.conn = conn
        self.now_param = now
        self.wake_channel = wake_channel
        self.done_channel = "perdure_done_" + wake_channel.removeprefix("perdure_wake_")
        self.origin = origin
        self.t = 0.0
        self.finished: list[str] = []

    async def _one(self, stmt: Any, params: dict[str, Any]) -> Any:
        return await (await self.conn.execute(stmt, params)).fetchone()

    async def lock(self, runs: Sequence[NewRun]) -> None:
        """Take the advisory locks of every run's gate keys; read the transaction's time."""
        keys = sorted({k for run in runs for k in lock_keys(run)})
        row = await self._one(LOCK_KEYS, {"now": self.now_param, "keys": keys})
        self.t = float(row[0])

    async def create(self, run: NewRun) -> CreatedRun:
        """Create one run through the gates (after :meth:`lock`)."""
        flow = run.flow
        assert flow is not None
        spec, t = flow.spec, self.t
        if run.idempotency_key is not None:
            found = await self._one(
                q.RUN_BY_KEY, {"fid": run.function_id, "key": run.idempotency_key}
            )
            if found is not None:
                return CreatedRun(found[0], False)
        if flow.idempotency_key is not None:
            used = await self._one(IDEMPOTENCY_USED, {"key": flow.idempotency_key, "t": t})
            if used is not None:
                why = gates.idempotency_reason(flow.idempotency_key, used[0], float(used[1]))
                return await self._skip(run, why)
        if flow.rate_key is not None and spec.rate_limit is not None:
            rl = spec.rate_limit
            decision = await self._rate_decide(flow.rate_key, rl.limit, rl.period_seconds)
            if not decision.allowed:
                why = gates.rate_limit_reason(
                    flow.rate_key, rl.limit, rl.period_seconds, decision.retry_at
                )
                return await self._skip(run, why)
        if flow.singleton_key is not None and spec.singleton is not None:
            cur = await self.conn.execute(
                SINGLETON_ACTIVE, {"fid": run.function_id, "key": flow.singleton_key}
            )
            active = [r[0] for r in await cur.fetchall()]
            action = gates.singleton_action(spec.singleton.mode, active[0] if active else None)
            if action == "skip":
                return await self._skip(
                    run, gates.singleton_skip_reason(flow.singleton_key, active[0])
                )
            if action == "cancel":
                why = gates.singleton_cancel_reason(flow.singleton_key, run.id)
                for other in active:
                    await self._cancel(other, why)
        if flow.debounce_key is not None:
            out = await self._debounce(run, flow)
        elif flow.batch_key is not None:
            out = await self._batch(run, flow)
        else:
            out = await self._insert(run, "queued", t - flow.priority)
        if flow.idempotency_key is not None:
            expires = t + gates.IDEMPOTENCY_SECONDS
            params = {"key": flow.idempotency_key, "run_id": out.id, "expires": expires}
            await self.conn.execute(IDEMPOTENCY_MARK, params)
        return out

    async def _insert(
        self,
        run: NewRun,
        status: str,
        due: float | None,
        *,
        gate_key: str | None = None,
        batch_size: int | None = None,
        reason: str | None = None,
        run_input: str | None = None,
    ) -> CreatedRun:
        flow = run.flow
        assert flow is not None
        t = self.t
        ck1, ck2 = flow.concurrency_keys
        skipped = status == "skipped"
        start_by = None if flow.start_timeout is None or skipped else t + flow.start_timeout
        params = {
            "id": run.id,
            "fid": run.function_id,
            "status": status,
            "input": run.input if run_input is None else run_input,
            "event_id": run.event_id,
            "key": run.idempotency_key,
            "due": due,
            "t": t,
            "ended": t if skipped else None,
            "priority": flow.priority,
            "ck1": ck1,
            "ck2": ck2,
            "throttle_key": flow.throttle_key,
            "singleton_key": flow.singleton_key,
            "gate_key": gate_key,
            "batch_size": batch_size,
            "start_by": start_by,
            "reason": reason,
            "error": gates.SKIPPED_ERROR if skipped else None,
            "wake": not skipped,
            "wake_channel": self.wake_channel,
            "origin": self.origin,
        }
        row = await self._one(INSERT_GATED, params)
        if row is None:  # an explicit idempotency key taken meanwhile (not under our lock)
            found = await self._one(
                q.RUN_BY_KEY, {"fid": run.function_id, "key": run.idempotency_key}
            )
            return CreatedRun(found[0] if found else run.id, False)
        return CreatedRun(run.id, True, skipped=skipped)

    async def _skip(self, run: NewRun, reason: str) -> CreatedRun:
        out = await self._insert(run, "skipped", None, reason=reason)
        if out.skipped:
            self.finished.append(run.id)
        return out

    async def _cancel(self, run_id: str, reason: str) -> None:
        """Cancel with the store's cancel statement (fences the worker, fails a parent's
        invoke step, notifies), and record why."""
        params = {
            "now": self.now_param,
            "id": run_id,
            "error": CANCELLED_ERROR,
            "reason": reason,
            "wake_channel": self.wake_channel,
            "done_channel": self.done_channel,
            "origin": self.origin,
        }
        counts = await self._one(q.CANCEL_RUN, params)
        if counts and counts[0]:
            self.finished.append(run_id)

    async def _rate_decide(self, key: str, limit: int, period: float) -> window.WindowDecision:
        t = self.t
        row = await self._one(RATE_HEAD, {"key": key})
        state: window.RingState | None = None
        oldest: float | None = None
        if row is not None and float(row[3]) > t:
            state = window.RingState(int(row[0]), int(row[1]), float(row[2]))
            oldest = None if row[4] is None else float(row[4])
        elif row is not None:
            await self.conn.execute(RATE_CLEAR, {"key": key})
        if state is not None and state.size != limit:
            slots: list[float | None] = [None] * state.size
            cur = await self.conn.execute(RATE_SLOTS, {"key": key})
            for slot, at in await cur.fetchall():
                if 0 <= slot < state.size:
                    slots[slot] = float(at)
            kept = window.resize(state, slots, limit)
            await self.conn.execute(RATE_CLEAR, {"key": key})
            params: dict[str, Any] = {"key": key, "slots": list(range(len(kept))), "ats": kept}
            await self.conn.execute(RATE_SLOTS_SET, params)
            state = window.RingState(limit, len(kept) % limit, state.last)
            oldest = kept[0] if len(kept) == limit else None
        decision = window.decide(state, oldest, t, limit, period)
        if decision.allowed:
            after = decision.state
            params = {
                "key": key,
                "slot": 0 if state is None else state.head,
                "at": decision.at,
                "size": after.size,
                "head": after.head,
                "expires": decision.expires_at,
            }
            await self.conn.execute(RATE_ADMIT, params)
        return decision

    async def _open_gate(self, run: NewRun, key: str) -> tuple[str, float, float, int] | None:
        row = await self._one(GATE_OPEN, {"fid": run.function_id, "key": key})
        if row is None:
            return None
        if row[1] != "queued":
            await self.conn.execute(GATE_RELEASE, {"id": row[0]})
            return None
        return row[0], float(row[2]), float(row[3]), int(row[4] or 0)

    async def _debounce(self, run: NewRun, flow: RunFlow) -> CreatedRun:
        db = flow.spec.debounce
        key = flow.debounce_key
        assert db is not None and key is not None
        t = self.t
        found = await self._open_gate(run, key)
        if found is None:
            due = gates.debounce_due(t, t, db.period_seconds, db.timeout_seconds)
            why = gates.debounce_reason(key, due)
            return await self._insert(run, "queued", due, gate_key=key, reason=why)
        open_id, first, _, _ = found
        due = gates.debounce_due(first, t, db.period_seconds, db.timeout_seconds)
        params = {
            "input": run.input,
            "event_id": run.event_id,
            "due": due,
            "reason": gates.debounce_reason(key, due),
            "id": open_id,
        }
        await self.conn.execute(DEBOUNCE_PUSH, params)
        return CreatedRun(open_id, False)

    async def _batch(self, run: NewRun, flow: RunFlow) -> CreatedRun:
        bt = flow.spec.batch
        key = flow.batch_key
        assert bt is not None and key is not None
        t = self.t
        found = await self._open_gate(run, key)
        if found is None:
            step = gates.batch_open(t, bt.max_size, bt.timeout_seconds)
            return await self._insert(
                run,
                "queued",
                step.due,
                gate_key=None if step.closes else key,
                batch_size=step.size,
                reason=gates.batch_reason(key, step),
                run_input=f"[{run.input}]",
            )
        open_id, _, due, size = found
        step = gates.batch_add(size, bt.max_size, t, due)
        params = {
            "input": run.input,
            "size": step.size,
            "due": step.due,
            "closes": step.closes,
            "reason": gates.batch_reason(key, step),
            "id": open_id,
            "wake_channel": self.wake_channel,
            "origin": self.origin,
        }
        await self.conn.execute(BATCH_ADD, params)
        return CreatedRun(open_id, False)


async def prune(conn: Conn, now: float | None) -> None:
    """Delete expired creation-time state (in the caller's transaction): rate-limit rings
    whose every slot left the window (under each key's lock, taken without waiting),
    idempotency keys older than 24 hours."""
    params = {"now": now, "limit": _PRUNE_BATCH}
    cur = await conn.execute(PRUNE_CANDIDATES, params)
    keys = [r[0] for r in await cur.fetchall()]
    if keys:
        await conn.execute(PRUNE_RATE, {"now": now, "keys": keys})
    await conn.execute(PRUNE_IDEMPOTENCY, params)
