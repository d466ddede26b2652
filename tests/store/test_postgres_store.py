"""What only the PostgreSQL store has: several processes on one database (claims, events and
commits racing), LISTEN/NOTIFY wake-ups, the database clock, outages and recovery.

Each store here has its own pool and listener, like a separate process would."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from urllib.parse import urlsplit

import psycopg
import pytest

from conftest import new_pg_schema_url
from perdure import serde
from perdure.errors import InvalidInputError, StoreUnavailableError
from perdure.store import open_store
from perdure.store.base import EventIn, NewRun, Outcome, StepWrite, Store, WaitSpec
from perdure.store.postgres import PostgresStore, channel_name, parse_url
from tcp_proxy import Proxy

pytestmark = pytest.mark.postgres

LEASE = 30.0


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from new_pg_schema_url()


@pytest.fixture
def other_url() -> Iterator[str]:
    yield from new_pg_schema_url()


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[Store]:
    store = open_store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def new_run(run_id: str, fid: str = "f") -> NewRun:
    body = serde.dumps(
        {"id": f"e-{run_id}", "name": "perdure/function.invoked", "data": {}, "user": {}, "ts": 1}
    )
    return NewRun(run_id, fid, body)


def event(name: str, ev_id: str, data: dict[str, object] | None = None) -> EventIn:
    obj = {"id": ev_id, "name": name, "data": data or {}, "user": {}, "ts": 1}
    return EventIn(ev_id, name, obj, serde.dumps(obj))


async def eventually(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


# ---------------------------------------------------------------------- configuration


def test_url_parameters() -> None:
    cfg = parse_url(
        "postgresql://u@h:5/db?schema=Tenant_1&application_name=x&connect_timeout=3"
        "&pool_max_size=4&pool_timeout=2.5"
    )
    assert cfg.schema == "Tenant_1"
    assert "schema" not in cfg.conninfo and "pool_" not in cfg.conninfo
    assert "application_name=x" in cfg.conninfo and "connect_timeout=3" in cfg.conninfo
    assert cfg.kwargs["options"] == '-c search_path="Tenant_1"'
    assert "application_name" not in cfg.kwargs
    assert (cfg.pool_max_size, cfg.pool_timeout) == (4, 2.5)
    assert parse_url("postgresql://h/db").schema == "public"
    with_options = parse_url("postgresql://h/db?options=-c%20work_mem%3D8MB&schema=s")
    assert with_options.kwargs["options"] == '-c work_mem=8MB -c search_path="s"'
    for bad in ("a;drop", "x" * 64, "1abc", "a b"):
        with pytest.raises(InvalidInputError):
            parse_url(f"postgresql://h/db?schema={bad}")
    with pytest.raises(InvalidInputError):
        parse_url("postgresql://h/db?pool_max_size=many")
    assert channel_name("wake", "s") == "perdure_wake_s"
    assert len(channel_name("wake", "x" * 63).encode()) <= 63


# ---------------------------------------------------------------------- wake-ups


async def test_notifications_reach_other_processes_of_the_same_schema_only(
    pg_url: str, other_url: str
) -> None:
    async with opened(pg_url) as a, opened(pg_url) as b, opened(other_url) as c:
        wakes = {"a": 0, "b": 0, "c": 0}
        finished: dict[str, list[str]] = {"a": [], "b": [], "c": []}

        def waker(n: str) -> Callable[[], None]:
            return lambda: wakes.__setitem__(n, wakes[n] + 1)

        def recorder(n: str) -> Callable[[Sequence[str]], None]:
            return lambda ids: finished[n].extend(ids)

        for name, store in (("a", a), ("b", b), ("c", c)):
            store.on_wake(waker(name))
            store.on_finished(recorder(name))
        await a.create_runs([new_run("r1")])
        # This process is woken directly (once: it ignores its own notification), the other
        # one by the notification.
        await eventually(lambda: wakes["a"] == wakes["b"] == 1)
        run = (await b.claim("w", ["f"], 1, LEASE)).runs[0]
        await b.commit([Outcome("r1", run.token, "complete", output="1")])
        # Locally (right after the commit) and in the other process (by notification).
        await eventually(lambda: finished["a"] == finished["b"] == ["r1"])
        await asyncio.sleep(0.1)
        assert wakes == {"a": 1, "b": 1, "c": 0} and finished["c"] == []


async def test_finished_runs_are_announced_in_batches(pg_url: str) -> None:
    async with opened(pg_url) as a, opened(pg_url) as b:
        seen: list[str] = []
        b.on_finished(seen.extend)
        ids = [f"run-{i:04}-" + "x" * 60 for i in range(600)]  # ~45 KB of ids
        await a.create_runs([new_run(i) for i in ids])
        runs = (await a.claim("w", ["f"], 600, LEASE)).runs
        assert len(runs) == 600
        assert all(await a.commit([Outcome(r.id, r.token, "complete") for r in runs]))
        await eventually(lambda: len(seen) == 600)
        assert sorted(seen) == sorted(ids)


# ---------------------------------------------------------------------- races


async def test_concurrent_claims_from_many_processes(pg_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(opened(pg_url)) for _ in range(4)]
        await stores[0].create_runs([new_run(f"r{i:04}") for i in range(400)])
        claims = await asyncio.gather(
            *(stores[i % 4].claim(f"w{i}", ["f"], 25, LEASE) for i in range(24))
        )
        ids = [r.id for c in claims for r in c.runs]
        assert len(ids) == len(set(ids)) == 400
        assert all(r.token == 1 and r.crashes == 0 for c in claims for r in c.runs)


async def test_concurrent_events_resolve_a_wait_once(pg_url: str) -> None:
    async with opened(pg_url) as a, opened(pg_url) as b:
        for round_ in range(5):
            run_id = f"r{round_}"
            await a.create_runs([new_run(run_id)])
            run = (await a.claim("w", ["f"], 1, LEASE)).runs[0]
            spec = WaitSpec("go", None, None, None, None)
            assert await a.commit(
                [
                    StepWrite(run_id, run.token, "w", 0, "wait", "waiting", wait=spec),
                    Outcome(run_id, run.token, "suspend", status="waiting", watch_keys=("w",)),
                ]
            ) == [True, True]
            await asyncio.gather(
                a.send_events([event("go", f"a{round_}")]),
                b.send_events([event("go", f"b{round_}")]),
            )
            steps = {s.key: s for s in await a.get_steps(run_id)}
            winner = serde.loads(steps["w"].output)["id"]
            assert winner in (f"a{round_}", f"b{round_}")
            resumed = (await b.claim("w", ["f"], 5, LEASE)).runs
            assert [r.id for r in resumed] == [run_id]
            assert serde.loads(resumed[0].steps["w"].output)["id"] == winner


async def test_concurrent_duplicate_events_and_idempotency_keys(pg_url: str) -> None:
    async with opened(pg_url) as a, opened(pg_url) as b:
        sent = await asyncio.gather(
            *(s.send_events([event("x", "same"), event("x", "same")]) for s in (a, b, a, b))
        )
        fresh = [e for batch in sent for e in batch if not e.duplicate]
        assert len(fresh) == 1
        keyed = [NewRun(f"k{i}", "f", new_run("k").input, idempotency_key="key") for i in range(8)]
        created = await asyncio.gather(
            *((a if i % 2 else b).create_runs([keyed[i]]) for i in range(8))
        )
        winners = [c[0] for c in created if c[0].created]
        assert len(winners) == 1
        assert {c[0].id for c in created} == {winners[0].id}


async def test_overlapping_group_commits_do_not_deadlock(pg_url: str) -> None:
    async with opened(pg_url) as a, opened(pg_url) as b:
        await a.create_runs([new_run(f"r{i:03}") for i in range(100)])
        runs = (await a.claim("w", ["f"], 100, LEASE)).runs
        forward = [StepWrite(r.id, r.token, "a", 0, "run", "completed", output="1") for r in runs]
        backward = [
            StepWrite(r.id, r.token, "b", 1, "run", "completed", output="2") for r in reversed(runs)
        ]
        results = await asyncio.gather(
            *(s.commit(forward if i % 2 else backward) for i, s in enumerate([a, b] * 4))
        )
        assert all(all(r) for r in results)
        beats = await asyncio.gather(
            a.heartbeat("w", [(r.id, r.token) for r in runs], LEASE),
            b.commit(backward),
        )
        assert list(beats) == [[], [True] * 100]


async def test_repeated_writes_of_a_step_in_one_batch(pg_url: str) -> None:
    async with opened(pg_url) as a:
        await a.create_runs([new_run("r1")])
        run = (await a.claim("w", ["f"], 1, LEASE)).runs[0]
        assert await a.commit(
            [
                StepWrite("r1", run.token, "s", 0, "run", "retrying", error='"e"', started_at=5.0),
                StepWrite(
                    "r1",
                    run.token,
                    "s",
                    0,
                    "run",
                    "completed",
                    output="1",
                    attempts=2,
                    started_at=9.0,
                ),
                StepWrite("r1", run.token + 1, "s", 0, "run", "failed"),
                Outcome("r1", run.token, "complete", output="1"),
                StepWrite("r1", run.token, "late", 1, "run", "completed"),
            ]
        ) == [True, True, False, True, False]
        (step,) = await a.get_steps("r1")
        assert (step.status, step.output, step.error, step.attempts, step.started_at) == (
            "completed",
            "1",
            None,
            2,
            5.0,
        )
        assert step.ended_at is not None


# ---------------------------------------------------------------------- clock


async def test_now_follows_the_database_clock(pg_url: str) -> None:
    async with opened(pg_url) as a:
        assert isinstance(a, PostgresStore)
        with psycopg.connect(pg_url.split("?")[0]) as conn:
            row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
        assert row is not None and abs(a.now() - row[0]) < 0.05
        await a.create_runs([new_run("r1")])
        claim = await a.claim("w", ["f"], 1, LEASE)
        assert claim.runs[0].id == "r1"
        # The claim started the run at the database's time, which the store's clock follows.
        run = await a.get_run("r1")
        assert run is not None and run.started_at is not None
        assert abs(run.started_at - a.now()) < 0.05
        assert a.clock.now() == pytest.approx(a.now(), abs=0.01)


# ---------------------------------------------------------------------- outages


async def test_an_outage_raises_unavailable_and_the_store_recovers(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via_proxy = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    via_proxy += "&pool_timeout=1"
    try:
        async with opened(via_proxy) as a, opened(pg_url) as direct:
            wakes = 0

            def woke() -> None:
                nonlocal wakes
                wakes += 1

            a.on_wake(woke)
            await a.create_runs([new_run("r1")])
            assert (await a.get_run("r1")) is not None
            await proxy.stop()
            for call in (
                lambda: a.get_run("r1"),
                lambda: a.create_runs([new_run("r2")]),
                lambda: a.claim("w", ["f"], 5, LEASE),
                lambda: a.commit([Outcome("r1", 1, "complete")]),
                a.ping,
            ):
                with pytest.raises(StoreUnavailableError):
                    await call()
            await proxy.start()
            deadline = time.monotonic() + 20
            while True:
                try:
                    await a.ping()
                    break
                except StoreUnavailableError:
                    assert time.monotonic() < deadline, "the pool did not recover"
                    await asyncio.sleep(0.2)
            claim = await a.claim("w", ["f"], 5, LEASE)
            assert [r.id for r in claim.runs] == ["r1"]
            # The listener reconnected by itself: other processes' commits wake us again.
            before = wakes
            await direct.create_runs([new_run("r3")])
            await eventually(lambda: wakes > before, timeout=15)
    finally:
        await proxy.stop()


async def test_an_unreachable_database_raises_unavailable() -> None:
    store = open_store("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")
    with pytest.raises(StoreUnavailableError):
        await store.open()
    with pytest.raises(StoreUnavailableError):
        await store.get_run("x")
    await store.close()
