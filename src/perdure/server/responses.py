"""The response shapes of the REST API, as pydantic models: the OpenAPI document's response
schemas are generated from them (the responses themselves are built by the handlers; the
schemathesis test checks every response against these)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from perdure.types import RunStatus

_RUN_STATUSES = tuple(s.value for s in RunStatus)


class _Open(BaseModel):
    """A response object: more fields may be added later."""

    model_config = ConfigDict(extra="allow")


class ErrorDetail(BaseModel):
    """The ``error`` member of every error response."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        description="Stable, for programs: malformed_json, invalid_input, host_not_allowed, "
        "unauthorized, origin_not_allowed, not_found, app_not_found, event_not_found, "
        "function_not_found, "
        "run_not_found, schedule_not_found, method_not_allowed, schedule_exists, "
        "payload_too_large, "
        "unsupported_media_type, unavailable, internal_error (and invalid_cron, "
        "invalid_expression, not_serializable: kinds of invalid input)."
    )
    message: str = Field(description="Precise, for humans.")


class Error(BaseModel):
    """Every error response."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


class ScheduleTick(_Open):
    """What started a schedule's run (``event.schedule``)."""

    id: str
    tick: datetime
    manual: bool


class Event(_Open):
    """An event as stored."""

    id: str
    name: str
    data: dict[str, Any]
    user: dict[str, Any]
    ts: int = Field(description="Milliseconds since the epoch.")
    schedule: ScheduleTick | None = Field(
        default=None, description="Only in the event of a schedule's run."
    )


class StoredEvent(Event):
    """An event as listed."""

    received_at: datetime
    run_ids: list[str] = Field(description="The runs this event started.")


class RunBrief(_Open):
    """A run in a list of links."""

    id: str
    function_id: str
    status: Literal[_RUN_STATUSES]  # type: ignore[valid-type]
    created_at: datetime
    ended_at: datetime | None


class ResumedRun(_Open):
    """A run an event resumed: its wait step the event satisfied."""

    run_id: str
    step_id: str = Field(description="The wait step's id.")
    run: RunBrief | None = Field(description="null for a run pruned since.")


class EventDetail(StoredEvent):
    """An event with the runs it started and resumed."""

    started: list[RunBrief] = Field(description="The runs it started (by id).")
    resumed: list[ResumedRun] = Field(
        description="The runs whose wait_for_event step it satisfied (by run id)."
    )


class SentEvent(_Open):
    """What became of one sent event."""

    id: str
    duplicate: bool = Field(description="Already received within the dedupe window: ignored.")
    run_ids: list[str] = Field(
        description="The runs this event started or joined (a debounce or batch run), "
        "including the ones recorded as skipped."
    )
    skipped: list[str] = Field(
        default_factory=list,
        description="The runs among run_ids that flow control recorded as skipped (rate "
        "limit, idempotency, singleton): they never execute; their reason says why.",
    )


class SendResult(_Open):
    """The answer to ``POST /api/v1/events``."""

    ids: list[str] = Field(description="The events' ids, in the order sent.")
    events: list[SentEvent]


class EventPage(_Open):
    """A page of events, newest first."""

    events: list[StoredEvent]
    next_cursor: str | None


class EventTrigger(_Open):
    """Runs on events whose name matches ``event``, filtered by the CEL expression ``if``."""

    event: str
    if_: str | None = Field(default=None, alias="if")


class CronTrigger(_Open):
    """Runs on a cron schedule."""

    cron: str
    tz: str
    catchup: float | None = Field(default=None, description="The catch-up window, in seconds.")
    catchup_policy: Literal["none", "latest", "all"] | None = None
    overlap: Literal["skip", "allow"] | None = None


class Function(_Open):
    """A registered function."""

    id: str
    app: str
    triggers: list[EventTrigger | CronTrigger]
    config: dict[str, Any]
    flow: dict[str, Any] = Field(
        default_factory=dict, description="The flow-control options (docs/flow-control.md)."
    )
    paused: bool = Field(
        default=False, description="Paused: its runs queue, none starts (docs/operations.md)."
    )
    paused_at: datetime | None = None


class Durations(_Open):
    """Duration percentiles, in seconds (null without completed or failed runs)."""

    p50: float | None
    p95: float | None
    p99: float | None


class FunctionStats(_Open):
    """A function's recent record: its most recently created runs (up to ``window``)."""

    function_id: str
    window: int = Field(description="The most recent runs read (1000).")
    runs: int = Field(description="How many of them exist (at most window).")
    statuses: dict[str, int] = Field(description="How many are in each status.")
    success_rate: float | None = Field(
        description="completed / (completed + failed), from 0 to 1; null when neither. "
        "Cancelled and skipped runs do not count (an operator's or flow control's "
        "decision)."
    )
    duration: Durations = Field(
        description="Over the completed and failed runs: ended_at - started_at "
        "(nearest-rank percentiles)."
    )


class FunctionList(_Open):
    """Every registered function."""

    functions: list[Function]


class Worker(_Open):
    """A registered worker (docs/operations.md)."""

    id: str
    host: str
    pid: int
    app: str = Field(description="The apps of its functions, comma-separated.")
    functions: list[str]
    slots: int = Field(description="Runs it can execute at once.")
    slots_used: int = Field(description="Runs it was executing at its last heartbeat.")
    started_at: datetime
    last_heartbeat: datetime
    stopped_at: datetime | None
    stale_after: float = Field(description="Seconds without a heartbeat after which it is dead.")
    status: Literal["live", "stopped", "dead"]
    live: bool


class WorkerList(_Open):
    """Registered workers, oldest start first."""

    workers: list[Worker]


class StartedRun(_Open):
    """The answer to starting a run."""

    run_id: str
    created: bool = Field(description="False: the idempotency key named an existing run.")


class ErrorInfo(_Open):
    """A recorded error."""

    type: str
    message: str


class Step(_Open):
    """A recorded step of a run."""

    id: str
    kind: Literal["run", "sleep", "wait", "invoke", "send"]
    status: str
    output: Any
    error: ErrorInfo | None
    attempts: int
    position: int
    started_at: datetime | None
    ended_at: datetime | None
    wake_at: datetime | None
    name: str | None = Field(
        default=None,
        description="The step's name in the code when id is derived from it (Inngest SDK steps).",
    )
    input: Any = Field(
        default=None,
        description='What the step was given, when recorded: {"args", "kwargs"} of a run step, '
        '{"function", "data"} of an invoke, {"events"} of a send, {"event", "match", "if", '
        '"timeout"} of a wait.',
    )


class FlowReason(_Open):
    """Why flow control delayed, skipped or cancelled a run."""

    option: str = Field(description="The option that decided: rate_limit, throttle, ...")
    decision: str = Field(description="What it decided: skipped, delayed, cancelled, ...")
    message: str


class RunSummary(_Open):
    """A run as listed (without its steps)."""

    id: str
    function_id: str
    status: Literal[_RUN_STATUSES]  # type: ignore[valid-type]
    event: Event
    output: Any
    error: ErrorInfo | None
    attempt: int
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    parent_run_id: str | None
    idempotency_key: str | None
    reason: FlowReason | None = None
    events: list[Event] | None = Field(
        default=None,
        description="A batch run's events in arrival order (event is the first); "
        "absent for other runs.",
    )
    rerun_of: str | None = Field(default=None, description="The run this one reruns.")
    replay_of: str | None = Field(default=None, description="The run this one replays.")
    replay_from_step: str | None = Field(
        default=None, description="The step a replay executes from (the steps before it kept)."
    )


class Run(RunSummary):
    """A run with its steps."""

    steps: list[Step]


class RunPage(_Open):
    """A page of runs, newest first."""

    runs: list[RunSummary]
    next_cursor: str | None


class Schedule(_Open):
    """A schedule created at run time."""

    id: str
    function_id: str
    cron: str
    tz: str
    data: dict[str, Any]
    overlap: Literal["skip", "allow"]
    catchup: Literal["none", "latest", "all"]
    catchup_window: float = Field(description="Seconds.")
    paused: bool
    last_tick: datetime = Field(
        description="Every tick up to this instant is handled (before the first tick: the "
        "creation or resume time)."
    )
    next_tick: datetime | None = Field(description="null while paused.")
    last_run_id: str | None
    runs: int = Field(description="The runs it started (ticks and triggers).")
    skipped_overlap: int = Field(description="Ticks skipped: the previous run was active.")
    missed: int = Field(description="Ticks that did not run after downtime (catch-up).")
    created_at: datetime
    updated_at: datetime


class SchedulePage(_Open):
    """A page of schedules, by id."""

    schedules: list[Schedule]
    next_cursor: str | None


class AppSync(_Open):
    """One sync attempt of an Inngest SDK app."""

    at: datetime
    ok: bool
    error: str | None
    source: Literal["register", "poll", "resync"] = Field(
        description="register: the app posted /fn/register; poll: the -u poller's PUT; "
        "resync: a PUT asked for through the API."
    )


class App(_Open):
    """An app on an official Inngest SDK (sync times and errors are what this server saw
    since it started)."""

    id: str | None = Field(description="null for a -u URL that never registered.")
    url: str
    functions: list[str]
    function_count: int
    sdk: str | None
    framework: str | None
    last_synced_at: datetime | None = Field(description="The last registration seen here.")
    last_attempt: AppSync | None
    last_error: str | None = Field(description="The last attempt's error, if it failed.")


class AppList(_Open):
    """The Inngest SDK apps, by id."""

    apps: list[App]


class Resync(_Open):
    """The answer to a resync: the app after it, and the attempt."""

    app: App
    sync: AppSync


class Health(_Open):
    """``/health``."""

    status: Literal["ok", "unavailable"]
    database: str = Field(description='"ok", or why the database is unreachable.')
    version: str


class BulkFailure(_Open):
    """A run a bulk action could not change, and why."""

    run_id: str
    code: str
    message: str


class BulkResult(_Open):
    """The answer of a bulk action (see :mod:`perdure.server.bulk`)."""

    dry_run: bool
    matched: int = Field(description="The runs selected (at most limit).")
    more: bool = Field(description="More runs match past the selected ones.")
    next_cursor: str | None = Field(description="Pass as cursor to go on.")
    limit: int = Field(description="The most runs one call selects.")
    run_ids: list[str] = Field(description="The runs changed (dry_run: that would be).")
    new_run_ids: list[str] = Field(description="The reruns, in the order of run_ids.")
    failed: list[BulkFailure]


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Error,
    SendResult,
    EventPage,
    EventDetail,
    FunctionList,
    FunctionStats,
    Function,
    WorkerList,
    StartedRun,
    Run,
    RunPage,
    BulkResult,
    Schedule,
    SchedulePage,
    AppList,
    Resync,
    Health,
)
"""The models the OpenAPI document's responses refer to (and, through them, the others)."""
