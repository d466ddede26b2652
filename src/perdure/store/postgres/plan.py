"""How the PostgreSQL backend packs a batch of writes (checkpoints and outcomes, events) into
statements and reads their results back (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, LiteralString

import orjson
from psycopg.rows import TupleRow

from perdure.functions import FunctionRecord
from perdure.store.base import (
    Claim,
    ClaimedRun,
    EventIn,
    NewRun,
    SentEvent,
    StepWrite,
    StoredStep,
    WriteOp,
)
from perdure.store.common import runs_for_event, wait_matches
from perdure.store.postgres import queries as q
from perdure.store.rules import DONE_STATUSES, live_ops


def to_json(rows: list[dict[str, Any]]) -> str:
    """A batch of rows as one JSON array (expanded in SQL with ``json_to_recordset``)."""
    return orjson.dumps(rows).decode()


def runs_json(runs: Sequence[NewRun]) -> str:
    """Runs to create, as the ``%(runs)s`` parameter of ``INSERT_RUNS``."""
    return to_json(
        [
            {
                "ord": i,
                "id": r.id,
                "function_id": r.function_id,
                "input": r.input,
                "event_id": r.event_id,
                "idempotency_key": r.idempotency_key,
                "parent_run_id": r.parent_run_id,
                "parent_step": r.parent_step,
                "owner": r.lease_owner,
                "lease": r.lease_seconds,
            }
            for i, r in enumerate(runs)
        ]
    )


def claim_from_rows(rows: list[TupleRow]) -> tuple[float, Claim]:
    """The database time and the claim, from the rows of ``CLAIM``."""
    now, next_due = float(rows[0][0]), rows[0][1]
    ordered: list[tuple[float, str, ClaimedRun]] = []
    for row in rows:
        if row[2] is None:
            continue
        run_id, fid, token, run_input, attempt, crashes, due_at = row[2:9]
        steps: dict[str, StoredStep] = {}
        if row[9] is not None:
            for step in zip(*row[9:20], strict=True):
                steps[step[0]] = StoredStep(*step)
        first, taken_over = bool(row[20]), bool(row[21])
        run = ClaimedRun(run_id, fid, token, run_input, attempt, steps, crashes, first, taken_over)
        ordered.append((due_at, run_id, run))
    ordered.sort(key=lambda item: (item[0], item[1]))
    return now, Claim([c for _, _, c in ordered], None if next_due is None else float(next_due))


@dataclass(slots=True)
class CommitPlan:
    """The statements of one ``commit(ops)`` and how to read their results back per op.

    An op of a run that comes after an outcome of that run with the same token is rejected
    without being sent (:func:`perdure.store.rules.live_ops`). The remaining ops
    are fenced in SQL against the locked run rows: first one statement for every step, wait
    and child of the batch (the writes of one step are merged: its first write's position and
    start, its last write's state), then one statement per outcome kind: ending runs,
    retries, suspensions and releases.
    """

    ops: list[WriteOp]
    live: list[bool]
    steps_sql: LiteralString = ""
    steps: dict[str, Any] = field(default_factory=dict)
    ends: dict[str, Any] | None = None
    retries: dict[str, Any] | None = None
    suspends: dict[str, Any] | None = None
    ends_only: bool = False

    @classmethod
    def build(
        cls,
        ops: list[WriteOp],
        now: float | None,
        wake_channel: str,
        done_channel: str,
        origin: str,
    ) -> CommitPlan:
        live = live_ops(ops)
        step_rows: dict[tuple[str, int, str], dict[str, Any]] = {}
        wait_rows: dict[tuple[str, int, str], dict[str, Any]] = {}
        child_rows: list[dict[str, Any]] = []
        ends: list[dict[str, Any]] = []
        retries: list[dict[str, Any]] = []
        suspends: list[dict[str, Any]] = []
        watched: list[dict[str, Any]] = []
        lock_ids: set[str] = set()
        for op, ok in zip(ops, live, strict=True):
            if not ok:
                continue
            lock_ids.add(op.run_id)
            if isinstance(op, StepWrite):
                k = (op.run_id, op.token, op.key)
                row = step_rows.get(k)
                if row is None:
                    row = step_rows[k] = {
                        "run_id": op.run_id,
                        "token": op.token,
                        "key": op.key,
                        "seq": op.seq,
                        "kind": op.kind,
                        "started_at": op.started_at,
                    }
                row["status"] = op.status
                row["output"] = op.output
                row["error"] = op.error
                row["attempts"] = op.attempts
                row["wake_at"] = op.wake_at
                row["done"] = op.status in DONE_STATUSES
                if op.name is not None:
                    row["name"] = op.name
                if op.input is not None:
                    row["input"] = op.input
                if op.wait is not None:
                    w = op.wait
                    wait_rows[k] = {
                        "run_id": op.run_id,
                        "token": op.token,
                        "key": op.key,
                        "event_name": w.event_name,
                        "match_path": w.match_path,
                        "match_value": w.match_value,
                        "expression": w.expression,
                        "expires_at": w.expires_at,
                    }
                if op.child is not None:
                    c = op.child
                    f = c.flow
                    child_rows.append(
                        {
                            "priority": 0 if f is None else f.priority,
                            "ck1": None if f is None else f.concurrency_keys[0],
                            "ck2": None if f is None else f.concurrency_keys[1],
                            "throttle_key": None if f is None else f.throttle_key,
                            "start_timeout": None if f is None else f.start_timeout,
                            "fence_run": op.run_id,
                            "token": op.token,
                            "id": c.id,
                            "function_id": c.function_id,
                            "input": c.input,
                            "event_id": c.event_id,
                            "idempotency_key": c.idempotency_key,
                            "parent_run_id": c.parent_run_id,
                            "parent_step": c.parent_step,
                        }
                    )
                continue
            if op.kind in ("complete", "fail"):
                ends.append(
                    {
                        "run_id": op.run_id,
                        "token": op.token,
                        "status": "completed" if op.kind == "complete" else "failed",
                        "output": op.output,
                        "error": op.error,
                    }
                )
            elif op.kind == "retry":
                retries.append(
                    {
                        "run_id": op.run_id,
                        "token": op.token,
                        "error": op.error,
                        "available_at": op.available_at,
                    }
                )
            else:
                release = op.kind == "release"
                suspends.append(
                    {
                        "run_id": op.run_id,
                        "token": op.token,
                        "available": None if release else op.available_at,
                        "status": "queued" if release else op.status,
                        "release": release,
                    }
                )
                if not release:
                    watched.extend({"run_id": op.run_id, "key": key} for key in op.watch_keys)
        plan = cls(ops, live)
        # Only completions/failures (a run finishing alone, the common sequential case): the
        # END statement fences itself (its UPDATE locks each row and checks the token), so it
        # runs as one autocommit statement instead of lock + end + commit.
        plan.ends_only = bool(ends) and not (step_rows or retries or suspends)
        extras = bool(wait_rows or child_rows)
        plan.steps_sql = q.COMMIT_STEPS[(bool(ends), extras)]
        plan.steps = {
            "now": now,
            "lock_ids": sorted(lock_ids),
            "steps": to_json(list(step_rows.values())),
        }
        if ends:
            plan.steps["ending"] = [e["run_id"] for e in ends]
        if extras:
            plan.steps.update(
                waits=to_json(list(wait_rows.values())),
                children=to_json(child_rows),
                wake_channel=wake_channel,
                origin=origin,
            )
        if ends:
            plan.ends = {
                "now": now,
                "ends": to_json(ends),
                "wake_channel": wake_channel,
                "done_channel": done_channel,
                "origin": origin,
            }
        if retries:
            plan.retries = {
                "retries": to_json(retries),
                "wake_channel": wake_channel,
                "origin": origin,
            }
        if suspends:
            plan.suspends = {
                "now": now,
                "suspends": to_json(suspends),
                "watched": to_json(watched),
                "wake_channel": wake_channel,
                "origin": origin,
            }
        return plan

    def statements(self) -> list[tuple[LiteralString, dict[str, Any]]]:
        if self.ends_only and self.ends is not None:
            return [(q.COMMIT_END, self.ends)]
        out: list[tuple[LiteralString, dict[str, Any]]] = [(self.steps_sql, self.steps)]
        if self.ends is not None:
            out.append((q.COMMIT_END, self.ends))
        if self.retries is not None:
            out.append((q.COMMIT_RETRY, self.retries))
        if self.suspends is not None:
            out.append((q.COMMIT_SUSPEND, self.suspends))
        return out

    def results(self, results: list[list[TupleRow]]) -> tuple[list[bool], bool, list[str]]:
        """Per op: applied or not; whether work became due; the runs that ended."""
        if self.ends_only:
            done_ids, woken, _, _ = results[0][0]
            done = set(done_ids or ())
            oks = [ok and op.run_id in done for op, ok in zip(self.ops, self.live, strict=True)]
            return oks, bool(woken), list(done)
        locked = results[0]
        tokens = {row[0]: row[1] for row in locked if row[2] == "running"}
        wake = bool(locked and locked[0][3])
        oks = [
            ok and tokens.get(op.run_id) == op.token
            for op, ok in zip(self.ops, self.live, strict=True)
        ]
        finished: list[str] = []
        at = 1
        if self.ends is not None:
            done_ids, woken, _, _ = results[at][0]
            finished = list(done_ids or ())
            wake = wake or bool(woken)
            at += 1
        if self.retries is not None:
            at += 1
        if self.suspends is not None:
            wake = wake or bool(results[at][0][0])
        return oks, wake, finished


def _step_params(op: StepWrite) -> dict[str, Any]:
    return {
        "key": op.key,
        "seq": op.seq,
        "kind": op.kind,
        "status": op.status,
        "output": op.output,
        "error": op.error,
        "attempts": op.attempts,
        "wake_at": op.wake_at,
        "started_at": op.started_at,
        "done": op.status in DONE_STATUSES,
        "name": op.name,
        "input": op.input,
    }


def _ends(op: WriteOp) -> bool:
    return type(op) is not StepWrite and op.kind in ("complete", "fail")


def _plain_step(op: WriteOp) -> bool:
    return type(op) is StepWrite and op.wait is None and op.child is None


@dataclass(slots=True)
class OnePlan:
    """A commit of the common sequential shapes as one statement with scalar parameters
    (:data:`~perdure.store.postgres.queries.STEP_ONE`, ``END_ONE``, ``STEP_END_ONE``): one
    step checkpoint without wait or child; one completion or failure; or the last checkpoint
    and the outcome of the same run and token (committed together). Any other batch is a
    :class:`CommitPlan`."""

    size: int
    sql: LiteralString
    params: dict[str, Any]
    step_token: int | None = None  # a lone step checkpoint: its fence token

    @classmethod
    def build(
        cls,
        ops: list[WriteOp],
        now: float | None,
        wake_channel: str,
        done_channel: str,
        origin: str,
    ) -> OnePlan | None:
        """The plan, or ``None`` when the batch has another shape."""
        first = ops[0]
        if len(ops) == 1:
            if _plain_step(first):
                assert isinstance(first, StepWrite)
                params = _step_params(first)
                params.update(now=now, run=first.run_id, token=first.token)
                return cls(1, q.STEP_ONE, params, first.token)
            if _ends(first):
                return cls(
                    1, q.END_ONE, _end_params(first, now, wake_channel, done_channel, origin)
                )
            return None
        if len(ops) != 2:
            return None
        last = ops[1]
        if not (
            _plain_step(first)
            and _ends(last)
            and first.run_id == last.run_id
            and first.token == last.token
        ):
            return None
        assert isinstance(first, StepWrite)
        params = _end_params(last, now, wake_channel, done_channel, origin)
        params.update(_step_params(first))
        return cls(2, q.STEP_END_ONE, params)

    def results(self, rows: list[TupleRow]) -> tuple[list[bool], bool, list[str]]:
        """Per op: applied or not; whether work became due; the runs that ended."""
        if self.step_token is not None:
            ok = bool(rows) and rows[0][0] == self.step_token and rows[0][1] == "running"
            return [ok], False, []
        done_id, woken, _, _ = rows[0]
        return [done_id is not None] * self.size, bool(woken), [] if done_id is None else [done_id]


def _end_params(
    op: WriteOp, now: float | None, wake_channel: str, done_channel: str, origin: str
) -> dict[str, Any]:
    assert not isinstance(op, StepWrite)
    return {
        "now": now,
        "run": op.run_id,
        "token": op.token,
        "end_status": "completed" if op.kind == "complete" else "failed",
        "end_output": op.output,
        "end_error": op.error,
        "wake_channel": wake_channel,
        "done_channel": done_channel,
        "origin": origin,
    }


def one_run_params(
    run: NewRun, now: float | None, wake_channel: str, origin: str
) -> dict[str, Any]:
    """The parameters of ``CREATE_ONE`` (a run without idempotency key)."""
    return {
        "now": now,
        "id": run.id,
        "fid": run.function_id,
        "input": run.input,
        "event_id": run.event_id,
        "parent": run.parent_run_id,
        "parent_step": run.parent_step,
        "owner": run.lease_owner,
        "lease": float(run.lease_seconds),
        "wake_channel": wake_channel,
        "origin": origin,
    }


@dataclass(slots=True)
class EventPlan:
    """What a batch of events does, decided from the first round trip of ``send_events`` (the
    ids that are new, the registry, the open waits for the events' names): the answer per
    event, the events to store, the runs they start and the waits they resolve (the first
    matching event wins, in order)."""

    out: list[SentEvent]
    stored: list[EventIn]
    runs: list[NewRun]
    resolved: dict[tuple[str, str], str]
    flow_runs: list[NewRun] = field(default_factory=list)
    """Runs under flow control: created by :mod:`perdure.store.postgres.flow` in the same
    transaction, before :meth:`statements`."""

    @classmethod
    def build(
        cls,
        events: Sequence[EventIn],
        new: set[str],
        registry: Sequence[FunctionRecord],
        waits: dict[str, list[TupleRow]],
    ) -> EventPlan:
        plan = cls([], [], [], {})
        for ev in events:
            if ev.id not in new:
                plan.out.append(SentEvent(ev.id, True, []))
                continue
            new.discard(ev.id)  # a second copy in this batch is a duplicate
            plan.stored.append(ev)
            started = runs_for_event(registry, ev.obj, ev.body)
            plan.runs.extend(r for r in started if r.flow is None)
            plan.flow_runs.extend(r for r in started if r.flow is not None)
            for _, run_id, key, path, value, expr, run_input in waits.get(ev.name, ()):
                if (run_id, key) in plan.resolved:
                    continue
                if wait_matches(path, value, expr, run_input or "", ev.obj):
                    plan.resolved[(run_id, key)] = ev.body
            plan.out.append(SentEvent(ev.id, False, [r.id for r in started]))
        return plan

    def statements(
        self, now: float | None, wake_channel: str, origin: str
    ) -> list[tuple[LiteralString, dict[str, Any]]]:
        """The writes of the second round trip (``RESOLVE_WAITS`` last, when there is one)."""
        out: list[tuple[LiteralString, dict[str, Any]]] = []
        if self.stored:
            events = [
                {"ord": i, "id": e.id, "name": e.name, "body": e.body}
                for i, e in enumerate(self.stored)
            ]
            out.append((q.INSERT_EVENTS, {"now": now, "events": to_json(events)}))
        if self.runs:
            out.append(
                (
                    q.INSERT_RUNS,
                    {
                        "now": now,
                        "runs": runs_json(self.runs),
                        "wake_channel": wake_channel,
                        "origin": origin,
                    },
                )
            )
        if self.resolved:
            waits = [
                {"run_id": k[0], "key": k[1], "output": body} for k, body in self.resolved.items()
            ]
            out.append(
                (
                    q.RESOLVE_WAITS,
                    {
                        "now": now,
                        "runs": sorted({k[0] for k in self.resolved}),
                        "waits": to_json(waits),
                        "wake_channel": wake_channel,
                        "origin": origin,
                    },
                )
            )
        return out
