"""A concurrency slot freed in one process wakes the workers of other processes.

Two apps (two stores: on PostgreSQL two listeners with their own origins) share one
environment-scoped pool of 1. Worker A hosts only ``holder``; worker B hosts only ``waiter``,
and on PostgreSQL polls only every 60 s, so B's blocked run can start within the deadline only
if the slot's release (holder completes, fails, retries, sleeps or is cancelled) is announced
to B. On SQLite (no notifications across processes) B finds it by polling (0.1 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest
from flow_intervals import wait_for

import perdure
from perdure import Concurrency, RetryPolicy
from perdure.store.base import Claim

POOL = Concurrency(1, key="'pool'", scope="env")
WAYS = ["complete", "fail", "retry", "sleep", "cancel"]


def define(app: perdure.App, entered: asyncio.Event, release: asyncio.Event, way: str) -> None:
    @app.function(
        id="holder",
        concurrency=POOL,
        retry_policy=RetryPolicy(retries=0 if way == "fail" else 3, initial_delay=300),
    )
    async def holder(ctx: perdure.Context) -> str:
        async def body() -> bool:
            entered.set()
            await release.wait()
            return True

        await ctx.step.run("hold", body)
        if way in ("fail", "retry"):
            raise RuntimeError("let go")
        if way == "sleep":
            await ctx.step.sleep("nap", 300)
        return "done"

    @app.function(id="waiter", concurrency=POOL)
    async def waiter(ctx: perdure.Context) -> str:
        return await ctx.step.run("go", lambda: "went")


@pytest.mark.parametrize("way", WAYS)
async def test_freed_slot_wakes_other_processes(
    db_url: str, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = db_url.startswith("postgresql")
    entered, release = asyncio.Event(), asyncio.Event()
    app_a, app_b = perdure.App("a", db_url), perdure.App("b", db_url)
    define(app_a, entered, release, way)
    define(app_b, asyncio.Event(), asyncio.Event(), way)
    async with app_a, app_b:
        # B's claims: evidence that B tried the waiter while the slot was held.
        claims: list[tuple[float, int]] = []
        store = app_b.store
        claim = store.claim

        async def counted(worker: str, fids: Sequence[str], want: int, lease: float) -> Claim:
            got = await claim(worker, fids, want, lease)
            claims.append((time.monotonic(), len(got.runs)))
            return got

        monkeypatch.setattr(store, "claim", counted)
        poll: dict[str, Any] = {"poll_interval": 60.0} if pg else {}
        async with (
            app_a.worker(functions=["holder"]),
            app_b.worker(functions=["waiter"], **poll),
        ):
            held = await app_a.start("holder", {})
            await asyncio.wait_for(entered.wait(), 30)
            asked = time.monotonic()
            waiting = await app_a.start("waiter", {})

            async def b_blocked() -> bool:
                return any(at > asked and n == 0 for at, n in claims)

            await wait_for(b_blocked, "worker B's blocked claim", 30)
            assert (await app_a.get_run(waiting.run_id)).status is perdure.RunStatus.QUEUED
            freed = time.monotonic()
            if way == "cancel":
                await app_a.cancel(held.run_id)
            else:
                release.set()
            # Far sooner than B's poll interval (60 s on PostgreSQL).
            assert await waiting.result(timeout=20) == "went"
            assert time.monotonic() - freed < 20
            info = await app_a.get_run(held.run_id)
            expected = {
                "complete": perdure.RunStatus.COMPLETED,
                "fail": perdure.RunStatus.FAILED,
                "retry": perdure.RunStatus.QUEUED,
                "sleep": perdure.RunStatus.SLEEPING,
                "cancel": perdure.RunStatus.CANCELLED,
            }[way]
            assert info.status is expected
