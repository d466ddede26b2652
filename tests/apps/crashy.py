"""An app whose steps write a ledger (a file the test reads), for crash tests.

Each step execution appends ``run_id step pid wall-ns monotonic-ns`` to ``$LEDGER`` *before*
doing its work (``time.time_ns()``, comparable with the database's timestamps, and
``time.monotonic_ns()``, one clock for every process of the machine), so the test sees every
execution, including those cut short by SIGKILL. The work then lasts at least
``$CRASHY_STEP_SECONDS``: a process frozen less than that after a line was written is frozen
in the middle of that step's body.
"""

from __future__ import annotations

import asyncio
import os
import time

import perdure

app = perdure.App("crashy")
LEDGER = os.environ.get("LEDGER", "ledger.txt")
STEPS = int(os.environ.get("CRASHY_STEPS", "8"))
STEP_SECONDS = float(os.environ.get("CRASHY_STEP_SECONDS", "0.05"))


def _log(run_id: str, step: str) -> None:
    with open(LEDGER, "a") as f:
        f.write(f"{run_id} {step} {os.getpid()} {time.time_ns()} {time.monotonic_ns()}\n")
        f.flush()


@app.function()
async def chain(ctx: perdure.Context) -> int:
    total = int(ctx.event.data["seed"])
    for i in range(STEPS):

        async def step(i: int = i, total: int = total) -> int:
            _log(ctx.run_id, f"s{i}")
            await asyncio.sleep(STEP_SECONDS)
            return total * 3 + i

        total = await ctx.step.run(f"s{i}", step) % 1_000_003
    return total


def expected(seed: int, steps: int = STEPS) -> int:
    """What ``chain`` returns for ``seed``."""
    total = seed
    for i in range(steps):
        total = (total * 3 + i) % 1_000_003
    return total
