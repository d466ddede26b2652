"""The TS SDK's async checkpointing against a scripted app: ``POST /v1/checkpoint/{runId}/async``.

The scripted app does what the TS SDK 4.x does in a checkpointing discovery call (read from
its engine): while the call is in flight it posts each step it ran to perdure's checkpoint
route (served here in-process by Starlette), then answers 206 with ``RunComplete`` or the next
asynchronous op. The failure answers are the ones the SDK reacts to: 409 (stale dispatch: it
halts), 503 and 400 (it retries, then reports the steps in its 206 answer instead).
The end-to-end tests with the real SDK are in ``test_ts_sdk.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from perdure import App, Limits
from perdure.engine.backoff import RetryPolicy
from perdure.errors import RunNotFoundError
from perdure.functions import EventTrigger
from perdure.inngest.checkpoint import CheckpointRoutes, StatusOf
from perdure.inngest.driver import InngestDriver
from perdure.inngest.functions import InngestFunction
from perdure.runtime import Worker
from perdure.types import RunInfo, RunStatus

SDK = {"x-inngest-sdk": "inngest-js:v4.24.0", "x-inngest-req-version": "2"}
URL = "http://app.invalid/api/inngest?fnId=c-fn&stepId=step"
COMPLETE = hashlib.sha1(b"complete").hexdigest()

Script = Callable[[dict[str, Any], str], Awaitable[httpx.Response]]


def h(step_id: str) -> str:
    return hashlib.sha1(step_id.encode()).hexdigest()


def fn() -> InngestFunction:
    return InngestFunction(
        id="c-fn",
        app_id="c",
        name="fn",
        url=URL,
        triggers=(EventTrigger("c/go"),),
        retry=RetryPolicy(retries=0),
    )


def step_run(name: str, data: Any) -> dict[str, Any]:
    return {"op": "StepRun", "id": h(name), "name": name, "displayName": name, "data": data}


def ops(*items: dict[str, Any]) -> httpx.Response:
    return httpx.Response(206, headers=SDK, content=orjson.dumps(list(items)))


class Harness:
    def __init__(
        self, app: App, *, checkpointing: bool = True, status_of: StatusOf | None = None
    ) -> None:
        self.app = app
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.script: Script
        self.driver = InngestDriver(
            http=httpx.AsyncClient(transport=httpx.MockTransport(self.handle)),
            checkpointing=checkpointing,
        )
        self.driver.functions["c-fn"] = fn()
        server = Starlette(routes=CheckpointRoutes(self.driver, status_of).routes())
        self.api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=server), base_url="http://perdure"
        )

    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        step = request.url.params["stepId"]
        self.calls.append((step, body))
        return await self.script(body, step)

    async def checkpoint(
        self, body: dict[str, Any], steps: list[dict[str, Any]], **override: Any
    ) -> httpx.Response:
        ctx = body["ctx"]
        payload = {
            "run_id": ctx["run_id"],
            "fn_id": ctx.get("fn_id"),
            "qi_id": ctx.get("qi_id"),
            "request_id": None,
            "generation_id": None,
            "request_started_at": int(time.time() * 1000),
            "ts": int(time.time() * 1000),
            "steps": steps,
            **override,
        }
        run_id = override.get("run_id", ctx["run_id"])
        return await self.api.post(f"/v1/checkpoint/{run_id}/async", json=payload)

    async def run(self, script: Script) -> RunInfo:
        self.script = script
        async with Worker(self.app.runtime, [self.driver], lease_seconds=30):
            handle = await self.app.start("c-fn", {"k": 1})
            end = time.monotonic() + 60
            while True:
                info = await self.app.get_run(handle.run_id)
                if str(info.status) in ("completed", "failed"):
                    return info
                assert time.monotonic() < end, f"run is {info.status}"
                await asyncio.sleep(0.02)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[App]:
    app = App("host", db_url)
    await app.open()
    try:
        yield app
    finally:
        await app.close()


async def test_checkpointed_steps_are_recorded_while_the_call_goes_on(app: App) -> None:
    harness = Harness(app)
    answers: list[tuple[int, Any]] = []
    durable: list[list[str]] = []

    async def script(body: dict[str, Any], step: str) -> httpx.Response:
        ctx = body["ctx"]
        assert (ctx["fn_id"], ctx["qi_id"]) == ("c-fn", ctx["qi_id"]) and ctx["qi_id"]
        for steps, extra in (
            ([step_run("a", 1)], {"qi_id": "not-this-claim"}),  # an older claim: stale
            ([step_run("a", 1)], {"run_id": "01H00000000000000000000000"}),  # not here
            ([{"op": "Sleep", "id": h("nap"), "name": "1s"}], {}),  # not a run step
            ([step_run("a", 1)], {}),
            ([step_run("a", 1)], {}),  # posted again: recorded once
            ([step_run("b", {"b": 2})], {}),
        ):
            r = await harness.checkpoint(body, steps, **extra)
            answers.append((r.status_code, r.json().get("recorded")))
            info = await app.get_run(ctx["run_id"])
            durable.append(sorted(s.id for s in info.steps if s.status == "completed"))
        return ops({"op": "RunComplete", "id": COMPLETE, "data": [1, {"b": 2}]})

    info = await harness.run(script)
    assert info.status == "completed"
    assert info.output == [1, {"b": 2}]
    assert [s for s, _ in harness.calls] == ["step"]  # one request ran the whole function
    assert answers == [(409, None), (503, None), (400, None), (200, 1), (200, 0), (200, 1)]
    # each checkpoint is durable (through the run's lease) before the SDK gets its answer
    assert durable[3] == [h("a")] and durable[5] == sorted([h("a"), h("b")])
    steps = {s.id: s for s in info.steps}
    assert set(steps) == {h("a"), h("b")}
    assert steps[h("b")].output == {"b": 2} and steps[h("b")].kind == "run"


async def test_a_sleep_after_checkpointed_steps_resumes_with_them_memoized(app: App) -> None:
    harness = Harness(app)

    async def script(body: dict[str, Any], step: str) -> httpx.Response:
        if h("nap") not in body["steps"]:
            r = await harness.checkpoint(body, [step_run("a", "x")])
            assert r.status_code == 200, r.text
            return ops({"op": "Sleep", "id": h("nap"), "name": "1s", "displayName": "nap"})
        # after the sleep: what was checkpointed comes back memoized, the SDK does not rerun it
        assert body["steps"][h("a")] == {"data": "x"}
        assert body["ctx"]["stack"]["stack"] == [h("a"), h("nap")]
        return ops({"op": "RunComplete", "id": COMPLETE, "data": "woke"})

    info = await harness.run(script)
    assert info.output == "woke"
    assert len(harness.calls) == 2
    assert {s.id: s.kind for s in info.steps} == {h("a"): "run", h("nap"): "sleep"}


async def test_the_fallback_reports_the_steps_in_the_answer(app: App) -> None:
    """The SDK gave up checkpointing (its posts failed): the steps come in the 206 answer."""
    harness = Harness(app)

    async def script(body: dict[str, Any], step: str) -> httpx.Response:
        if h("b") in body["steps"]:
            return httpx.Response(200, headers=SDK, content=b'"done"')
        return ops(step_run("a", 1), step_run("b", 2))

    info = await harness.run(script)
    assert info.output == "done"
    assert {s.id for s in info.steps} == {h("a"), h("b")}


async def test_without_checkpointing_the_call_carries_no_fn_id(app: App) -> None:
    harness = Harness(app, checkpointing=False)

    async def script(body: dict[str, Any], step: str) -> httpx.Response:
        assert "fn_id" not in body["ctx"] and "qi_id" not in body["ctx"]
        r = await harness.checkpoint(body, [step_run("a", 1)], qi_id="1")
        assert r.status_code == 409  # this call cannot checkpoint: its claim has no qi_id
        return httpx.Response(200, headers=SDK, content=b"null")

    info = await harness.run(script)
    assert info.status == "completed"


async def test_a_checkpoint_may_carry_a_step_over_4_mib_and_the_state_then_goes_by_api(
    db_url: str,
) -> None:
    """A step output over 4 MiB (with a larger ``Limits.step_output``) is checkpointed (bodies up
    to 8 MiB, what an answer may carry); a bigger body is a 413 (the SDK then reports the step
    in its answer); the next call leaves the 5 MiB state out (``use_api``)."""
    big = "x" * (5 * 1024 * 1024)
    app = App("host", db_url, limits=Limits(step_output=6 * 1024 * 1024))
    await app.open()
    try:
        harness = Harness(app)

        async def script(body: dict[str, Any], step: str) -> httpx.Response:
            if h("b") not in body["steps"] and not body["use_api"]:
                r = await harness.checkpoint(body, [step_run("a", big)])
                assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
                r = await harness.checkpoint(body, [step_run("b", big + big)])
                assert r.status_code == 413 and "over the limit" in r.json()["error"], r.text
                return ops(step_run("b", 2))
            assert body["use_api"] is True and body["ctx"]["use_api"] is True
            assert body["steps"] == {} and body["events"][0]["data"] == {"k": 1}
            assert body["ctx"]["stack"]["stack"] == [h("a"), h("b")]
            return httpx.Response(200, headers=SDK, content=b'"done"')

        info = await harness.run(script)
        assert info.output == "done", info.error
        assert len(harness.calls) == 2
        steps = {s.id: s for s in info.steps}
        assert steps[h("a")].output == big and steps[h("b")].output == 2
    finally:
        await app.close()


async def test_a_checkpoint_of_a_run_that_ended_is_stale_and_of_an_unknown_run_not_found(
    app: App,
) -> None:
    """A run cancelled (or else ended) while its call was in flight: 409, so that the SDK halts
    at once instead of retrying; with no such run: 404."""

    async def status_of(run_id: str) -> RunStatus | None:
        try:
            return (await app.get_run(run_id)).status
        except RunNotFoundError:
            return None

    harness = Harness(app, status_of=status_of)

    async def script(body: dict[str, Any], step: str) -> httpx.Response:
        return ops({"op": "RunComplete", "id": COMPLETE, "data": "done"})

    info = await harness.run(script)
    assert info.status == "completed"
    ((_, body),) = harness.calls
    late = await harness.checkpoint(body, [step_run("a", 1)])
    assert late.status_code == 409, late.text
    assert "has ended (completed)" in late.json()["error"]
    nobody = "01H00000000000000000000000"
    unknown = await harness.checkpoint(body, [step_run("a", 1)], run_id=nobody)
    assert unknown.status_code == 404, unknown.text
    assert list((await app.get_run(info.id)).steps) == []  # nothing recorded late
