"""An app under concurrency limits whose step bodies write a ledger, for multi-process tests.

Each step body appends ``run_id key start|end pid monotonic-ns`` to ``$LEDGER`` when it begins
and when it ends (``time.monotonic_ns()``: one clock for every process of the machine), so the
test rebuilds the intervals in which bodies really ran, including those cut short by SIGKILL.
Limits: ``$FLOWY_GLOBAL`` runs at once, one per ``event.data.k``.
"""

from __future__ import annotations

import asyncio
import os
import time

import perdure

app = perdure.App("flowy")
LEDGER = os.environ.get("LEDGER", "ledger.txt")
GLOBAL = int(os.environ.get("FLOWY_GLOBAL", "5"))
STEP_SECONDS = float(os.environ.get("FLOWY_STEP_SECONDS", "0.02"))


def _log(run_id: str, key: str, phase: str) -> None:
    with open(LEDGER, "a") as f:
        f.write(f"{run_id} {key} {phase} {os.getpid()} {time.monotonic_ns()}\n")
        f.flush()


@app.function(
    id="limited",
    concurrency=[perdure.Concurrency(GLOBAL), perdure.Concurrency(1, key="event.data.k")],
)
async def limited(ctx: perdure.Context) -> str:
    key = str(ctx.event.data["k"])

    async def body() -> str:
        _log(ctx.run_id, key, "start")
        await asyncio.sleep(STEP_SECONDS)
        _log(ctx.run_id, key, "end")
        return key

    return await ctx.step.run("body", body)
