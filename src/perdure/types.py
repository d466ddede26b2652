"""Public value types: events, run and step descriptions."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from perdure import ids
from perdure.engine.triggers import validate_event_name
from perdure.errors import InvalidInputError


class RunStatus(StrEnum):
    """The states of a run. ``completed``, ``failed`` and ``cancelled`` are terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def terminal(self) -> bool:
        """Whether the run has ended."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED}
)
TERMINAL_STATUSES = frozenset(s.value for s in _TERMINAL)

MAX_EVENT_ID_LENGTH = 256
"""The longest event id, in characters."""

MAX_EVENT_TS = 253_402_300_799_999
"""The latest event timestamp accepted: 9999-12-31T23:59:59.999Z, in ms since the epoch (a
later one cannot be represented as a datetime)."""


@dataclass(frozen=True, slots=True)
class Event:
    """An event: a name, JSON data, optional user data, an id and a timestamp (ms since epoch).

    ``id`` deduplicates: an event whose id was already accepted within the dedupe window (24 h by
    default) is ignored. When omitted, a unique id is given when the event is sent (inside a
    ``send_event`` step, an id derived from the run and the step, so a replay cannot send twice).
    """

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    ts: int = 0
    user: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_event_name(self.name)
        if not isinstance(self.data, dict):
            raise InvalidInputError(
                f"event data must be a JSON object, not {type(self.data).__name__}"
            )
        if not isinstance(self.user, dict):
            raise InvalidInputError(
                f"event user must be a JSON object, not {type(self.user).__name__}"
            )
        if not isinstance(self.id, str) or len(self.id) > MAX_EVENT_ID_LENGTH:
            raise InvalidInputError(
                f"event id must be a string of at most {MAX_EVENT_ID_LENGTH} characters"
            )
        if "\x00" in self.id:
            raise InvalidInputError("event id must not contain NUL characters")
        if (
            isinstance(self.ts, bool)
            or not isinstance(self.ts, int)
            or not 0 <= self.ts <= MAX_EVENT_TS
        ):
            raise InvalidInputError(
                f"event ts must be an integer from 0 to {MAX_EVENT_TS} (ms since the epoch, "
                f"up to the year 9999), got {self.ts!r}"
            )

    def stamped(self, default_id: str | None = None) -> Event:
        """This event with an id (``default_id`` or a new ULID) and a timestamp if it had none."""
        if self.id and self.ts:
            return self
        return Event._trusted(
            self.name,
            self.data,
            self.id or default_id or ids.new_id(),
            self.ts or int(time.time() * 1000),
            self.user,
        )

    @classmethod
    def _trusted(
        cls, name: str, data: dict[str, Any], id: str, ts: int, user: dict[str, Any]
    ) -> Event:
        """Build without validation (values already validated, or read back from the store)."""
        ev = object.__new__(cls)
        object.__setattr__(ev, "name", name)
        object.__setattr__(ev, "data", data)
        object.__setattr__(ev, "id", id)
        object.__setattr__(ev, "ts", ts)
        object.__setattr__(ev, "user", user)
        return ev

    @classmethod
    def from_stored(cls, value: dict[str, Any]) -> Event:
        """Rebuild an event the store accepted earlier (no validation)."""
        return cls._trusted(
            value["name"],
            value.get("data") or {},
            value.get("id") or "",
            value.get("ts") or 0,
            value.get("user") or {},
        )

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON object."""
        return {
            "id": self.id,
            "name": self.name,
            "data": self.data,
            "user": self.user,
            "ts": self.ts,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Event:
        """Build an event from its JSON object (as stored or as received over HTTP)."""
        if not isinstance(value, dict):
            raise InvalidInputError("an event must be a JSON object")
        name = value.get("name")
        if not isinstance(name, str):
            raise InvalidInputError("event name is required and must be a string")
        unknown = set(value) - {"id", "name", "data", "user", "ts", "v"}
        if unknown:
            raise InvalidInputError(f"unknown event field(s): {', '.join(sorted(unknown))}")
        data = value.get("data")
        user = value.get("user")
        ev_id = value.get("id")
        ts = value.get("ts")
        return cls(
            name=name,
            data={} if data is None else data,
            user={} if user is None else user,
            id="" if ev_id is None else ev_id,
            ts=0 if ts is None else ts,
        )

    @property
    def time(self) -> datetime:
        """The event's timestamp as an aware datetime."""
        return datetime.fromtimestamp(self.ts / 1000, UTC)


@dataclass(frozen=True, slots=True)
class StepInfo:
    """A recorded step of a run."""

    id: str
    kind: str
    status: str
    output: Any
    error: dict[str, Any] | None
    attempts: int
    position: int
    started_at: datetime | None
    ended_at: datetime | None
    wake_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as seen by a client: status, input event, output or error, steps, timestamps."""

    id: str
    function_id: str
    status: RunStatus
    event: Event
    output: Any
    error: dict[str, Any] | None
    attempt: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    parent_run_id: str | None
    idempotency_key: str | None
    steps: list[StepInfo]
    reason: dict[str, Any] | None = None
    """Why flow control delayed, skipped or cancelled the run (``option``, ``decision``,
    ``message``, and details such as the key), or ``None``."""
    events: list[Event] | None = None
    """A batch run's events in arrival order (``event`` is the first); ``None`` otherwise."""


def iso_utc(value: datetime | float) -> str:
    """An instant (aware datetime or epoch seconds) as ISO 8601 text in UTC (``...Z``)."""
    if isinstance(value, datetime):
        when = value.astimezone(UTC)
    else:
        when = datetime.fromtimestamp(value, UTC)
    return when.isoformat().replace("+00:00", "Z")


def to_datetime(value: float | None) -> datetime | None:
    """Epoch seconds to an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value, UTC)
