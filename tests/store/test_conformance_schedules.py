"""The store conformance suite, schedules part: every backend passes exactly these tests.

Creating, reading, listing, pausing, resuming and deleting schedules; firing a tick once
across schedulers (a compare-and-set on the cursor and the revision, in the transaction that
creates the run); the overlap policy checked in that transaction; manual triggers; and the
overlap policy of decorator cron triggers (``fire_cron``).
"""

from __future__ import annotations

import asyncio

import pytest

from conftest import STORE_T0 as T0
from perdure import serde
from perdure.errors import InvalidInputError
from perdure.store.base import NewRun, NewSchedule, Outcome, RunFilter, Store
from perdure.testing import ManualClock

LEASE = 30.0


def schedule(
    sid: str = "s1",
    fid: str = "f",
    *,
    overlap: str = "skip",
    paused: bool = False,
    start: float = T0,
    revision: str = "r1",
) -> NewSchedule:
    return NewSchedule(
        id=sid,
        function_id=fid,
        cron="0 * * * *",
        tz="Europe/Paris",
        data=serde.dumps({"report": sid}),
        overlap=overlap,
        catchup="latest",
        catchup_window=600.0,
        paused=paused,
        start=start,
        next_at=start + 3600,
        revision=revision,
    )


def tick_run(run_id: str, sid: str, tick: float, fid: str = "f") -> NewRun:
    body = serde.dumps({"id": run_id, "name": "perdure/scheduled.timer", "data": {}, "ts": 1})
    return NewRun(run_id, fid, body, idempotency_key=f"schedule:{sid}:{int(tick * 1000)}")


async def finish(store: Store, *run_ids: str) -> None:
    """Claim the queued runs and complete these ones."""
    claimed = {r.id: r for r in (await store.claim("w", ["f"], 100, LEASE)).runs}
    ends = [Outcome(i, claimed[i].token, "complete", output="1") for i in run_ids]
    assert await store.commit(ends) == [True] * len(ends)


async def test_create_get_and_duplicates(store: Store) -> None:
    created = await store.create_schedule(schedule())
    assert created is not None
    assert (created.id, created.function_id, created.cron, created.tz) == (
        "s1",
        "f",
        "0 * * * *",
        "Europe/Paris",
    )
    assert serde.loads(created.data) == {"report": "s1"}
    assert (created.overlap, created.catchup, created.catchup_window) == ("skip", "latest", 600.0)
    assert created.paused is False
    assert (created.last_tick, created.next_at, created.last_run_id) == (T0, T0 + 3600, None)
    assert (created.runs, created.skipped_overlap, created.missed) == (0, 0, 0)
    assert created.revision == "r1" and created.created_at == created.updated_at == T0
    assert await store.get_schedule("s1") == created
    # the same id again: nothing changes
    assert await store.create_schedule(schedule(fid="g", revision="r2")) is None
    assert await store.get_schedule("s1") == created
    assert await store.get_schedule("nope") is None


async def test_list_by_id_with_function_filter_and_cursor(store: Store) -> None:
    for sid, fid in [("c", "f"), ("a", "f"), ("b", "g"), ("d", "f")]:
        assert await store.create_schedule(schedule(sid, fid))
    assert [s.id for s in await store.list_schedules(None, None, 10)] == ["a", "b", "c", "d"]
    assert [s.id for s in await store.list_schedules("f", None, 10)] == ["a", "c", "d"]
    assert [s.id for s in await store.list_schedules("f", "a", 1)] == ["c"]
    assert [s.id for s in await store.list_schedules(None, "c", 10)] == ["d"]
    assert await store.list_schedules("nope", None, 10) == []


async def test_pause_and_resume(store: Store, clock: ManualClock) -> None:
    await store.create_schedule(schedule())
    await clock.advance(100)
    paused = await store.set_schedule_paused("s1", True, cursor=0, next_at=0, revision="r2")
    assert paused is not None and paused.paused and paused.revision == "r2"
    assert paused.updated_at == T0 + 100 and paused.last_tick == T0
    # pausing again changes nothing
    again = await store.set_schedule_paused("s1", True, cursor=0, next_at=0, revision="r3")
    assert again == paused
    await clock.advance(7200)
    resumed = await store.set_schedule_paused(
        "s1", False, cursor=T0 + 7300, next_at=T0 + 10800, revision="r4"
    )
    assert resumed is not None and not resumed.paused and resumed.revision == "r4"
    assert (resumed.last_tick, resumed.next_at) == (T0 + 7300, T0 + 10800)
    # resuming an active schedule changes nothing; the cursor never moves back
    same = await store.set_schedule_paused("s1", False, cursor=T0, next_at=T0, revision="r5")
    assert same == resumed
    assert await store.set_schedule_paused("nope", True, cursor=0, next_at=0, revision="x") is None


async def test_delete(store: Store) -> None:
    await store.create_schedule(schedule())
    assert await store.delete_schedule("s1")
    assert not await store.delete_schedule("s1")
    assert await store.get_schedule("s1") is None
    assert await store.fire_schedule("s1", "r1", T0 + 3600, T0 + 7200, None, 0) == "stale"


async def test_due_and_next_of_active_schedules_of_hosted_functions(store: Store) -> None:
    await store.create_schedule(schedule("early", start=T0 - 1000))
    await store.create_schedule(schedule("late", start=T0 + 500))
    await store.create_schedule(schedule("other", "g", start=T0 - 2000))
    await store.create_schedule(schedule("paused", paused=True, start=T0 - 3000))
    assert await store.next_schedule_at(["f"]) == T0 - 1000 + 3600
    assert await store.next_schedule_at(["f", "g"]) == T0 - 2000 + 3600
    assert await store.next_schedule_at(["h"]) is None
    due = await store.due_schedules(["f"], T0 + 4100, 10)
    assert [s.id for s in due] == ["early", "late"]
    assert [s.id for s in await store.due_schedules(["f", "g"], T0 + 2600, 10)] == [
        "other",
        "early",
    ]
    assert [s.id for s in await store.due_schedules(["f", "g"], T0 + 4100, 1)] == ["other"]
    assert await store.due_schedules([], T0 + 9999, 10) == []


async def test_a_tick_fires_once_across_schedulers(store: Store) -> None:
    await store.create_schedule(schedule())
    tick = T0 + 3600
    results = await asyncio.gather(
        store.fire_schedule("s1", "r1", tick, tick + 3600, tick_run("a", "s1", tick), 2),
        store.fire_schedule("s1", "r1", tick, tick + 3600, tick_run("b", "s1", tick), 2),
    )
    assert sorted(results) == ["fired", "stale"]
    runs = await store.list_runs(RunFilter())
    assert len(runs) == 1 and runs[0].idempotency_key == f"schedule:s1:{int(tick * 1000)}"
    row = await store.get_schedule("s1")
    assert row is not None
    assert (row.last_tick, row.next_at, row.last_run_id) == (tick, tick + 3600, runs[0].id)
    assert (row.runs, row.missed, row.skipped_overlap) == (1, 2, 0)
    # an older tick, or the same one again, is stale
    assert await store.fire_schedule("s1", "r1", tick, tick + 3600, None, 0) == "stale"
    assert await store.fire_schedule("s1", "r1", tick - 1, tick, None, 0) == "stale"


async def test_a_changed_or_paused_schedule_is_not_fired(store: Store) -> None:
    await store.create_schedule(schedule())
    tick = T0 + 3600
    # a scheduler that read revision r1 before the schedule was paused (r2)
    await store.set_schedule_paused("s1", True, cursor=0, next_at=0, revision="r2")
    assert await store.fire_schedule("s1", "r2", tick, tick, tick_run("a", "s1", tick), 0) == (
        "stale"
    )
    await store.set_schedule_paused("s1", False, cursor=T0, next_at=tick, revision="r3")
    assert await store.fire_schedule("s1", "r1", tick, tick, tick_run("a", "s1", tick), 0) == (
        "stale"
    )
    assert await store.list_runs(RunFilter()) == []
    assert await store.fire_schedule("s1", "r3", tick, tick, tick_run("a", "s1", tick), 0) == (
        "fired"
    )


async def test_advancing_without_a_run_counts_missed_ticks(store: Store) -> None:
    await store.create_schedule(schedule())
    assert await store.fire_schedule("s1", "r1", T0 + 7200, T0 + 10800, None, 2) == "advanced"
    row = await store.get_schedule("s1")
    assert row is not None
    assert (row.last_tick, row.next_at, row.missed, row.runs) == (T0 + 7200, T0 + 10800, 2, 0)
    assert await store.list_runs(RunFilter()) == []


async def test_overlap_skip_starts_nothing_while_the_previous_run_is_active(
    store: Store,
) -> None:
    await store.create_schedule(schedule(overlap="skip"))
    t1, t2, t3 = T0 + 3600, T0 + 7200, T0 + 10800
    assert await store.fire_schedule("s1", "r1", t1, t2, tick_run("a", "s1", t1), 0) == "fired"
    assert await store.fire_schedule("s1", "r1", t2, t3, tick_run("b", "s1", t2), 0) == "skipped"
    row = await store.get_schedule("s1")
    assert row is not None
    assert (row.last_tick, row.last_run_id, row.runs, row.skipped_overlap) == (t2, "a", 1, 1)
    await finish(store, "a")
    assert await store.fire_schedule("s1", "r1", t3, t3 + 3600, tick_run("c", "s1", t3), 0) == (
        "fired"
    )
    assert sorted(r.id for r in await store.list_runs(RunFilter())) == ["a", "c"]


async def test_overlap_allow_starts_every_tick(store: Store) -> None:
    await store.create_schedule(schedule(overlap="allow"))
    t1, t2 = T0 + 3600, T0 + 7200
    assert await store.fire_schedule("s1", "r1", t1, t2, tick_run("a", "s1", t1), 0) == "fired"
    assert await store.fire_schedule("s1", "r1", t2, t2, tick_run("b", "s1", t2), 0) == "fired"
    row = await store.get_schedule("s1")
    assert row is not None and (row.runs, row.last_run_id) == (2, "b")


async def test_trigger_starts_a_run_now_whatever_the_pause(store: Store) -> None:
    await store.create_schedule(schedule(paused=True))
    run = NewRun("m1", "f", serde.dumps({"name": "perdure/scheduled.timer"}))
    created = await store.trigger_schedule("s1", run)
    assert created is not None and (created.id, created.created) == ("m1", True)
    row = await store.get_schedule("s1")
    assert row is not None and (row.runs, row.last_run_id, row.paused) == (1, "m1", True)
    got = await store.get_run("m1")
    assert got is not None and got.status == "queued"
    assert await store.trigger_schedule("nope", NewRun("m2", "f", "{}")) is None
    assert await store.get_run("m2") is None


async def test_a_triggered_run_counts_for_overlap(store: Store) -> None:
    await store.create_schedule(schedule(overlap="skip"))
    await store.trigger_schedule("s1", NewRun("m1", "f", "{}"))
    t1 = T0 + 3600
    assert await store.fire_schedule("s1", "r1", t1, t1, tick_run("a", "s1", t1), 0) == "skipped"


async def test_cron_overlap_skip(store: Store) -> None:
    assert await store.fire_cron("f", "t", 100.0, None, "skip")
    assert await store.fire_cron("f", "t", 200.0, tick_run("c1", "t", 200.0), "skip")
    # the run of 200 is still queued: 300 advances, starts nothing
    assert await store.fire_cron("f", "t", 300.0, tick_run("c2", "t", 300.0), "skip")
    assert await store.cron_last_tick("f", "t") == 300.0
    assert [r.id for r in await store.list_runs(RunFilter())] == ["c1"]
    # allow does not look
    assert await store.fire_cron("f", "t", 400.0, tick_run("c3", "t", 400.0), "allow")
    await finish(store, "c1", "c3")
    assert await store.fire_cron("f", "t", 500.0, tick_run("c4", "t", 500.0), "skip")
    assert sorted(r.id for r in await store.list_runs(RunFilter())) == ["c1", "c3", "c4"]
    # an old tick never fires, skip or not
    assert not await store.fire_cron("f", "t", 450.0, tick_run("c5", "t", 450.0), "skip")


async def test_cron_overlap_skip_fires_once_across_schedulers(store: Store) -> None:
    assert await store.fire_cron("f", "t", 100.0, None)
    results = await asyncio.gather(
        *(store.fire_cron("f", "t", 200.0, tick_run(f"c{i}", "t", 200.0), "skip") for i in range(4))
    )
    assert sorted(results) == [False, False, False, True]
    assert len(await store.list_runs(RunFilter())) == 1


BAD_TEXT = ["a\x00b", "bad\ud800"]


@pytest.mark.parametrize("bad", BAD_TEXT)
async def test_unstorable_text_is_refused_or_finds_nothing(store: Store, bad: str) -> None:
    for field in ("id", "function_id", "cron", "tz", "data"):
        s = schedule()
        setattr(s, field, bad)
        with pytest.raises(InvalidInputError):
            await store.create_schedule(s)
    assert await store.list_schedules(None, None, 10) == []
    await store.create_schedule(schedule())
    assert await store.get_schedule(bad) is None
    assert await store.list_schedules(bad, None, 10) == []
    assert await store.list_schedules(None, bad, 10) == []
    assert await store.set_schedule_paused(bad, True, cursor=0, next_at=0, revision="x") is None
    assert not await store.delete_schedule(bad)
    assert await store.due_schedules([bad], T0 + 1e6, 10) == []
    assert await store.next_schedule_at([bad]) is None
    assert await store.fire_schedule(bad, "r1", T0 + 3600, T0, None, 0) == "stale"
    assert await store.trigger_schedule(bad, NewRun("m1", "f", "{}")) is None
    with pytest.raises(InvalidInputError):
        await store.fire_schedule("s1", "r1", T0 + 3600, T0, NewRun(bad, "f", "{}"), 0)
    assert await store.list_runs(RunFilter()) == []
