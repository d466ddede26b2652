"""One error tree for perdure.

Every error a user can see derives from :class:`PerdureError` and carries a stable ``code``
(used as the ``error.code`` field of HTTP error bodies). The class docstring's first line is the
default message.

Control-flow signals that user code must never swallow (suspension, cancellation, a lost lease)
are *not* here: they live in :mod:`perdure._signals` and derive from ``BaseException`` so that an
``except Exception`` in a workflow cannot catch them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from perdure._error_base import InvalidInputError as InvalidInputError
from perdure._error_base import PerdureError as PerdureError
from perdure.engine.durations import to_seconds


class InvalidExpressionError(InvalidInputError):
    """The expression does not compile."""

    code = "invalid_expression"


class InvalidCronError(InvalidInputError):
    """The cron expression is invalid."""

    code = "invalid_cron"


class PayloadTooLargeError(InvalidInputError):
    """The payload is larger than the configured limit."""

    code = "payload_too_large"

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes")
        self.what = what
        self.size = size
        self.limit = limit


class SerializationError(InvalidInputError):
    """The value is not JSON-serializable."""

    code = "not_serializable"


class FunctionNotFoundError(PerdureError, LookupError):
    """No function is registered with that id."""

    code = "function_not_found"


class RunNotFoundError(PerdureError, LookupError):
    """No run has that id."""

    code = "run_not_found"


class RunNotEndedError(PerdureError):
    """The run has not ended (a replay starts from an ended run's recorded steps)."""

    code = "run_not_ended"


class ScheduleNotFoundError(PerdureError, LookupError):
    """No schedule has that id."""

    code = "schedule_not_found"


class ScheduleExistsError(PerdureError):
    """A schedule with that id already exists."""

    code = "schedule_exists"


class StoreUnavailableError(PerdureError):
    """The database is unreachable; retry later."""

    code = "unavailable"


class NonDeterminismError(PerdureError):
    """The function no longer matches the steps recorded for this run."""

    code = "nondeterminism"


class NonRetriableError(PerdureError):
    """The error is permanent: do not retry.

    Raise it from a step (or from the function body) to fail at once, whatever retries are left.
    """

    code = "non_retriable"


class RetryAfterError(PerdureError):
    """The operation failed; retry after the given delay.

    ``delay`` is a :class:`~datetime.timedelta`, a number of seconds, or a duration string such
    as ``"1m30s"``.
    """

    code = "retry_after"

    def __init__(self, delay: timedelta | float | str, message: str | None = None) -> None:
        self.delay_seconds = to_seconds(delay)
        super().__init__(message or f"retry after {self.delay_seconds:g}s")


class StepError(PerdureError):
    """A step failed for good (its retries are exhausted, or it raised NonRetriableError).

    Raised inside the function at the step's call, where user code may catch it, for example to
    run compensations. ``step_id`` is the step's id, ``error_type`` and ``error_message`` describe
    the original error.
    """

    code = "step_failed"

    def __init__(self, step_id: str, error_type: str, error_message: str) -> None:
        super().__init__(f"step {step_id!r} failed: {error_type}: {error_message}")
        self.step_id = step_id
        self.error_type = error_type
        self.error_message = error_message


class RunFailedError(PerdureError):
    """The run failed."""

    code = "run_failed"

    def __init__(self, run_id: str, error: dict[str, Any] | None) -> None:
        error = error or {}
        self.run_id = run_id
        self.error_type = str(error.get("type", "Error"))
        self.error_message = str(error.get("message", ""))
        self.error = error
        super().__init__(f"run {run_id} failed: {self.error_type}: {self.error_message}")


class RunCancelledError(PerdureError):
    """The run was cancelled."""

    code = "run_cancelled"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was cancelled")
        self.run_id = run_id


class UnauthorizedError(PerdureError):
    """The server refused the request: its API token is missing or wrong."""

    code = "unauthorized"


class ForbiddenError(PerdureError):
    """The key is valid but its scopes do not allow this request (a ``read`` key asking to
    cancel a run, an ``ingest`` key reading runs), or a browser request lacked its CSRF token."""

    code = "forbidden"


class KeyNotFoundError(PerdureError, LookupError):
    """No API key has this id in the environment."""

    code = "key_not_found"


class RemoteError(PerdureError):
    """The perdure server could not be reached, or answered with an error no other class
    describes (a bug on the server, a proxy in between, an unknown route).

    ``status`` is the HTTP status (``None``: no answer), ``error_code`` the ``error.code`` of
    the server's answer, if it had one.
    """

    code = "remote_error"

    def __init__(
        self, message: str, *, status: int | None = None, error_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
