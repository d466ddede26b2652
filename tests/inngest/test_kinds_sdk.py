"""``step.invoke`` across kinds, both ways, and an app on the Python SDK's Flask integration,
on one real ``perdure dev`` (SQLite) shared by the module: native functions (``kinds_app:app``,
in the server's process), an Inngest-SDK app on FastAPI and one on Flask (in this process).

- An SDK function invokes native functions (by ``invoke_by_id(app_id="native", ...)``, the
  SDK's ``<app>-<function>`` id): their output comes back, their failure and a timeout are
  the SDK's ``StepError``; the native side sees the data it was invoked with.
- A native function ``ctx.step.invoke``-s an SDK function: its output, its failure and a timeout
  are perdure's; the SDK side sees ``inngest/function.invoked`` and the data.
- Flask (sync functions, werkzeug's threaded server): no steps, two steps, a sleep, a step
  error retried.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dev_world import DevServer, FlaskServed
from kinds_app import FAST_APP, FLASK_APP, Seen, fastapi_app, flask_app
from sdk_apps import Served, free_port

pytestmark = pytest.mark.timeout(180)

TIMED_OUT = "Timed out waiting for invoked function to complete"


def hashed(step_id: str) -> str:
    return hashlib.sha1(step_id.encode()).hexdigest()


@dataclass
class World:
    dev: DevServer
    seen: Seen


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("kinds")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    seen = Seen()
    seen.release.set()  # "durable" is the SIGKILL test's
    with Served(fastapi_app(seen, origin)) as fast, FlaskServed(flask_app(seen, origin)) as fl:
        dev = DevServer(
            tmp,
            port,
            f"sqlite:///{tmp}/kinds.db",
            [f"{fast.url}/api/inngest", f"{fl.url}/api/inngest"],
            app_spec="kinds_app:app",
        )
        dev.start()
        try:
            dev.synced(FAST_APP, 4)
            dev.synced(FLASK_APP, 4)
            yield World(dev, seen)
        finally:
            dev.close()
            seen.close()


# ---------------------------------------------------------------------- SDK -> native


def test_an_sdk_function_gets_a_native_functions_output(world: World) -> None:
    run_id = world.dev.trigger("kinds/call-native", {"target": "double", "n": 21})
    run = world.dev.ended(run_id)
    assert run["status"] == "completed", run["error"]
    got = run["output"]["got"]
    assert got["doubled"] == 42
    # The native side sees the data the SDK invoked it with.
    assert got["data"] == {"n": 21, "from": run_id}
    assert got["name"] == "perdure/function.invoked"
    (child,) = world.dev.children(run_id)
    assert (child["function_id"], child["status"]) == ("native-double", "completed")
    (step,) = run["steps"]
    assert (step["id"], step["kind"], step["status"]) == (hashed("call"), "invoke", "completed")


def test_an_sdk_reaches_a_native_function_by_its_app_name_and_id(world: World) -> None:
    run_id = world.dev.trigger("kinds/call-native", {"app": "kinds", "target": "halve", "n": 9})
    run = world.dev.ended(run_id)
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {"got": {"halved": 4.5}}
    (child,) = world.dev.children(run_id)
    assert child["function_id"] == "halve"


def test_a_native_failure_is_a_step_error_in_the_sdk_function(world: World) -> None:
    run = world.dev.ended(world.dev.trigger("kinds/call-native", {"target": "fails", "n": 5}))
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {"caught": {"name": "ValueError", "message": "native says no to 5"}}


def test_an_invoke_of_a_native_function_times_out_in_the_sdk_function(world: World) -> None:
    started = time.monotonic()
    run_id = world.dev.trigger("kinds/call-native", {"target": "slow", "n": 0, "timeout": 1})
    run = world.dev.ended(run_id)
    assert time.monotonic() - started >= 0.9
    assert run["status"] == "completed", run["error"]
    assert run["output"]["caught"]["message"] == TIMED_OUT
    (child,) = world.dev.children(run_id)
    assert child["function_id"] == "native-slow"


def test_an_sdk_invoke_of_an_unknown_native_function_fails_its_step(world: World) -> None:
    run = world.dev.ended(world.dev.trigger("kinds/call-native", {"target": "nope", "n": 0}))
    assert run["status"] == "completed", run["error"]
    caught = run["output"]["caught"]
    assert caught["name"] == "FunctionNotFoundError" and "native-nope" in caught["message"]


# ---------------------------------------------------------------------- native -> SDK


def test_a_native_function_gets_an_sdk_functions_output(world: World) -> None:
    payload = {"n": 7, "tag": "ok"}
    run_id = world.dev.trigger(
        "kinds/native-invoke", {"target": f"{FAST_APP}-sdk-child", "payload": payload}
    )
    run = world.dev.ended(run_id)
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {"got": {"tripled": 21}}
    # The SDK sees the Inngest name of the invocation event, with the data it was given.
    assert world.seen.events["ok"]["name"] == "inngest/function.invoked"
    assert world.seen.events["ok"]["data"] == payload
    (child,) = world.dev.children(run_id)
    assert (child["function_id"], child["status"]) == (f"{FAST_APP}-sdk-child", "completed")


def test_an_sdk_failure_is_a_step_error_in_the_native_function(world: World) -> None:
    run_id = world.dev.trigger(
        "kinds/native-invoke",
        {"target": f"{FAST_APP}-sdk-child", "payload": {"n": 1, "tag": "bad", "fail": True}},
    )
    run = world.dev.ended(run_id)
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {
        "caught": {"type": "NonRetriableError", "message": "sdk child says no"}
    }
    (child,) = world.dev.children(run_id)
    assert child["status"] == "failed"


def test_an_invoke_of_an_sdk_function_times_out_in_the_native_function(world: World) -> None:
    started = time.monotonic()
    run_id = world.dev.trigger(
        "kinds/native-invoke",
        {"target": f"{FAST_APP}-sdk-slow", "payload": {}, "timeout": 1},
    )
    run = world.dev.ended(run_id)
    assert time.monotonic() - started >= 0.9
    assert run["status"] == "completed", run["error"]
    assert run["output"]["caught"]["type"] == "InvokeTimeoutError"
    (child,) = world.dev.children(run_id)
    assert child["function_id"] == f"{FAST_APP}-sdk-slow"


# ---------------------------------------------------------------------- Flask


def test_flask_a_function_without_steps(world: World) -> None:
    run = world.dev.ended(world.dev.trigger("flask/no-steps", {"who": "flask"}))
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {"hello": "flask", "event": "flask/no-steps"}
    assert run["steps"] == []
    assert world.seen.calls["no-steps"] == 1


def test_flask_two_steps_run_once_each(world: World) -> None:
    run = world.dev.ended(world.dev.trigger("flask/two-steps"))
    assert run["status"] == "completed", run["error"]
    assert run["output"] == [1, {"b": 2}]
    assert [b for b in world.seen.bodies if b.startswith("flask-")] == ["flask-a", "flask-b"]
    assert world.seen.calls["two-steps"] == 3  # discovery runs a, then b, then returns
    assert {s["id"]: s["status"] for s in run["steps"]} == {
        hashed("a"): "completed",
        hashed("b"): "completed",
    }


def test_flask_a_sleep_suspends_the_run_and_wakes_it(world: World) -> None:
    started = time.monotonic()
    run_id = world.dev.trigger("flask/sleep")
    world.dev.until(run_id, lambda r: r["status"] == "sleeping", "to sleep")
    run = world.dev.ended(run_id)
    assert time.monotonic() - started >= 0.9
    assert run["status"] == "completed", run["error"]
    assert run["output"] == "woke"
    (nap,) = run["steps"]
    assert (nap["id"], nap["kind"], nap["status"]) == (hashed("nap"), "sleep", "completed")
    assert world.seen.calls["sleeper"] == 2


def test_flask_a_step_error_is_retried(world: World) -> None:
    run = world.dev.ended(world.dev.trigger("flask/flaky"))
    assert run["status"] == "completed", run["error"]
    assert run["output"] == "steady"
    assert [b for b in world.seen.bodies if b.startswith("flaky@")] == ["flaky@0", "flaky@1"]
    (step,) = run["steps"]
    assert (step["status"], step["attempts"]) == ("completed", 2)
