"""Streamed answers (the SDK's ``streaming=force``: HTTP 201, keep-alive bytes, then the real
answer wrapped in ``{"status", "headers", "body"}``) with the real Python SDK on FastAPI: runs
complete, step errors retry and function errors fail exactly as unstreamed."""

from __future__ import annotations

import warnings
from typing import Any

import fastapi
from life_app import hosted
from sdk_apps import capture_registrations, client

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import inngest.fast_api
    from inngest._internal.const import Streaming

    import inngest

APP_ID = "istream"


class Statuses:
    """ASGI middleware: the status of every answer to a call (POST on the serve path)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and scope["path"] == "/api/inngest":
                self.seen.append(message["status"])
            await send(message)

        await self.app(scope, receive, sending)


def build(origin: str, tries: dict[str, int], statuses: list[Statuses]) -> Any:
    c = client(APP_ID, origin)

    @c.create_function(fn_id="two", trigger=inngest.TriggerEvent(event="stream/two"))
    async def two(ctx: inngest.Context) -> Any:
        async def a() -> int:
            return 1

        async def flaky() -> int:
            tries["flaky"] = tries.get("flaky", 0) + 1
            if tries["flaky"] == 1:
                raise ValueError("first try fails")
            return 2

        return [await ctx.step.run("a", a), await ctx.step.run("flaky", flaky)]

    @c.create_function(
        fn_id="broken", trigger=inngest.TriggerEvent(event="stream/broken"), retries=0
    )
    async def broken(ctx: inngest.Context) -> Any:
        raise inngest.NonRetriableError("broken on purpose")

    api = fastapi.FastAPI()
    inngest.fast_api.serve(api, c, [two, broken], streaming=Streaming.FORCE)
    capture_registrations(api)
    wrapped = Statuses(api)
    wrapped.state = api.state  # type: ignore[attr-defined]  # the harness reads registrations
    statuses.append(wrapped)
    return wrapped


async def test_streamed_answers_run_like_plain_ones(db_url: str) -> None:
    tries: dict[str, int] = {}
    statuses: list[Statuses] = []
    async with hosted(db_url, lambda origin: build(origin, tries, statuses)) as h:
        done = await h.ended(await h.trigger("stream/two"))
        assert (str(done.status), done.output) == ("completed", [1, 2]), done.error
        assert tries["flaky"] == 2  # the step error was retried
        failed = await h.ended(await h.trigger("stream/broken"))
        assert str(failed.status) == "failed"
        assert failed.error is not None and "broken on purpose" in str(failed.error), failed.error
    (seen,) = statuses
    assert seen.seen and set(seen.seen) == {201}, seen.seen  # every answer was streamed
