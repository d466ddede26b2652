"""A worker process for the workers-registry tests: it beats every ``$BEAT_SECONDS`` and
prints ``ready <worker id>`` once registered; the test kills it."""

from __future__ import annotations

import asyncio
import os
import sys

import perdure

app = perdure.App("beater", os.environ["PERDURE_DATABASE_URL"])


@app.function()
async def noop(ctx: perdure.Context) -> int:
    return 1


async def main() -> None:
    async with app.worker(heartbeat_interval=float(os.environ["BEAT_SECONDS"])) as worker:
        print(f"ready {worker.id}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
