"""Apps on the official Inngest TypeScript SDK (``inngest`` 4.x, Express) run on perdure.

A real ``perdure dev`` subprocess syncs the Node app (``tests/inngest/ts/app.js``) with ``-u``;
events go in through ``POST /e/{key}`` (and the SDK's own client); the assertions read
``GET /v1/runs/{id}`` (Inngest's API) and ``/api/v1/runs/{id}`` (perdure's, for the steps) plus
what the app saw (calls, step bodies, attempts).

Every test runs twice: with the SDK's async checkpointing on (its default; steps are posted to
``/v1/checkpoint/{runId}/async`` while the function keeps running in one request) and off
(``checkpointing: false``: one step per request, the classic protocol).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from polling import eventually
from ts_world import APP_ID, World, ts_world


def hashed(step_id: str) -> str:
    return hashlib.sha1(step_id.encode()).hexdigest()


@pytest.fixture(scope="module", params=[True, False], ids=["checkpointing", "no-checkpointing"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    mode = "on" if request.param else "off"
    with ts_world(tmp_path_factory.mktemp(f"ts-{mode}"), checkpointing=request.param) as w:
        yield w
        log = w.dev_log.read_text()
        assert "Traceback" not in log, log


@pytest.fixture
def ts(world: World) -> World:
    world.node.post("/reset")
    return world


def steps_of(w: World, run_id: str) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in w.native(run_id)["steps"]}


def test_the_app_synced_every_function(ts: World) -> None:
    assert ts.functions() == {
        f"{APP_ID}-{name}"
        for name in (
            "no-steps", "two-steps", "repeated", "sleeper", "waiter", "child", "invoker",
            "sender", "on-sent", "parallel", "big-state", "flaky-step", "saga", "non-retriable",
            "retry-after", "crash",
        )
    }  # fmt: skip
    dev = ts.http.get("/dev")
    assert dev.headers["x-inngest-server-kind"] == "dev"


def test_a_function_without_steps(ts: World) -> None:
    run = ts.ended(ts.trigger("ts/no-steps", {"who": "world"}))
    assert run["status"] == "Completed"
    assert run["output"] == {"hello": "world", "event": "ts/no-steps"}
    assert ts.state()["calls"]["no-steps"] == 1


def test_events_sent_with_the_sdks_client_start_runs(ts: World) -> None:
    (event_id,) = ts.sdk_send({"name": "ts/no-steps", "data": {"who": "sdk"}})
    (run_id,) = eventually("the run", lambda: ts.runs_of(event_id))
    assert ts.ended(run_id)["output"] == {"hello": "sdk", "event": "ts/no-steps"}


def test_two_steps_run_once_each_and_are_recorded_by_hashed_id(ts: World) -> None:
    run_id = ts.trigger("ts/two-steps")
    run = ts.ended(run_id)
    assert run["status"] == "Completed"
    assert run["output"] == [1, {"b": 2}]
    assert ts.state()["bodies"] == ["a", "b"]
    steps = steps_of(ts, run_id)
    assert set(steps) == {hashed("a"), hashed("b")}
    assert steps[hashed("b")]["output"] == {"b": 2}
    assert all(s["status"] == "completed" and s["kind"] == "run" for s in steps.values())
    # checkpointing: one request runs both steps and ends with RunComplete; without it, one
    # request per step and a last one that returns
    assert ts.state()["calls"]["two-steps"] == (1 if ts.checkpointing else 3)
    if ts.checkpointing:  # each step was posted to perdure's checkpoint route, and accepted
        assert ts.state()["checkpoints"] == [
            {"path": f"/v1/checkpoint/{run_id}/async", "status": 200, "steps": [name]}
            for name in ("a", "b")
        ]
    else:
        assert ts.state()["checkpoints"] == []


def test_state_over_4_mib_is_fetched_by_the_sdk_from_the_api(ts: World) -> None:
    run_id = ts.trigger("ts/big-state")
    run = ts.ended(run_id)
    size = 5 * 512 * 1024
    assert run["status"] == "Completed", run
    assert run["output"] == [size, size, True]
    assert ts.state()["bodies"] == ["big-a", "big-b", "read"]
    fetched = ts.state()["fetched"]
    if ts.checkpointing:  # one request ran the three steps: no call carried the state
        assert fetched == []
    else:  # the calls after big-b (to run "read", then to finish) left the state out
        paths = sorted(f["path"] for f in fetched)
        assert paths == [f"/v0/runs/{run_id}/actions"] * 2 + [f"/v0/runs/{run_id}/batch"] * 2
        assert {f["status"] for f in fetched} == {200}


def test_repeated_step_ids_get_the_sdks_suffixes(ts: World) -> None:
    run_id = ts.trigger("ts/repeated")
    assert ts.ended(run_id)["output"] == [0, 10, 20]
    assert ts.state()["bodies"] == ["r0", "r1", "r2"]
    assert set(steps_of(ts, run_id)) == {hashed("same"), hashed("same:1"), hashed("same:2")}


def test_a_sleep_suspends_the_run_and_wakes_it(ts: World) -> None:
    started = time.monotonic()
    run_id = ts.trigger("ts/sleep")
    ts.status(run_id, "sleeping")
    run = ts.ended(run_id)
    assert time.monotonic() - started >= 0.9
    assert run["output"] == "before, woke"
    steps = steps_of(ts, run_id)
    assert (steps[hashed("nap")]["kind"], steps[hashed("nap")]["status"]) == (
        "sleep",
        "completed",
    )
    assert steps[hashed("before")]["output"] == "before"
    # checkpointing: "before" is checkpointed, the same request reports the sleep; then one
    # request after it. Without: one request per step, and the last one returns.
    checkpointed = [c["steps"] for c in ts.state()["checkpoints"]]
    assert checkpointed == ([["before"]] if ts.checkpointing else [])
    assert ts.state()["calls"]["sleeper"] == (2 if ts.checkpointing else 3)


def test_wait_for_event_is_fulfilled_by_a_matching_event(ts: World) -> None:
    run_id = ts.trigger("ts/wait", {"k": 7})
    ts.status(run_id, "waiting")
    ts.send("ts/go", {"k": 8})  # the `if` does not match
    go = ts.send("ts/go", {"k": 7, "v": "yes"})
    run = ts.ended(run_id)
    assert run["status"] == "Completed"
    assert run["output"] == {"name": "ts/go", "data": {"k": 7, "v": "yes"}, "id": go}


def test_wait_for_event_times_out_with_null(ts: World) -> None:
    run_id = ts.trigger("ts/wait", {"k": 1, "timeout": "1s"})
    ts.status(run_id, "waiting")
    ts.send("ts/go", {"k": 2})  # not a match
    run = ts.ended(run_id)
    assert run["status"] == "Completed"
    assert run["output"] is None


def test_invoke_runs_the_child_and_returns_its_output(ts: World) -> None:
    run_id = ts.trigger("ts/invoke")
    run = ts.ended(run_id)
    assert run["output"] == {"doubled": 42, "event": "inngest/function.invoked"}
    (step,) = steps_of(ts, run_id).values()
    assert (step["id"], step["kind"], step["status"]) == (
        hashed("call-child"),
        "invoke",
        "completed",
    )


def test_a_failed_child_raises_in_the_parent(ts: World) -> None:
    run = ts.ended(ts.trigger("ts/invoke", {"fail": True}))
    assert run["status"] == "Completed"
    assert run["output"] == {"caught": "child says no"}


def test_send_event_goes_through_the_event_api_and_triggers_runs(ts: World) -> None:
    run_id = ts.trigger("ts/send")
    run = ts.ended(run_id)
    (sent_id,) = run["output"]["ids"]
    (on_sent,) = eventually("the run of on-sent", lambda: ts.runs_of(sent_id))
    assert ts.ended(on_sent)["output"] == {"from": run_id}


def test_parallel_steps_run_once_each(ts: World) -> None:
    run_id = ts.trigger("ts/parallel")
    run = ts.ended(run_id)
    assert run["output"] == ["p1", "p2", "after"]
    assert sorted(ts.state()["bodies"]) == ["after", "p1", "p2"]
    assert set(steps_of(ts, run_id)) == {hashed("p1"), hashed("p2"), hashed("after")}
    # plan [p1, p2], two targeted calls, a discovery that runs "after" (and, checkpointing,
    # ends the run in the same request), a last discovery without checkpointing
    assert ts.state()["calls"]["parallel"] == (4 if ts.checkpointing else 5)


def test_a_step_error_is_retried_with_the_steps_attempt(ts: World) -> None:
    run_id = ts.trigger("ts/flaky-step")
    run = ts.ended(run_id)
    assert run["output"] == "steady"
    assert ts.state()["bodies"] == ["flaky@0", "flaky@1"]
    (step,) = steps_of(ts, run_id).values()
    assert (step["status"], step["attempts"]) == ("completed", 2)


def test_a_step_out_of_retries_is_raised_in_the_function(ts: World) -> None:
    run_id = ts.trigger("ts/saga")
    run = ts.ended(run_id)
    assert run["status"] == "Completed"
    assert run["output"] == {"compensated": "always"}
    assert ts.state()["bodies"] == ["doomed@0", "doomed@1"]  # retries=1: the SDK's StepFailed
    (step,) = steps_of(ts, run_id).values()
    assert (step["status"], step["attempts"]) == ("failed", 2)


def test_non_retriable_error_in_a_step_fails_the_run_at_once(ts: World) -> None:
    run_id = ts.trigger("ts/non-retriable")
    run = ts.ended(run_id)
    assert run["status"] == "Failed"
    assert ts.state()["bodies"] == ["refuse"]
    assert run["output"]["type"] == "NonRetriableError"
    assert run["output"]["message"] == "stop here"


def test_retry_after_error_sets_the_next_attempts_delay(ts: World) -> None:
    started = time.monotonic()
    run = ts.ended(ts.trigger("ts/retry-after"))
    assert run["status"] == "Completed"
    assert run["output"] == 1
    assert time.monotonic() - started >= 0.9
    assert ts.state()["bodies"] == ["later@0", "later@1"]


def test_a_function_error_is_retried_then_fails_with_the_sdks_error(ts: World) -> None:
    run = ts.ended(ts.trigger("ts/crash"))
    assert run["status"] == "Failed"
    assert ts.state()["attempts"]["crash"] == [0, 1]
    assert (run["output"]["type"], run["output"]["message"]) == ("Error", "boom 1")
    assert run["output"]["inngest"]["name"] == "Error"
