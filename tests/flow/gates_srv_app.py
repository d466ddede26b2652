"""The app served by tests/flow/test_gates_api.py (``perdure dev --app gates_srv_app:app``)."""

from __future__ import annotations

from typing import Any

import perdure

app = perdure.App("gates")


@app.function(
    id="welcome",
    trigger=perdure.event("gates/signed-up"),
    rate_limit=perdure.RateLimit(1, "1h", key="event.data.user"),
)
async def welcome(ctx: perdure.Context) -> Any:
    return ctx.event.data["user"]


@app.function(id="digest", trigger=perdure.event("gates/mail"), batch=perdure.Batch(2, "1h"))
async def digest(ctx: perdure.Context) -> Any:
    return [e.data["n"] for e in ctx.events]
