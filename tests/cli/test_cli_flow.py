"""The operator's view of flow control in the CLI: ``perdure functions show ID`` prints every
option, ``perdure runs show ID`` the reason of a cancelled (or skipped) run, and ``perdure runs
list --status skipped`` works; on both backends."""

from __future__ import annotations

import asyncio
import json
import sqlite3

from cli_helpers import perdure_many

import perdure
from perdure.cli.functions import flow_lines
from perdure.testing import ManualClock


def make_app(url: str, clock: ManualClock | None = None) -> perdure.App:
    app = perdure.App("ops", url, clock=clock)

    @app.function(
        id="charge",
        trigger=perdure.event("order.placed"),
        concurrency=[
            perdure.Concurrency(5),
            perdure.Concurrency(1, key="event.data.customer"),
        ],
        throttle=perdure.Throttle(10, "1m", key="event.data.customer"),
        priority="event.data.vip ? 60 : 0",
        idempotency="event.data.order",
        cancel_on=[perdure.CancelOn("order.cancelled", match="data.order", timeout="1d")],
        timeouts=perdure.Timeouts(start="10m", finish="1h"),
    )
    async def charge(ctx: perdure.Context) -> None: ...

    @app.function(
        id="digest",
        rate_limit=perdure.RateLimit(3, "1h", key="event.data.user"),
        singleton=perdure.Singleton(key="event.data.user", mode="cancel"),
        debounce=perdure.Debounce("5s", timeout="1m"),
    )
    async def digest(ctx: perdure.Context) -> None: ...

    @app.function(id="plain", batch=perdure.Batch(100, "2s"))
    async def plain(ctx: perdure.Context) -> None: ...

    return app


def test_every_option_has_a_line_for_people() -> None:
    app = make_app("sqlite:///:memory:")
    lines = flow_lines(app.functions["charge"].flow.to_dict())
    assert lines == [
        ("concurrency", "at most 5 running at once"),
        ("concurrency", "at most 1 running at once per event.data.customer"),
        ("throttle", "10 starts per 1m per event.data.customer (burst 1)"),
        ("priority", "head start (seconds) = event.data.vip ? 60 : 0"),
        ("idempotency", "one run per event.data.order within 24h"),
        (
            "cancel_on",
            "on event order.cancelled with the same data.order, within 1d of the run's creation",
        ),
        ("timeouts", "start within 10m of creation; finish within 1h of the start"),
    ]
    digest = dict(flow_lines(app.functions["digest"].flow.to_dict()))
    assert digest == {
        "rate_limit": "3 runs per 1h per event.data.user; the rest skipped",
        "debounce": "one run 5s after the last event, at most 1m after the first",
        "singleton": "one active run per event.data.user; a new run cancels it",
    }
    assert flow_lines({"future": {"x": 1}}) == [("future", '{"x":1}')]


async def populate(url: str) -> tuple[str, str]:
    """A run cancelled by cancel_on and one cancelled by its start timeout."""
    clock = ManualClock()
    app = make_app(url, clock)
    async with app:
        await app.register()
        (placed,) = await app.send_detailed([perdure.Event("order.placed", {"order": "o1"})])
        (gone,) = await app.send_detailed([perdure.Event("order.cancelled", {"order": "o1"})])
        assert gone.cancelled == placed.run_ids
        late = await app.start("charge", {"order": "o2"})
        await clock.advance(minutes=11)
        done, _ = await app.store.cancel_overdue()
        assert done == [late.run_id]
    return placed.run_ids[0], late.run_id


def test_functions_show_and_runs_show_the_reason(db_url: str) -> None:
    by_event, timed_out = asyncio.run(populate(db_url))
    db = ["--database-url", db_url]
    shown, as_json, run1, run2, listed, missing, skipped = perdure_many(
        [
            ["functions", "show", "charge", *db],
            ["functions", "show", "charge", "--json", *db],
            ["runs", "show", by_event, *db],
            ["runs", "show", timed_out, "--json", *db],
            ["runs", "list", "--status", "cancelled", *db],
            ["functions", "show", "nope", *db],
            ["runs", "list", "--status", "skipped", *db],
        ]
    )
    assert shown.returncode == 0, shown.stderr
    assert "throttle     10 starts per 1m per event.data.customer (burst 1)" in shown.stdout
    assert "cancel_on    on event order.cancelled with the same data.order" in shown.stdout
    assert "timeouts     start within 10m of creation; finish within 1h" in shown.stdout
    assert json.loads(as_json.stdout)["flow"]["timeouts"] == {"start": 600.0, "finish": 3600.0}
    assert run1.returncode == 0, run1.stderr
    (line,) = [ln for ln in run1.stdout.splitlines() if ln.startswith("reason")]
    assert "cancel_on cancelled: cancelled by event order.cancelled (" in line
    reason = json.loads(run2.stdout)["reason"]
    assert reason["option"] == "timeouts" and reason["message"] == "did not start within 10m"
    assert by_event in listed.stdout and timed_out in listed.stdout
    assert missing.returncode == 1 and "no function with id 'nope'" in missing.stderr
    assert skipped.returncode == 0 and "no runs" in skipped.stderr


def test_runs_list_and_show_a_skipped_run(sqlite_url: str) -> None:
    # A skipped run as flow control records one (rate_limit and singleton write them).
    app = make_app(sqlite_url)

    async def one() -> str:
        async with app:
            return (await app.start("plain")).run_id

    run_id = asyncio.run(one())
    reason = '{"option":"rate_limit","decision":"skipped","message":"over 3 runs per 1h"}'
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        conn.execute(
            "UPDATE runs SET status = 'skipped', available_at = NULL, reason = ? WHERE id = ?",
            (reason, run_id),
        )
    db = ["--database-url", sqlite_url]
    listed, shown = perdure_many(
        [["runs", "list", "--status", "skipped", *db], ["runs", "show", run_id, *db]]
    )
    assert run_id in listed.stdout and "skipped" in listed.stdout
    assert "reason   rate_limit skipped: over 3 runs per 1h" in shown.stdout
