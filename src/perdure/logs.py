"""Logging for the long-running commands: text or one JSON object per line, with the run.

The worker sets the run being executed (:func:`set_attempt`) in the task that executes it, and
the drivers set the step around a step (:func:`step`); both are context variables, so every log
record made while a run executes -- by perdure or by the function's own code, in the task or in
a step body's thread -- knows its run. ``--log-format json`` prints them:

    {"ts": "2026-01-01T12:00:00.123Z", "level": "INFO", "logger": "app", "message": "...",
     "run_id": "...", "function_id": "...", "step_id": "...", "attempt": 0}

(the run fields only when known; ``exc`` holds a traceback when there is one).
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

_ATTEMPT: ContextVar[tuple[str, str, int] | None] = ContextVar("perdure_attempt", default=None)
_STEP: ContextVar[str | None] = ContextVar("perdure_step", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def set_attempt(run_id: str, function_id: str, attempt: int) -> None:
    """The current task executes attempt ``attempt`` of run ``run_id`` (call it at the start
    of the task that executes it: a task's context variables are its own)."""
    _ATTEMPT.set((run_id, function_id, attempt))


class step:  # used as a function: ``with logs.step(key):``
    """Within the block, log records name the step ``step_id`` (a class, not a generator
    context manager: it is entered around every step body)."""

    __slots__ = ("_step_id", "_token")

    def __init__(self, step_id: str) -> None:
        self._step_id = step_id

    def __enter__(self) -> None:
        self._token = _STEP.set(self._step_id)

    def __exit__(self, *exc: object) -> None:
        _STEP.reset(self._token)


def step_in_task(step_id: str) -> None:
    """The current task works on step ``step_id`` until it ends."""
    _STEP.set(step_id)


def run_fields() -> dict[str, Any]:
    """The run, function, attempt and step the current context executes (those known)."""
    out: dict[str, Any] = {}
    current = _ATTEMPT.get()
    if current is not None:
        out["run_id"], out["function_id"], out["attempt"] = current
    step_id = _STEP.get()
    if step_id is not None:
        out["step_id"] = step_id
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, ISO 8601, milliseconds), ``level``,
    ``logger``, ``message``, the run fields when known (:func:`run_fields`) and ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        ms = int(record.msecs)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{ms:03d}Z"
        out: dict[str, Any] = {
            "ts": ts,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(run_fields())
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["exc"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


def configure(level: str, fmt: LogFormat = "text") -> None:
    """Log to stderr at ``level``, as text (the default) or JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
