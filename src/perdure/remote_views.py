"""The inverse of :mod:`perdure.views`: the HTTP API's JSON read back into the value types the
embedded client returns (:class:`~perdure.types.RunInfo`, :class:`~perdure.types.StepInfo`,
:class:`~perdure.store.base.SentEvent`, :class:`~perdure.types.ScheduleInfo`), and the API's
error bodies turned back into the embedded errors (:data:`ERRORS`, one table).

Used by the remote client (:mod:`perdure.remote`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

from perdure.errors import (
    ForbiddenError,
    FunctionNotFoundError,
    InvalidCronError,
    InvalidExpressionError,
    InvalidInputError,
    KeyNotFoundError,
    PayloadTooLargeError,
    PerdureError,
    RemoteError,
    RunNotEndedError,
    RunNotFoundError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    SerializationError,
    StoreUnavailableError,
    UnauthorizedError,
)
from perdure.query import Page
from perdure.store.base import SentEvent
from perdure.types import Event, FunctionPause, RunInfo, RunStatus, ScheduleInfo, StepInfo

# ---------------------------------------------------------------------- time


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp of :func:`perdure.views.iso` as an aware datetime (``None``
    stays ``None``)."""
    if value is None:
        return None
    return datetime.fromisoformat(str(value))


def _required_time(value: Any, what: str) -> datetime:
    when = parse_time(value)
    if when is None:
        raise RemoteError(f"the server's answer has no {what}")
    return when


# ---------------------------------------------------------------------- runs and steps


def parse_step(obj: dict[str, Any]) -> StepInfo:
    """A step of :func:`perdure.views.step_json`."""
    return StepInfo(
        id=obj["id"],
        kind=obj["kind"],
        status=obj["status"],
        output=obj.get("output"),
        error=obj.get("error"),
        attempts=int(obj["attempts"]),
        position=int(obj["position"]),
        started_at=parse_time(obj.get("started_at")),
        ended_at=parse_time(obj.get("ended_at")),
        wake_at=parse_time(obj.get("wake_at")),
        name=obj.get("name"),
    )


def parse_run(obj: dict[str, Any]) -> RunInfo:
    """A run of :func:`perdure.views.run_json` (without ``steps``: an empty list)."""
    events = obj.get("events")
    return RunInfo(
        id=obj["id"],
        function_id=obj["function_id"],
        status=RunStatus(obj["status"]),
        event=Event.from_stored(obj["event"]),
        output=obj.get("output"),
        error=obj.get("error"),
        attempt=int(obj["attempt"]),
        created_at=_required_time(obj.get("created_at"), "created_at"),
        started_at=parse_time(obj.get("started_at")),
        ended_at=parse_time(obj.get("ended_at")),
        parent_run_id=obj.get("parent_run_id"),
        idempotency_key=obj.get("idempotency_key"),
        steps=[parse_step(s) for s in obj.get("steps") or []],
        reason=obj.get("reason"),
        events=None if events is None else [Event.from_stored(e) for e in events],
        rerun_of=obj.get("rerun_of"),
        replay_of=obj.get("replay_of"),
        replay_from_step=obj.get("replay_from_step"),
    )


def parse_runs_page(obj: dict[str, Any]) -> Page[RunInfo]:
    """A page of :func:`perdure.views.runs_page_json`."""
    return Page([parse_run(r) for r in obj["runs"]], obj.get("next_cursor"))


# ---------------------------------------------------------------------- events


def parse_sent(obj: dict[str, Any]) -> list[SentEvent]:
    """The answer of ``POST /api/v1/events`` (:func:`perdure.views.sent_json`), in the order
    sent. The API does not tell which runs an event cancelled: ``cancelled`` is empty."""
    return [
        SentEvent(
            e["id"],
            bool(e["duplicate"]),
            list(e["run_ids"]),
            skipped=list(e.get("skipped") or []),
        )
        for e in obj["events"]
    ]


def parse_pause(obj: dict[str, Any]) -> FunctionPause:
    """The pause state of a function of :func:`perdure.views.function_json`."""
    return FunctionPause(obj["id"], bool(obj["paused"]), parse_time(obj.get("paused_at")))


# ---------------------------------------------------------------------- schedules


def parse_schedule(obj: dict[str, Any]) -> ScheduleInfo:
    """A schedule of :func:`perdure.views.schedule_json`."""
    return ScheduleInfo(
        id=obj["id"],
        function_id=obj["function_id"],
        cron=obj["cron"],
        tz=obj["tz"],
        data=obj.get("data") or {},
        overlap=obj["overlap"],
        catchup=obj["catchup"],
        catchup_window=float(obj["catchup_window"]),
        paused=bool(obj["paused"]),
        last_tick=_required_time(obj.get("last_tick"), "last_tick"),
        next_tick=parse_time(obj.get("next_tick")),
        last_run_id=obj.get("last_run_id"),
        runs=int(obj["runs"]),
        skipped_overlap=int(obj["skipped_overlap"]),
        missed=int(obj["missed"]),
        created_at=_required_time(obj.get("created_at"), "created_at"),
        updated_at=_required_time(obj.get("updated_at"), "updated_at"),
    )


def parse_schedules_page(obj: dict[str, Any]) -> Page[ScheduleInfo]:
    """A page of :func:`perdure.views.schedules_page_json`."""
    return Page([parse_schedule(s) for s in obj["schedules"]], obj.get("next_cursor"))


# ---------------------------------------------------------------------- errors

ERRORS: Final[dict[str, type[PerdureError]]] = {
    "invalid_input": InvalidInputError,
    "malformed_json": InvalidInputError,
    "invalid_expression": InvalidExpressionError,
    "invalid_cron": InvalidCronError,
    "not_serializable": SerializationError,
    "payload_too_large": PayloadTooLargeError,
    "function_not_found": FunctionNotFoundError,
    "run_not_found": RunNotFoundError,
    "schedule_not_found": ScheduleNotFoundError,
    "schedule_exists": ScheduleExistsError,
    "run_not_ended": RunNotEndedError,
    "unavailable": StoreUnavailableError,
    "unauthorized": UnauthorizedError,
    "forbidden": ForbiddenError,
    "csrf_failed": ForbiddenError,
    "key_not_found": KeyNotFoundError,
}
"""The API's ``error.code`` -> the error the embedded client raises for the same cause. Any
other code (``not_found`` for an unknown route, ``internal_error``, ...) is a
:class:`~perdure.errors.RemoteError`."""

_TOO_LARGE = re.compile(r"^(?P<what>.+) is (?P<size>\d+) bytes, over the limit of (?P<limit>\d+)")
_LIMIT = re.compile(r"limit of (?P<limit>\d+)")


def _too_large(message: str) -> PayloadTooLargeError:
    """The server's 413 as the embedded error (``size`` is 0 when the message does not say;
    ``message`` stays the server's)."""
    match = _TOO_LARGE.match(message)
    if match:
        what, size, limit = match["what"], int(match["size"]), int(match["limit"])
    else:
        found = _LIMIT.search(message)
        what, size, limit = "the request", 0, int(found["limit"]) if found else 0
    exc = PayloadTooLargeError(what, size, limit)
    exc.message = message
    exc.args = (message,)
    return exc


def error_from(status: int, body: Any) -> PerdureError:
    """The error for an HTTP error answer: ``status`` and its decoded body (the API's
    ``{"error": {"code", "message"}}``, or anything else a proxy may send)."""
    code: str | None = None
    message = f"the server answered HTTP {status}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = err.get("code") if isinstance(err.get("code"), str) else None
        if isinstance(err.get("message"), str):
            message = err["message"]
    if code is None and status == 401:
        code = "unauthorized"
    cls = ERRORS.get(code or "")
    if cls is PayloadTooLargeError:
        return _too_large(message)
    if cls is None:
        detail = f" ({code})" if code else ""
        return RemoteError(f"{message}{detail}", status=status, error_code=code)
    if cls is UnauthorizedError:
        message = f"the server refused the API token: {message}"
    return cls(message)
