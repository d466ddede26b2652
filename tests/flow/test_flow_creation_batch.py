"""Creating many runs under flow control at once (one batch of starts): every run is created
once, in order, with its keys; an idempotency key gives one run, within a batch and across."""

from __future__ import annotations

import asyncio

from flow_intervals import wait_for

import perdure
from perdure import Concurrency


async def test_a_batch_of_starts_creates_each_run_once_with_its_keys(db_url: str) -> None:
    app = perdure.App("t", db_url)

    @app.function(concurrency=Concurrency(2, key="event.data.k"), priority="event.data.p")
    async def work(ctx: perdure.Context) -> str:
        return str(ctx.event.data["n"])

    async with app:
        await app.register()
        # Started at once: they reach the store in batches of many runs.
        handles = await asyncio.gather(
            *(app.start(work, {"k": f"k{i % 3}", "n": i, "p": 0}) for i in range(60))
        )
        keyed = await asyncio.gather(
            *(
                app.start(work, {"k": "k0", "n": 100 + i, "p": 0}, idempotency_key="once")
                for i in range(5)
            )
        )
        again = await app.start(work, {"k": "k0", "n": 200, "p": 0}, idempotency_key="once")
        assert len({h.run_id for h in handles}) == 60
        assert len({h.run_id for h in keyed} | {again.run_id}) == 1
        assert sum(h.created for h in keyed) == 1 and not again.created
        queued = await app.list_runs(status="queued", limit=100)
        assert len(queued) == 61
        for i in (0, 1, 2, 59):
            load = await app.store.concurrency_load(handles[i].run_id)
            assert load is not None
            assert load.keys[0] is not None and load.keys[0].endswith(f"k{i % 3}")
            assert load.keys[1] is None
        async with app.worker(concurrency=20):
            outs = await asyncio.gather(*(h.result(timeout=60) for h in handles))
            assert outs == [str(i) for i in range(60)]
            first = await keyed[0].result(timeout=60)
        assert first in {str(100 + i) for i in range(5)}

        async def all_done() -> bool:
            return len(await app.list_runs(status="completed", limit=100)) == 61

        await wait_for(all_done, "61 completed runs", 30)
