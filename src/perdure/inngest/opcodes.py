"""What an Inngest SDK answers to a call request, parsed (protocol §6.4, §6.5, §7).

Pure: no I/O. :func:`parse_response` turns a status, headers and body into one of

- :class:`Completed` (HTTP 200, or a ``RunComplete`` op): the function returned ``output``;
- :class:`Reported` (HTTP 206): the ops the SDK reported, in order;
- :class:`Errored` (anything else, or a body that breaks the protocol): the call failed, with
  the SDK's error object, whether it may be retried (``x-inngest-no-retry``) and the delay it
  asked for (``Retry-After``).

A streamed answer (HTTP 201, §7.4: keep-alive spaces, then ``{"status", "headers", "body"}``)
is unwrapped first. Unknown op fields are ignored; unknown opcodes are kept (the executor
rejects them with a clear error), ``None`` ops are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from perdure.engine.durations import to_seconds
from perdure.errors import InvalidInputError

SDK_HEADER = "x-inngest-sdk"
NO_RETRY_HEADER = "x-inngest-no-retry"
RETRY_AFTER_HEADER = "retry-after"
REQ_VERSION_HEADER = "x-inngest-req-version"

#: Retry-After is clamped to this range (seconds), as the Inngest server does.
RETRY_AFTER_MIN = 1.0
RETRY_AFTER_MAX = 86400.0
#: The longest sleep an app may ask for (seconds).
MAX_SLEEP = 366 * 86400.0

STEP_RUN = "StepRun"
STEP = "Step"
STEP_ERROR = "StepError"
STEP_FAILED = "StepFailed"
STEP_PLANNED = "StepPlanned"
SLEEP = "Sleep"
WAIT_FOR_EVENT = "WaitForEvent"
INVOKE_FUNCTION = "InvokeFunction"
RUN_COMPLETE = "RunComplete"
DISCOVERY_REQUEST = "DiscoveryRequest"
NONE = "None"

_CANONICAL = {
    name.lower(): name
    for name in (
        STEP_RUN,
        STEP,
        STEP_ERROR,
        STEP_FAILED,
        STEP_PLANNED,
        SLEEP,
        WAIT_FOR_EVENT,
        INVOKE_FUNCTION,
        RUN_COMPLETE,
        DISCOVERY_REQUEST,
        NONE,
    )
}
#: Ops that ask the server to do something later: with another op in the same answer they
#: make a parallel group (a pending set, §6.7).
ASYNC_OPS = frozenset({STEP_PLANNED, SLEEP, WAIT_FOR_EVENT, INVOKE_FUNCTION})


@dataclass(frozen=True, slots=True)
class Op:
    """One reported opcode. ``data`` is :data:`NO_DATA` when the op carried none."""

    op: str
    id: str
    name: str | None = None
    display_name: str | None = None
    opts: dict[str, Any] = field(default_factory=dict)
    data: Any = None
    has_data: bool = False
    error: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """The user-facing step id (for messages)."""
        return self.display_name or self.name or self.id

    @property
    def race(self) -> bool:
        """Whether the op belongs to a parallel group in race mode."""
        return self.opts.get("parallelMode") == "race"


@dataclass(frozen=True, slots=True)
class Completed:
    """The function returned; ``output`` is the JSON text of its return value."""

    output: str


@dataclass(frozen=True, slots=True)
class Reported:
    """The SDK reported ``ops`` (in order). ``retriable`` and ``retry_after`` come from the
    answer's headers and apply to a ``StepError`` among them."""

    ops: tuple[Op, ...]
    retriable: bool = True
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Errored:
    """The call failed. ``error`` is the SDK's error object (or one describing the failure),
    ``retriable`` is false with ``x-inngest-no-retry: true``, ``retry_after`` is the delay the
    SDK asked for in seconds (``None``: the retry policy's backoff)."""

    status: int
    error: dict[str, Any]
    retriable: bool = True
    retry_after: float | None = None


Response = Completed | Reported | Errored


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header as a delay in seconds from ``now`` (Unix time): integer seconds,
    or a date (ISO 8601 / RFC 3339, or RFC 1123); clamped to [1 s, 24 h]. ``None`` when absent
    or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    delay: float | None = None
    if len(text) <= 7:
        try:
            delay = float(int(text))
        except ValueError:
            delay = None
    if delay is None:
        when = parse_instant(text)
        if when is None:
            try:
                when = parsedate_to_datetime(text).timestamp()
            except (TypeError, ValueError, IndexError):
                return None
        delay = when - now
    return min(RETRY_AFTER_MAX, max(RETRY_AFTER_MIN, delay))


def parse_instant(text: str) -> float | None:
    """An ISO 8601 / RFC 3339 date-time as Unix time (UTC if no offset); ``None`` if not one."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def sleep_until(op: Op, now: float) -> float:
    """When a ``Sleep`` op wakes (Unix time): ``opts.duration`` if given, else ``name``; a value
    of 10 characters or more is tried as a date-time first (a past one wakes at once), anything
    else is a duration (§6.9). ``InvalidInputError`` for neither, or beyond a year."""
    raw = op.opts.get("duration") or op.name
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInputError(f"sleep {op.label!r}: no duration")
    text = raw.strip()
    if len(text) >= 10:
        at = parse_instant(text)
        if at is not None:
            if at - now > MAX_SLEEP:
                raise InvalidInputError(f"sleep {op.label!r}: longer than a year ({text})")
            return max(at, now)
    seconds = to_seconds(text)
    if seconds > MAX_SLEEP:
        raise InvalidInputError(f"sleep {op.label!r}: longer than a year ({text})")
    return now + seconds


def duration(value: Any, what: str) -> float | None:
    """An optional time string (``"5m"``) in seconds; ``InvalidInputError`` if malformed."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a time string, got {value!r}")
    seconds = to_seconds(value)
    if not math.isfinite(seconds):
        raise InvalidInputError(f"{what} must be finite")
    return seconds


def error_object(value: Any, fallback: str) -> dict[str, Any]:
    """An SDK error as an object with at least ``name`` and ``message``."""
    if isinstance(value, dict):
        out = dict(value)
        if not isinstance(out.get("name"), str) or not out["name"]:
            out["name"] = "Error"
        if not isinstance(out.get("message"), str):
            out["message"] = str(out.get("message") or out.get("error") or fallback)
        return out
    if isinstance(value, str) and value:
        return {"name": "Error", "message": value}
    return {"name": "Error", "message": fallback}


def _parse_op(value: Any) -> Op:
    if not isinstance(value, dict):
        raise ValueError(f"an op must be an object, got {type(value).__name__}")
    name = value.get("op")
    if not isinstance(name, str):
        raise ValueError("an op has no opcode")
    opcode = _CANONICAL.get(name.lower(), name)
    step_id = value.get("id")
    if opcode != NONE and (not isinstance(step_id, str) or not step_id):
        raise ValueError(f"a {opcode} op has no step id")
    opts = value.get("opts")
    error = value.get("error")
    display = value.get("displayName")
    op_name = value.get("name")
    return Op(
        op=opcode,
        id=step_id if isinstance(step_id, str) else "",
        name=op_name if isinstance(op_name, str) else None,
        display_name=display if isinstance(display, str) else None,
        opts=opts if isinstance(opts, dict) else {},
        data=value.get("data"),
        has_data="data" in value,
        error=None if error is None else error_object(error, f"step {step_id} failed"),
    )


parse_op = _parse_op
"""One op object (a checkpointed step, an element of a 206 array) parsed."""


def _unwrap_stream(body: bytes) -> tuple[int, dict[str, str], bytes]:
    doc = orjson.loads(body.strip())
    if not isinstance(doc, dict) or not isinstance(doc.get("status"), int):
        raise ValueError("a streamed answer must end with {status, headers, body}")
    headers = doc.get("headers") or {}
    inner = doc.get("body")
    raw = inner.encode() if isinstance(inner, str) else orjson.dumps(inner)
    return doc["status"], {str(k).lower(): str(v) for k, v in headers.items()}, raw


def parse_response(
    status: int, headers: Mapping[str, str], body: bytes, now: float
) -> tuple[Response, int | None]:
    """The SDK's answer to a call request, and the request version it reported (if any)."""
    hdrs = {k.lower(): v for k, v in headers.items()}
    if status == 201:
        try:
            status, inner, body = _unwrap_stream(body)
        except (orjson.JSONDecodeError, ValueError) as exc:
            return _broken(f"the app's streamed answer is not valid: {exc}"), None
        hdrs.update(inner)
    version = _version(hdrs.get(REQ_VERSION_HEADER))
    if SDK_HEADER not in hdrs and 200 <= status < 300:
        return _broken(
            f"HTTP {status} without an {SDK_HEADER} header: the answer did not come from an "
            "Inngest SDK (is the URL right?)"
        ), version
    if status == 200:
        try:
            orjson.loads(body or b"null")
        except orjson.JSONDecodeError:
            return _broken("the app returned a body that is not JSON"), version
        return Completed((body or b"null").decode()), version
    retriable = (hdrs.get(NO_RETRY_HEADER) or "").strip().lower() != "true"
    retry_after = retry_after_seconds(hdrs.get(RETRY_AFTER_HEADER), now)
    if status == 206:
        try:
            decoded = orjson.loads(body or b"[]")
            items = decoded if isinstance(decoded, list) else [decoded]
            ops = tuple(_parse_op(item) for item in items)
        except (orjson.JSONDecodeError, ValueError) as exc:
            return _broken(f"the app reported ops that are not valid: {exc}"), version
        kept = tuple(op for op in ops if op.op != NONE)
        return Reported(kept, retriable, retry_after), version
    try:
        decoded = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        decoded = body.decode(errors="replace")[:2000] or None
    error = error_object(decoded, f"invalid status code: {status}")
    return Errored(status, error, retriable, retry_after), version


def _broken(message: str) -> Errored:
    return Errored(0, {"name": "InngestProtocolError", "message": message})


def _version(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None
