"""The store conformance suite, operations part (migration 0008): the workers registry, paused
functions and bounded pruning. Every backend passes exactly these tests."""

from __future__ import annotations

from conftest import STORE_T0 as T0
from perdure import serde
from perdure.functions import FunctionRecord
from perdure.store.access import AuditIn
from perdure.store.base import NewRun, Outcome, Store
from perdure.store.operations import WorkerBeat
from perdure.testing import ManualClock

LEASE = 30.0


def run(run_id: str, fid: str = "f", owner: str | None = None, key: str | None = None) -> NewRun:
    body = serde.dumps({"id": run_id, "name": "x", "data": {}, "ts": 1})
    r = NewRun(run_id, fid, body, idempotency_key=key)
    if owner is not None:
        r.lease_owner, r.lease_seconds = owner, LEASE
    return r


def beat(wid: str = "w1", used: int = 0, stale: float = 15.0) -> WorkerBeat:
    return WorkerBeat(wid, "host-a", 4242, "shop", ("f", "g"), 500, used, stale)


async def finish_all(store: Store, fid: str, n: int) -> list[str]:
    claim = await store.claim("w", [fid], n, LEASE)
    ends = [Outcome(c.id, c.token, "complete", output="1") for c in claim.runs]
    assert await store.commit(ends) == [True] * len(ends)
    return [c.id for c in claim.runs]


# ---------------------------------------------------------------------- workers


async def test_worker_beats_list_and_liveness(store: Store, clock: ManualClock) -> None:
    await store.beat_worker(beat(used=3))
    [row] = await store.list_workers(T0 - 60)
    assert (row.id, row.host, row.pid, row.app) == ("w1", "host-a", 4242, "shop")
    assert row.functions == ("f", "g")
    assert (row.slots, row.slots_used, row.stale_after) == (500, 3, 15.0)
    assert row.started_at == row.last_heartbeat == T0
    assert row.stopped_at is None and row.live(T0 + 15)
    await clock.advance(seconds=5)
    await store.beat_worker(beat(used=7))
    [row] = await store.list_workers(T0 - 60)
    assert row.started_at == T0 and row.last_heartbeat == T0 + 5 and row.slots_used == 7
    await clock.advance(seconds=16)  # no beat for longer than stale_after: presumed dead
    [row] = await store.list_workers(T0 - 60)
    assert not row.live(clock.now())
    assert await store.list_workers(T0 + 6) == []  # not seen since


async def test_worker_stop_and_restart(store: Store, clock: ManualClock) -> None:
    await store.beat_worker(beat("w1"))
    await store.beat_worker(beat("w2"))
    await clock.advance(seconds=1)
    await store.stop_worker("w1")
    await store.stop_worker("unknown")
    rows = {r.id: r for r in await store.list_workers(T0 - 1)}
    assert rows["w1"].stopped_at == T0 + 1 and not rows["w1"].live(T0 + 1)
    assert rows["w2"].live(T0 + 1)
    await store.beat_worker(beat("w1"))  # a beat after a stop: running again
    rows = {r.id: r for r in await store.list_workers(T0 - 1)}
    assert rows["w1"].stopped_at is None and rows["w1"].live(T0 + 1)


async def test_prune_workers(store: Store, clock: ManualClock) -> None:
    await store.beat_worker(beat("old"))
    await clock.advance(seconds=100)
    await store.beat_worker(beat("new"))
    assert await store.prune_workers(T0 + 50) == 1
    assert [r.id for r in await store.list_workers(0)] == ["new"]


# ---------------------------------------------------------------------- pauses


async def test_pause_skips_claims_and_resume_keeps_order(store: Store, clock: ManualClock) -> None:
    await store.register_functions(
        [FunctionRecord("f", "app", (), {}), FunctionRecord("g", "app", (), {})]
    )
    assert await store.set_function_paused("f", True) == T0
    await clock.advance(seconds=1)
    assert await store.set_function_paused("f", True) == T0  # the first pause time stays
    for i in range(3):
        await store.create_runs([run(f"r{i}")])
        await clock.advance(seconds=1)
    await store.create_runs([run("g1", "g")])
    claim = await store.claim("w", ["f", "g"], 10, LEASE)
    assert [c.id for c in claim.runs] == ["g1"]
    assert await store.claim("w", ["f"], 10, LEASE) == type(claim)([], None)
    assert await store.next_due(["f"]) is None
    assert await store.paused_functions() == {"f": T0}
    # Registering (a sync) rewrites the function's row: the pause stays.
    await store.register_functions([FunctionRecord("f", "app", (), {"retries": 1})])
    assert (await store.claim("w", ["f"], 10, LEASE)).runs == []
    assert await store.set_function_paused("f", False) is None
    assert await store.paused_functions() == {}
    assert [c.id for c in (await store.claim("w", ["f"], 2, LEASE)).runs] == ["r0", "r1"]
    assert [c.id for c in (await store.claim("w", ["f"], 2, LEASE)).runs] == ["r2"]


async def test_paused_run_is_not_created_leased(store: Store) -> None:
    await store.set_function_paused("f", True)
    [made] = await store.create_runs([run("a", owner="local")])
    assert made.created and made.token is None
    [made2, made3] = await store.create_runs(
        [run("b", owner="local"), run("c", owner="x", key="k")]
    )
    assert made2.token is None and made3.token is None
    for rid in ("a", "b", "c"):
        got = await store.get_run(rid)
        assert got is not None and got.status == "queued" and got.lease_owner is None
    # A batch without keys: the paused function's run queues, the other function's is leased.
    batch = await store.create_runs(
        [run("p1", owner="local"), run("q1"), run("l1", fid="g", owner="local")]
    )
    assert [(m.id, m.created, m.token) for m in batch] == [
        ("p1", True, None),
        ("q1", True, None),
        ("l1", True, 1),
    ]
    statuses = {r.id: (r.status, r.lease_owner) for r in await store.get_runs(["p1", "q1", "l1"])}
    assert statuses == {
        "p1": ("queued", None),
        "q1": ("queued", None),
        "l1": ("running", "local"),
    }
    # An existing idempotency key still wins while the function is paused.
    [same] = await store.create_runs([run("e", owner="local", key="k")])
    assert (same.id, same.created, same.token) == ("c", False, None)
    assert await store.get_run("e") is None
    await store.set_function_paused("f", False)
    [made4] = await store.create_runs([run("d", owner="local")])
    assert made4.token == 1


# ---------------------------------------------------------------------- pruning


async def test_prune_runs_in_batches_per_function(store: Store, clock: ManualClock) -> None:
    await store.create_runs(
        [run(f"f{i}") for i in range(5)] + [run(f"g{i}", "g") for i in range(3)]
    )
    await store.create_runs([run(f"h{i}", "h") for i in range(2)])
    for fid, n in (("f", 5), ("g", 3), ("h", 2)):
        assert len(await finish_all(store, fid, n)) == n
    await store.create_runs([run("f-open")])  # not ended: never pruned
    await clock.advance(seconds=100)
    before = T0 + 50
    assert await store.count_prunable(before) == {"f": 5, "g": 3, "h": 2}
    assert await store.count_prunable(before, function_id="g") == {"g": 3}
    assert await store.count_prunable(before, exclude=["g"]) == {"f": 5, "h": 2}
    assert await store.count_prunable(T0 - 1) == {}
    assert await store.prune_runs(before, 2, function_id="f") == 2
    assert await store.prune_runs(before, 2, function_id="f") == 2
    assert await store.prune_runs(before, 2, function_id="f") == 1
    assert await store.prune_runs(before, 2, function_id="f") == 0
    assert await store.prune_runs(before, 100, exclude=["g"]) == 2
    assert await store.count_prunable(before) == {"g": 3}
    assert await store.get_run("g0") is not None and await store.get_run("f0") is None
    assert await store.get_steps("f0") == []
    open_run = await store.get_run("f-open")
    assert open_run is not None and open_run.status == "queued"
    assert await store.prune_runs(before, 0) == 0


async def test_a_pruned_run_takes_its_audit_entries(store: Store, clock: ManualClock) -> None:
    await store.create_runs([run("gone"), run("kept", "g")])
    await finish_all(store, "f", 1)
    await store.record_audit(
        [
            AuditIn("key:k", "cancel", "gone"),
            AuditIn("key:k", "cancel", "kept"),
            AuditIn("key:k", "key.create", target="key_1"),
        ]
    )
    await clock.advance(seconds=100)
    assert await store.prune_runs(T0 + 50, 10, function_id="f") == 1
    assert await store.list_audit("gone") == []
    assert [e.run_id for e in await store.list_audit()] == [None, "kept"]
