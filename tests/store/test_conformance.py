"""The store conformance suite: every backend passes exactly these tests.

Time is a :class:`~perdure.testing.ManualClock` handed to the store, so leases, deadlines and
dedupe windows are exercised without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from perdure import serde
from perdure.errors import InvalidInputError
from perdure.functions import CronTrigger, EventTrigger, FunctionRecord
from perdure.store import open_store
from perdure.store.base import (
    EventIn,
    NewRun,
    Outcome,
    RunFilter,
    RunOrigin,
    StepWrite,
    Store,
    WaitSpec,
    WriteOp,
)
from perdure.testing import ManualClock

LEASE = 30.0


def fn_record(fid: str, *triggers: EventTrigger | CronTrigger) -> FunctionRecord:
    return FunctionRecord(fid, "app", tuple(triggers), {"retries": 4})


def event_body(name: str, data: dict[str, object], ev_id: str) -> EventIn:
    obj = {"id": ev_id, "name": name, "data": data, "user": {}, "ts": 1}
    return EventIn(ev_id, name, obj, serde.dumps(obj))


def new_run(run_id: str, fid: str = "f", key: str | None = None) -> NewRun:
    body = serde.dumps(
        {
            "id": f"e-{run_id}",
            "name": "perdure/function.invoked",
            "data": {"run": run_id},
            "user": {},
            "ts": 1,
        }
    )
    return NewRun(run_id, fid, body, idempotency_key=key)


async def test_open_twice_is_idempotent(db_url: str, clock: ManualClock) -> None:
    for _ in range(2):
        s = open_store(db_url, clock=clock)
        await s.open()
        await s.ping()
        await s.close()


async def test_functions_round_trip(store: Store) -> None:
    await store.register_functions(
        [
            fn_record("a", EventTrigger("order.*", "event.data.x > 1")),
            fn_record("b", CronTrigger("0 9 * * *", "Europe/Paris")),
        ]
    )
    await store.register_functions([fn_record("a", EventTrigger("order.placed"))])
    fns = {f.id: f for f in await store.list_functions()}
    assert set(fns) == {"a", "b"}
    assert fns["a"].triggers == (EventTrigger("order.placed"),)
    assert fns["b"].triggers == (CronTrigger("0 9 * * *", "Europe/Paris"),)
    assert fns["a"].config == {"retries": 4}


async def test_create_runs_and_idempotency(store: Store) -> None:
    created = await store.create_runs([new_run("r1"), new_run("r2", key="k")])
    assert [(c.id, c.created) for c in created] == [("r1", True), ("r2", True)]
    again = await store.create_runs([new_run("r3", key="k")])
    assert [(c.id, c.created) for c in again] == [("r2", False)]
    other_fn = await store.create_runs([new_run("r4", fid="g", key="k")])
    assert other_fn[0].created
    row = await store.get_run("r1")
    assert row is not None and row.status == "queued" and row.function_id == "f"
    assert row.idempotency_key is None and row.attempt == 0
    assert await store.get_run("nope") is None
    assert {r.id for r in await store.get_runs(["r1", "r2", "nope"])} == {"r1", "r2"}


async def test_ended_runs_are_the_terminal_ones_with_their_outcome(store: Store) -> None:
    ids = ["done", "failed", "gone", "queued", "running"]
    await store.create_runs([new_run(i) for i in ids])
    claim = await store.claim("w", ["f"], 4, LEASE)
    token = {c.id: c.token for c in claim.runs}
    assert set(token) == {"done", "failed", "gone", "queued"}
    assert await store.commit(
        [
            Outcome("done", token["done"], "complete", output="[1]"),
            Outcome("failed", token["failed"], "fail", error='{"name": "E"}'),
            Outcome("queued", token["queued"], "retry", error="{}", available_at=1e12),
        ]
    ) == [True, True, True]
    await store.cancel_run("gone")
    ended = await store.ended_runs([*ids, "nope", "bad\x00id"])
    cancelled = await store.get_run("gone")
    assert cancelled is not None and cancelled.error is not None
    assert sorted(ended) == [
        ("done", "completed", "[1]", None),
        ("failed", "failed", None, '{"name": "E"}'),
        ("gone", "cancelled", None, cancelled.error),
    ]
    assert await store.ended_runs([]) == []


async def test_a_step_keeps_its_name_through_writes_and_claims(
    store: Store, clock: ManualClock
) -> None:
    await store.create_runs([new_run("r1")])
    (run,) = (await store.claim("w", ["f"], 1, LEASE)).runs
    one = StepWrite("r1", run.token, "h1", 0, "run", "retrying", attempts=1, name="charge card")
    two = StepWrite("r1", run.token, "h2", 1, "run", "completed", output="2", name="ship")
    assert await store.commit([one]) == [True]
    assert await store.commit([two]) == [True]  # a batch of one (the lean statements)
    # A later write without a name keeps it (the retry's outcome), in a batch of two.
    again = StepWrite("r1", run.token, "h1", 0, "run", "completed", output="1", attempts=2)
    plain = StepWrite("r1", run.token, "h3", 2, "run", "completed", output="3")
    assert await store.commit([again, plain]) == [True, True]
    steps = {s.key: s for s in await store.get_steps("r1")}
    assert {k: s.name for k, s in steps.items()} == {"h1": "charge card", "h2": "ship", "h3": None}
    assert steps["h1"].output == "1"
    await clock.advance(LEASE + 1)  # the lease lapses: the next claim brings the names back
    (taken,) = (await store.claim("w2", ["f"], 1, LEASE)).runs
    assert {k: s.name for k, s in taken.steps.items()} == {
        "h1": "charge card",
        "h2": "ship",
        "h3": None,
    }


async def test_a_step_keeps_its_input_through_writes_and_copies(
    store: Store, clock: ManualClock
) -> None:
    await store.create_runs([new_run("r1")])
    (run,) = (await store.claim("w", ["f"], 1, LEASE)).runs
    given = serde.dumps({"args": [1], "kwargs": {"b": 2}})
    one = StepWrite("r1", run.token, "a", 0, "run", "retrying", attempts=1, input=given)
    assert await store.commit([one]) == [True]  # a batch of one (the lean statement)
    again = StepWrite("r1", run.token, "a", 0, "run", "completed", output="1", attempts=2)
    other = StepWrite("r1", run.token, "b", 1, "run", "completed", output="2", input='"x"')
    assert await store.commit([again, other]) == [True, True]  # a batch of two: kept
    last = StepWrite("r1", run.token, "c", 2, "run", "completed", output="3", input="[3]")
    # a step folded with the run's outcome (one statement on PostgreSQL)
    done = Outcome("r1", run.token, "complete", output="9")
    assert await store.commit([last, done]) == [True, True]
    steps = {s.key: s.input for s in await store.get_steps("r1")}
    assert steps == {"a": given, "b": '"x"', "c": "[3]"}
    # a replay copies the steps before the one it executes from, inputs included
    copy = await store.create_derived_run(new_run("r2"), RunOrigin("r1", "replay", "c", 2))
    assert copy is not None
    assert {s.key: s.input for s in await store.get_steps("r2")} == {"a": given, "b": '"x"'}


async def test_runs_created_already_leased(store: Store, clock: ManualClock) -> None:
    leased = new_run("r1", key="k")
    leased.lease_owner, leased.lease_seconds = "w1", LEASE
    created = await store.create_runs([leased, new_run("r2")])
    assert [(c.id, c.created, c.token) for c in created] == [("r1", True, 1), ("r2", True, None)]
    row = await store.get_run("r1")
    assert row is not None and row.status == "running" and row.lease_owner == "w1"
    assert row.started_at is not None
    # Only the queued run is claimable; the leased one is already taken.
    assert [r.id for r in (await store.claim("w2", ["f"], 5, LEASE)).runs] == ["r2"]
    assert await store.commit([StepWrite("r1", 1, "a", 0, "run", "completed", output="1")]) == [
        True
    ]
    again = new_run("r3", key="k")
    again.lease_owner, again.lease_seconds = "w1", LEASE
    assert [(c.id, c.created, c.token) for c in await store.create_runs([again])] == [
        ("r1", False, None)
    ]
    # If the starting process dies, the lease expires like any other.
    await clock.advance(LEASE + 1)
    taken = {r.id: r for r in (await store.claim("w3", ["f"], 5, LEASE)).runs}
    assert sorted((r.id, r.crashes) for r in taken.values()) == [("r1", 1), ("r2", 1)]
    assert taken["r1"].steps["a"].output == "1"


async def test_derived_runs_link_and_copy_the_kept_steps(store: Store) -> None:
    await store.create_runs([new_run("r1")])
    (run,) = (await store.claim("w", ["f"], 1, LEASE)).runs
    writes: list[WriteOp] = [
        StepWrite("r1", run.token, "a", 0, "run", "completed", output="1", name="A"),
        StepWrite("r1", run.token, "b", 1, "run", "failed", error='{"type": "E"}'),
        StepWrite("r1", run.token, "c", 2, "sleep", "completed", wake_at=5.0),
        StepWrite("r1", run.token, "d", 3, "run", "completed", output="4"),
        Outcome("r1", run.token, "complete", output="9"),
    ]
    assert await store.commit(writes) == [True] * 5
    original = {s.key: s for s in await store.get_steps("r1")}

    replay = new_run("r2")
    made = await store.create_derived_run(replay, RunOrigin("r1", "replay", "d", 3))
    assert made is not None and (made.id, made.created) == ("r2", True)
    row = await store.get_run("r2")
    assert row is not None and row.status == "queued" and row.input == replay.input
    assert (row.rerun_of, row.replay_of, row.replay_from_step) == (None, "r1", "d")
    # The completed steps before position 3 are copied as recorded; the failed one is not.
    copied = await store.get_steps("r2")
    assert [s.key for s in copied] == ["a", "c"]
    assert copied == [original["a"], original["c"]]
    assert copied[0].name == "A"
    # The replay is an ordinary due run: its claim brings the copied steps.
    (taken,) = (await store.claim("w", ["f"], 1, LEASE)).runs
    assert taken.id == "r2" and sorted(taken.steps) == ["a", "c"]

    made = await store.create_derived_run(new_run("r3"), RunOrigin("r1", "rerun"))
    assert made is not None and made.created
    row = await store.get_run("r3")
    assert row is not None and (row.rerun_of, row.replay_of, row.replay_from_step) == (
        "r1",
        None,
        None,
    )
    assert await store.get_steps("r3") == []
    # The original is untouched; an unknown original creates nothing.
    assert {s.key: s for s in await store.get_steps("r1")} == original
    first = await store.get_run("r1")
    assert first is not None and first.rerun_of is None and first.replay_of is None
    assert await store.create_derived_run(new_run("r4"), RunOrigin("nope", "rerun")) is None
    assert await store.create_derived_run(new_run("r5"), RunOrigin("a\x00", "rerun")) is None
    assert await store.get_runs(["r4", "r5"]) == []


async def test_claim_respects_limit_functions_and_order(store: Store) -> None:
    await store.create_runs([new_run(f"r{i}") for i in range(5)] + [new_run("g1", fid="g")])
    first = await store.claim("w1", ["f"], 3, LEASE)
    assert [r.id for r in first.runs] == ["r0", "r1", "r2"]
    assert all(r.token >= 1 and r.steps == {} and r.crashes == 0 for r in first.runs)
    second = await store.claim("w2", ["f"], 10, LEASE)
    assert [r.id for r in second.runs] == ["r3", "r4"]
    assert (await store.claim("w3", ["f"], 10, LEASE)).runs == []
    row = await store.get_run("r0")
    assert row is not None and row.status == "running" and row.lease_owner == "w1"
    assert second.next_due is not None and second.next_due > store.now()
    g = await store.claim("w3", ["g", "f"], 10, LEASE)
    assert [r.id for r in g.runs] == ["g1"]


async def test_concurrent_claims_never_hand_out_a_run_twice(store: Store) -> None:
    await store.create_runs([new_run(f"r{i:03}") for i in range(200)])
    claims = await asyncio.gather(*(store.claim(f"w{i}", ["f"], 30, LEASE) for i in range(10)))
    ids = [r.id for c in claims for r in c.runs]
    assert len(ids) == len(set(ids)) == 200


async def test_checkpoints_are_fenced_by_the_lease_token(store: Store, clock: ManualClock) -> None:
    await store.create_runs([new_run("r1")])
    run = (await store.claim("w1", ["f"], 1, LEASE)).runs[0]
    ok = await store.commit([StepWrite("r1", run.token, "a", 0, "run", "completed", output="1")])
    assert ok == [True]
    # The lease expires; another worker takes over.
    await clock.advance(LEASE + 1)
    taken = (await store.claim("w2", ["f"], 1, LEASE)).runs[0]
    assert taken.token > run.token and taken.crashes == 1
    assert taken.steps["a"].output == "1" and taken.steps["a"].status == "completed"
    stale = await store.commit(
        [
            StepWrite("r1", run.token, "b", 1, "run", "completed", output="2"),
            Outcome("r1", run.token, "complete", output="99"),
        ]
    )
    assert stale == [False, False]
    fresh = await store.commit(
        [
            StepWrite("r1", taken.token, "b", 1, "run", "completed", output="2"),
            Outcome("r1", taken.token, "complete", output="3"),
        ]
    )
    assert fresh == [True, True]
    row = await store.get_run("r1")
    assert row is not None and row.status == "completed" and row.output == "3"
    assert row.ended_at is not None and row.available_at is None
    steps = await store.get_steps("r1")
    assert [(s.key, s.seq, s.output) for s in steps] == [("a", 0, "1"), ("b", 1, "2")]


async def test_a_lease_is_not_taken_before_it_expires(store: Store, clock: ManualClock) -> None:
    await store.create_runs([new_run("r1")])
    run = (await store.claim("w1", ["f"], 1, LEASE)).runs[0]
    await clock.advance(LEASE - 1)
    assert (await store.claim("w2", ["f"], 1, LEASE)).runs == []
    assert await store.heartbeat("w1", [("r1", run.token), ("ghost", 1)], LEASE) == ["ghost"]
    await clock.advance(LEASE - 1)
    assert (await store.claim("w2", ["f"], 1, LEASE)).runs == []
    await clock.advance(2)
    assert [r.id for r in (await store.claim("w2", ["f"], 1, LEASE)).runs] == ["r1"]
    assert await store.heartbeat("w1", [("r1", run.token)], LEASE) == ["r1"]


async def test_retry_and_suspend_outcomes(store: Store, clock: ManualClock) -> None:
    await store.create_runs([new_run("r1")])
    run = (await store.claim("w1", ["f"], 1, LEASE)).runs[0]
    now = store.now()
    err = serde.dumps({"type": "E", "message": "m"})
    assert await store.commit(
        [Outcome("r1", run.token, "retry", error=err, available_at=now + 10)]
    ) == [True]
    row = await store.get_run("r1")
    assert row is not None and row.status == "queued" and row.attempt == 1
    assert row.error == err and row.lease_owner is None
    assert (await store.claim("w1", ["f"], 1, LEASE)).runs == []
    await clock.advance(11)
    run = (await store.claim("w1", ["f"], 1, LEASE)).runs[0]
    assert run.attempt == 1 and run.crashes == 0
    await store.commit(
        [
            StepWrite("r1", run.token, "nap", 0, "sleep", "sleeping", wake_at=store.now() + 100),
            Outcome("r1", run.token, "suspend", available_at=store.now() + 100, status="sleeping"),
        ]
    )
    row = await store.get_run("r1")
    assert row is not None and row.status == "sleeping"
    assert await store.next_due(["f"]) == pytest.approx(store.now() + 100)
    await clock.advance(101)
    run = (await store.claim("w1", ["f"], 1, LEASE)).runs[0]
    assert run.steps["nap"].status == "sleeping"
    assert await store.commit([Outcome("r1", run.token, "release")]) == [True]
    row = await store.get_run("r1")
    assert row is not None and row.status == "queued"
    assert [r.id for r in (await store.claim("w2", ["f"], 1, LEASE)).runs] == ["r1"]


async def test_events_fan_out_dedupe_and_record_runs(store: Store, clock: ManualClock) -> None:
    await store.register_functions(
        [
            fn_record("exact", EventTrigger("order.placed")),
            fn_record("wild", EventTrigger("order.*")),
            fn_record("big", EventTrigger("order.placed", "event.data.total > 100")),
        ]
    )
    sent = await store.send_events(
        [
            event_body("order.placed", {"total": 50}, "e1"),
            event_body("order.placed", {"total": 500}, "e2"),
            event_body("other", {}, "e3"),
        ]
    )
    assert [(s.id, s.duplicate, len(s.run_ids)) for s in sent] == [
        ("e1", False, 2),
        ("e2", False, 3),
        ("e3", False, 0),
    ]
    dup = await store.send_events([event_body("order.placed", {"total": 999}, "e1")])
    assert dup[0].duplicate and dup[0].run_ids == []
    runs = await store.list_runs(RunFilter())
    assert len(runs) == 5
    assert {r.event_id for r in runs} == {"e1", "e2"}
    events = await store.list_events(None, None, 10)
    assert [e.id for e in events] == ["e3", "e2", "e1"]
    assert sorted(events[1].run_ids) == sorted(sent[1].run_ids)
    page = await store.list_events(None, events[0].seq, 1)
    assert [e.id for e in page] == ["e2"]
    assert [e.id for e in await store.list_events("other", None, 10)] == ["e3"]
    await clock.advance(24 * 3600 + 1)
    again = await store.send_events([event_body("order.placed", {"total": 1}, "e1")])
    assert not again[0].duplicate


async def test_waits_resolve_on_the_matching_event(store: Store) -> None:
    await store.create_runs([new_run("r1"), new_run("r2")])
    runs = {r.id: r for r in (await store.claim("w", ["f"], 2, LEASE)).runs}
    spec = WaitSpec("shipped", "data.run", serde.dumps("r1"), None, None)
    expr = WaitSpec("shipped", None, None, "async.data.run == event.data.run", None)
    assert (
        await store.commit(
            [
                StepWrite("r1", runs["r1"].token, "w", 0, "wait", "waiting", wait=spec),
                Outcome("r1", runs["r1"].token, "suspend", status="waiting", watch_keys=("w",)),
                StepWrite("r2", runs["r2"].token, "w", 0, "wait", "waiting", wait=expr),
                Outcome("r2", runs["r2"].token, "suspend", status="waiting", watch_keys=("w",)),
            ]
        )
        == [True] * 4
    )
    r1 = await store.get_run("r1")
    assert r1 is not None and r1.status == "waiting" and r1.available_at is None
    await store.send_events([event_body("shipped", {"run": "nobody"}, "x1")])
    assert (await store.claim("w", ["f"], 2, LEASE)).runs == []
    await store.send_events([event_body("shipped", {"run": "r2"}, "x2")])
    resumed = (await store.claim("w", ["f"], 2, LEASE)).runs
    assert [r.id for r in resumed] == ["r2"]
    step = resumed[0].steps["w"]
    assert step.status == "completed" and serde.loads(step.output)["id"] == "x2"
    await store.send_events([event_body("shipped", {"run": "r1"}, "x3")])
    assert [r.id for r in (await store.claim("w", ["f"], 2, LEASE)).runs] == ["r1"]


async def test_a_wait_resolved_while_running_makes_the_suspension_due(store: Store) -> None:
    await store.create_runs([new_run("r1")])
    run = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    spec = WaitSpec("go", None, None, None, None)
    await store.commit([StepWrite("r1", run.token, "w", 0, "wait", "waiting", wait=spec)])
    await store.send_events([event_body("go", {}, "g1")])  # arrives before the suspension
    await store.commit([Outcome("r1", run.token, "suspend", status="waiting", watch_keys=("w",))])
    again = (await store.claim("w", ["f"], 1, LEASE)).runs
    assert [r.id for r in again] == ["r1"]
    assert again[0].steps["w"].status == "completed"


async def test_expire_step_times_out_unless_resolved(store: Store, clock: ManualClock) -> None:
    await store.create_runs([new_run("r1")])
    run = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    deadline = store.now() + 5
    await store.commit(
        [
            StepWrite(
                "r1",
                run.token,
                "a",
                0,
                "wait",
                "waiting",
                wake_at=deadline,
                wait=WaitSpec("a", None, None, None, deadline),
            ),
            StepWrite(
                "r1",
                run.token,
                "b",
                1,
                "wait",
                "waiting",
                wake_at=deadline,
                wait=WaitSpec("b", None, None, None, deadline),
            ),
        ]
    )
    await store.send_events([event_body("b", {}, "eb")])
    await clock.advance(6)
    a = await store.expire_step("r1", run.token, "a")
    assert a is not None and a.status == "completed" and a.output == "null"
    b = await store.expire_step("r1", run.token, "b")
    assert b is not None and b.status == "completed" and serde.loads(b.output)["id"] == "eb"
    assert await store.expire_step("r1", run.token + 1, "a") is None
    # The wait is gone: a late event changes nothing.
    await store.send_events([event_body("a", {}, "late")])
    steps = {s.key: s for s in await store.get_steps("r1")}
    assert steps["a"].output == "null"


async def test_an_event_after_the_wait_deadline_does_not_resolve_it(
    store: Store, clock: ManualClock
) -> None:
    await store.create_runs([new_run("r1")])
    run = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    deadline = store.now() + 5
    await store.commit(
        [
            StepWrite(
                "r1",
                run.token,
                "w",
                0,
                "wait",
                "waiting",
                wake_at=deadline,
                wait=WaitSpec("late", None, None, None, deadline),
            ),
            Outcome(
                "r1",
                run.token,
                "suspend",
                available_at=deadline,
                status="waiting",
                watch_keys=("w",),
            ),
        ]
    )
    await clock.advance(6)  # the deadline passed; no worker has timed the wait out yet
    await store.send_events([event_body("late", {}, "too-late")])
    run = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    assert run.steps["w"].status == "waiting"
    step = await store.expire_step("r1", run.token, "w")
    assert step is not None and step.output == "null"


def test_ended_runs_asks_for_exactly_the_terminal_statuses() -> None:
    """Both backends spell the terminal statuses in ENDED_RUNS: the same set as the runtime's."""
    import re

    from perdure.store.postgres import queries as pq
    from perdure.store.sqlite import queries as sq
    from perdure.types import TERMINAL_STATUSES

    for sql in (sq.ENDED_RUNS, pq.ENDED_RUNS):
        listed = re.search(r"status IN \(([^)]*)\)", sql)
        assert listed is not None
        assert {v.strip().strip("'") for v in listed.group(1).split(",")} == TERMINAL_STATUSES


async def test_a_batch_of_many_runs_keeps_the_order_of_its_writes(store: Store) -> None:
    """In one batch of several runs: a child's end resolves its parent's invoke step written
    earlier in the same batch, and a suspension sees a watched step written just before it."""
    await store.create_runs([new_run("parent"), new_run("waiter"), new_run("other")])
    runs = {r.id: r for r in (await store.claim("w", ["f"], 3, LEASE)).runs}
    tp, tw, to = (runs[i].token for i in ("parent", "waiter", "other"))
    child = NewRun(
        "kid", "g", new_run("x").input, idempotency_key="invoke:parent:c",
        parent_run_id="parent", parent_step="c",
    )  # fmt: skip
    assert await store.commit(
        [StepWrite("parent", tp, "c", 0, "invoke", "invoking", child=child)]
    ) == [True]
    kid = (await store.claim("w", ["g"], 1, LEASE)).runs[0]
    assert (
        await store.commit(
            [
                StepWrite("parent", tp, "a", 1, "run", "completed", output="1"),
                StepWrite("parent", tp, "c", 0, "invoke", "invoking"),  # rewritten, then resolved
                Outcome("kid", kid.token, "complete", output="7"),
                StepWrite("waiter", tw, "w", 0, "wait", "completed", output="{}"),
                Outcome("waiter", tw, "suspend", status="waiting", watch_keys=("w",)),
                StepWrite("other", to, "s", 0, "run", "completed", output="2"),
                Outcome("other", to, "complete", output="3"),
            ]
        )
        == [True] * 7
    )
    steps = {s.key: s for s in await store.get_steps("parent")}
    assert (steps["c"].status, steps["c"].output) == ("completed", "7")
    assert steps["a"].output == "1"
    waiter = await store.get_run("waiter")
    assert waiter is not None and waiter.status == "queued"  # due at once: "w" was resolved
    [s] = await store.get_steps("other")
    assert (s.key, s.output) == ("s", "2")
    other = await store.get_run("other")
    assert other is not None and other.status == "completed"


async def test_invoke_children_resolve_their_parent(store: Store) -> None:
    await store.create_runs([new_run("parent")])
    p = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    child = NewRun(
        "child",
        "g",
        new_run("x").input,
        idempotency_key="invoke:parent:c",
        parent_run_id="parent",
        parent_step="c",
    )
    assert await store.commit(
        [
            StepWrite("parent", p.token, "c", 0, "invoke", "invoking", child=child),
            Outcome("parent", p.token, "suspend", status="waiting", watch_keys=("c",)),
        ]
    ) == [True, True]
    # A retried invoke does not create a second child.
    assert not (
        await store.create_runs(
            [NewRun("child2", "g", child.input, idempotency_key="invoke:parent:c")]
        )
    )[0].created
    c = (await store.claim("w", ["g"], 5, LEASE)).runs
    assert [r.id for r in c] == ["child"]
    assert (await store.claim("w", ["f"], 1, LEASE)).runs == []
    await store.commit([Outcome("child", c[0].token, "complete", output='{"v":1}')])
    resumed = (await store.claim("w", ["f"], 1, LEASE)).runs
    assert [r.id for r in resumed] == ["parent"]
    assert resumed[0].steps["c"].status == "completed"
    assert resumed[0].steps["c"].output == '{"v":1}'


async def test_ended_since_lists_ended_runs_by_end_time(store: Store, clock: ManualClock) -> None:
    await store.create_runs([new_run("r1"), new_run("r2"), new_run("r3")])
    start = clock.now()
    assert await store.ended_since(start, 10) == []
    await clock.advance(1)
    await store.cancel_run("r2")
    await clock.advance(1)
    await store.cancel_run("r1")
    assert await store.ended_since(start, 10) == ["r2", "r1"]
    assert await store.ended_since(start, 1) == ["r2"]
    assert await store.ended_since(start + 1.5, 10) == ["r1"]


async def test_cancel_fences_and_is_final(store: Store) -> None:
    await store.create_runs([new_run("r1"), new_run("r2")])
    run = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    row = await store.cancel_run("r1")
    assert row is not None and row.status == "cancelled" and row.available_at is None
    assert await store.commit([Outcome("r1", run.token, "complete", output="1")]) == [False]
    assert await store.heartbeat("w", [("r1", run.token)], LEASE) == ["r1"]
    again = await store.cancel_run("r1")
    assert again is not None and again.status == "cancelled"
    why = '{"option":"sync","decision":"cancelled","message":"the function was removed"}'
    queued = await store.cancel_run("r2", reason=why)
    assert queued is not None and queued.status == "cancelled"
    assert queued.reason == why
    assert (await store.claim("w", ["f"], 5, LEASE)).runs == []
    assert await store.cancel_run("missing") is None


async def test_list_runs_filters_and_paginates(store: Store) -> None:
    await store.create_runs([new_run(f"r{i:02}", fid="f" if i % 2 else "g") for i in range(10)])
    page1 = await store.list_runs(RunFilter(limit=4))
    assert [r.id for r in page1] == ["r09", "r08", "r07", "r06"]
    page2 = await store.list_runs(RunFilter(limit=4, before=page1[-1].id))
    assert [r.id for r in page2] == ["r05", "r04", "r03", "r02"]
    only_f = await store.list_runs(RunFilter(function_id="f"))
    assert [r.id for r in only_f] == ["r09", "r07", "r05", "r03", "r01"]
    await store.cancel_run("r09")
    assert [r.id for r in await store.list_runs(RunFilter(status="cancelled"))] == ["r09"]


async def test_cron_ticks_fire_once(store: Store) -> None:
    assert await store.cron_last_tick("f", "t") is None
    assert await store.fire_cron("f", "t", 100.0, None)
    assert await store.cron_last_tick("f", "t") == 100.0
    results = await asyncio.gather(
        store.fire_cron("f", "t", 200.0, new_run("c1", key="cron:t:200")),
        store.fire_cron("f", "t", 200.0, new_run("c2", key="cron:t:200")),
    )
    assert sorted(results) == [False, True]
    assert not await store.fire_cron("f", "t", 150.0, new_run("c3", key="cron:t:150"))
    assert len(await store.list_runs(RunFilter())) == 1


async def test_prune_deletes_old_ended_runs(store: Store, clock: ManualClock) -> None:
    await store.create_runs([new_run("old"), new_run("new"), new_run("live")])
    runs = {r.id: r for r in (await store.claim("w", ["f"], 3, LEASE)).runs}
    await store.commit(
        [
            StepWrite("old", runs["old"].token, "a", 0, "run", "completed", output="1"),
            Outcome("old", runs["old"].token, "complete", output="1"),
        ]
    )
    await clock.advance(1000)
    await store.commit([Outcome("new", runs["new"].token, "complete", output="1")])
    assert await store.prune(store.now() - 500, 100) == 1
    assert await store.get_run("old") is None and await store.get_steps("old") == []
    assert await store.get_run("new") is not None and await store.get_run("live") is not None


async def test_group_commit_of_many_runs(store: Store) -> None:
    await store.create_runs([new_run(f"r{i:03}") for i in range(300)])
    runs = (await store.claim("w", ["f"], 300, LEASE)).runs
    writes = [
        StepWrite(r.id, r.token, "s", 0, "run", "completed", output=str(i))
        for i, r in enumerate(runs)
    ]
    results = await asyncio.gather(
        *(store.commit([w]) for w in writes),
        store.commit([Outcome(r.id, r.token, "complete", output="0") for r in runs[:10]]),
    )
    assert all(all(r) for r in results)
    done = await store.list_runs(RunFilter(status="completed", limit=1000))
    assert len(done) == 10


# ---------------------------------------------------------------------- commit edge cases

ENDING_OUTCOMES = ["complete", "fail", "retry", "suspend", "release"]


def ending(run_id: str, token: int, kind: str, now: float) -> Outcome:
    """An outcome of each kind that gives the run's lease back."""
    err = serde.dumps({"type": "E", "message": "m"})
    if kind == "complete":
        return Outcome(run_id, token, "complete", output="1")
    if kind == "fail":
        return Outcome(run_id, token, "fail", error=err)
    if kind == "retry":
        return Outcome(run_id, token, "retry", error=err, available_at=now + 100)
    if kind == "suspend":
        return Outcome(run_id, token, "suspend", available_at=now + 100, status="sleeping")
    return Outcome(run_id, token, "release")


@pytest.mark.parametrize("kind", ENDING_OUTCOMES)
async def test_a_write_after_the_outcome_in_the_same_commit_is_rejected(
    store: Store, kind: str
) -> None:
    await store.create_runs([new_run("r1")])
    run = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    results = await store.commit(
        [
            StepWrite("r1", run.token, "a", 0, "run", "completed", output="1"),
            ending("r1", run.token, kind, store.now()),
            StepWrite("r1", run.token, "b", 1, "run", "completed", output="2"),
            Outcome("r1", run.token, "complete", output="late"),
        ]
    )
    assert results == [True, True, False, False]
    assert [s.key for s in await store.get_steps("r1")] == ["a"]
    row = await store.get_run("r1")
    assert row is not None and row.output != "late" and row.lease_owner is None


@pytest.mark.parametrize("kind", ENDING_OUTCOMES)
async def test_a_write_after_the_outcome_in_a_later_commit_is_rejected(
    store: Store, kind: str
) -> None:
    await store.create_runs([new_run("r1")])
    run = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    assert await store.commit([ending("r1", run.token, kind, store.now())]) == [True]
    before = await store.get_run("r1")
    late: list[WriteOp] = [
        StepWrite("r1", run.token, "b", 1, "run", "completed", output="2"),
        *(ending("r1", run.token, k, store.now()) for k in ENDING_OUTCOMES),
    ]
    assert await store.commit(late) == [False] * len(late)
    assert await store.get_steps("r1") == []
    assert await store.get_run("r1") == before
    assert await store.heartbeat("w", [("r1", run.token)], LEASE) == ["r1"]


async def test_a_wait_with_a_deadline_resolved_before_the_suspension_is_due_at_once(
    store: Store,
) -> None:
    await store.create_runs([new_run("r1")])
    run = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    deadline = store.now() + 3600
    spec = WaitSpec("go", None, None, None, deadline)
    write = StepWrite("r1", run.token, "w", 0, "wait", "waiting", wake_at=deadline, wait=spec)
    assert await store.commit([write]) == [True]
    await store.send_events([event_body("go", {}, "g1")])  # before the suspension commits
    suspend = Outcome(
        "r1", run.token, "suspend", available_at=deadline, status="waiting", watch_keys=("w",)
    )
    assert await store.commit([suspend]) == [True]
    row = await store.get_run("r1")
    assert row is not None and row.status == "queued"
    assert row.available_at is not None and row.available_at <= store.now()
    again = (await store.claim("w", ["f"], 1, LEASE)).runs
    assert [r.id for r in again] == ["r1"]
    assert serde.loads(again[0].steps["w"].output)["id"] == "g1"


async def test_a_suspension_watching_an_unresolved_wait_stays_suspended(store: Store) -> None:
    await store.create_runs([new_run("r1")])
    run = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    spec = WaitSpec("go", None, None, None, None)
    await store.commit([StepWrite("r1", run.token, "w", 0, "wait", "waiting", wait=spec)])
    await store.send_events([event_body("other", {}, "o1")])
    await store.commit([Outcome("r1", run.token, "suspend", status="waiting", watch_keys=("w",))])
    row = await store.get_run("r1")
    assert row is not None and row.status == "waiting" and row.available_at is None
    assert (await store.claim("w", ["f"], 1, LEASE)).runs == []


async def invoke_child(store: Store, *, suspend: bool = True) -> tuple[int, int]:
    """A parent run ``parent`` invoking ``child`` (step ``c``); the tokens of both."""
    await store.create_runs([new_run("parent")])
    p = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    child = NewRun(
        "child",
        "g",
        new_run("x").input,
        idempotency_key="invoke:parent:c",
        parent_run_id="parent",
        parent_step="c",
    )
    ops: list[WriteOp] = [StepWrite("parent", p.token, "c", 0, "invoke", "invoking", child=child)]
    if suspend:
        ops.append(Outcome("parent", p.token, "suspend", status="waiting", watch_keys=("c",)))
    assert await store.commit(ops) == [True] * len(ops)
    c = (await store.claim("w", ["g"], 1, LEASE)).runs[0]
    return p.token, c.token


async def test_a_failed_child_fails_its_parents_invoke_step(store: Store) -> None:
    _, child_token = await invoke_child(store)
    err = serde.dumps({"type": "StepError", "message": "boom", "step_id": "s"})
    assert await store.commit([Outcome("child", child_token, "fail", error=err)]) == [True]
    parent = await store.get_run("parent")
    assert parent is not None and parent.status == "queued"
    resumed = (await store.claim("w", ["f"], 1, LEASE)).runs
    assert [r.id for r in resumed] == ["parent"]
    step = resumed[0].steps["c"]
    assert step.status == "failed" and step.error == err and step.output is None
    assert step.ended_at is not None


async def test_a_cancelled_child_fails_its_parents_invoke_step(store: Store) -> None:
    _, child_token = await invoke_child(store)
    cancelled = await store.cancel_run("child")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert cancelled.error == '{"type":"RunCancelledError","message":"the run was cancelled"}'
    resumed = (await store.claim("w", ["f"], 1, LEASE)).runs
    assert [r.id for r in resumed] == ["parent"]
    step = resumed[0].steps["c"]
    assert step.status == "failed" and step.error == cancelled.error
    # The child's worker is fenced out.
    assert await store.commit([Outcome("child", child_token, "complete", output="1")]) == [False]


async def test_a_child_ending_before_its_parent_suspends_makes_the_parent_due(
    store: Store,
) -> None:
    parent_token, child_token = await invoke_child(store, suspend=False)
    assert await store.commit([Outcome("child", child_token, "complete", output="7")]) == [True]
    suspend = Outcome("parent", parent_token, "suspend", status="waiting", watch_keys=("c",))
    assert await store.commit([suspend]) == [True]
    resumed = (await store.claim("w", ["f"], 1, LEASE)).runs
    assert [r.id for r in resumed] == ["parent"]
    assert resumed[0].steps["c"].status == "completed" and resumed[0].steps["c"].output == "7"


async def test_an_invoke_step_times_out_as_failed(store: Store) -> None:
    parent_token, _ = await invoke_child(store, suspend=False)
    step = await store.expire_step("parent", parent_token, "c")
    assert step is not None and step.status == "failed"
    assert step.error == (
        '{"type":"InvokeTimeoutError",'
        '"message":"the invoked run did not finish before the timeout"}'
    )


async def taken_over(store: Store, clock: ManualClock) -> tuple[int, int]:
    """``r1`` claimed by w1, its lease expired and taken over by w2: (stale, fresh) token."""
    await store.create_runs([new_run("r1")])
    first = (await store.claim("w1", ["f"], 1, LEASE)).runs[0]
    deadline = store.now() + 5
    spec = WaitSpec("go", None, None, None, deadline)
    await store.commit(
        [StepWrite("r1", first.token, "w", 0, "wait", "waiting", wake_at=deadline, wait=spec)]
    )
    await clock.advance(LEASE + 1)
    second = (await store.claim("w2", ["f"], 1, LEASE)).runs[0]
    assert second.token > first.token
    return first.token, second.token


STALE_WRITES: dict[str, Callable[[int], StepWrite]] = {
    "run": lambda t: StepWrite("r1", t, "a", 1, "run", "completed", output="1"),
    "run-failed": lambda t: StepWrite(
        "r1", t, "a", 1, "run", "failed", error=serde.dumps({"type": "E", "message": "m"})
    ),
    "run-retrying": lambda t: StepWrite("r1", t, "a", 1, "run", "retrying", attempts=2),
    "sleep": lambda t: StepWrite("r1", t, "a", 1, "sleep", "sleeping", wake_at=1.0),
    "wait": lambda t: StepWrite(
        "r1", t, "a", 1, "wait", "waiting", wait=WaitSpec("stale", None, None, None, None)
    ),
    "invoke": lambda t: StepWrite(
        "r1",
        t,
        "a",
        1,
        "invoke",
        "invoking",
        child=NewRun("stale-child", "g", new_run("x").input, parent_run_id="r1", parent_step="a"),
    ),
    "send": lambda t: StepWrite("r1", t, "a", 1, "send", "completed", output='["e"]'),
}


@pytest.mark.parametrize("write", sorted(STALE_WRITES))
async def test_a_stale_token_is_rejected_on_every_step_write(
    store: Store, clock: ManualClock, write: str
) -> None:
    stale, fresh = await taken_over(store, clock)
    assert await store.commit([STALE_WRITES[write](stale)]) == [False]
    assert [s.key for s in await store.get_steps("r1")] == ["w"]
    assert await store.get_run("stale-child") is None
    await store.send_events([event_body("stale", {}, "s1")])
    row = await store.get_run("r1")
    assert row is not None and row.status == "running" and row.lease_owner == "w2"
    # The worker holding the lease still writes.
    assert await store.commit([STALE_WRITES[write](fresh)]) == [True]


@pytest.mark.parametrize("kind", ENDING_OUTCOMES)
async def test_a_stale_token_is_rejected_on_every_outcome(
    store: Store, clock: ManualClock, kind: str
) -> None:
    stale, fresh = await taken_over(store, clock)
    before = await store.get_run("r1")
    assert await store.commit([ending("r1", stale, kind, store.now())]) == [False]
    assert await store.get_run("r1") == before
    assert await store.commit([ending("r1", fresh, kind, store.now())]) == [True]


async def test_a_stale_token_is_rejected_on_heartbeat_and_expire_step(
    store: Store, clock: ManualClock
) -> None:
    stale, fresh = await taken_over(store, clock)
    before = await store.get_run("r1")
    assert await store.heartbeat("w1", [("r1", stale)], LEASE) == ["r1"]
    assert await store.get_run("r1") == before
    await clock.advance(10)  # past the wait's deadline
    assert await store.expire_step("r1", stale, "w") is None
    assert (await store.get_steps("r1"))[0].status == "waiting"
    assert await store.heartbeat("w2", [("r1", fresh)], LEASE) == []
    step = await store.expire_step("r1", fresh, "w")
    assert step is not None and step.status == "completed" and step.output == "null"


async def test_a_cancel_between_claim_and_first_write_rejects_the_writes(store: Store) -> None:
    await store.create_runs([new_run("r1")])
    run = (await store.claim("w", ["f"], 1, LEASE)).runs[0]
    cancelled = await store.cancel_run("r1")
    assert cancelled is not None and cancelled.status == "cancelled"
    spec = WaitSpec("go", None, None, None, None)
    writes: list[WriteOp] = [
        StepWrite("r1", run.token, "a", 0, "run", "completed", output="1"),
        StepWrite("r1", run.token, "w", 1, "wait", "waiting", wait=spec),
        *(ending("r1", run.token, k, store.now()) for k in ENDING_OUTCOMES),
    ]
    for op in writes:
        assert await store.commit([op]) == [False]
    assert await store.commit(writes) == [False] * len(writes)
    assert await store.heartbeat("w", [("r1", run.token)], LEASE) == ["r1"]
    assert await store.expire_step("r1", run.token, "w") is None
    assert await store.get_steps("r1") == []
    assert await store.get_run("r1") == cancelled
    assert (await store.claim("w", ["f"], 1, LEASE)).runs == []


async def test_a_run_cancelled_before_its_claim_is_not_claimed(
    store: Store, clock: ManualClock
) -> None:
    leased = new_run("r2")
    leased.lease_owner, leased.lease_seconds = "w0", LEASE
    await store.create_runs([new_run("r1"), leased])
    assert (await store.cancel_run("r1")) is not None
    assert (await store.cancel_run("r2")) is not None
    assert (await store.claim("w", ["f"], 5, LEASE)).runs == []
    assert await store.commit([StepWrite("r2", 1, "a", 0, "run", "completed")]) == [False]
    await clock.advance(LEASE + 1)
    assert (await store.claim("w", ["f"], 5, LEASE)).runs == []
    assert await store.next_due(["f"]) is None


# ---------------------------------------------------------------------- unstorable input

BAD_TEXT = ["a\x00b", "\x00", "bad\ud800"]


@pytest.mark.parametrize("bad", BAD_TEXT)
async def test_look_ups_with_unstorable_text_find_nothing(store: Store, bad: str) -> None:
    await store.create_runs([new_run("r1")])
    await store.send_events([event_body("order.placed", {}, "e1")])
    assert await store.get_run(bad) is None
    assert [r.id for r in await store.get_runs([bad, "r1"])] == ["r1"]
    assert await store.get_runs([bad]) == []
    assert await store.get_steps(bad) == []
    assert await store.cancel_run(bad) is None
    assert await store.list_runs(RunFilter(function_id=bad)) == []
    assert await store.list_runs(RunFilter(status=bad)) == []
    assert await store.list_runs(RunFilter(before=bad)) == []
    assert await store.list_events(bad, None, 10) == []
    assert await store.cron_last_tick(bad, "t") is None
    assert await store.cron_last_tick("f", bad) is None
    assert [r.id for r in await store.list_runs(RunFilter())] == ["r1"]


def with_field(run: NewRun, field: str, value: str) -> NewRun:
    setattr(run, field, value)
    return run


RUN_FIELDS = ["id", "function_id", "event_id", "idempotency_key", "parent_run_id", "parent_step"]


@pytest.mark.parametrize("field", RUN_FIELDS)
@pytest.mark.parametrize("bad", BAD_TEXT)
async def test_a_run_with_unstorable_text_is_refused_before_anything_is_written(
    store: Store, field: str, bad: str
) -> None:
    with pytest.raises(InvalidInputError):
        await store.create_runs([new_run("ok"), with_field(new_run("r1"), field, bad)])
    with pytest.raises(InvalidInputError):
        await store.fire_cron("f", "t", 100.0, with_field(new_run("c1"), field, bad))
    assert await store.list_runs(RunFilter()) == []
    assert await store.cron_last_tick("f", "t") is None


@pytest.mark.parametrize("bad", BAD_TEXT)
async def test_events_and_functions_with_unstorable_text_are_refused(
    store: Store, bad: str
) -> None:
    await store.register_functions([fn_record("f", EventTrigger("order.*"))])
    good = event_body("order.placed", {}, "e1")
    bad_id = EventIn(bad, "order.placed", {**good.obj, "id": bad}, good.body)
    bad_name = EventIn("e2", bad, {**good.obj, "id": "e2", "name": bad}, good.body)
    for batch in ([good, bad_id], [good, bad_name]):
        with pytest.raises(InvalidInputError):
            await store.send_events(batch)
    assert await store.list_events(None, None, 10) == []
    assert await store.list_runs(RunFilter()) == []
    # Nothing was stored: the good event is new.
    assert not (await store.send_events([good]))[0].duplicate
    with pytest.raises(InvalidInputError):
        await store.register_functions([fn_record(bad, EventTrigger("order.*"))])
    with pytest.raises(InvalidInputError):
        await store.fire_cron(bad, "t", 100.0, None)
    assert [f.id for f in await store.list_functions()] == ["f"]


async def test_cursors_and_limits_out_of_range(store: Store) -> None:
    await store.send_events([event_body("n", {}, f"e{i}") for i in range(3)])
    await store.create_runs([new_run(f"r{i}") for i in range(3)])
    everything = [e.id for e in await store.list_events(None, None, 10)]
    assert everything == ["e2", "e1", "e0"]
    for above in (2**63 - 1, 2**63, 2**70, 10**5000):
        assert [e.id for e in await store.list_events(None, above, 10)] == everything
        assert [e.id for e in await store.list_events("n", above, 10)] == everything
    for below in (0, -1, -(2**63), -(2**70)):
        assert await store.list_events(None, below, 10) == []
    for limit in (2**63, 2**70):
        assert [e.id for e in await store.list_events(None, None, limit)] == everything
        assert len(await store.list_runs(RunFilter(limit=limit))) == 3
    for limit in (0, -1, -(2**70)):
        assert await store.list_events(None, None, limit) == []
        assert await store.list_runs(RunFilter(limit=limit)) == []


@pytest.mark.parametrize("gated", [False, True], ids=["plain", "concurrency"])
async def test_claims_tell_first_starts_and_takeovers_and_the_due_backlog_counts(
    store: Store, clock: ManualClock, gated: bool
) -> None:
    from perdure.engine.flow.keys import run_flow
    from perdure.engine.flow.options import Concurrency, FlowControl

    spec = FlowControl.build(concurrency=Concurrency(10)) if gated else FlowControl()
    record = FunctionRecord("f", "app", (), {"flow": spec.to_dict()} if gated else {})
    await store.register_functions([record, fn_record("g")])
    runs = [new_run("r1"), new_run("r2"), new_run("g1", fid="g")]
    for run in runs[:2]:
        run.flow = run_flow("f", spec, {"name": "x", "data": {}})
    await store.create_runs(runs)
    backlog = await store.due_backlog()
    assert backlog.now == store.now()
    assert {f: n for f, (n, _) in backlog.functions.items()} == {"f": 2, "g": 1}
    assert all(at <= backlog.now for _, at in backlog.functions.values())
    await clock.advance(5)
    oldest = (await store.due_backlog()).functions["f"][1]
    assert store.now() - oldest >= 5

    first = (await store.claim("w1", ["f"], 1, LEASE)).runs[0]
    assert (first.first, first.taken_over) == (True, False)
    assert (await store.due_backlog()).functions["f"][0] == 1
    # Suspended, then claimed again: neither a start nor a takeover.
    assert await store.commit(
        [Outcome(first.id, first.token, "suspend", available_at=store.now(), status="sleeping")]
    ) == [True]
    again = {r.id: r for r in (await store.claim("w1", ["f"], 5, LEASE)).runs}
    assert sorted(again) == ["r1", "r2"]
    assert (again[first.id].first, again[first.id].taken_over) == (False, False)
    assert (again["r2"].first, again["r2"].taken_over) == (True, False)
    assert {f: n for f, (n, _) in (await store.due_backlog()).functions.items()} == {"g": 1}
    # The lease expires: the runs are due (unclaimed) again, and the next claim takes over.
    await clock.advance(LEASE + 1)
    assert (await store.due_backlog()).functions["f"][0] == 2
    taken = (await store.claim("w2", ["f"], 5, LEASE)).runs
    assert sorted((r.id, r.first, r.taken_over) for r in taken) == [
        ("r1", False, True),
        ("r2", False, True),
    ]
    assert "f" not in (await store.due_backlog()).functions


async def test_an_event_names_the_waits_it_resolved(store: Store, clock: ManualClock) -> None:
    await store.create_runs([new_run("r1"), new_run("r2"), new_run("r3")])
    runs = {r.id: r for r in (await store.claim("w", ["f"], 3, LEASE)).runs}
    writes: list[WriteOp] = []
    for rid in ("r1", "r2", "r3"):
        spec = WaitSpec("shipped", "data.run", serde.dumps(rid), None, None)
        writes += [
            StepWrite(rid, runs[rid].token, "w", 0, "wait", "waiting", wait=spec),
            Outcome(rid, runs[rid].token, "suspend", status="waiting", watch_keys=("w",)),
        ]
    assert await store.commit(writes) == [True] * 6
    await store.send_events([event_body("shipped", {"run": "r2"}, "x1")])
    old = await store.get_event("x1")
    assert old is not None
    assert await store.waits_resolved_by(old, 10) == [("r2", "w")]
    await clock.advance(1)
    await store.send_events([event_body("other", {"run": "r1"}, "x2")])  # another name
    other = await store.get_event("x2")
    assert other is not None and await store.waits_resolved_by(other, 10) == []
    # the same id once the dedupe window has passed: the new event resolves r1 and r3 only
    await clock.advance(24 * 3600 + 1)
    await store.send_events([event_body("shipped", {"run": "r1"}, "x1")])
    await store.send_events([event_body("shipped", {"run": "r3"}, "x3")])
    new = await store.get_event("x1")
    assert new is not None and new.seq > old.seq
    assert await store.waits_resolved_by(new, 10) == [("r1", "w")]
    assert await store.waits_resolved_by(old, 10) == [("r1", "w"), ("r2", "w")]
    assert await store.waits_resolved_by(old, 1) == [("r1", "w")]


async def test_run_timings_are_the_newest_runs_of_a_function(
    store: Store, clock: ManualClock
) -> None:
    await store.create_runs([new_run(f"r{i}") for i in range(4)] + [new_run("g1", fid="g")])
    claimed = {r.id: r for r in (await store.claim("w", ["f"], 4, LEASE)).runs}
    start = clock.now()
    await clock.advance(2)
    await store.commit(
        [
            Outcome("r0", claimed["r0"].token, "complete", output="1"),
            Outcome("r1", claimed["r1"].token, "fail", error='{"type": "E", "message": "x"}'),
        ]
    )
    await store.cancel_run("r2")
    timings = await store.run_timings("f", 10)
    assert [t[0] for t in timings] == ["running", "cancelled", "failed", "completed"]
    for status, started, ended in timings:
        assert started == start
        assert (ended is None) == (status == "running")
        if ended is not None:
            assert ended == start + 2
    assert [t[0] for t in await store.run_timings("f", 2)] == ["running", "cancelled"]
    assert [t[0] for t in await store.run_timings("g", 10)] == ["queued"]
    assert await store.run_timings("nobody", 10) == []
    assert await store.run_timings("bad\x00id", 10) == []
