"""Group commit: many callers' writes, one transaction.

Callers :meth:`Batcher.submit` an item and await its result. While a flush is in flight, new
items accumulate; as soon as it ends, the next flush takes everything queued. With no load an
item is flushed at once; under load each flush carries hundreds of items, which is how one
durable commit serves many concurrent runs. ``max_inflight`` flushes may run at once (more than
one lets PostgreSQL overlap transactions on several connections).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Collects items and flushes them with ``flush(items) -> results`` (same order)."""

    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = 1000,
        max_inflight: int = 1,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R]] = []
        self._inflight = 0
        self._scheduled = False
        self._idle: asyncio.Event | None = None

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue ``item``; the future resolves when its flush committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._items.append(item)
        self._futures.append(fut)
        if not self._scheduled and self._inflight < self._max_inflight:
            if self._inflight == 0:
                self._start()  # idle: flush at once (latency); later items group behind it
            else:
                self._scheduled = True
                loop.call_soon(self._start)
        return fut

    async def call(self, item: T) -> R:
        """Submit ``item`` and wait for its result. When nothing is in flight the caller
        flushes it itself (no task, no extra loop hop: the sequential fast path); otherwise it
        joins the next group."""
        if self._inflight >= self._max_inflight or self._items or self._scheduled:
            return await self.submit(item)
        self._inflight += 1
        try:
            results = await self._flush([item])
        finally:
            self._inflight -= 1
            if self._items:
                self._start()
            elif self._inflight == 0 and self._idle is not None:
                self._idle.set()
        return results[0]

    async def call_many(self, items: Sequence[T]) -> list[R]:
        """Submit ``items`` together and wait for their results (in order). They are flushed
        in one call when nothing is in flight (the sequential fast path); otherwise they join
        the next group together, in order (a group larger than ``max_batch`` may span two
        flushes, which run one after the other when ``max_inflight`` is 1)."""
        if len(items) == 1:
            return [await self.call(items[0])]
        if self._inflight >= self._max_inflight or self._items or self._scheduled:
            futures = [self.submit(item) for item in items]
            # They settle together (one flush, or two in a row): awaiting each in turn is
            # gather's result without its task bookkeeping (one suspension, at the first).
            # Every future is awaited even after an error, as gather would retrieve them.
            values: list[R] = []
            error: BaseException | None = None
            for fut in futures:
                try:
                    values.append(await fut)
                except Exception as exc:
                    error = error or exc
            if error is not None:
                raise error
            return values
        self._inflight += 1
        try:
            results = await self._flush(list(items))
        finally:
            self._inflight -= 1
            if self._items:
                self._start()
            elif self._inflight == 0 and self._idle is not None:
                self._idle.set()
        return list(results)

    def _start(self) -> None:
        self._scheduled = False
        while self._items and self._inflight < self._max_inflight:
            items = self._items[: self._max_batch]
            futures = self._futures[: self._max_batch]
            del self._items[: self._max_batch]
            del self._futures[: self._max_batch]
            self._inflight += 1
            asyncio.get_running_loop().create_task(self._run(items, futures))

    async def _run(self, items: list[T], futures: list[asyncio.Future[R]]) -> None:
        try:
            results = await self._flush(items)
        except BaseException as exc:
            for fut in futures:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for fut, result in zip(futures, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
        finally:
            self._inflight -= 1
            if self._items:
                self._start()
            elif self._inflight == 0 and self._idle is not None:
                self._idle.set()

    async def drain(self) -> None:
        """Wait until everything submitted so far is flushed."""
        while self._items or self._inflight or self._scheduled:
            self._idle = asyncio.Event()
            if not (self._items or self._inflight or self._scheduled):
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._idle.wait()
