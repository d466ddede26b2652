"""A worker app for the lifecycle recovery test: a function that fails once the file named by
LCRASH_GATE exists, and one triggered by its ``inngest/function.failed`` event (the database
comes from PERDURE_DATABASE_URL)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import perdure

app = perdure.App("lcrash")


@app.function(id="breaks", retries=0)
def breaks(ctx: perdure.Context) -> None:  # sync: runs on a thread, may block
    gate = Path(os.environ["LCRASH_GATE"])
    while not gate.exists():
        time.sleep(0.02)
    raise ValueError("broke on purpose")


@app.function(
    id="on-failed",
    trigger=perdure.event("inngest/function.failed", "event.data.function_id == 'breaks'"),
)
async def on_failed(ctx: perdure.Context) -> str:
    run_id: str = ctx.event.data["run_id"]
    return run_id
