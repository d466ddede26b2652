"""Conformance of the commit shapes of the sequential hot path, on every backend: a lone step
checkpoint, a lone outcome, a lone new run, and the *fold*: the last step checkpoint and the
outcome of the same run and lease token committed together (PostgreSQL sends each of these as
one single-row statement; their semantics must be those of any other batch)."""

from __future__ import annotations

import asyncio
import time

import pytest

from perdure import serde
from perdure.store.base import NewRun, Outcome, StepWrite, Store, WriteOp
from perdure.testing import ManualClock

LEASE = 30.0
ERROR = serde.dumps({"type": "StepError", "message": "boom", "step_id": "s"})


def run_input(run_id: str) -> str:
    return serde.dumps(
        {"id": f"e-{run_id}", "name": "perdure/function.invoked", "data": {}, "user": {}, "ts": 1}
    )


def outcome(run_id: str, token: int, kind: str) -> Outcome:
    if kind == "complete":
        return Outcome(run_id, token, "complete", output='{"v":3}')
    return Outcome(run_id, token, "fail", error=ERROR)


def last_step(run_id: str, token: int) -> StepWrite:
    return StepWrite(run_id, token, "c", 2, "run", "completed", output="3", started_at=0.0)


async def claimed(store: Store, run_id: str = "r1", fid: str = "f") -> int:
    """Create ``run_id`` (one run, no idempotency key), claim it, return its token."""
    created = await store.create_runs([NewRun(run_id, fid, run_input(run_id))])
    assert [(c.id, c.created, c.token) for c in created] == [(run_id, True, None)]
    runs = (await store.claim("w", [fid], 1, LEASE)).runs
    assert [r.id for r in runs] == [run_id]
    return runs[0].token


async def wait_for(predicate: object, what: str) -> None:
    deadline = time.monotonic() + 30
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("kind", ["complete", "fail"])
async def test_the_last_checkpoint_and_the_outcome_commit_together(store: Store, kind: str) -> None:
    finished: list[str] = []
    store.on_finished(finished.extend)
    token = await claimed(store)
    ops: list[WriteOp] = [last_step("r1", token), outcome("r1", token, kind)]
    assert await store.commit(ops) == [True, True]
    steps = await store.get_steps("r1")
    assert [(s.key, s.seq, s.status, s.output) for s in steps] == [("c", 2, "completed", "3")]
    assert steps[0].started_at is not None and steps[0].ended_at is not None
    row = await store.get_run("r1")
    assert row is not None and row.lease_owner is None and row.available_at is None
    if kind == "complete":
        assert row.status == "completed" and row.output == '{"v":3}'
    else:
        assert row.status == "failed" and row.error == ERROR
    await wait_for(lambda: "r1" in finished, "the finished-run announcement")
    assert await store.heartbeat("w", [("r1", token)], LEASE) == ["r1"]


@pytest.mark.parametrize("kind", ["complete", "fail"])
async def test_the_fold_after_the_outcome_is_rejected(store: Store, kind: str) -> None:
    token = await claimed(store)
    assert await store.commit([outcome("r1", token, "complete")]) == [True]
    before = await store.get_run("r1")
    assert await store.commit([last_step("r1", token), outcome("r1", token, kind)]) == [
        False,
        False,
    ]
    assert await store.get_steps("r1") == []
    assert await store.get_run("r1") == before


@pytest.mark.parametrize("kind", ["complete", "fail"])
async def test_the_fold_with_a_stale_token_writes_nothing(
    store: Store, clock: ManualClock, kind: str
) -> None:
    stale = await claimed(store)
    await clock.advance(LEASE + 1)
    fresh = (await store.claim("w2", ["f"], 1, LEASE)).runs[0].token
    assert fresh > stale
    before = await store.get_run("r1")
    assert await store.commit([last_step("r1", stale), outcome("r1", stale, kind)]) == [
        False,
        False,
    ]
    assert await store.get_steps("r1") == []
    assert await store.get_run("r1") == before
    # The lone shapes are fenced too.
    assert await store.commit([last_step("r1", stale)]) == [False]
    assert await store.commit([outcome("r1", stale, kind)]) == [False]
    assert await store.get_steps("r1") == []
    assert await store.commit([last_step("r1", fresh), outcome("r1", fresh, kind)]) == [
        True,
        True,
    ]


async def test_the_fold_of_a_cancelled_run_writes_nothing(store: Store) -> None:
    token = await claimed(store)
    assert await store.cancel_run("r1") is not None
    assert await store.commit([last_step("r1", token), outcome("r1", token, "complete")]) == [
        False,
        False,
    ]
    assert await store.get_steps("r1") == []
    row = await store.get_run("r1")
    assert row is not None and row.status == "cancelled"


async def test_lone_writes_for_a_missing_run_are_rejected(store: Store) -> None:
    assert await store.commit([last_step("nope", 1)]) == [False]
    assert await store.commit([outcome("nope", 1, "complete")]) == [False]
    assert await store.commit([last_step("nope", 1), outcome("nope", 1, "fail")]) == [
        False,
        False,
    ]
    assert await store.get_run("nope") is None


async def test_a_fold_of_different_runs_or_tokens_is_applied_per_op(store: Store) -> None:
    t1 = await claimed(store, "r1")
    t2 = await claimed(store, "r2")
    # Not the fold: the step is r1's, the outcome r2's; both apply.
    assert await store.commit([last_step("r1", t1), outcome("r2", t2, "complete")]) == [
        True,
        True,
    ]
    r1, r2 = await store.get_run("r1"), await store.get_run("r2")
    assert r1 is not None and r1.status == "running"
    assert r2 is not None and r2.status == "completed"
    # A step of another token than the outcome's: the stale op alone is rejected.
    assert await store.commit([last_step("r1", t1 + 1), outcome("r1", t1, "fail")]) == [
        False,
        True,
    ]
    assert [s.key for s in await store.get_steps("r1")] == ["c"]


@pytest.mark.parametrize("kind", ["complete", "fail"])
async def test_a_folded_child_resolves_its_parent(store: Store, kind: str) -> None:
    await store.create_runs([NewRun("parent", "f", run_input("parent"))])
    p = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    child = NewRun(
        "child",
        "g",
        run_input("child"),
        idempotency_key="invoke:parent:k",
        parent_run_id="parent",
        parent_step="k",
    )
    assert await store.commit(
        [
            StepWrite("parent", p.token, "k", 0, "invoke", "invoking", child=child),
            Outcome("parent", p.token, "suspend", status="waiting", watch_keys=("k",)),
        ]
    ) == [True, True]
    c = (await store.claim("w", ["g"], 1, LEASE)).runs[0]
    assert await store.commit([last_step("child", c.token), outcome("child", c.token, kind)]) == [
        True,
        True,
    ]
    resumed = (await store.claim("w", ["f"], 1, LEASE)).runs
    assert [r.id for r in resumed] == ["parent"]
    step = resumed[0].steps["k"]
    if kind == "complete":
        assert step.status == "completed" and step.output == '{"v":3}' and step.error is None
    else:
        assert step.status == "failed" and step.error == ERROR and step.output is None
    assert step.ended_at is not None


async def test_a_lone_new_run_is_due_and_announced(store: Store) -> None:
    woke: list[int] = []
    store.on_wake(lambda: woke.append(1))
    created = await store.create_runs([NewRun("r1", "f", run_input("r1"))])
    assert [(c.id, c.created, c.token) for c in created] == [("r1", True, None)]
    row = await store.get_run("r1")
    assert row is not None and row.status == "queued" and row.lease_owner is None
    await wait_for(lambda: bool(woke), "the wake-up")
    leased = await store.create_runs(
        [NewRun("r2", "f", run_input("r2"), lease_owner="w", lease_seconds=LEASE)]
    )
    assert [(c.id, c.created, c.token) for c in leased] == [("r2", True, 1)]
    row = await store.get_run("r2")
    assert row is not None and row.status == "running" and row.lease_owner == "w"
    assert row.available_at == pytest.approx(store.now() + LEASE)
    assert await store.commit([last_step("r2", 1), outcome("r2", 1, "complete")]) == [True, True]
