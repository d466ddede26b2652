"""perdure: durable execution for Python.

Functions made of steps whose results are checkpointed, so runs survive crashes, deploys and
restarts. See the README for a quick start.
"""

from typing import TYPE_CHECKING, Any

from perdure._version import __version__
from perdure.app import App, Limits, RunHandle
from perdure.clock import Clock, SystemClock
from perdure.drivers.python import Context, Step, SyncContext, SyncStep
from perdure.engine.backoff import RetryPolicy
from perdure.engine.flow.options import (
    Batch,
    CancelOn,
    Concurrency,
    Debounce,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
)
from perdure.errors import (
    ForbiddenError,
    FunctionNotFoundError,
    InvalidInputError,
    KeyNotFoundError,
    NonDeterminismError,
    NonRetriableError,
    PayloadTooLargeError,
    PerdureError,
    RemoteError,
    RetryAfterError,
    RunCancelledError,
    RunFailedError,
    RunNotEndedError,
    RunNotFoundError,
    ScheduleExistsError,
    ScheduleNotFoundError,
    StepError,
    StoreUnavailableError,
    UnauthorizedError,
)
from perdure.functions import CronTrigger, EventTrigger, cron, event
from perdure.runtime import Worker
from perdure.schedules import Schedules
from perdure.store.base import SentEvent
from perdure.types import Event, RunInfo, RunStatus, ScheduleInfo, ScheduleTick, StepInfo

if TYPE_CHECKING:
    from perdure.remote import Client


def __getattr__(name: str) -> Any:
    # ``Client`` (the HTTP client of a remote server) is imported on first use: httpx and what
    # it imports cost an embedded app ~100 ms and several MiB it never uses.
    if name == "Client":
        from perdure.remote import Client

        return Client
    raise AttributeError(f"module 'perdure' has no attribute {name!r}")


__all__ = [
    "App",
    "Batch",
    "CancelOn",
    "Client",
    "Clock",
    "Concurrency",
    "Context",
    "CronTrigger",
    "Debounce",
    "Event",
    "EventTrigger",
    "ForbiddenError",
    "FunctionNotFoundError",
    "InvalidInputError",
    "KeyNotFoundError",
    "Limits",
    "NonDeterminismError",
    "NonRetriableError",
    "PayloadTooLargeError",
    "PerdureError",
    "Priority",
    "RateLimit",
    "RemoteError",
    "RetryAfterError",
    "RetryPolicy",
    "RunCancelledError",
    "RunFailedError",
    "RunHandle",
    "RunInfo",
    "RunNotEndedError",
    "RunNotFoundError",
    "RunStatus",
    "ScheduleExistsError",
    "ScheduleInfo",
    "ScheduleNotFoundError",
    "ScheduleTick",
    "Schedules",
    "SentEvent",
    "Singleton",
    "Step",
    "StepError",
    "StepInfo",
    "StoreUnavailableError",
    "SyncContext",
    "SyncStep",
    "SystemClock",
    "Throttle",
    "Timeouts",
    "UnauthorizedError",
    "Worker",
    "__version__",
    "cron",
    "event",
]
