"""The app of ``bench/inngest_bench.py``: a 3-step function on the official Inngest Python SDK
(FastAPI, uvicorn), in its own process so that perdure and the app never share a GIL.

    python bench/inngest_app.py PORT PERDURE_ORIGIN

``GET /stats`` answers how many SDK requests the app served, the seconds spent inside them (an
ASGI middleware around the SDK's route: from the first byte of the request body read to the
last byte of the answer written) and the process's CPU seconds.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

import fastapi
import uvicorn

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import inngest.fast_api

    import inngest

Scope = dict[str, Any]


class Timed:
    """ASGI middleware: the time spent answering ``/api/inngest`` requests."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0
        self.seconds = 0.0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/inngest"):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.seconds += time.perf_counter() - began
            self.requests += 1


def build(origin: str) -> Any:
    client = inngest.Inngest(
        app_id="bench", is_production=False, api_base_url=origin, event_api_base_url=origin
    )

    async def noop() -> None:
        return None

    @client.create_function(fn_id="three", trigger=inngest.TriggerEvent(event="bench/three"))
    async def three(ctx: inngest.Context) -> int:
        await ctx.step.run("a", noop)
        await ctx.step.run("b", noop)
        await ctx.step.run("c", noop)
        return 1

    api = fastapi.FastAPI()
    inngest.fast_api.serve(api, client, [three])
    timed = Timed(api)

    @api.get("/stats")
    async def stats() -> dict[str, float]:
        return {
            "requests": timed.requests,
            "seconds": timed.seconds,
            "cpu": time.process_time(),
        }

    return timed


def main() -> None:
    port, origin = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(build(origin), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
