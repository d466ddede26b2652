"""The Inngest driver against scripted apps: answers the real SDKs rarely give (or never should).

Each test's app is a function of the call request (``httpx.MockTransport``), so the exact
request the driver sent is checked and the failure paths are reached deterministically:
an unreachable app, an answer that is not from an SDK, empty answers, unknown opcodes, a
non-retriable step error, a duplicate plan.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

from perdure import App
from perdure.engine.backoff import RetryPolicy
from perdure.functions import EventTrigger
from perdure.inngest.driver import InngestDriver
from perdure.inngest.functions import InngestFunction
from perdure.runtime import Worker
from perdure.types import RunInfo

SDK = {"x-inngest-sdk": "inngest-py:v0.5.19", "x-inngest-req-version": "2"}
URL = "http://app.invalid/api/inngest?fnId=s-fn&stepId=step"

Script = Callable[[dict[str, Any], str], httpx.Response]


def fn(retries: int = 0) -> InngestFunction:
    return InngestFunction(
        id="s-fn",
        app_id="s",
        name="fn",
        url=URL,
        triggers=(EventTrigger("s/go"),),
        retry=RetryPolicy(retries=retries, initial_delay=0.05, max_delay=0.05),
    )


def ops(*items: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(206, headers={**SDK, **headers}, content=orjson.dumps(list(items)))


def done(value: Any) -> httpx.Response:
    return httpx.Response(200, headers=SDK, content=orjson.dumps(value))


class Scripted:
    """Runs ``script(body, stepId)`` for each call; keeps the calls."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.script: Script = lambda body, step: done(None)

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        step = request.url.params["stepId"]
        self.calls.append((step, body))
        return self.script(body, step)

    async def run(self, function: InngestFunction, script: Script) -> RunInfo:
        self.script = script
        driver = InngestDriver(http=httpx.AsyncClient(transport=httpx.MockTransport(self.handle)))
        driver.functions[function.id] = function
        async with Worker(self.app.runtime, [driver], lease_seconds=30):
            handle = await self.app.start(function.id, {"k": 1})
            end = time.monotonic() + 60
            while True:
                info = await self.app.get_run(handle.run_id)
                if str(info.status) in ("completed", "failed"):
                    return info
                assert time.monotonic() < end, f"run is {info.status}"
                await asyncio.sleep(0.02)


@pytest.fixture
async def scripted(db_url: str) -> AsyncIterator[Scripted]:
    app = App("host", db_url)
    await app.open()
    try:
        yield Scripted(app)
    finally:
        await app.close()


async def test_an_unreachable_app_is_retried_then_fails(scripted: Scripted) -> None:
    def refuse(body: dict[str, Any], step: str) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    info = await scripted.run(fn(retries=1), refuse)
    assert info.status == "failed"
    assert info.error is not None and info.error["type"] == "InngestCallError"
    assert [c[1]["ctx"]["attempt"] for c in scripted.calls] == [0, 1]


async def test_an_answer_without_the_sdk_header_fails(scripted: Scripted) -> None:
    info = await scripted.run(fn(), lambda body, step: httpx.Response(200, content=b"{}"))
    assert info.status == "failed"
    assert info.error is not None and "x-inngest-sdk" in info.error["message"]


async def test_repeated_empty_answers_fail_the_run(scripted: Scripted) -> None:
    info = await scripted.run(fn(), lambda body, step: ops())
    assert info.status == "failed"
    assert len(scripted.calls) == 3
    assert info.error is not None and "nothing to do" in info.error["message"]


async def test_an_unknown_opcode_fails_the_run(scripted: Scripted) -> None:
    info = await scripted.run(fn(), lambda body, step: ops({"op": "Teleport", "id": "h"}))
    assert info.status == "failed"
    assert info.error is not None and "Teleport" in info.error["message"]


async def test_a_non_retriable_step_error_is_memoized_as_the_steps_failure(
    scripted: Scripted,
) -> None:
    error = {"name": "CodedError", "message": "nested", "code": "step_nested"}

    def app(body: dict[str, Any], step: str) -> httpx.Response:
        if not body["steps"]:
            failed = {"op": "StepError", "id": "h1", "error": error}
            return ops(failed, **{"x-inngest-no-retry": "true"})
        return done(body["steps"])

    info = await scripted.run(fn(retries=3), app)
    assert info.status == "completed"
    assert info.output == {"h1": {"error": error}}  # no retry despite retries=3
    assert len(scripted.calls) == 2


async def test_a_plan_of_a_step_already_memoized_or_in_flight_is_ignored(
    scripted: Scripted,
) -> None:
    def app(body: dict[str, Any], step: str) -> httpx.Response:
        steps = body["steps"]
        if step == "p1":
            return ops({"op": "StepRun", "id": "p1", "data": 1})
        if step == "p2":
            return ops({"op": "StepRun", "id": "p2", "data": 2})
        if not steps:
            return ops({"op": "StepPlanned", "id": "p1"}, {"op": "StepPlanned", "id": "p2"})
        if "p1" in steps and "p2" in steps and "again" not in body["ctx"]["stack"]["stack"]:
            # a stale re-plan of a finished step next to a new lone step: only the new one runs
            stale = {"op": "StepPlanned", "id": "p1"}
            return ops(stale, {"op": "Sleep", "id": "again", "name": "0s"})
        return done(sorted(steps))

    info = await scripted.run(fn(), app)
    assert info.status == "completed"
    assert info.output == ["again", "p1", "p2"]
    assert [c[0] for c in scripted.calls].count("p1") == 1
    first = scripted.calls[0][1]
    assert first["ctx"]["disable_immediate_execution"] is False
    targeted = [body for step, body in scripted.calls if step == "p2"]
    assert targeted[0]["ctx"]["disable_immediate_execution"] is True
