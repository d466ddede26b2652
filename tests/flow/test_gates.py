"""The creation-time decisions (engine/flow/gates.py): debounce and batch boundaries,
singleton actions, the reasons runs record, batch inputs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from perdure import serde
from perdure.engine.flow import gates

times = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(
    first=times, gap=st.floats(0, 1e4), period=st.floats(0.01, 1e4), timeout=st.floats(0.01, 1e4)
)
def test_debounce_due_is_capped_by_the_timeout(
    first: float, gap: float, period: float, timeout: float
) -> None:
    last = first + gap
    due = gates.debounce_due(first, last, period, timeout)
    assert due <= first + timeout
    assert due <= last + period
    assert due in (first + timeout, last + period)
    assert gates.debounce_due(first, last, period, None) == last + period


def test_batch_boundaries() -> None:
    opened = gates.batch_open(100.0, 3, 30.0)
    assert opened == gates.BatchStep(1, False, 130.0)
    assert gates.batch_open(100.0, 1, 30.0) == gates.BatchStep(1, True, 100.0)
    two = gates.batch_add(opened.size, 3, 110.0, opened.due)
    assert two == gates.BatchStep(2, False, 130.0)
    full = gates.batch_add(two.size, 3, 120.0, two.due)
    assert full == gates.BatchStep(3, True, 120.0)


@given(max_size=st.integers(1, 50), n=st.integers(1, 200))
def test_batches_never_exceed_max_size(max_size: int, n: int) -> None:
    sizes, step = [], None
    for i in range(n):
        if step is None or step.closes:
            if step is not None:
                sizes.append(step.size)
            step = gates.batch_open(float(i), max_size, 10.0)
        else:
            step = gates.batch_add(step.size, max_size, float(i), step.due)
        assert step.size <= max_size
        assert step.closes == (step.size == max_size)
    assert step is not None
    sizes.append(step.size)
    assert sum(sizes) == n
    assert all(s == max_size for s in sizes[:-1])


def test_singleton_action() -> None:
    assert gates.singleton_action("skip", None) == "start"
    assert gates.singleton_action("cancel", None) == "start"
    assert gates.singleton_action("skip", "r1") == "skip"
    assert gates.singleton_action("cancel", "r1") == "cancel"


def test_reasons_name_the_option_and_the_key() -> None:
    rl = serde.loads(gates.rate_limit_reason("r:fn:ann", 5, 60.0, 123.0))
    assert rl["option"] == "rate_limit" and rl["decision"] == "skipped"
    assert (rl["key"], rl["limit"], rl["period"], rl["retry_at"]) == ("ann", 5, 60.0, 123.0)
    assert serde.loads(gates.rate_limit_reason("r:fn", 5, 60.0, None))["key"] == ""
    idem = serde.loads(gates.idempotency_reason("i:fn:o-1", "run1", 9.0))
    assert (idem["option"], idem["key"], idem["run_id"]) == ("idempotency", "o-1", "run1")
    sk = serde.loads(gates.singleton_skip_reason("acme", "r1"))
    assert (sk["decision"], sk["active_run_id"]) == ("skipped", "r1")
    cn = serde.loads(gates.singleton_cancel_reason("acme", "r2"))
    assert (cn["decision"], cn["replaced_by"]) == ("cancelled", "r2")
    assert "r2" in cn["message"]
    err = serde.loads(gates.SKIPPED_ERROR)
    assert err["type"] == "RunSkipped"


def test_input_events() -> None:
    one = {"name": "a", "data": {}}
    assert gates.input_events(one) == [one]
    assert gates.input_events([one, one]) == [one, one]
