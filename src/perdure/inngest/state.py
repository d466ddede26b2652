"""A run's recorded steps as an Inngest SDK sees them: memoized values, the stack, errors.

Pure: no I/O. The Inngest driver records each step under its hashed id (§6.8: the SDK's key);
this module says what the SDK is sent back for each recorded step (§6.6):

=================  =====================================================
recorded step      memoized value
=================  =====================================================
run, completed     ``{"data": <output>}``
run, failed        ``{"error": <the SDK's error object>}``
sleep, completed   ``null``
wait, completed    the matching event (not wrapped), ``null`` on timeout
invoke, completed  ``{"data": <the child's output>}``
invoke, failed     ``{"error": ...}`` (a timeout as Inngest names it)
=================  =====================================================

Errors are recorded in perdure's form (``{"type", "message"}``, read by the dashboard, the API
and the Python SDK) with the SDK's own error object kept whole under ``"inngest"``, so that the
SDK gets back exactly what it reported (Python's ``code``, the stack).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from perdure.engine.failures import INVOKE_TIMEOUT, ErrorInfo
from perdure.store.base import StoredStep

#: What Inngest calls a timed-out invoke (§8.4); the SDKs raise it in the caller.
INVOKE_TIMEOUT_ERROR = {
    "name": "InngestInvokeTimeoutError",
    "message": "Timed out waiting for invoked function to complete",
    "error": "InngestInvokeTimeoutError: Timed out waiting for invoked function to complete",
}

_RESOLVED = frozenset({"completed", "failed"})


def record_error(error: Mapping[str, Any], status: int | None = None) -> str:
    """The JSON recorded for an SDK error object (a failed step, a failed run; ``status``: the
    HTTP status of the answer that reported a run's failure, kept for lifecycle events)."""
    name = error.get("name")
    message = error.get("message")
    out: dict[str, Any] = {
        "type": name if isinstance(name, str) and name else "Error",
        "message": message if isinstance(message, str) else "",
        "inngest": dict(error),
    }
    if status:
        out["status"] = status
    return orjson.dumps(out).decode()


def sdk_error(text: str | None) -> dict[str, Any]:
    """The SDK error object for a recorded error: the one the SDK reported, else one built from
    perdure's record (a native child run's failure, an invoke timeout)."""
    value = orjson.loads(text) if text else None
    if isinstance(value, dict) and isinstance(value.get("inngest"), dict):
        return dict(value["inngest"])
    info = ErrorInfo.from_dict(value)
    if info.type == INVOKE_TIMEOUT.type:
        return dict(INVOKE_TIMEOUT_ERROR)
    return {"name": info.type, "message": info.message}


def is_resolved(step: StoredStep) -> bool:
    """Whether the SDK is sent a memoized value for this step."""
    return step.status in _RESOLVED


def memo(step: StoredStep) -> Any:
    """The memoized value sent for a resolved step (see the module docstring)."""
    if step.status == "failed":
        return {"error": sdk_error(step.error)}
    value = orjson.loads(step.output) if step.output else None
    if step.kind in ("sleep", "wait"):
        return value
    return {"data": value}


def stack_order(steps: Iterable[StoredStep]) -> list[str]:
    """The keys of the resolved steps in the order they were resolved (``ctx.stack``)."""
    done = [s for s in steps if is_resolved(s)]
    done.sort(key=lambda s: (s.ended_at or 0.0, s.seq))
    return [s.key for s in done]
