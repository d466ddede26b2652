"""Why a due run waits: ``get_run`` computes the concurrency limit it is blocked by (key, live
count, limit) at read time, on both backends; the claim path writes nothing for it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import perdure
from perdure import Concurrency
from perdure.engine.flow.admission import Admission, Verdict, blocked_reason, candidate_of
from perdure.engine.flow.options import FlowControl

LIMITS = [Concurrency(3), Concurrency(1, key="event.data.customer")]


def make_app(url: str) -> perdure.App:
    app = perdure.App("w", url)

    @app.function(id="pay", concurrency=LIMITS)
    async def pay(ctx: perdure.Context) -> None: ...

    @app.function(id="free")
    async def free(ctx: perdure.Context) -> None: ...

    return app


def spec_of(limits: list[Concurrency]) -> FlowControl:
    app = perdure.App("spec", "sqlite:///:memory:")

    @app.function(id="f", concurrency=limits)
    async def f(ctx: perdure.Context) -> None: ...

    return app.functions["f"].flow


def test_blocked_reason_names_the_first_full_limit() -> None:
    spec = spec_of(LIMITS)
    keys = ("c:f", "c:f:c1")
    assert blocked_reason("r", spec, keys, {"c:f": 1}, 0.0) is None
    text = blocked_reason("r", spec, keys, {"c:f": 1, "c:f:c1": 1}, 0.0)
    assert text is not None
    assert perdure.serde.loads(text) == {
        "option": "concurrency",
        "decision": "waiting",
        "message": "waiting for a concurrency slot: key c:f:c1, 1 of 1 running",
        "key": "c:f:c1",
        "running": 1,
        "limit": 1,
    }
    full = perdure.serde.loads(blocked_reason("r", spec, keys, {"c:f": 3, "c:f:c1": 1}, 0.0))
    assert full["key"] == "c:f" and full["running"] == 3 and full["limit"] == 3
    # A key stored before the function had a second limit is not gated by it.
    assert blocked_reason("r", spec_of([Concurrency(3)]), keys, {"c:f:c1": 9}, 0.0) is None


@given(
    g=st.integers(1, 6),
    k=st.integers(1, 3),
    n1=st.integers(0, 8),
    n2=st.integers(0, 8),
)
def test_blocked_reason_agrees_with_the_claim(g: int, k: int, n1: int, n2: int) -> None:
    spec = spec_of([Concurrency(g), Concurrency(k, key="event.data.c")])
    keys = ("c:f", "c:f:x")
    running = {"c:f": n1, "c:f:x": n2}
    verdict = Admission(0.0, 1, dict(running)).offer(candidate_of("r", spec, keys, None)).verdict
    text = blocked_reason("r", spec, keys, running, 0.0)
    assert (text is not None) == (verdict is Verdict.BLOCKED)
    if text is not None:
        got = perdure.serde.loads(text)
        assert got["running"] >= got["limit"]
        assert (got["key"], got["limit"]) == (("c:f", g) if n1 >= g else ("c:f:x", k))


async def test_get_run_says_which_limit_a_due_run_waits_for(db_url: str) -> None:
    app = make_app(db_url)
    async with app:
        await app.register()
        first = await app.start("pay", {"customer": "c1"})
        second = await app.start("pay", {"customer": "c1"})
        other = await app.start("pay", {"customer": "c2"})
        plain = await app.start("free", {})
        # Before any claim nothing is leased: nobody waits for a slot.
        assert (await app.get_run(second.run_id)).reason is None
        claim = await app.store.claim("holder", ["pay"], 1, 300.0)
        assert [r.id for r in claim.runs] == [first.run_id]
        info = await app.get_run(second.run_id)
        assert info.status is perdure.RunStatus.QUEUED
        assert info.reason == {
            "option": "concurrency",
            "decision": "waiting",
            "message": "waiting for a concurrency slot: key c:pay:c1, 1 of 1 running",
            "key": "c:pay:c1",
            "running": 1,
            "limit": 1,
        }
        # Another customer's run is not blocked (it waits for a worker), nor is a plain run,
        # nor the leased run itself.
        assert (await app.get_run(other.run_id)).reason is None
        assert (await app.get_run(plain.run_id)).reason is None
        assert (await app.get_run(first.run_id)).reason is None
        # The global limit: three customers leased, a fourth waits for "c:pay".
        await app.start("pay", {"customer": "c3"})
        fourth = await app.start("pay", {"customer": "c4"})
        claim = await app.store.claim("holder", ["pay"], 10, 300.0)
        assert len(claim.runs) == 2
        reason = (await app.get_run(fourth.run_id)).reason
        assert reason is not None
        assert reason["message"] == "waiting for a concurrency slot: key c:pay, 3 of 3 running"
        # The slot frees (the holder is cancelled): the reason goes with it.
        await app.cancel(first.run_id)
        assert (await app.get_run(fourth.run_id)).reason is None
        # Nothing was written: the stored row has no reason.
        row = await app.store.get_run(second.run_id)
        assert row is not None and row.reason is None
