"""The claim-time admission decisions (engine/flow/admission.py): unit and property tests."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from perdure import Concurrency, Throttle
from perdure.engine.flow.admission import (
    Admission,
    Candidate,
    Gate,
    Verdict,
    candidate_of,
    env_cap,
)
from perdure.engine.flow.gcra import Rate
from perdure.engine.flow.options import FlowControl


def test_blocked_key_does_not_block_other_keys() -> None:
    adm = Admission(now=0.0, want=10, running={"c:f:A": 1})
    a = Candidate("r1", (Gate("c:f:A", 1),))
    b = Candidate("r2", (Gate("c:f:B", 1),))
    first = adm.offer(a)
    assert first.verdict is Verdict.BLOCKED and first.running == 1
    assert adm.saturated == {"c:f:A"}
    assert adm.offer(b).verdict is Verdict.ADMIT
    assert adm.admitted == ["r2"]
    assert "c:f:B" in adm.saturated  # at its limit now


def test_env_key_saturated_only_at_the_largest_limit() -> None:
    adm = Admission(now=0.0, want=10, running={"e:api": 2}, env_cap=5)
    assert adm.offer(Candidate("low", (Gate("e:api", 2),))).verdict is Verdict.BLOCKED
    assert adm.saturated == set()  # a function with limit 5 may still use it
    assert adm.offer(Candidate("high", (Gate("e:api", 5),))).verdict is Verdict.ADMIT


def test_throttle_delays_in_order_and_blocked_runs_do_not_pay() -> None:
    rate = Rate(1, 10.0, 0)
    adm = Admission(now=100.0, want=10, running={"c:f": 1})
    # Blocked by concurrency: the throttle state does not move.
    assert adm.offer(Candidate("x", (Gate("c:f", 1),), ("t:f", rate))).verdict is Verdict.BLOCKED
    assert adm.moved == set()
    offers = [adm.offer(Candidate(f"r{i}", (), ("t:f", rate))) for i in range(3)]
    assert [o.verdict for o in offers] == [Verdict.ADMIT, Verdict.DELAYED, Verdict.DELAYED]
    assert [o.until for o in offers[1:]] == [110.0, 120.0]


def test_candidate_uses_the_current_limits() -> None:
    spec = FlowControl.build(concurrency=[Concurrency(4), Concurrency(1, key="event.data.k")])
    c = candidate_of("r", spec, ("c:f", "c:f:x"), None)
    assert c.gates == (Gate("c:f", 4), Gate("c:f:x", 1))
    # A limit removed since the run was created no longer gates it.
    one = FlowControl.build(concurrency=Concurrency(2))
    assert candidate_of("r", one, ("c:f", "c:f:x"), None).gates == (Gate("c:f", 2),)
    th = FlowControl.build(throttle=Throttle(3, 60))
    assert candidate_of("r", th, (None, None), "t:f").throttle == ("t:f", Rate(3, 60.0, 1))
    assert env_cap([spec, FlowControl.build(concurrency=Concurrency(7, "'a'", "env"))]) == 7


keys = st.sampled_from(["c:f:a", "c:f:b", "c:f:c", "e:pool"])


@st.composite
def candidates(draw: st.DrawFn) -> list[Candidate]:
    n = draw(st.integers(0, 60))
    out = []
    for i in range(n):
        ks = draw(st.lists(keys, min_size=0, max_size=2, unique=True))
        gates = tuple(Gate(k, draw(st.integers(1, 4))) for k in ks)
        out.append(Candidate(f"r{i}", gates))
    return out


@settings(max_examples=300, deadline=None)
@given(
    cands=candidates(),
    running=st.dictionaries(keys, st.integers(0, 5)),
    want=st.integers(1, 50),
)
def test_admission_never_exceeds_a_limit_and_is_work_conserving(
    cands: list[Candidate], running: dict[str, int], want: int
) -> None:
    adm = Admission(now=0.0, want=want, running=dict(running), env_cap=4)
    decided: list[tuple[Candidate, Verdict]] = []
    for c in cands:
        if adm.full:
            break
        decided.append((c, adm.offer(c).verdict))
    admitted = [c for c, v in decided if v is Verdict.ADMIT]
    assert len(admitted) <= want
    for c in admitted:
        for g in c.gates:
            before = running.get(g.key, 0)
            now_running = before + sum(1 for a in admitted if g.key in {x.key for x in a.gates})
            # every admitted run saw a count below its own limit when admitted
            assert adm.running[g.key] == now_running
    # Replay: each admitted run's gates were below their limit at its turn; each blocked run
    # had a gate at or over its limit at its turn.
    count = dict(running)
    for c, v in decided:
        ok = all(count.get(g.key, 0) < g.limit for g in c.gates)
        assert ok == (v is Verdict.ADMIT)
        if ok:
            for g in c.gates:
                count[g.key] = count.get(g.key, 0) + 1


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 20),
    period=st.floats(0.1, 100.0),
    burst=st.integers(0, 5),
    n=st.integers(1, 80),
    now=st.floats(0, 1e6),
)
def test_throttle_schedule_respects_the_gcra_bound_fifo(
    limit: int, period: float, burst: int, n: int, now: float
) -> None:
    rate = Rate(limit, period, burst)
    adm = Admission(now=now, want=n)
    times = []
    for i in range(n):
        o = adm.offer(Candidate(f"r{i}", (), ("t:k", rate)))
        times.append(now if o.verdict is Verdict.ADMIT else o.until)
    assert all(t is not None for t in times)
    ts = [t for t in times if t is not None]
    assert ts == sorted(ts)  # FIFO: later runs never start before earlier ones
    eps = 1e-6 * max(1.0, now)
    for i in range(len(ts)):
        for j in range(i, len(ts)):
            assert j - i + 1 <= burst + 1 + (ts[j] - ts[i] + eps) / rate.interval
    # Not over-delayed: the first burst + 1 start at once (up to float rounding).
    assert all(abs(t - now) <= eps for t in ts[: burst + 1])
    # and the pace after them is exact.
    for i in range(burst + 1, len(ts)):
        assert abs(ts[i] - (now + (i - burst) * rate.interval)) <= eps * (i + 1)
