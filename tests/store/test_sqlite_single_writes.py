"""SQLite: a checkpoint of one statement runs inline as its own transaction (no ``BEGIN`` or
``COMMIT``), falls back to the writer thread when the database is busy, and keeps the commit's
fault points."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from perdure import faults, serde
from perdure.store import open_store
from perdure.store.base import NewRun, StepWrite, WaitSpec
from perdure.store.sqlite import SqliteStore

DEADLINE = 30.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = open_store(f"sqlite:///{tmp_path}/single.db")
    assert isinstance(s, SqliteStore)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def leased_run(store: SqliteStore, run_id: str) -> int:
    body = serde.dumps({"id": run_id, "name": "x", "data": {}, "ts": 1})
    run = NewRun(run_id, "f", body)
    run.lease_owner, run.lease_seconds = "w", 30.0
    [made] = await store.create_runs([run])
    assert made.token is not None
    return made.token


def traced(store: SqliteStore) -> list[str]:
    statements: list[str] = []
    assert store._wconn is not None
    store._wconn.set_trace_callback(statements.append)
    return statements


async def test_a_plain_checkpoint_is_one_statement(store: SqliteStore) -> None:
    token = await leased_run(store, "r1")
    statements = traced(store)
    assert await store.commit([StepWrite("r1", token, "a", 0, "run", "completed", output="1")])
    assert [s.split()[0] for s in statements] == ["INSERT"]
    statements.clear()
    # A checkpoint with a wait is two statements: it keeps its transaction.
    wait = WaitSpec("go", None, None, None, time.time() + 60)
    step = StepWrite("r1", token, "w", 1, "wait", "waiting", wait=wait)
    assert await store.commit([step]) == [True]
    assert [s.split()[0] for s in statements] == ["BEGIN", "INSERT", "INSERT", "COMMIT"]
    steps = await store.get_steps("r1")
    assert [(s.key, s.status) for s in steps] == [("a", "completed"), ("w", "waiting")]
    # A stale token writes nothing, in one statement as well.
    statements.clear()
    assert await store.commit([StepWrite("r1", token + 1, "b", 2, "run", "completed")]) == [False]
    assert [s.split()[0] for s in statements] == ["INSERT"]


async def test_a_busy_database_sends_it_to_the_writer_thread(
    store: SqliteStore, tmp_path: Path
) -> None:
    token = await leased_run(store, "r1")
    other = sqlite3.connect(f"{tmp_path}/single.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        write = asyncio.ensure_future(
            store.commit([StepWrite("r1", token, "a", 0, "run", "completed", output="1")])
        )
        assert store._writer is not None
        deadline = time.monotonic() + DEADLINE
        while store._writer._pending == 0:  # the inline attempt found it busy and handed over
            assert not write.done(), "the write went through a held write lock"
            assert time.monotonic() < deadline, "the write never reached the writer thread"
            await asyncio.sleep(0.005)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await asyncio.wait_for(write, DEADLINE) == [True]
    assert [s.key for s in await store.get_steps("r1")] == ["a"]


async def test_the_commit_fault_points_still_fire(store: SqliteStore) -> None:
    token = await leased_run(store, "r1")
    faults.arm("before_commit", "raise")
    try:
        with pytest.raises(faults.InjectedFault):
            await store.commit([StepWrite("r1", token, "a", 0, "run", "completed")])
    finally:
        faults.disarm()
    assert await store.get_steps("r1") == []
    faults.arm("after_commit", "raise")
    try:
        with pytest.raises(faults.InjectedFault):
            await store.commit([StepWrite("r1", token, "a", 0, "run", "completed")])
    finally:
        faults.disarm()
    # committed before the fault: recorded
    assert [s.key for s in await store.get_steps("r1")] == ["a"]
    assert store._wconn is not None and not store._wconn.in_transaction


async def test_a_failed_write_in_a_writer_batch_leaks_no_rows_to_the_next(
    store: SqliteStore, tmp_path: Path
) -> None:
    """Two checkpoint batches grouped in one writer-thread transaction: the first fails
    midway (its child run's id exists), the second commits without any row of the first."""
    t1 = await leased_run(store, "r1")
    t2 = await leased_run(store, "r2")
    await leased_run(store, "taken")
    body = serde.dumps({"id": "x", "name": "x", "data": {}, "ts": 1})
    dup = NewRun("taken", "g", body, idempotency_key="invoke:r1:b")  # the id exists
    failing = [
        StepWrite("r1", t1, "a", 0, "run", "completed", output="1"),
        StepWrite("r2", t2, "z", 0, "run", "completed", output="2"),
        StepWrite("r1", t1, "b", 1, "invoke", "invoking", child=dup),
    ]
    fine = [
        StepWrite("r2", t2, "y", 1, "run", "completed", output="3"),
        StepWrite("r1", t1, "c", 2, "run", "completed", output="4"),
    ]
    other = sqlite3.connect(f"{tmp_path}/single.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # both go to the writer thread, and group there
    try:
        first = asyncio.ensure_future(store.commit(failing))
        second = asyncio.ensure_future(store.commit(fine))
        assert store._writer is not None
        deadline = time.monotonic() + DEADLINE
        while store._writer._pending < 2:
            assert time.monotonic() < deadline, "the writes never reached the writer thread"
            await asyncio.sleep(0.005)
    finally:
        other.execute("ROLLBACK")
        other.close()
    with pytest.raises(sqlite3.IntegrityError):
        await asyncio.wait_for(first, DEADLINE)
    assert await asyncio.wait_for(second, DEADLINE) == [True, True]
    assert [s.key for s in await store.get_steps("r1")] == ["c"]
    assert [s.key for s in await store.get_steps("r2")] == ["y"]
