"""Flow-control options: validation at decoration, the stored form, per-run keys, priority."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import perdure
from perdure.engine.flow.keys import run_flow
from perdure.engine.flow.options import (
    CancelOn,
    Concurrency,
    FlowControl,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
)


def test_bad_options_fail_at_decoration_naming_the_function_and_option() -> None:
    app = perdure.App("t", "sqlite:///:memory:")
    bad: Any = perdure.RateLimit(1, "1m")
    with pytest.raises(perdure.InvalidInputError, match=r"'f'.*throttle"):

        @app.function(throttle=bad)
        async def f(ctx: perdure.Context) -> None: ...

    with pytest.raises(perdure.InvalidInputError, match="concurrency: limit"):
        perdure.Concurrency(-1)
    with pytest.raises(perdure.InvalidInputError, match="throttle: period must be longer"):
        perdure.Throttle(3, 0)
    with pytest.raises(perdure.InvalidInputError, match="rate_limit: key"):
        perdure.RateLimit(3, "1m", key="event.data.")
    with pytest.raises(perdure.InvalidInputError, match="scope='env' needs a key"):
        perdure.Concurrency(3, scope="env")
    with pytest.raises(perdure.InvalidInputError, match=r"'g'.*debounce and batch"):

        @app.function(debounce=perdure.Debounce("1s"), batch=perdure.Batch(10, "1s"))
        async def g(ctx: perdure.Context) -> None: ...

    with pytest.raises(perdure.InvalidInputError, match=r"'h'.*priority: run"):

        @app.function(priority="event.data.(")
        async def h(ctx: perdure.Context) -> None: ...


def test_the_stored_form_round_trips() -> None:
    spec = FlowControl.build(
        concurrency=[perdure.Concurrency(5), perdure.Concurrency(1, key="event.data.user")],
        throttle=perdure.Throttle(10, timedelta(minutes=1), burst=2, key="event.data.user"),
        rate_limit=perdure.RateLimit(100, "1h"),
        debounce=perdure.Debounce("5s", key="event.data.user", timeout="1m"),
        priority=perdure.Priority("event.data.vip ? 120 : 0"),
        singleton=perdure.Singleton(key="event.data.user", mode="cancel"),
        idempotency="event.data.order",
        cancel_on=[perdure.CancelOn("order.cancelled", match="data.order", timeout="1d")],
        timeouts=perdure.Timeouts(start="10m", finish="1h"),
    )
    assert FlowControl.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["throttle"] == {
        "limit": 10,
        "period": 60.0,
        "burst": 2,
        "key": "event.data.user",
    }
    assert FlowControl.from_dict({}).empty


def test_run_keys_and_priority_are_evaluated_from_the_event() -> None:
    spec = FlowControl.build(
        concurrency=[
            perdure.Concurrency(1, key="event.data.user"),
            perdure.Concurrency(9, key='"api"', scope="env"),
        ],
        throttle=perdure.Throttle(1, "1s"),
        priority="event.data.boost",
        timeouts=perdure.Timeouts(start="10s"),
    )
    flow = run_flow("f", spec, {"name": "x", "data": {"user": "u1", "boost": 9999}})
    assert flow is not None
    assert flow.concurrency_keys == ("c:f:u1", "e:api")
    assert flow.throttle_key == "t:f"
    assert flow.priority == 600  # clamped
    assert flow.start_timeout == 10.0
    missing = run_flow("f", spec, {"name": "x", "data": {"boost": "high"}})
    assert missing is not None
    assert missing.concurrency_keys[0] == "c:f:null" and missing.priority == 0
    only_cancel = FlowControl.build(cancel_on=perdure.CancelOn("x"))
    assert run_flow("f", only_cancel, {"name": "x", "data": {}}) is None


async def test_priority_runs_first_within_the_backlog(db_url: str) -> None:
    app = perdure.App("t", db_url)
    order: list[str] = []

    @app.function(priority="event.data.p")
    async def job(ctx: perdure.Context) -> None:
        order.append(ctx.event.data["name"])

    async with app:
        handles = [
            await app.start(job, {"name": "low", "p": 0}),
            await app.start(job, {"name": "high", "p": 300}),
            await app.start(job, {"name": "mid", "p": 100}),
        ]
        async with app.worker(concurrency=1):
            await asyncio.gather(*(h.result(timeout=60) for h in handles))
    assert order == ["high", "mid", "low"]


async def test_functions_show_their_options(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function(concurrency=3, rate_limit=perdure.RateLimit(2, "1m", key="event.data.k"))
    async def job(ctx: perdure.Context) -> None: ...

    async with app:
        await app.register()
        records = await app.store.list_functions()
        (record,) = [r for r in records if r.id == "job"]
        assert record.flow.to_dict() == {
            "concurrency": [{"limit": 3, "key": None, "scope": "fn"}],
            "rate_limit": {"limit": 2, "period": 60.0, "key": "event.data.k"},
        }


@pytest.mark.parametrize(
    "spec",
    [
        FlowControl(),
        FlowControl(cancel_on=(CancelOn("x"),)),
        FlowControl(concurrency=(Concurrency(2),)),
        FlowControl(throttle=Throttle(1, "1s")),
        FlowControl(rate_limit=RateLimit(1, "1s")),
        FlowControl(priority=Priority("1")),
        FlowControl(singleton=Singleton()),
        FlowControl(idempotency="event.data.id"),
        FlowControl(timeouts=Timeouts(start="1m"), cancel_on=(CancelOn("x"),)),
    ],
)
def test_per_run_is_every_option_but_cancel_on(spec: FlowControl) -> None:
    assert spec.per_run == (not spec.replace(cancel_on=()).empty)
    assert spec.per_run == (spec.replace(cancel_on=()) != FlowControl())
