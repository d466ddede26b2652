"""Flow control on PostgreSQL: creating runs that carry flow-control state.

Runs whose function has flow control (:attr:`perdure.store.base.NewRun.flow`) are created here,
with plain single-row statements inside the caller's open transaction: the keys their limits are
counted under, the priority (a head start: ``available_at`` is moved earlier, or later for a
negative factor, as Inngest does) and the start deadline go into the run's row. The decisions
themselves are pure (:mod:`perdure.engine.flow`); decisions against shared state serialize on
transaction-scoped advisory locks of their keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from perdure.store.base import CreatedRun, NewRun, SentEvent
from perdure.store.postgres import flow_gates
from perdure.store.postgres import flow_queries as fq
from perdure.store.postgres import queries as q
from perdure.store.postgres import schedule_queries as sq
from perdure.store.postgres.plan import to_json
from perdure.store.postgres.pool import Pool, in_transaction
from perdure.store.postgres.schema import Conn


def flow_run_params(
    run: NewRun, now: float | None, wake_channel: str, origin: str
) -> dict[str, Any]:
    """The parameters of ``INSERT_FLOW_RUN``."""
    flow = run.flow
    assert flow is not None
    ck1, ck2 = flow.concurrency_keys
    return {
        "now": now,
        "id": run.id,
        "fid": run.function_id,
        "input": run.input,
        "event_id": run.event_id,
        "key": run.idempotency_key,
        "parent": run.parent_run_id,
        "parent_step": run.parent_step,
        "priority": flow.priority,
        "ck1": ck1,
        "ck2": ck2,
        "throttle_key": flow.throttle_key,
        "singleton_key": flow.singleton_key,
        "start_timeout": flow.start_timeout,
        "wake_channel": wake_channel,
        "origin": origin,
    }


async def insert_flow_runs(
    conn: Conn, runs: Sequence[NewRun], now: float | None, wake_channel: str, origin: str
) -> list[CreatedRun]:
    """Create runs under flow control, in order, in the caller's transaction (an existing
    idempotency key wins)."""
    out: list[CreatedRun] = []
    gated = {id(r) for r in runs if r.flow is not None and r.flow.create_gated}
    gated -= {id(r) for r in runs if r.parent_run_id is not None}  # part of their parent
    gate = flow_gates.Gates(conn, now, wake_channel, origin) if gated else None
    if gate is not None:
        await gate.lock([r for r in runs if id(r) in gated])
    plain: list[NewRun] = []  # consecutive runs that pass no gate, created in one statement
    for run in runs:
        if gate is not None and id(run) in gated:
            out += await _insert_plain(conn, plain, now, wake_channel, origin)
            plain = []
            out.append(await gate.create(run))
            continue
        plain.append(run)
    out += await _insert_plain(conn, plain, now, wake_channel, origin)
    return out


async def _insert_plain(
    conn: Conn, runs: Sequence[NewRun], now: float | None, wake_channel: str, origin: str
) -> list[CreatedRun]:
    """Create runs under flow control that pass no creation-time gate, in order, with one
    statement (``flow_queries.INSERT_FLOW_RUNS``; an existing idempotency key wins)."""
    if not runs:
        return []
    rows: list[dict[str, Any]] = []
    for i, run in enumerate(runs):
        row = flow_run_params(run, now, wake_channel, origin)
        for name in ("now", "wake_channel", "origin"):
            del row[name]
        rows.append({"ord": i, **row})
    params = {"now": now, "runs": to_json(rows), "wake_channel": wake_channel, "origin": origin}
    out: list[CreatedRun] = []
    for run, (run_id, created, existing, _) in zip(
        runs, await (await conn.execute(fq.INSERT_FLOW_RUNS, params)).fetchall(), strict=True
    ):
        if created or run.idempotency_key is None:
            out.append(CreatedRun(run_id, True))
            continue
        if existing is None:  # committed by another transaction meanwhile
            found = await (
                await conn.execute(
                    q.RUN_BY_KEY, {"fid": run.function_id, "key": run.idempotency_key}
                )
            ).fetchone()
            existing = found[0] if found else run.id
        out.append(CreatedRun(existing, False))
    return out


def settle_events(
    sent: Sequence[SentEvent], runs: Sequence[NewRun], created: Sequence[CreatedRun]
) -> None:
    """Correct the answers of stored events for what the flow path did with their runs: a
    debounce or batch run joined instead of a new one, runs recorded as skipped."""
    done = {run.id: c for run, c in zip(runs, created, strict=True)}
    for s in sent:
        if s.duplicate or not any(r in done for r in s.run_ids):
            continue
        results = [done.get(r, CreatedRun(r, True)) for r in s.run_ids]
        fixed = SentEvent.of(s.id, results)
        s.run_ids, s.skipped = fixed.run_ids, fixed.skipped


class FlowCreation:
    """The store's creation paths for runs under flow control (mixed into
    :class:`~perdure.store.postgres.store.PostgresStore`)."""

    _pool: Pool
    _channel: tuple[str, str]
    _wake_channel: str
    _origin: str
    _now_param: Callable[[], float | None]
    _announce: Callable[..., None]
    create_runs: Callable[[Sequence[NewRun]], Any]

    async def _create_mixed(self, runs: list[NewRun]) -> list[CreatedRun]:
        """Runs under flow control in their own transaction, the others as usual."""
        plain = [r for r in runs if r.flow is None]
        flowed = [r for r in runs if r.flow is not None]
        now = self._now_param()

        async def op(conn: Conn) -> list[CreatedRun]:
            return await in_transaction(
                conn, lambda c: insert_flow_runs(c, flowed, now, *self._channel)
            )

        done_plain = iter(await self.create_runs(plain) if plain else [])
        flow_done = await self._pool.run(op)
        done_flow = iter(flow_done)
        self._announce(True, [c.id for c in flow_done if c.skipped])
        return [next(done_plain) if r.flow is None else next(done_flow) for r in runs]

    async def _fire_cron_flow(
        self, function_id: str, trigger: str, tick: float, run: NewRun, overlap: str = "allow"
    ) -> bool:
        """:meth:`fire_cron` for a run under flow control: advance the tick, then create the
        run through the flow-control path and record it as the trigger's last run, in one
        transaction (``overlap="skip"``: the trigger's row locked first, no run while its last
        run is active)."""
        now = self._now_param()
        params: dict[str, Any] = {"now": now, "fid": function_id, "trigger": trigger}
        params.update(tick=float(tick), wake_channel=self._wake_channel, origin=self._origin)
        params.update(dict.fromkeys(("id", "run_fid", "input", "event_id", "key", "parent")))
        params.update(parent_step=None, skip=overlap == "skip")

        async def body(conn: Conn) -> bool:
            if params["skip"]:
                await conn.execute(sq.CRON_LOCK, params)
            row = await (await conn.execute(sq.FIRE_CRON, params)).fetchone()
            if row is None or not row[0]:
                return False
            if row[3]:  # the last run is active: the tick advanced, no run
                return True
            done = await insert_flow_runs(conn, [run], now, *self._channel)
            await conn.execute(sq.CRON_LAST_RUN, {**params, "run_id": done[0].id})
            return done[0].created

        async def op(conn: Conn) -> bool:
            return await in_transaction(conn, body)

        created = await self._pool.run(op)
        self._announce(created)
        return created

    async def _prune_gates(self) -> None:
        """Delete expired creation-time gate state (see :func:`.flow_gates.prune`)."""
        now = self._now_param()

        async def op(conn: Conn) -> None:
            await in_transaction(conn, lambda c: flow_gates.prune(c, now))

        await self._pool.run(op)
