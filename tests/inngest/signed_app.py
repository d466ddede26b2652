"""An app on the official Inngest Python SDK configured only by its environment, as a user
deploys it in production mode: ``INNGEST_DEV=0``, ``INNGEST_SIGNING_KEY`` (and maybe
``INNGEST_SIGNING_KEY_FALLBACK``), ``INNGEST_EVENT_KEY``, ``INNGEST_BASE_URL`` or the
``INNGEST_API_BASE_URL``/``INNGEST_EVENT_API_BASE_URL`` pair. ``APP_ID`` names it.

Run: ``python signed_app.py PORT`` (FastAPI on uvicorn, serving ``/api/inngest``)."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import fastapi
import uvicorn

with warnings.catch_warnings():  # the SDK's models use pydantic's deprecated class Config
    warnings.simplefilter("ignore", DeprecationWarning)
    import inngest.fast_api

    import inngest

APP_ID = os.environ["APP_ID"]
client = inngest.Inngest(app_id=APP_ID)  # everything else from the environment


@client.create_function(fn_id="two-steps", trigger=inngest.TriggerEvent(event="test/signed"))
async def two_steps(ctx: inngest.Context) -> Any:
    async def first() -> dict[str, Any]:
        return {"app": APP_ID, "n": ctx.event.data.get("n"), "pi": 3.25, "big": 1e21}

    async def second() -> str:
        return "é\u2028"  # non-ASCII and a JS line separator: canonical bodies keep them as is

    a = await ctx.step.run("first", first)
    b = await ctx.step.run("second", second)
    return {"first": a, "second": b}


@client.create_function(fn_id="sender", trigger=inngest.TriggerEvent(event="test/signed-send"))
async def sender(ctx: inngest.Context) -> Any:
    # sent by the SDK's client with INNGEST_EVENT_KEY, from inside a run
    ids = await ctx.step.send_event(
        "send", inngest.Event(name="test/signed-echo", data={"from": APP_ID})
    )
    return {"sent": len(ids)}


@client.create_function(fn_id="echo", trigger=inngest.TriggerEvent(event="test/signed-echo"))
async def echo(ctx: inngest.Context) -> Any:
    return {"echo": ctx.event.data}


@client.create_function(
    fn_id="big-state", trigger=inngest.TriggerEvent(event=f"test/signed-big-{APP_ID}")
)
async def big_state(ctx: inngest.Context) -> Any:
    # two steps of 2.5 MiB: the state is over 4 MiB, the SDK fetches it with its signing key
    size = 5 * 512 * 1024

    async def a() -> str:
        return "a" * size

    async def b() -> str:
        return "b" * size

    first = await ctx.step.run("a", a)
    second = await ctx.step.run("b", b)
    return [len(first), len(second), first == "a" * size and second == "b" * size]


app = fastapi.FastAPI()
inngest.fast_api.serve(app, client, [two_steps, sender, echo, big_state])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
