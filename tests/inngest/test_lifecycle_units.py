"""Lifecycle events as pure data: which runs emit what, the standard error, who listens."""

from __future__ import annotations

import orjson

from perdure.functions import EventTrigger, FunctionRecord
from perdure.inngest.lifecycle import lifecycle_events, listens, standard_error
from perdure.inngest.state import record_error
from perdure.store.base import RunRow


def row(status: str, **kw: object) -> RunRow:
    event = {"id": "e1", "name": "shop/order", "data": {"n": 1}, "user": {}, "ts": 5}
    fields: dict[str, object] = {
        "id": "R1", "function_id": "app-fn", "status": status,
        "input": orjson.dumps(kw.pop("input", event)).decode(), "output": None, "error": None,
        "attempt": 0, "event_id": "e1", "idempotency_key": None, "parent_run_id": None,
        "parent_step": None, "created_at": 1.0, "started_at": 1.0, "ended_at": 2.0,
        "available_at": None, "lease_owner": None,
    }  # fmt: skip
    fields.update(kw)
    return RunRow(**fields)  # type: ignore[arg-type]


def test_a_completed_run_emits_finished_with_its_result() -> None:
    (finished,) = lifecycle_events(row("completed", output='{"ok":true}'))
    assert finished["name"] == "inngest/function.finished"
    assert finished["id"] == "R1:finished" and finished["ts"] == 2000
    data = finished["data"]
    assert data["result"] == {"ok": True} and "error" not in data
    assert data["event"]["name"] == "shop/order" and data["events"] == [data["event"]]
    assert data["_inngest"] == {"status": "Completed"}


def test_a_failed_run_emits_finished_and_failed_with_the_run_id() -> None:
    sdk = {"name": "MyError", "message": "boom", "stack": "tb", "code": "unknown"}
    finished, failed = lifecycle_events(row("failed", error=record_error(sdk, 500)))
    assert [finished["name"], failed["name"]] == [
        "inngest/function.finished",
        "inngest/function.failed",
    ]
    assert failed["id"] == "R1"
    assert failed["data"]["error"] == {
        "error": "invalid status code: 500", "name": "MyError", "message": "boom", "stack": "tb",
    }  # fmt: skip


def test_cancelled_skipped_running_and_lifecycle_triggered_runs() -> None:
    _, cancelled = lifecycle_events(row("cancelled"))
    assert cancelled["name"] == "inngest/function.cancelled" and cancelled["id"] == "R1"
    assert cancelled["data"]["error"]["message"] == "function cancelled"
    assert lifecycle_events(row("skipped")) == []
    assert lifecycle_events(row("running")) == []
    handler_input = {"id": "x", "name": "inngest/function.failed", "data": {}, "user": {}, "ts": 1}
    assert lifecycle_events(row("completed", input=handler_input)) == []
    batch = [{"id": "a", "name": "b/x", "data": {}}, {"id": "b", "name": "b/x", "data": {}}]
    (one,) = lifecycle_events(row("completed", input=batch, output="1"))
    assert one["data"]["event"]["id"] == "a" and len(one["data"]["events"]) == 2
    invoked = lifecycle_events(row("completed", parent_run_id="P", parent_step="h", output="1"))
    assert invoked[0]["data"]["correlation_id"] == "P.h"


def test_standard_errors_of_native_and_sdk_failures() -> None:
    native = orjson.dumps({"type": "ValueError", "message": "bad"}).decode()
    assert standard_error(native) == {
        "error": "ValueError: bad", "name": "ValueError", "message": "bad", "stack": None,
    }  # fmt: skip
    assert standard_error(None)["message"] == "Function execution error"
    own = record_error({"name": "E", "message": "m", "error": "E: custom"})
    assert standard_error(own)["error"] == "E: custom"
    assert standard_error(record_error({"name": "", "message": 3}))["name"] == "Error"


def record(*triggers: EventTrigger) -> FunctionRecord:
    return FunctionRecord(id="f", app="a", triggers=triggers, config={})


def test_who_listens() -> None:
    assert not listens([])
    assert not listens([record(EventTrigger("shop/*"))])
    assert listens([record(EventTrigger("inngest/function.failed", "event.data.x == 1"))])
    assert listens([record(EventTrigger("inngest/*"))])
    assert listens([record(EventTrigger("shop/a"), EventTrigger("inngest/function.finished"))])
