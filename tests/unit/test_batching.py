"""The group committer (perdure.runtime.batching.Batcher): idle callers flush themselves, busy
ones group behind the flush in flight, results and errors reach each caller in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from perdure.runtime.batching import Batcher


class Flusher:
    """A flush that records its groups; ``gate`` holds a flush until released."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.fail_on: int | None = None

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"flush of {self.fail_on} failed")
        return [i * 10 for i in items]


async def test_an_idle_batcher_flushes_the_callers_items_at_once() -> None:
    flush = Flusher()
    b: Batcher[int, int] = Batcher(flush)
    assert await b.call(1) == 10
    assert await b.call_many([2, 3]) == [20, 30]
    assert flush.groups == [[1], [2, 3]]


async def test_busy_callers_group_behind_the_flush_in_flight_in_order() -> None:
    flush = Flusher()
    flush.gate = asyncio.Event()
    b: Batcher[int, int] = Batcher(flush)
    first = asyncio.ensure_future(b.call(1))
    await flush.started.wait()
    many = asyncio.ensure_future(b.call_many([2, 3]))
    single = asyncio.ensure_future(b.call(4))
    more = asyncio.ensure_future(b.call_many([5, 6]))
    await asyncio.sleep(0)  # let them queue (they cannot finish: the flush is held)
    flush.gate.set()
    got = await asyncio.wait_for(asyncio.gather(first, many, single, more), 30)
    assert list(got) == [10, [20, 30], 40, [50, 60]]
    assert flush.groups == [[1], [2, 3, 4, 5, 6]]
    await b.drain()


async def test_a_failed_group_fails_every_caller_in_it() -> None:
    flush = Flusher()
    flush.gate = asyncio.Event()
    b: Batcher[int, int] = Batcher(flush)
    first = asyncio.ensure_future(b.call(1))
    await flush.started.wait()
    flush.fail_on = 3
    many = asyncio.ensure_future(b.call_many([2, 3]))
    single = asyncio.ensure_future(b.call(4))
    await asyncio.sleep(0)
    flush.gate.set()
    assert await asyncio.wait_for(first, 30) == 10
    with pytest.raises(ValueError, match="flush of 3 failed"):
        await asyncio.wait_for(many, 30)
    with pytest.raises(ValueError, match="flush of 3 failed"):
        await asyncio.wait_for(single, 30)
    # The batcher carries on: the next call flushes on its own.
    flush.fail_on = None
    assert await b.call_many([7, 8]) == [70, 80]


async def test_a_group_larger_than_the_batch_spans_two_flushes_in_order() -> None:
    flush = Flusher()
    flush.gate = asyncio.Event()
    b: Batcher[int, int] = Batcher(flush, max_batch=2)
    first = asyncio.ensure_future(b.call(1))
    await flush.started.wait()
    many = asyncio.ensure_future(b.call_many([2, 3, 4]))
    await asyncio.sleep(0)
    flush.gate.set()
    assert await asyncio.wait_for(many, 30) == [20, 30, 40]
    assert await first == 10
    assert flush.groups == [[1], [2, 3], [4]]
