"""The Inngest driver end to end with the real Python SDK (inngest 0.5.x on FastAPI).

The app syncs itself as with a dev server (its own registration body is parsed into the
functions the driver hosts); runs start from perdure events on a SQLite or PostgreSQL database
and are executed by a perdure ``Worker`` with the ``InngestDriver``. The assertions are what a
user sees: run status and output, the recorded steps, the step bodies and the number of
requests the app got (the same counts as the SDK's own test-suite).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from sdk_app import APP_ID, State, serve, sync

from perdure import App, Event
from perdure.inngest.driver import InngestDriver
from perdure.inngest.functions import InngestFunction, parse_register
from perdure.runtime import Worker
from perdure.types import RunInfo

DEADLINE = 60.0


def fid(name: str) -> str:
    return f"{APP_ID}-{name}"


def hashed(step_id: str) -> str:
    return hashlib.sha1(step_id.encode()).hexdigest()


@dataclass
class Harness:
    app: App
    state: State
    driver: InngestDriver
    registration: dict[str, Any]
    worker: Worker

    async def trigger(self, name: str, data: dict[str, Any] | None = None) -> str:
        """Send an event and return the id of the one run it starts."""
        (sent,) = await self.app.send_detailed([Event(name=name, data=data or {})])
        assert len(sent.run_ids) == 1, f"{name} started {sent.run_ids}"
        run_id: str = sent.run_ids[0]
        return run_id

    async def ended(self, run_id: str) -> RunInfo:
        return await self.status(run_id, {"completed", "failed", "cancelled"})

    async def status(self, run_id: str, statuses: set[str]) -> RunInfo:
        end = time.monotonic() + DEADLINE
        while True:
            info = await self.app.get_run(run_id)
            if str(info.status) in statuses:
                return info
            if time.monotonic() > end:
                pytest.fail(f"run {run_id} is {info.status}, not {statuses}")
            await asyncio.sleep(0.02)


def output(info: RunInfo) -> Any:
    return info.output


@pytest.fixture
async def harness(db_url: str) -> AsyncIterator[Harness]:
    app = App("host", db_url)
    await app.open()
    loop = asyncio.get_running_loop()

    async def forward(batch: list[dict[str, Any]]) -> list[str]:
        events = [
            Event(
                name=e["name"],
                data=e.get("data") or {},
                id=e.get("id") or "",
                ts=int(e.get("ts") or 0),
                user=e.get("user") or {},
            )
            for e in batch
        ]
        return await app.send(events)

    state = State()
    try:
        with serve(state, forward, loop) as (url, fastapi_app):
            registration = await sync(url, fastapi_app)
            driver = InngestDriver()
            driver.replace_app(parse_register(registration))
            worker = Worker(app.runtime, [driver], lease_seconds=30)
            await worker.start()
            harness = Harness(app, state, driver, registration, worker)
            try:
                yield harness
            finally:
                await harness.worker.stop()
    finally:
        await app.close()


async def test_the_registration_body_of_the_sdk_builds_the_functions(harness: Harness) -> None:
    reg = harness.registration
    assert reg["appname"] == APP_ID
    assert fid("two-steps") in harness.driver.functions
    fn = harness.driver.functions[fid("flaky-step")]
    assert fn.retry.retries == 2
    assert "fnId=iexec-flaky-step" in fn.url


async def test_a_function_without_steps(harness: Harness) -> None:
    run_id = await harness.trigger("test/no-steps", {"who": "world"})
    info = await harness.ended(run_id)
    assert info.status == "completed"
    assert output(info) == {"hello": "world", "event": "test/no-steps"}
    assert harness.state.calls["no-steps"] == 1
    assert info.steps == []


async def test_two_steps_run_once_each_and_are_recorded_by_hashed_id(harness: Harness) -> None:
    run_id = await harness.trigger("test/two-steps")
    info = await harness.ended(run_id)
    assert info.status == "completed"
    assert output(info) == [1, {"b": 2}]
    assert harness.state.bodies == ["a", "b"]
    # discovery (runs a) + discovery (runs b) + discovery (returns)
    assert harness.state.calls["two-steps"] == 3
    steps = {s.id: s for s in info.steps}
    assert set(steps) == {hashed("a"), hashed("b")}
    assert steps[hashed("a")].status == "completed"
    assert steps[hashed("b")].output == {"b": 2}


async def test_repeated_step_ids_get_the_sdks_suffixes(harness: Harness) -> None:
    run_id = await harness.trigger("test/repeated")
    info = await harness.ended(run_id)
    assert output(info) == [0, 10, 20]
    assert harness.state.bodies == ["r0", "r1", "r2"]
    assert {s.id for s in info.steps} == {hashed("same"), hashed("same:1"), hashed("same:2")}


async def test_a_sleep_suspends_the_run_and_wakes_it(harness: Harness) -> None:
    started = time.monotonic()
    run_id = await harness.trigger("test/sleep")
    await harness.status(run_id, {"sleeping"})
    info = await harness.ended(run_id)
    assert time.monotonic() - started >= 0.9
    assert output(info) == "woke"
    (nap,) = info.steps
    assert (nap.id, nap.kind, nap.status) == (hashed("nap"), "sleep", "completed")
    assert harness.state.calls["sleeper"] == 2  # reports the sleep; returns after it


async def test_wait_for_event_is_fulfilled_by_a_matching_event(harness: Harness) -> None:
    run_id = await harness.trigger("test/wait", {"k": 7})
    await harness.status(run_id, {"waiting"})
    await harness.app.send(Event(name="test/go", data={"k": 8}))  # the `if` does not match
    [go] = await harness.app.send(Event(name="test/go", data={"k": 7, "v": "yes"}))
    info = await harness.ended(run_id)
    assert info.status == "completed"
    assert output(info) == {"name": "test/go", "data": {"k": 7, "v": "yes"}, "id": go}


async def test_wait_for_event_times_out_with_none(harness: Harness) -> None:
    run_id = await harness.trigger("test/wait", {"k": 1, "timeout": 1})
    await harness.status(run_id, {"waiting"})
    await harness.app.send(Event(name="test/go", data={"k": 2}))  # not a match
    info = await harness.ended(run_id)
    assert info.status == "completed"
    assert output(info) is None


async def test_invoke_runs_the_child_and_returns_its_output(harness: Harness) -> None:
    run_id = await harness.trigger("test/invoke")
    info = await harness.ended(run_id)
    assert info.status == "completed"
    assert output(info) == {"doubled": 42, "event": "inngest/function.invoked"}
    (step,) = info.steps
    assert (step.id, step.kind, step.status) == (hashed("call-child"), "invoke", "completed")
    children = await harness.app.list_runs(function=fid("child"))
    assert [c.status for c in children] == ["completed"]


async def test_a_failed_child_raises_step_error_in_the_parent(harness: Harness) -> None:
    run_id = await harness.trigger("test/invoke", {"fail": True})
    info = await harness.ended(run_id)
    assert info.status == "completed"
    assert output(info) == {"caught": "child says no"}


async def test_send_event_goes_through_the_event_api_and_triggers_runs(harness: Harness) -> None:
    run_id = await harness.trigger("test/send")
    info = await harness.ended(run_id)
    assert info.status == "completed"
    (sent_id,) = output(info)["ids"]
    (on_sent,) = await harness.app.list_runs(function=fid("on-sent"))
    done = await harness.ended(on_sent.id)
    assert output(done) == {"from": run_id}
    assert done.event.id == sent_id


async def test_parallel_steps_are_planned_then_run_by_targeted_calls(harness: Harness) -> None:
    run_id = await harness.trigger("test/parallel")
    info = await harness.ended(run_id)
    assert output(info) == ["p1", "p2", "after"]
    # plan [p1, p2], 2 targeted calls, discovery (runs "after" at once), final discovery
    assert harness.state.calls["parallel"] == 5
    assert sorted(harness.state.bodies) == ["after", "p1", "p2"]


async def test_two_sequential_groups_take_seven_requests(harness: Harness) -> None:
    run_id = await harness.trigger("test/groups")
    info = await harness.ended(run_id)
    assert output(info) == "done"
    assert harness.state.calls["groups"] == 7  # as the SDK's parallel_mode_default test


async def test_race_mode_discovers_after_each_completion(harness: Harness) -> None:
    run_id = await harness.trigger("test/race")
    info = await harness.ended(run_id)
    assert output(info) == "raced"
    assert harness.state.bodies == ["a.1", "a.2", "b.1", "b.2"]
    assert harness.state.calls["race"] == 9  # as the SDK's parallel_mode_race test


async def test_a_step_error_is_retried_with_the_steps_attempt(harness: Harness) -> None:
    run_id = await harness.trigger("test/flaky-step")
    info = await harness.ended(run_id)
    assert output(info) == "steady"
    assert harness.state.bodies == ["flaky@0", "flaky@1"]
    (step,) = info.steps
    assert (step.status, step.attempts) == ("completed", 2)


async def test_a_step_out_of_retries_is_raised_in_the_function(harness: Harness) -> None:
    run_id = await harness.trigger("test/saga")
    info = await harness.ended(run_id)
    assert info.status == "completed"
    assert output(info) == {"compensated": "always"}
    assert harness.state.bodies == ["doomed@0", "doomed@1"]  # retries=1: the SDK's StepFailed
    (step,) = info.steps
    assert (step.status, step.attempts) == ("failed", 2)


async def test_non_retriable_error_fails_the_run_at_once(harness: Harness) -> None:
    run_id = await harness.trigger("test/non-retriable")
    info = await harness.ended(run_id)
    assert info.status == "failed"
    assert harness.state.calls["non-retriable"] == 1
    assert info.error is not None
    assert info.error["type"] == "NonRetriableError"
    assert info.error["message"] == "stop here"


async def test_retry_after_error_sets_the_next_attempts_delay(harness: Harness) -> None:
    started = time.monotonic()
    run_id = await harness.trigger("test/retry-after")
    info = await harness.ended(run_id)
    assert info.status == "completed"
    assert output(info) == 1
    assert time.monotonic() - started >= 0.9
    # the retried call is attempt 1; after the step's progress the next call starts at 0
    assert harness.state.attempts["retry-after"] == [0, 1, 0]


async def test_a_function_error_is_retried_then_fails_with_the_sdks_error(
    harness: Harness,
) -> None:
    run_id = await harness.trigger("test/crash")
    info = await harness.ended(run_id)
    assert info.status == "failed"
    assert harness.state.attempts["crash"] == [0, 1]
    assert info.error is not None
    assert (info.error["type"], info.error["message"]) == ("RuntimeError", "boom 1")
    raw = await harness.app.runtime.store.get_run(run_id)
    assert raw is not None and raw.error is not None
    sdk_error = orjson.loads(raw.error)["inngest"]
    assert sdk_error["code"] == "unknown"
    assert sdk_error["name"] == "RuntimeError"


async def test_a_group_with_a_sleep_waits_for_both_then_discovers(harness: Harness) -> None:
    run_id = await harness.trigger("test/mixed")
    await harness.status(run_id, {"sleeping"})
    info = await harness.ended(run_id)
    assert output(info) == ["m1", None]
    # plan [m1, sleep], targeted m1, (suspended until the sleep ends) discovery
    assert harness.state.calls["mixed"] == 3
    assert {s.id: s.kind for s in info.steps} == {hashed("m1"): "run", hashed("m-nap"): "sleep"}


async def test_an_invoke_that_times_out_fails_the_step_as_inngest_names_it(
    harness: Harness,
) -> None:
    run_id = await harness.trigger("test/impatient")
    info = await harness.ended(run_id)
    assert info.status == "failed"
    raw = await harness.app.runtime.store.get_run(run_id)
    assert raw is not None and raw.error is not None
    sdk_error = orjson.loads(raw.error)["inngest"]
    assert sdk_error["code"] == "step_errored"
    assert sdk_error["message"] == "Timed out waiting for invoked function to complete"
    (step,) = info.steps
    assert (step.kind, step.status) == ("invoke", "failed")


async def test_another_process_resumes_a_run_from_the_database(harness: Harness) -> None:
    """The worker stops while the run sleeps; a new worker whose driver knows the functions
    only from their stored records finishes it, without running a recorded step again."""
    run_id = await harness.trigger("test/mixed")
    await harness.status(run_id, {"sleeping"})
    await harness.worker.stop()
    records = await harness.app.runtime.store.list_functions()
    rebuilt = [f for f in (InngestFunction.from_record(r) for r in records) if f is not None]
    assert {f.id for f in rebuilt} == set(harness.driver.functions)
    driver = InngestDriver()
    driver.functions.update({f.id: f for f in rebuilt})
    harness.worker = Worker(harness.app.runtime, [driver], lease_seconds=30)
    await harness.worker.start()
    info = await harness.ended(run_id)
    assert output(info) == ["m1", None]
    assert harness.state.bodies == ["m1"]
    assert driver.requests == 1  # the discovery after the sleep
