"""The read side (:mod:`perdure.query`) and the one JSON shape (:mod:`perdure.views`), on every
backend: what the API and the CLI print comes from here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

import perdure as pd
from perdure import views
from perdure.errors import InvalidInputError, RunNotFoundError
from perdure.query import PAGE_MAX, Query
from perdure.testing import ManualClock

START = datetime(2024, 6, 1, 9, 0, 0, 250000, tzinfo=UTC)
START_ISO = "2024-06-01T09:00:00.250000Z"
TS = 1_700_000_000_000


def make_app(url: str) -> pd.App:
    app = pd.App("views", url, clock=ManualClock(START))

    @app.function(id="double", trigger=pd.event("views/number"))
    async def double(ctx: pd.Context) -> int:
        n = int(ctx.event.data["n"])
        return int(await ctx.step.run("twice", lambda: n * 2))

    @app.function(id="nightly", trigger=pd.cron("0 3 * * *", tz="Europe/Paris"))
    async def nightly(ctx: pd.Context) -> None:
        return None

    @app.function(id="guarded", trigger=pd.event("views/*", if_="event.data.n > 1"))
    async def guarded(ctx: pd.Context) -> None:
        return None

    return app


def test_iso() -> None:
    assert views.iso(None) is None
    assert views.iso(START) == START_ISO
    assert views.iso(START.timestamp()) == START_ISO
    paris = START.astimezone(timezone(timedelta(hours=2)))
    assert views.iso(paris) == START_ISO
    assert views.iso(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05Z"
    assert views.when_text(START) == "2024-06-01 09:00:00Z"
    assert views.when_text(None) == "-"


async def test_a_run_and_its_steps_as_json(db_url: str) -> None:
    app = make_app(db_url)
    query = Query(app)  # built before the database is open: the first read opens it
    async with app.worker():
        handle = await app.start("double", {"n": 21}, idempotency_key="k-1")
        assert await handle.result(timeout=30) == 42
    try:
        run = await query.get_run(handle.run_id)
        shown = views.run_json(run)
        assert shown == {
            "id": handle.run_id,
            "function_id": "double",
            "status": "completed",
            "event": {
                "id": handle.run_id,
                "name": "perdure/function.invoked",
                "data": {"n": 21},
                "user": {},
                "ts": int(START.timestamp() * 1000),
            },
            "output": 42,
            "error": None,
            "attempt": run.attempt,
            "created_at": START_ISO,
            "started_at": START_ISO,
            "ended_at": START_ISO,
            "parent_run_id": None,
            "idempotency_key": "k-1",
            "reason": None,
            "rerun_of": None,
            "replay_of": None,
            "replay_from_step": None,
            "steps": [
                {
                    "id": "twice",
                    "kind": "run",
                    "status": "completed",
                    "output": 42,
                    "error": None,
                    "attempts": 1,
                    "position": 0,
                    "started_at": START_ISO,
                    "ended_at": START_ISO,
                    "wake_at": None,
                }
            ],
        }
        listed = views.run_json(await query.get_run(handle.run_id, steps=False), steps=False)
        assert "steps" not in listed
        assert listed == {k: v for k, v in shown.items() if k != "steps"}
        with pytest.raises(RunNotFoundError, match="no run with id 'nope'"):
            await query.get_run("nope")
    finally:
        await app.close()


async def test_runs_are_paged_newest_first(db_url: str) -> None:
    app = make_app(db_url)
    query = Query(app)
    async with app:
        started = [(await app.start("double", {"n": i})).run_id for i in range(5)]
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await query.list_runs(function_id="double", before=cursor, limit=2)
            assert len(page.items) <= 2
            assert all(r.steps == [] for r in page.items)
            seen += [r.id for r in page.items]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
            assert cursor == page.items[-1].id
        assert seen == list(reversed(started)) and pages == 3
        one = await query.list_runs(status="queued", limit=1)
        assert [r.id for r in one.items] == [started[-1]] and one.next_cursor == started[-1]
        shaped = views.runs_page_json(one)
        assert shaped["next_cursor"] == started[-1]
        assert [r["id"] for r in shaped["runs"]] == [started[-1]]
        assert "steps" not in shaped["runs"][0]
        assert (await query.list_runs(status=pd.RunStatus.COMPLETED)).items == []
        assert len((await query.list_runs(limit=10 * PAGE_MAX)).items) == 5
        assert len((await query.list_runs(limit=0)).items) == 1
        with pytest.raises(InvalidInputError, match="'finished' is not one of"):
            await query.list_runs(status="finished")


async def test_events_are_paged_with_the_runs_they_started(db_url: str) -> None:
    app = make_app(db_url)
    query = Query(app)
    async with app:
        await app.register()
        sent = await app.send_detailed(
            [
                pd.Event(name="views/number", data={"n": i}, id=f"ev-{i}", ts=TS + i)
                for i in range(3)
            ]
        )
        assert [s.id for s in sent] == ["ev-0", "ev-1", "ev-2"]
        assert views.sent_json(sent[:1]) == {
            "ids": ["ev-0"],
            "events": [
                {"id": "ev-0", "duplicate": False, "run_ids": sent[0].run_ids, "skipped": []}
            ],
        }
        first = await query.list_events(name="views/number", limit=2)
        assert [e.event["id"] for e in first.items] == ["ev-2", "ev-1"]
        assert first.next_cursor is not None
        rest = await query.list_events(name="views/number", before=int(first.next_cursor), limit=2)
        assert [e.event["id"] for e in rest.items] == ["ev-0"] and rest.next_cursor is None
        shaped = views.events_page_json(rest)
        assert shaped == {
            "events": [
                {
                    "id": "ev-0",
                    "name": "views/number",
                    "data": {"n": 0},
                    "user": {},
                    "ts": TS,
                    "received_at": START_ISO,
                    "run_ids": sent[0].run_ids,
                }
            ],
            "next_cursor": None,
        }
        # ev-2 started double and, its n being over 1, guarded
        assert len(first.items[0].run_ids) == 2
        assert (await query.list_events(name="views/other")).items == []


async def test_functions_and_the_database(db_url: str) -> None:
    app = make_app(db_url)
    query = Query(app)
    try:
        assert await query.list_functions() == []
        await query.ping()
        version = await query.schema_version()
        assert version is not None and version[0] == version[1] >= 1
        await app.register()
        records = await query.list_functions()
        assert [r.id for r in records] == ["double", "guarded", "nightly"]
        assert views.functions_json(records)["functions"] == [
            {
                "id": "double",
                "app": "views",
                "triggers": [{"event": "views/number"}],
                "config": records[0].config,
                "flow": {},
                "paused": False,
                "paused_at": None,
            },
            {
                "id": "guarded",
                "app": "views",
                "triggers": [{"event": "views/*", "if": "event.data.n > 1"}],
                "config": records[1].config,
                "flow": {},
                "paused": False,
                "paused_at": None,
            },
            {
                "id": "nightly",
                "app": "views",
                "triggers": [
                    {
                        "cron": "0 3 * * *",
                        "tz": "Europe/Paris",
                        "catchup": 86400.0,
                        "catchup_policy": "latest",
                        "overlap": "allow",
                    }
                ],
                "config": records[2].config,
                "flow": {},
                "paused": False,
                "paused_at": None,
            },
        ]
        texts = [views.trigger_text(t) for r in records for t in r.triggers]
        assert texts == [
            "event views/number",
            "event views/* if event.data.n > 1",
            "cron 0 3 * * * (Europe/Paris)",
        ]
    finally:
        await app.close()
