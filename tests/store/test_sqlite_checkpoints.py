"""SQLite WAL checkpoints: when the writer starts one (pure rules), and that a WAL file that
once grew past the limit does not start one after every writer-thread batch."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perdure import serde
from perdure.functions import FunctionRecord
from perdure.store import open_store
from perdure.store.base import NewRun, Store
from perdure.store.sqlite import SqliteStore, writer
from perdure.store.sqlite.writer import (
    CHECKPOINT_ITEMS,
    WAL_GROWTH_BYTES,
    WAL_LIMIT_BYTES,
    checkpoint_due,
    next_wal_trigger,
)


def test_writes_or_a_wal_past_the_trigger_start_a_checkpoint() -> None:
    assert not checkpoint_due(CHECKPOINT_ITEMS - 1, 0, WAL_LIMIT_BYTES)
    assert checkpoint_due(CHECKPOINT_ITEMS, 0, WAL_LIMIT_BYTES)
    assert not checkpoint_due(1, WAL_LIMIT_BYTES, WAL_LIMIT_BYTES)
    assert checkpoint_due(1, WAL_LIMIT_BYTES + 1, WAL_LIMIT_BYTES)


@given(
    size=st.integers(min_value=1, max_value=1 << 40),
    trigger=st.integers(min_value=WAL_LIMIT_BYTES, max_value=1 << 40),
)
def test_the_next_trigger_is_past_the_size_the_checkpoint_saw(size: int, trigger: int) -> None:
    nxt = next_wal_trigger(size, trigger)
    assert nxt >= WAL_LIMIT_BYTES
    assert nxt == max(WAL_LIMIT_BYTES, size + WAL_GROWTH_BYTES)
    assert not checkpoint_due(1, size, nxt)  # the same file size starts no second one
    assert next_wal_trigger(0, trigger) == trigger  # an unmeasured size changes nothing


async def _checkpoint_done(store: Store) -> None:
    """Until no background checkpoint is queued or running (30 s at most)."""
    assert isinstance(store, SqliteStore) and store._writer is not None
    for _ in range(6000):
        if not store._writer._checkpointing:
            return
        await asyncio.sleep(0.005)
    pytest.fail("a background checkpoint never finished")


async def test_a_large_wal_file_does_not_checkpoint_after_every_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[int] = []
    original = writer.Writer._checkpoint

    def counted(self: writer.Writer) -> None:
        started.append(1)
        original(self)

    monkeypatch.setattr(writer.Writer, "_checkpoint", counted)
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}?synchronous=NORMAL")
    await store.open()
    try:
        body = serde.dumps({"data": "x" * 4000})
        runs = [NewRun(f"r{i:05d}", "f", body) for i in range(1500)]  # ~6 MiB of WAL at once
        await store.create_runs(runs)
        wal = tmp_path / "p.db-wal"
        assert wal.stat().st_size > WAL_LIMIT_BYTES
        for _ in range(2000):  # the big batch started one (on the reader thread)
            if started:
                break
            await asyncio.sleep(0.005)
        assert started
        first = len(started)
        # A reader's open snapshot keeps the log from restarting: the file stays past the
        # limit while writer-thread batches commit.
        snapshot = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
        snapshot.execute("BEGIN")
        snapshot.execute("SELECT count(*) FROM runs").fetchone()
        try:
            for i in range(40):
                await store.register_functions([FunctionRecord(f"g{i}", "app", (), {})])
                await _checkpoint_done(store)  # a checkpoint it started may start another
        finally:
            snapshot.close()
    finally:
        await store.close()  # runs what the reader thread was given
    assert len(started) - first <= 1
