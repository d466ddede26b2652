"""The Inngest driver's pure parts: answers and opcodes, durations, memoized shapes, the call."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perdure.errors import InvalidInputError
from perdure.inngest import opcodes as oc
from perdure.inngest.call import (
    DISCOVERY,
    MAX_INLINE_STATE,
    MAX_REQUEST_BODY,
    build_call,
    sdk_event,
    step_url,
)
from perdure.inngest.state import (
    INVOKE_TIMEOUT_ERROR,
    memo,
    record_error,
    sdk_error,
    stack_order,
)
from perdure.store.base import StoredStep

NOW = 1_800_000_000.0
SDK = {"X-Inngest-SDK": "inngest-py:v0.5.19", "X-Inngest-Req-Version": "2"}


def parse(status: int, body: object, **headers: str) -> oc.Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    response, _ = oc.parse_response(status, {**SDK, **headers}, raw, NOW)
    return response


def test_200_is_the_functions_output_and_the_version_is_read() -> None:
    response, version = oc.parse_response(200, SDK, b'{"a":1}', NOW)
    assert response == oc.Completed('{"a":1}')
    assert version == 2


def test_206_ops_are_parsed_case_insensitively_and_extra_fields_ignored() -> None:
    response = parse(
        206,
        [
            {"op": "steprun", "id": "h1", "data": {"x": 1}, "hashedId": "junk", "timing": {}},
            {"op": "None"},
            {"op": "StepPlanned", "id": "h2", "displayName": "p", "opts": {"parallelMode": "race"}},
        ],
    )
    assert isinstance(response, oc.Reported)
    first, second = response.ops
    assert (first.op, first.id, first.data, first.has_data) == ("StepRun", "h1", {"x": 1}, True)
    assert (second.op, second.label, second.race) == ("StepPlanned", "p", True)


def test_a_206_without_the_sdk_header_is_not_trusted() -> None:
    response, _ = oc.parse_response(206, {}, b"[]", NOW)
    assert isinstance(response, oc.Errored)
    assert "x-inngest-sdk" in response.error["message"]
    assert response.retriable


def test_error_answers_carry_no_retry_and_retry_after() -> None:
    body = {"code": "non_retriable_error", "message": "no", "name": "NonRetriableError"}
    response = parse(500, body, **{"x-inngest-no-retry": "true"})
    assert isinstance(response, oc.Errored)
    assert (response.status, response.retriable, response.error) == (500, False, body)
    later = parse(500, {"message": "m", "name": "RetryAfterError"}, **{"Retry-After": "30"})
    assert isinstance(later, oc.Errored)
    assert (later.retriable, later.retry_after) == (True, 30.0)


def test_an_error_body_that_is_not_json_still_fails_with_a_message() -> None:
    response = parse(502, b"<html>bad gateway</html>")
    assert isinstance(response, oc.Errored)
    assert response.error == {"name": "Error", "message": "<html>bad gateway</html>"}


def test_a_streamed_answer_is_unwrapped() -> None:
    ops = '[{"op":"StepError","id":"h","error":{"name":"E","message":"m"}}]'
    inner = {"status": 206, "headers": {"X-Inngest-No-Retry": "true"}, "body": ops}
    response = parse(201, b"   \n " + orjson.dumps(inner))
    assert isinstance(response, oc.Reported)
    assert not response.retriable
    (op,) = response.ops
    assert op.error == {"name": "E", "message": "m"}


def test_retry_after_accepts_seconds_and_dates_and_is_clamped() -> None:
    iso = datetime.fromtimestamp(NOW + 90, UTC).isoformat().replace("+00:00", "Z")
    assert oc.retry_after_seconds(iso, NOW) == pytest.approx(90.0)
    assert oc.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 1.0  # past
    assert oc.retry_after_seconds("0", NOW) == 1.0
    assert oc.retry_after_seconds("9999999", NOW) == 86400.0
    assert oc.retry_after_seconds("soon", NOW) is None
    assert oc.retry_after_seconds(None, NOW) is None


@given(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False))
def test_retry_after_is_always_within_its_bounds(offset: float) -> None:
    iso = datetime.fromtimestamp(NOW + offset, UTC).isoformat()
    delay = oc.retry_after_seconds(iso, NOW)
    assert delay is not None
    assert oc.RETRY_AFTER_MIN <= delay <= oc.RETRY_AFTER_MAX
    if oc.RETRY_AFTER_MIN + 1e-3 < offset < oc.RETRY_AFTER_MAX - 1e-3:
        assert math.isclose(delay, offset, abs_tol=1e-3)


def sleep(name: str, **opts: str) -> oc.Op:
    return oc.Op("Sleep", "h", name=name, opts=dict(opts))


def test_sleep_takes_an_instant_or_a_duration() -> None:
    at = datetime.fromtimestamp(NOW + 2.5, UTC).isoformat(timespec="milliseconds")
    assert oc.sleep_until(sleep(at.replace("+00:00", "Z")), NOW) == pytest.approx(NOW + 2.5)
    assert oc.sleep_until(sleep("1m30s"), NOW) == NOW + 90
    assert oc.sleep_until(sleep("ignored", duration="2s"), NOW) == NOW + 2
    past = datetime.fromtimestamp(NOW - 60, UTC).isoformat()
    assert oc.sleep_until(sleep(past), NOW) == NOW  # wakes at once
    with pytest.raises(InvalidInputError):
        oc.sleep_until(sleep("400d"), NOW)
    with pytest.raises(InvalidInputError):
        oc.sleep_until(sleep("whenever"), NOW)


@given(st.integers(min_value=0, max_value=365 * 86400))
def test_a_sleep_for_whole_seconds_wakes_exactly_then(seconds: int) -> None:
    text = f"{seconds}s"
    assert oc.sleep_until(sleep(text), NOW) == NOW + seconds
    at = datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=seconds)
    assert oc.sleep_until(sleep(at.isoformat()), NOW) == pytest.approx(NOW + seconds)


def step(key: str, kind: str, status: str, **fields: object) -> StoredStep:
    return StoredStep(
        key,
        int(str(fields.get("seq", 0))),
        kind,
        status,
        fields.get("output"),  # type: ignore[arg-type]
        fields.get("error"),  # type: ignore[arg-type]
        1,
        None,
        ended_at=fields.get("ended_at"),  # type: ignore[arg-type]
    )


def test_memoized_shapes_per_step_kind() -> None:
    event = '{"id":"e","name":"x","data":{},"user":{},"ts":1}'
    assert memo(step("a", "run", "completed", output='{"v":1}')) == {"data": {"v": 1}}
    assert memo(step("a", "run", "completed", output=None)) == {"data": None}
    assert memo(step("s", "sleep", "completed")) is None
    assert memo(step("w", "wait", "completed", output=event)) == orjson.loads(event)
    assert memo(step("w", "wait", "completed", output="null")) is None
    assert memo(step("i", "invoke", "completed", output="3")) == {"data": 3}


def test_errors_keep_the_sdks_object_and_read_perdures_own() -> None:
    sdk = {"name": "ValueError", "message": "m", "stack": "tb", "code": "unknown"}
    recorded = record_error(sdk)
    assert orjson.loads(recorded)["type"] == "ValueError"
    assert memo(step("a", "run", "failed", error=recorded)) == {"error": sdk}
    native = '{"type":"KeyError","message":"k"}'
    assert sdk_error(native) == {"name": "KeyError", "message": "k"}
    timeout = '{"type":"InvokeTimeoutError","message":"the invoked run did not finish"}'
    assert sdk_error(timeout) == INVOKE_TIMEOUT_ERROR


def test_the_stack_is_in_resolution_order() -> None:
    steps = [
        step("late", "run", "completed", output="1", seq=0, ended_at=30.0),
        step("open", "sleep", "sleeping", seq=1),
        step("early", "run", "completed", output="1", seq=2, ended_at=10.0),
        step("tie", "run", "failed", error="{}", seq=3, ended_at=10.0),
    ]
    assert stack_order(steps) == ["early", "tie", "late"]


def test_the_call_request_has_every_field_the_sdks_read() -> None:
    call = build_call(
        url="http://app/api/inngest?fnId=app-fn&stepId=step",
        step_id="abc",
        run_id="01RUN",
        events=[{"id": "e1", "name": "perdure/function.invoked", "data": {"n": 1}, "ts": 5}],
        steps={"h": {"data": 1}},
        stack=["h"],
        attempt=2,
        max_attempts=5,
        disable_immediate_execution=True,
        version=-1,
        server_kind="dev",
    )
    assert call.url == "http://app/api/inngest?fnId=app-fn&stepId=abc"
    body = orjson.loads(call.body)
    assert body["event"] == {
        "id": "e1",
        "name": "inngest/function.invoked",
        "data": {"n": 1},
        "user": {},
        "ts": 5,
    }
    assert body["events"] == [body["event"]]
    assert body["steps"] == {"h": {"data": 1}}
    assert body["use_api"] is False and body["version"] == -1
    ctx = body["ctx"]
    assert ctx["run_id"] == "01RUN" and ctx["attempt"] == 2 and ctx["max_attempts"] == 5
    assert ctx["stack"] == {"stack": ["h"], "current": 1}
    assert ctx["disable_immediate_execution"] is True and ctx["use_api"] is False
    assert "fn_id" not in ctx  # the TS SDK's checkpointing stays off until it is implemented
    assert call.body == orjson.dumps(body, option=orjson.OPT_SORT_KEYS)  # sorted, compact
    assert call.headers["x-inngest-server-kind"] == "dev"
    assert call.headers["x-inngest-step-id"] == "abc"


def _sized_call(events: list[dict[str, Any]], steps: dict[str, Any]) -> tuple[bytes, Any]:
    call = build_call(
        url="http://app/api/inngest?fnId=app-fn&stepId=step",
        step_id=DISCOVERY,
        run_id="01RUN",
        events=events,
        steps=steps,
        stack=list(steps),
        attempt=0,
        max_attempts=1,
        disable_immediate_execution=False,
        version=2,
        server_kind="dev",
    )
    return call.body, orjson.loads(call.body)


def _event(i: int, size: int) -> dict[str, Any]:
    return {"id": f"e{i}", "name": "big", "data": {"s": "x" * size}, "ts": 5, "user": {}}


def test_the_call_sends_state_over_4_mib_through_the_api_as_the_go_server_does() -> None:
    small = [_event(0, 10)]
    # Steps of exactly the state limit (4 MiB less 1 KiB) are inline; one byte more are not.
    pad = MAX_INLINE_STATE - len(orjson.dumps({"h": {"data": ""}}))
    raw, body = _sized_call(small, {"h": {"data": "x" * pad}})
    assert body["use_api"] is False and body["ctx"]["use_api"] is False
    assert len(body["steps"]["h"]["data"]) == pad and len(body["events"]) == 1
    assert len(raw) <= MAX_REQUEST_BODY
    steps = {"h": {"data": "x" * (pad + 1)}}
    raw, body = _sized_call(small, steps)
    assert body["use_api"] is True and body["ctx"]["use_api"] is True
    assert body["steps"] == {} and len(body["events"]) == 1  # the events stay: they fit
    assert body["ctx"]["stack"] == {"stack": ["h"], "current": 1}  # the stack is still sent
    assert len(raw) < 2048

    # A whole body of exactly 4 MiB is sent as it is; one byte more and the state goes.
    base = len(_sized_call([_event(0, 0), _event(1, 0)], {"h": {"data": 1}})[0])
    fits = [_event(0, 0), _event(1, MAX_REQUEST_BODY - base)]
    raw, body = _sized_call(fits, {"h": {"data": 1}})
    assert len(raw) == MAX_REQUEST_BODY and body["use_api"] is False
    assert len(body["events"]) == 2 and body["steps"] == {"h": {"data": 1}}
    over = [_event(0, 0), _event(1, MAX_REQUEST_BODY - base + 1)]
    raw, body = _sized_call(over, {"h": {"data": 1}})
    assert body["use_api"] is True and body["ctx"]["use_api"] is True
    assert body["events"] == [] and body["steps"] == {} and body["event"]["id"] == "e0"

    # Big events, small steps: the body is over 4 MiB, both are left out; event stays.
    events = [_event(i, 1024 * 1024) for i in range(5)]
    raw, body = _sized_call(events, {"h": {"data": 1}})
    assert body["use_api"] is True and body["ctx"]["use_api"] is True
    assert body["events"] == [] and body["steps"] == {}
    assert body["event"]["id"] == "e0" and len(raw) < 1024 * 1024 + 2048  # event is still sent
    assert raw == orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    # Big steps and big events together: both out.
    _, body = _sized_call(events, steps)
    assert body["events"] == [] and body["steps"] == {} and body["use_api"] is True


def test_step_url_replaces_only_the_step_id() -> None:
    assert step_url("http://h:1/x?fnId=a&stepId=step", DISCOVERY).endswith("fnId=a&stepId=step")
    assert step_url("http://h:1/x?fnId=a", "h1") == "http://h:1/x?fnId=a&stepId=h1"
    assert sdk_event({"name": "n", "data": None})["data"] == {}


_PARAM = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12
)


@given(
    step_id=_PARAM,
    params=st.dictionaries(_PARAM, st.text(max_size=8), max_size=4).map(lambda d: list(d.items())),
    old=st.booleans(),
)
def test_the_step_url_sets_step_id_and_keeps_every_other_parameter(
    step_id: str, params: list[tuple[str, str]], old: bool
) -> None:
    kept = [(k, v) for k, v in params if k != "stepId"]
    base = httpx.URL(
        "http://127.0.0.1:3000/api/inngest", params=[*kept, *([("stepId", "x")] if old else [])]
    )
    got = httpx.URL(step_url(str(base), step_id))
    assert got.params["stepId"] == step_id
    assert got.params.get_list("stepId") == [step_id]
    assert [(k, v) for k, v in got.params.multi_items() if k != "stepId"] == kept
    assert got.path == "/api/inngest"
