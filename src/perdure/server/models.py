"""The request models of the REST API: they validate every body and query string, and the
OpenAPI document (:mod:`perdure.server.openapi`) is generated from them, so the two cannot
disagree.

A validation failure becomes one precise message (:func:`describe`), answered as HTTP 400
``invalid_input``. Constraints that JSON Schema cannot state with a usable error message are
checked by validators that reuse the engine's own rules (event names), and the schema gets the
equivalent ``pattern`` (a test checks the two agree on every code point).
"""

from __future__ import annotations

import functools
import re
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from perdure.engine.ticks import check_catchup, check_overlap
from perdure.engine.triggers import MAX_EVENT_NAME_LENGTH, validate_event_name
from perdure.errors import InvalidInputError
from perdure.query import RunSearch
from perdure.schedules import SCHEDULE_ID_PATTERN, check_schedule_id
from perdure.server.http import json_type
from perdure.types import MAX_EVENT_ID_LENGTH, MAX_EVENT_TS, RunStatus

MAX_EVENTS_PER_REQUEST = 5000
"""The most events one ``POST /api/v1/events`` may carry (HTTP 413 above)."""

PAGE_DEFAULT = 50
PAGE_MAX = 500
MAX_KEY_LENGTH = 256
"""The longest idempotency key, in characters."""

NO_NUL = "^[^\\x00]*$"
"""A string without NUL characters (the stores cannot keep them in ids and keys)."""
ANY_ID = "^[^\\x00]+$"
"""A non-empty string without NUL characters."""
EVENTS_CURSOR = "^[1-9][0-9]{0,17}$"
"""An events cursor: a positive decimal integer of at most 18 digits (the ``seq`` of the last
event on a page; always within the stores' 64-bit integers)."""
RUNS_CURSOR = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"
"""A runs cursor: the id of the last run on a page (a ULID, any case)."""
MAX_CRON_LENGTH = 256
"""The longest cron expression or time zone name of a schedule, in characters."""

_RUN_STATUSES = tuple(s.value for s in RunStatus)
M = TypeVar("M", bound=BaseModel)


def _escape(cp: int) -> str:
    return f"\\u{cp:04x}" if cp < 0x10000 else chr(cp)


@functools.cache
def event_name_pattern() -> str:
    """The regular expression of a valid event name's characters: every code point but the
    non-printable ones (``str.isprintable``, this Python's Unicode database), the space and
    ``*``. The length (1 to 256) is stated separately. Written as the allowed ranges (a
    negated class of the others is as exact, but far slower for generators such as
    schemathesis)."""
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for cp in range(sys.maxunicode + 2):
        good = cp <= sys.maxunicode and chr(cp).isprintable() and chr(cp) not in " *"
        if good and start is None:
            start = cp
        elif not good and start is not None:
            ranges.append((start, cp - 1))
            start = None
    parts = [_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges]
    return "^[" + "".join(parts) + "]+$"


def _name_schema(schema: dict[str, Any]) -> None:
    schema.update(
        type="string",
        minLength=1,
        maxLength=MAX_EVENT_NAME_LENGTH,
        pattern=event_name_pattern(),
        description="Printable characters, no whitespace, no '*'.",
        examples=["order.placed"],
    )


class EventIn(BaseModel):
    """An event as sent to ``POST /api/v1/events``."""

    model_config = ConfigDict(extra="forbid", strict=True, title="EventIn")

    name: Annotated[str, Field(json_schema_extra=_name_schema)]
    data: dict[str, Any] | None = Field(default=None, description="The event's data.")
    id: Annotated[str, Field(max_length=MAX_EVENT_ID_LENGTH, pattern=NO_NUL)] | None = Field(
        default=None, description="Deduplicates within 24 h; a ULID is given when omitted."
    )
    ts: Annotated[int, Field(ge=0, le=MAX_EVENT_TS)] | None = Field(
        default=None,
        description="Milliseconds since the epoch (up to 9999-12-31); now when omitted or 0.",
    )
    user: dict[str, Any] | None = None
    v: Any = Field(default=None, description="Accepted and ignored (Inngest SDK compatibility).")

    @field_validator("ts", mode="before")
    @classmethod
    def _ts(cls, value: Any) -> Any:
        # JSON Schema's integers include 1.0: an integral number is an integer
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_event_name(value)


class StartRun(BaseModel):
    """The body of ``POST /api/v1/functions/{function_id}/runs`` (optional, or ``null``)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="StartRun")

    data: dict[str, Any] | None = Field(default=None, description="The run's ctx.event.data.")
    idempotency_key: (
        Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH, pattern=NO_NUL)] | None
    ) = Field(default=None, description="The same key always gives the same run.")


class ReplayRun(BaseModel):
    """The body of ``POST /api/v1/runs/{run_id}/replay``."""

    model_config = ConfigDict(extra="forbid", strict=True, title="ReplayRun")

    from_step: Annotated[str, Field(min_length=1, max_length=1000, pattern=ANY_ID)] = Field(
        description="The step to execute from: its id, or its name as written. The recorded "
        "results of the completed steps before it are kept."
    )


class _Page(BaseModel):
    """A page of a list: ``limit`` (a query parameter, so a string of digits)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    limit: Annotated[int, Field(ge=1, le=PAGE_MAX)] = PAGE_DEFAULT

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, value: Any) -> Any:
        if isinstance(value, str) and re.fullmatch("[0-9]{1,9}", value, re.ASCII):
            number = int(value)
            if 1 <= number <= PAGE_MAX:
                return number
        raise ValueError(f"limit must be an integer from 1 to {PAGE_MAX}, got {value!r}")


class EventsQuery(_Page):
    """The query of ``GET /api/v1/events``."""

    name: Annotated[str, Field(json_schema_extra=_name_schema)] | None = Field(
        default=None, description="Exact event name."
    )
    cursor: Annotated[str, Field(pattern=EVENTS_CURSOR)] | None = Field(
        default=None, description="The next_cursor of the previous page."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return validate_event_name(value)


MS_QUERY = "^[0-9]{1,14}$"
"""A time in a query string: milliseconds since the epoch, up to 14 digits (year 5138)."""
MS_MAX = 10**14 - 1
MAX_SEARCH_TEXT = 256
"""The longest ``text`` filter of a runs search, in characters."""
BULK_MAX = 100
"""The most runs one bulk action changes (the next call continues from ``next_cursor``): each
change is its own client operation and transaction, so a call stays within a few seconds."""
MAX_WATCH = 500
"""The most run ids one live stream's ``watch`` names."""


class _RunFilters(BaseModel):
    """The filters of a runs search (a query string: every value a string)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    status: Literal[_RUN_STATUSES] | None = None  # type: ignore[valid-type]
    function_id: Annotated[str, Field(pattern=ANY_ID)] | None = None
    created_after: Annotated[str, Field(pattern=MS_QUERY)] | None = Field(
        default=None, description="Created at or after (ms since the epoch)."
    )
    created_before: Annotated[str, Field(pattern=MS_QUERY)] | None = Field(
        default=None, description="Created before (ms since the epoch)."
    )
    run_id: Annotated[str, Field(max_length=64, pattern=ANY_ID)] | None = Field(
        default=None, description="The run id, or its first characters."
    )
    event_id: Annotated[str, Field(max_length=MAX_EVENT_ID_LENGTH, pattern=ANY_ID)] | None = Field(
        default=None, description="The event that started the run."
    )
    text: Annotated[str, Field(max_length=MAX_SEARCH_TEXT, pattern=ANY_ID)] | None = Field(
        default=None,
        description="Text the run's input (its JSON) contains; ASCII letters ignore case.",
    )

    def search(self) -> RunSearch:
        """The query layer's search of these filters."""
        return RunSearch(
            status=self.status,
            function_id=self.function_id,
            created_after=_ms_datetime(self.created_after),
            created_before=_ms_datetime(self.created_before),
            run_id=self.run_id,
            event_id=self.event_id,
            text=self.text,
        )


def _ms_datetime(ms: str | int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(int(ms) / 1000, UTC)


class RunsQuery(_Page, _RunFilters):
    """The query of ``GET /api/v1/runs``."""

    cursor: Annotated[str, Field(pattern=RUNS_CURSOR)] | None = Field(
        default=None, description="The next_cursor of the previous page."
    )


class WorkersQuery(BaseModel):
    """The query of ``GET /api/v1/workers``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    all: Literal["true", "false"] = Field(
        default="false", description="true: also the workers that stopped or died lately."
    )


class RunsStreamQuery(_RunFilters):
    """The query of ``GET /api/v1/runs/stream`` (see :mod:`perdure.server.live`)."""

    watch: Annotated[str, Field(max_length=MAX_WATCH * 27, pattern=NO_NUL)] | None = Field(
        default=None,
        description=f"Comma-separated ids of the runs the page shows (up to {MAX_WATCH}).",
    )
    new: Literal["0", "1"] = Field(
        default="0", description="1: also send new runs that pass the filters."
    )
    since: Annotated[str, Field(max_length=64, pattern=NO_NUL)] | None = Field(
        default=None, description="With new=1: send the runs newer than this id at once."
    )

    def watched(self) -> list[str]:
        """The run ids of ``watch`` (empty parts dropped); InvalidInputError over the limit."""
        ids = [i for i in (self.watch or "").split(",") if i]
        if len(ids) > MAX_WATCH:
            raise InvalidInputError(f"watch names {len(ids)} runs, over the limit of {MAX_WATCH}")
        return ids


class BulkRuns(BaseModel):
    """The body of ``POST /api/v1/runs/bulk/cancel`` and ``/bulk/rerun``: the filters of a
    runs search, a cursor, and ``dry_run``."""

    model_config = ConfigDict(extra="forbid", strict=True, title="BulkRuns")

    status: Literal[_RUN_STATUSES] | None = None  # type: ignore[valid-type]
    function_id: Annotated[str, Field(pattern=ANY_ID)] | None = None
    created_after: Annotated[int, Field(ge=0, le=MS_MAX)] | None = Field(
        default=None, description="Created at or after (ms since the epoch)."
    )
    created_before: Annotated[int, Field(ge=0, le=MS_MAX)] | None = Field(
        default=None, description="Created before (ms since the epoch)."
    )
    run_id: Annotated[str, Field(max_length=64, pattern=ANY_ID)] | None = Field(
        default=None, description="The run id, or its first characters."
    )
    event_id: Annotated[str, Field(max_length=MAX_EVENT_ID_LENGTH, pattern=ANY_ID)] | None = None
    text: Annotated[str, Field(max_length=MAX_SEARCH_TEXT, pattern=ANY_ID)] | None = None
    cursor: Annotated[str, Field(pattern=RUNS_CURSOR)] | None = Field(
        default=None, description="The next_cursor of the previous call: continue after it."
    )
    dry_run: bool = Field(
        default=False, description="Only count and list the runs it would change."
    )

    @field_validator("created_after", "created_before", mode="before")
    @classmethod
    def _ms(cls, value: Any) -> Any:
        # JSON Schema's integers include 1.0: an integral number is an integer
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def search(self) -> RunSearch:
        """The query layer's search of these filters."""
        return RunSearch(
            status=self.status,
            function_id=self.function_id,
            created_after=_ms_datetime(self.created_after),
            created_before=_ms_datetime(self.created_before),
            run_id=self.run_id,
            event_id=self.event_id,
            text=self.text,
        )


class ScheduleIn(BaseModel):
    """The body of ``POST /api/v1/schedules``."""

    model_config = ConfigDict(extra="forbid", strict=True, title="ScheduleIn")

    id: Annotated[str, Field(pattern=SCHEDULE_ID_PATTERN)] = Field(
        description="1-128 letters, digits and . _ : @ -, starting with a letter or a digit.",
        examples=["daily-report"],
    )
    function_id: Annotated[str, Field(pattern=ANY_ID)] = Field(
        description="The function each tick runs."
    )
    cron: Annotated[str, Field(min_length=1, max_length=MAX_CRON_LENGTH, pattern=NO_NUL)] = Field(
        description="5 or 6 fields (seconds first), or a macro.", examples=["0 9 * * *"]
    )
    tz: Annotated[str, Field(min_length=1, max_length=MAX_CRON_LENGTH, pattern=NO_NUL)] = Field(
        default="UTC", description="An IANA time zone.", examples=["Europe/Paris"]
    )
    data: dict[str, Any] | None = Field(default=None, description="Each run's ctx.event.data.")
    overlap: Literal["skip", "allow"] = Field(
        default="skip", description="skip: no new run while the previous one is active."
    )
    catchup: Literal["none", "latest", "all"] = Field(
        default="latest", description="Which missed ticks run after downtime."
    )
    catchup_window: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=86400.0, description="Seconds: missed ticks older than this never run."
    )
    paused: bool = Field(default=False, description="Create it paused.")

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> Any:
        return check_schedule_id(value) if isinstance(value, str) else value

    @field_validator("overlap", "catchup", mode="before")
    @classmethod
    def _policy(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name == "overlap":
            return check_overlap(value)
        return check_catchup(value)


class SchedulesQuery(_Page):
    """The query of ``GET /api/v1/schedules``."""

    function_id: Annotated[str, Field(pattern=ANY_ID)] | None = None
    cursor: Annotated[str, Field(pattern=SCHEDULE_ID_PATTERN)] | None = Field(
        default=None, description="The next_cursor of the previous page."
    )


# ---------------------------------------------------------------------- error messages


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "the value"


def _one(error: Any) -> str:
    kind = error["type"]
    field = _field(error["loc"])
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return f"{field} is required"
    if kind == "string_type":
        return f"{field} must be a string, not {json_type(value)}"
    if kind in ("dict_type", "model_type"):
        return f"{field} must be a JSON object, not {json_type(value)}"
    if kind in ("int_type", "int_from_float"):
        return f"{field} must be an integer, not {json_type(value)}"
    if kind == "greater_than_equal":
        return f"{field} must be at least {ctx['ge']}, got {value!r}"
    if kind == "less_than_equal":
        return f"{field} must be at most {ctx['le']}, got {value!r}"
    if kind == "string_too_short":
        return f"{field} must not be empty"
    if kind == "string_too_long":
        return f"{field} is {len(value)} characters long, over the limit of {ctx['max_length']}"
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        if pattern in (NO_NUL, ANY_ID):
            return (
                f"{field} is empty" if value == "" else f"{field} must not contain NUL characters"
            )
        if pattern in _CURSORS:
            return f"{field} {value!r} is not {_CURSORS[pattern]} cursor (use next_cursor)"
        return f"{field} {value!r} does not match {pattern}"
    if kind == "literal_error":
        choices = ", ".join(_RUN_STATUSES) if field == "status" else ctx.get("expected")
        return f"{field} {value!r} is not one of: {choices}"
    return f"{field}: {error['msg']}"


_CURSORS = {EVENTS_CURSOR: "an events", RUNS_CURSOR: "a runs", SCHEDULE_ID_PATTERN: "a schedules"}


def describe(exc: ValidationError, *, unknown: str = "unknown field(s)") -> str:
    """One message for a validation error: unknown fields together (``unknown`` names them),
    then each other problem."""
    errors = exc.errors(include_url=False)
    extra = sorted(_field(e["loc"]) for e in errors if e["type"] == "extra_forbidden")
    parts = [_one(e) for e in errors if e["type"] != "extra_forbidden"]
    if extra:
        parts.insert(0, f"{unknown}: {', '.join(extra)}")
    return "; ".join(parts)


def validate(model: type[M], value: Any, *, unknown: str = "unknown field(s)") -> M:
    """``model.model_validate(value)``; a failure raises InvalidInputError with
    :func:`describe`'s message."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidInputError(describe(exc, unknown=unknown)) from None
