"""The remote client's parsing: the inverse of perdure.views, and the one table of error codes
(checked against the server's own mapping of errors to HTTP statuses)."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import pytest

from perdure import errors, views
from perdure.query import Page
from perdure.remote_views import (
    ERRORS,
    error_from,
    parse_run,
    parse_runs_page,
    parse_schedule,
    parse_sent,
)
from perdure.server.http import map_error
from perdure.store.base import SentEvent
from perdure.types import Event, RunInfo, RunStatus, ScheduleInfo, StepInfo

T0 = datetime(2026, 6, 1, 9, 0, 0, 123456, tzinfo=UTC)
T1 = datetime(2026, 6, 1, 9, 0, 2, 654321, tzinfo=UTC)


def a_run(**changes: Any) -> RunInfo:
    step = StepInfo("fetch", "run", "completed", {"n": 1}, None, 2, 0, T0, T1, None, "fetch")
    sleep = StepInfo("nap", "sleep", "waiting", None, None, 0, 1, T1, None, T1)
    fields: dict[str, Any] = {
        "id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "function_id": "f/one",
        "status": RunStatus.FAILED,
        "event": Event("a/b", {"x": [1, "two"]}, id="ev1", ts=1_780_000_000_000),
        "output": None,
        "error": {"type": "ValueError", "message": "no", "stack": "..."},
        "attempt": 3,
        "created_at": T0,
        "started_at": T0,
        "ended_at": T1,
        "parent_run_id": "01ARZ3NDEKTSV4RRFFQ69G5FAW",
        "idempotency_key": "k",
        "steps": [step, sleep],
        "reason": {"kind": "concurrency"},
        "events": None,
        "rerun_of": "r0",
        "replay_of": "r1",
        "replay_from_step": "fetch",
    }
    fields.update(changes)
    return RunInfo(**fields)


def test_runs_round_trip() -> None:
    run = a_run()
    assert parse_run(views.run_json(run)) == run
    batch = a_run(
        status=RunStatus.COMPLETED,
        output=[1, {"a": None}],
        error=None,
        started_at=None,
        ended_at=None,
        events=[Event("a/b", {"i": 1}, id="e1", ts=5), Event("a/b", {"i": 2}, id="e2", ts=6)],
    )
    assert parse_run(views.run_json(batch)) == batch
    page = Page([run, batch], "cursor")
    listed = parse_runs_page(views.runs_page_json(page))
    assert listed.next_cursor == "cursor"
    assert listed.items == [a_run(steps=[]), batch.__class__(**{**_fields(batch), "steps": []})]


def _fields(run: RunInfo) -> dict[str, Any]:
    return {name: getattr(run, name) for name in RunInfo.__dataclass_fields__}


def test_schedules_and_sent_round_trip() -> None:
    info = ScheduleInfo(
        "daily", "report", "0 9 * * *", "Europe/Paris", {"to": "ops"}, "skip", "latest",
        86400.0, False, T0, T1, "r9", 4, 1, 2, T0, T1,
    )  # fmt: skip
    assert parse_schedule(views.schedule_json(info)) == info
    paused = ScheduleInfo(**{**{n: getattr(info, n) for n in info.__dataclass_fields__},
                             "paused": True, "next_tick": None, "last_run_id": None})  # fmt: skip
    assert parse_schedule(views.schedule_json(paused)) == paused
    sent = [SentEvent("e1", False, ["r1", "r2"], skipped=["r2"]), SentEvent("e2", True, [])]
    assert parse_sent(views.sent_json(sent)) == sent


def _instances() -> list[errors.PerdureError]:
    """One instance of every perdure error class."""
    out: list[errors.PerdureError] = []
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if not issubclass(cls, errors.PerdureError):
            continue
        if cls is errors.PayloadTooLargeError:
            out.append(cls("the run's input", 10, 5))
        elif cls is errors.RetryAfterError:
            out.append(cls(1))
        elif cls is errors.StepError:
            out.append(cls("s", "E", "m"))
        elif cls is errors.RunFailedError:
            out.append(cls("r", None))
        elif cls is errors.RunCancelledError:
            out.append(cls("r"))
        elif cls is errors.RemoteError:
            out.append(cls("m"))
        else:
            out.append(cls("a message"))
    return out


def test_every_error_the_server_maps_comes_back_as_itself() -> None:
    mapped = set()
    for exc in _instances():
        api = map_error(exc)
        if api is None:
            continue
        mapped.add(api.code)
        back = error_from(api.status, {"error": {"code": api.code, "message": api.message}})
        assert type(back) is type(exc), (api.code, back)
        assert back.code == exc.code
        assert back.message == api.message
    assert len(mapped) == 13  # the 4xx/503 errors of perdure.errors, each under its own code
    assert set(ERRORS) == mapped | {"malformed_json", "unauthorized", "csrf_failed"}


def test_payload_too_large_keeps_its_numbers() -> None:
    message = "event 'a' is 600 bytes, over the limit of 512 bytes"
    back = error_from(413, {"error": {"code": "payload_too_large", "message": message}})
    assert isinstance(back, errors.PayloadTooLargeError)
    assert (back.what, back.size, back.limit) == ("event 'a'", 600, 512)
    message = "the request body is over the limit of 8 bytes"
    body = error_from(413, {"error": {"code": "payload_too_large", "message": message}})
    assert isinstance(body, errors.PayloadTooLargeError)
    assert (body.limit, str(body), body.message) == (8, message, message)


@pytest.mark.parametrize(
    ("status", "body", "cls", "fragment"),
    [
        (401, {"error": {"code": "unauthorized", "message": "bad"}}, errors.UnauthorizedError,
         "refused the API token: bad"),
        (401, "<html>", errors.UnauthorizedError, "HTTP 401"),
        (400, {"error": {"code": "malformed_json", "message": "m"}}, errors.InvalidInputError, "m"),
        (500, {"error": {"code": "internal_error", "message": "oops"}}, errors.RemoteError,
         "oops (internal_error)"),
        (404, {"error": {"code": "not_found", "message": "no route"}}, errors.RemoteError,
         "no route"),
        (502, None, errors.RemoteError, "HTTP 502"),
        (503, {"error": {"code": "unavailable", "message": "db"}}, errors.StoreUnavailableError,
         "db"),
    ],
)  # fmt: skip
def test_other_answers(status: int, body: Any, cls: type[Exception], fragment: str) -> None:
    exc = error_from(status, body)
    assert type(exc) is cls and fragment in str(exc)
    if isinstance(exc, errors.RemoteError):
        assert exc.status == status
