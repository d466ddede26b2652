"""Typed descriptions of the errors recorded for failed steps and runs.

A failure crosses the store as JSON (``{"type": ..., "message": ...}``, plus ``step_id`` and
``cause`` for a :class:`~perdure.errors.StepError`). The store, the runtime and every driver
build and read it through :class:`ErrorInfo` instead of writing JSON literals; the failures the
engine itself records (a cancellation, an invoke timeout, too many worker crashes) are named
here once.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

import orjson

from perdure.errors import StepError


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """One recorded error: its ``type`` (the exception's class name), its ``message``, and for a
    failed step re-raised by the function, the step's id and the original error (``cause``)."""

    type: str
    message: str
    step_id: str | None = None
    cause: ErrorInfo | None = None
    stack: str | None = None
    """The traceback where it was raised (at most :data:`STACK_LIMIT` characters, the
    innermost frames kept), as the dashboard shows it; the Inngest SDKs send theirs too."""

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        """Describe an exception as it is recorded, with its traceback."""
        stack = _stack(exc)
        if isinstance(exc, StepError):
            return cls(
                "StepError",
                str(exc),
                step_id=exc.step_id,
                cause=cls(exc.error_type, exc.error_message),
                stack=stack,
            )
        return cls(type(exc).__name__, str(exc), stack=stack)

    @classmethod
    def from_dict(cls, value: Any) -> ErrorInfo:
        """Read a recorded error (tolerant: a missing field reads as a generic error)."""
        if not isinstance(value, dict):
            return cls("Error", "" if value is None else str(value))
        cause = value.get("cause")
        step_id = value.get("step_id")
        stack = value.get("stack")
        return cls(
            str(value.get("type", "Error")),
            str(value.get("message", "")),
            step_id=step_id if isinstance(step_id, str) else None,
            cause=cls.from_dict(cause) if isinstance(cause, dict) else None,
            stack=stack if isinstance(stack, str) else None,
        )

    @classmethod
    def from_json(cls, text: str | bytes | None) -> ErrorInfo:
        """Read a recorded error from its JSON text."""
        return cls.from_dict(orjson.loads(text) if text else None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object as recorded."""
        out: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.step_id is not None:
            out["step_id"] = self.step_id
        if self.cause is not None:
            out["cause"] = self.cause.to_dict()
        if self.stack is not None:
            out["stack"] = self.stack
        return out

    def to_json(self) -> str:
        """The JSON text as recorded."""
        return orjson.dumps(self.to_dict()).decode()


STACK_LIMIT = 8192
"""The most characters of a traceback recorded with an error."""


def _stack(exc: BaseException) -> str | None:
    """The traceback of a raised exception (``None`` if it was never raised)."""
    if exc.__traceback__ is None:
        return None
    text = "".join(traceback.format_exception(exc))
    if len(text) > STACK_LIMIT:
        text = "...\n" + text[-(STACK_LIMIT - 4) :]
    return text


RUN_CANCELLED = ErrorInfo("RunCancelledError", "the run was cancelled")
"""Recorded on a run cancelled by a user (and on its steps in flight)."""

INVOKE_TIMEOUT = ErrorInfo(
    "InvokeTimeoutError", "the invoked run did not finish before the timeout"
)
"""Recorded on an ``invoke`` step whose child run did not end before its timeout."""


def worker_crashes(max_crashes: int) -> ErrorInfo:
    """Recorded on a run failed because it was interrupted by too many worker crashes."""
    return ErrorInfo(
        "WorkerCrashError",
        f"the run was interrupted by {max_crashes} worker crashes (max_crashes={max_crashes});"
        " it is failed to protect the workers",
    )
