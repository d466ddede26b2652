"""The pure decisions of cancel_on and timeouts (engine/flow/cancel.py, deadlines.py), and the
SQLite pre-filter never dropping a run the decision would cancel."""

from __future__ import annotations

import sqlite3
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import perdure
from perdure import serde
from perdure.engine.flow.cancel import cancellers, cancels, match_filter
from perdure.engine.flow.deadlines import finish_by, next_deadline, overdue
from perdure.engine.flow.options import FlowControl
from perdure.functions import FunctionRecord
from perdure.store.sqlite.flow_cancel import ACTIVE_RUNS, _sqlite_path


def record(fid: str, *cancel_on: perdure.CancelOn) -> FunctionRecord:
    flow = FlowControl.build(cancel_on=list(cancel_on))
    return FunctionRecord(fid, "app", (), {"flow": flow.to_dict()})


def test_cancellers_are_the_options_whose_pattern_matches() -> None:
    a = perdure.CancelOn("order.*")
    b = perdure.CancelOn("order.cancelled", match="data.id")
    c = perdure.CancelOn("user.deleted")
    registry = [record("f", a, c), record("g", b), record("h")]
    found = [(t.function_id, t.option.event) for t in cancellers(registry, "order.cancelled")]
    assert found == [("f", "order.*"), ("g", "order.cancelled")]
    assert cancellers(registry, "user.created") == []
    (t,) = cancellers([record("f", perdure.CancelOn("x", timeout="1m"))], "x")
    assert t.since(1000.0) == 940.0


def test_match_needs_the_path_in_both_events_with_equal_json_values() -> None:
    opt = perdure.CancelOn("x", match="data.order.id")
    run = {"data": {"order": {"id": 7}}}
    assert cancels(opt, run, {"data": {"order": {"id": 7}}})
    assert not cancels(opt, run, {"data": {"order": {"id": 7.0}}})  # JSON 7 and 7.0 differ
    assert not cancels(opt, run, {"data": {"order": {"id": "7"}}})
    assert not cancels(opt, run, {"data": {"order": {}}})
    assert not cancels(opt, {"data": {}}, {"data": {"order": {"id": 7}}})
    assert not cancels(opt, [], {"data": {"order": {"id": 7}}})  # a batch's list input
    assert cancels(opt, {"data": {"order": {"id": None}}}, {"data": {"order": {"id": None}}})
    assert cancels(opt, {"data": {"order": {"id": [1]}}}, {"data": {"order": {"id": [1]}}})


def test_if_sees_the_runs_event_and_the_new_one() -> None:
    opt = perdure.CancelOn("x", if_="event.data.user == async.data.user && async.data.hard")
    assert cancels(opt, {"data": {"user": "u"}}, {"data": {"user": "u", "hard": True}})
    assert not cancels(opt, {"data": {"user": "u"}}, {"data": {"user": "u", "hard": False}})
    assert not cancels(opt, {"data": {"user": "u"}}, {"data": {"user": "v", "hard": True}})
    assert not cancels(opt, {"data": {}}, {"data": {"user": "v", "hard": True}})
    both = perdure.CancelOn("x", match="data.user", if_="async.data.hard")
    assert not cancels(both, {"data": {"user": "u"}}, {"data": {"user": "w", "hard": True}})
    assert cancels(perdure.CancelOn("x"), {}, {})


def test_the_pre_filter_skips_what_sql_cannot_compare() -> None:
    opt = perdure.CancelOn("x", match="data.k")
    assert match_filter(opt, {"data": {"k": "a"}}) == (["data", "k"], "a")
    assert match_filter(opt, {"data": {"k": {"a": 1}}}) is None
    assert match_filter(opt, {"data": {}}) is None
    assert match_filter(perdure.CancelOn("x"), {"data": {"k": 1}}) is None
    assert match_filter(perdure.CancelOn("x", match='data.k"'), {"data": {'k"': 1}}) is None


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(mine=json_values, theirs=json_values, present=st.booleans())
def test_the_sqlite_pre_filter_keeps_every_run_the_decision_cancels(
    mine: Any, theirs: Any, present: bool
) -> None:
    """Whatever the values, a run that ``cancels`` accepts is among the rows the SQL with the
    pre-filter selects (the filter may select more; never fewer)."""
    opt = perdure.CancelOn("x", match="data.k")
    run_event: dict[str, Any] = {"data": {"k": mine} if present else {}}
    event = {"data": {"k": theirs}}
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE runs (id TEXT, function_id TEXT, status TEXT, input TEXT, created_at REAL)"
    )
    conn.execute("INSERT INTO runs VALUES ('r', 'f', 'queued', ?, 0)", (serde.dumps(run_event),))
    pre = match_filter(opt, event)
    args: list[Any] = ["f"]
    if pre is not None:
        args += [_sqlite_path(pre[0]), pre[1]]
    rows = conn.execute(ACTIVE_RUNS[(False, pre is not None)], args).fetchall()
    if cancels(opt, run_event, event):
        assert [r[0] for r in rows] == ["r"]


def test_overdue_names_the_deadline_that_passed() -> None:
    assert overdue("queued", 0.0, None, 600.0, None, 599.0) is None
    start = overdue("queued", 0.0, None, 600.0, None, 600.0)
    assert start is not None and serde.loads(start)["message"] == "did not start within 10m"
    # Started in time: the start deadline no longer applies.
    assert overdue("running", 0.0, 10.0, 600.0, None, 700.0) is None
    late = overdue("sleeping", 0.0, 10.0, 600.0, 3610.0, 3610.0)
    assert late is not None
    assert serde.loads(late) == {
        "option": "timeouts",
        "decision": "cancelled",
        "message": "did not finish within 1h",
        "timeout": "finish",
        "seconds": 3600.0,
    }
    assert overdue("completed", 0.0, 10.0, 600.0, 20.0, 9999.0) is None
    assert finish_by(10.0, None) is None and finish_by(10.0, 5.0) == 15.0
    assert next_deadline(None, 3.0, 2.0) == 2.0 and next_deadline(None) is None


@given(
    created=st.floats(0, 1e6),
    start=st.none() | st.floats(0.001, 1e5),
    finish=st.none() | st.floats(0.001, 1e5),
    started_after=st.none() | st.floats(0, 1e5),
    at=st.floats(0, 3e5),
    status=st.sampled_from(["queued", "running", "sleeping", "waiting", "completed", "skipped"]),
)
def test_overdue_exactly_when_a_deadline_passed(
    created: float,
    start: float | None,
    finish: float | None,
    started_after: float | None,
    at: float,
    status: str,
) -> None:
    started = None if started_after is None else created + started_after
    start_by = None if start is None else created + start
    fin_by = None if started is None else finish_by(started, finish)
    now = created + at
    got = overdue(status, created, started, start_by, fin_by, now)
    active = status in ("queued", "running", "sleeping", "waiting")
    late_start = start_by is not None and started is None and start_by <= now
    late_finish = fin_by is not None and fin_by <= now
    assert (got is not None) == (active and (late_start or late_finish))
    if got is not None:
        which = serde.loads(got)["timeout"]
        assert which == ("start" if late_start else "finish")
