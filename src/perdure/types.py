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
    schedule: ScheduleTick | None = field(default=None, init=False)
    """For a run started by a schedule (:attr:`App.schedules`): which schedule and tick; set
    by perdure only (``None`` for every other event)."""

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
            self.schedule,
        )

    @classmethod
    def _trusted(
        cls,
        name: str,
        data: dict[str, Any],
        id: str,
        ts: int,
        user: dict[str, Any],
        schedule: ScheduleTick | None = None,
    ) -> Event:
        """Build without validation (values already validated, or read back from the store)."""
        ev = object.__new__(cls)
        object.__setattr__(ev, "name", name)
        object.__setattr__(ev, "data", data)
        object.__setattr__(ev, "id", id)
        object.__setattr__(ev, "ts", ts)
        object.__setattr__(ev, "user", user)
        object.__setattr__(ev, "schedule", schedule)
        return ev

    @classmethod
    def from_stored(cls, value: dict[str, Any]) -> Event:
        """Rebuild an event the store accepted earlier (no validation)."""
        schedule = value.get("schedule")
        return cls._trusted(
            value["name"],
            value.get("data") or {},
            value.get("id") or "",
            value.get("ts") or 0,
            value.get("user") or {},
            None if schedule is None else ScheduleTick.from_dict(schedule),
        )

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON object (with ``schedule`` only for a schedule's run)."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "data": self.data,
            "user": self.user,
            "ts": self.ts,
        }
        if self.schedule is not None:
            out["schedule"] = self.schedule.to_dict()
        return out

    @classmethod
    def scheduled(
        cls, name: str, data: dict[str, Any], id: str, ts: int, schedule: ScheduleTick
    ) -> Event:
        """The event of a schedule's run (built by perdure; ``data`` already validated)."""
        return cls._trusted(name, data, id, ts, {}, schedule)

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
class ScheduleTick:
    """What started a schedule's run: the schedule's ``id``, the ``tick`` (the instant the
    cron expression named, or when :meth:`~perdure.schedules.Schedules.trigger` was called)
    and whether it was such a ``manual`` trigger. As JSON (``event["schedule"]``):
    ``{"id", "tick": "2026-06-01T09:00:00Z", "manual"}``."""

    id: str
    tick: datetime
    manual: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"id": self.id, "tick": iso_utc(self.tick), "manual": self.manual}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> ScheduleTick:
        """Rebuild from the JSON form (as stored by perdure)."""
        tick = datetime.fromisoformat(str(value["tick"]).replace("Z", "+00:00"))
        return cls(str(value["id"]), tick, bool(value.get("manual", False)))


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule created at run time (:attr:`App.schedules`), as a client sees it.

    ``data`` is the ``ctx.event.data`` of its runs. ``last_tick``: every tick up to this
    instant is handled (run, skipped or missed; before the first tick, the creation or resume
    time). ``next_tick``: the next tick (``None`` while paused). ``runs``: the runs it started
    (ticks and triggers); ``skipped_overlap``: ticks that started nothing because the previous
    run was still active (``overlap="skip"``); ``missed``: ticks that did not run after
    downtime (the catch-up policy), counted up to 1,000 per gap.
    """

    id: str
    function_id: str
    cron: str
    tz: str
    data: dict[str, Any]
    overlap: str
    catchup: str
    catchup_window: float
    paused: bool
    last_tick: datetime
    next_tick: datetime | None
    last_run_id: str | None
    runs: int
    skipped_overlap: int
    missed: int
    created_at: datetime
    updated_at: datetime


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
    name: str | None = None
    """The step's name as written in the code, when ``id`` is derived from it (the steps of
    apps on the Inngest SDKs: ``id`` is the SHA-1 of the step id)."""
    input: Any = None
    """What the step was given, when it was recorded: ``{"args": [...], "kwargs": {...}}`` for
    a ``run`` step called with arguments, ``{"function", "data"}`` for ``invoke``,
    ``{"events"}`` for ``send``, ``{"event", "match", "if", "timeout"}`` for ``wait``."""


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
    rerun_of: str | None = None
    """The run this one reruns (:meth:`perdure.App.rerun`), or ``None``."""
    replay_of: str | None = None
    """The run this one replays from a step (:meth:`perdure.App.replay`), or ``None``."""
    replay_from_step: str | None = None
    """The id of the step the replay executes from (the recorded results of the steps before
    it were kept), or ``None``."""


@dataclass(frozen=True, slots=True)
class FunctionPause:
    """Whether a function is paused (:meth:`perdure.App.pause`), and since when. A paused
    function's runs are created and queue; none starts until it is resumed."""

    function_id: str
    paused: bool
    paused_at: datetime | None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker as registered (:meth:`perdure.query.Query.list_workers`). ``status`` is
    ``live`` (beating), ``stopped`` (shut down cleanly) or ``dead`` (no beat for longer than
    ``stale_after`` seconds: it crashed or lost the database)."""

    id: str
    host: str
    pid: int
    app: str
    functions: list[str]
    slots: int
    slots_used: int
    started_at: datetime
    last_heartbeat: datetime
    stopped_at: datetime | None
    stale_after: float
    status: str

    @property
    def live(self) -> bool:
        """Whether the worker is running now."""
        return self.status == "live"


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
