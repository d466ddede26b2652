"""The store conformance suite, traces part: a run's trace context (``runs.trace``, written
by the runtime's OpenTelemetry tracing) is fenced by the lease token and read back in bulk, the
same on every backend."""

from __future__ import annotations

from perdure import serde
from perdure.store.base import NewRun, Outcome, Store
from perdure.testing import ManualClock

LEASE = 30.0


def new_run(run_id: str) -> NewRun:
    body = serde.dumps({"id": f"e-{run_id}", "name": "x", "data": {}, "user": {}, "ts": 1})
    return NewRun(run_id, "f", body)


async def test_a_trace_is_written_under_the_lease_and_read_back(
    store: Store, clock: ManualClock
) -> None:
    await store.create_runs([new_run("r1"), new_run("r2")])
    assert await store.run_traces(["r1", "r2", "nope"]) == {}
    assert await store.run_traces([]) == {}
    # Not running yet: nothing is written.
    assert await store.set_run_trace("r1", 0, "early") is False
    claimed = {r.id: r for r in (await store.claim("w1", ["f"], 2, LEASE)).runs}
    r1 = claimed["r1"]
    assert await store.set_run_trace("r1", r1.token, '{"first": "a"}') is True
    assert await store.set_run_trace("r1", r1.token + 1, "wrong token") is False
    assert await store.run_traces(["r1", "r2", "r1"]) == {"r1": '{"first": "a"}'}
    # The lease expires and another worker takes over: the old token writes nothing.
    await store.commit([Outcome("r1", r1.token, "suspend", available_at=None, status="sleeping")])
    assert await store.set_run_trace("r1", r1.token, "after suspend") is False
    await clock.advance(LEASE + 1)
    (r2,) = [r for r in (await store.claim("w2", ["f"], 2, LEASE)).runs if r.id == "r2"]
    assert r2.token > claimed["r2"].token
    assert await store.set_run_trace("r2", claimed["r2"].token, "stale") is False
    assert await store.set_run_trace("r2", r2.token, "fresh") is True
    assert await store.run_traces(["r1", "r2"]) == {"r1": '{"first": "a"}', "r2": "fresh"}
    # Many ids at once (the SQLite backend reads them in chunks).
    assert await store.run_traces([f"x{i}" for i in range(1200)] + ["r2"]) == {"r2": "fresh"}
