"""Lifecycle events: ``inngest/function.finished``, ``.failed`` and ``.cancelled``, emitted when
a run ends, as the Inngest server does (protocol §7.3, §8.3), for every run of every function
(native perdure functions and Inngest-SDK functions alike), so that both kinds can trigger on
them (the Inngest SDKs' ``on_failure`` handlers are functions triggered by
``inngest/function.failed`` with an ``if`` on ``event.data.function_id``).

When
    Right after the run's end is committed (and again by a starting worker for the runs that
    ended around a crash: :meth:`LifecycleEmitter.recover`): the store announces every run
    that ended (its own commits: a worker's outcome, a cancel by API or by a ``cancel``
    event, a flow-control or timeout cancel; on PostgreSQL other processes' too), and
    :class:`LifecycleEmitter` turns the ids it is told into events sent through the ordinary
    event path (routing, waits, cancel-on, flow control). The ids are derived from the run
    (``failed``/``cancelled``: the run id, as Inngest does; ``finished``: ``<run id>:finished``),
    so a run announced twice, or by two processes, yields each event once (the store's event
    dedupe).

Cost when nothing listens
    Nothing is read or written unless some registered function triggers on one of these names
    (the function registry is read at most once a second while runs end, to know).

Loops
    A run started by a lifecycle event emits none itself (a handler of ``function.finished``
    would otherwise trigger itself for ever); the Go server does the same for failure handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import orjson

from perdure import serde
from perdure.engine.flow.gates import input_events
from perdure.functions import EventTrigger, FunctionRecord
from perdure.store.base import EventIn, RunRow, SentEvent

__all__ = [
    "CANCELLED",
    "FAILED",
    "FINISHED",
    "LIFECYCLE_EVENTS",
    "LifecycleEmitter",
    "lifecycle_events",
    "listens",
    "standard_error",
]

log = logging.getLogger("perdure.lifecycle")

FINISHED = "inngest/function.finished"
FAILED = "inngest/function.failed"
CANCELLED = "inngest/function.cancelled"
LIFECYCLE_EVENTS = (FINISHED, FAILED, CANCELLED)
_STATUS = {"completed": "Completed", "failed": "Failed", "cancelled": "Cancelled"}
#: Seconds the knowledge "some function listens" is trusted before the registry is read again.
REGISTRY_TTL = 1.0
#: Recovery: runs that ended up to this many seconds before the newest lifecycle event stored
#: are announced again (their events may have been pending when the process died).
RECOVERY_MARGIN = 60.0
#: Recovery: at most this many runs are announced again.
RECOVERY_LIMIT = 10_000


def listens(records: Iterable[FunctionRecord]) -> bool:
    """Whether any of the functions triggers on a lifecycle event."""
    for record in records:
        for trigger in record.triggers:
            if isinstance(trigger, EventTrigger) and any(
                trigger.pattern.matches(name) for name in LIFECYCLE_EVENTS
            ):
                return True
    return False


def standard_error(recorded: str | None, *, cancelled: bool = False) -> dict[str, Any]:
    """The ``error`` of a lifecycle event (Inngest's "standard error": ``error``, ``name``,
    ``message``, ``stack``) from a run's recorded error: the SDK's own error object when an
    Inngest app reported it (a plain HTTP failure reads ``invalid status code: <status>`` as
    in Go), else perdure's ``type`` and ``message``."""
    if cancelled:
        return {"error": "function cancelled", "name": "Error", "message": "function cancelled"}
    value = serde.loads(recorded) if recorded else None
    record = value if isinstance(value, dict) else {}
    sdk = record.get("inngest")
    if isinstance(sdk, dict):
        name = _text(sdk.get("name")) or "Error"
        message = _text(sdk.get("message")) or "Function execution error"
        status = record.get("status")
        if isinstance(sdk.get("error"), str) and sdk["error"]:
            text = sdk["error"]
        elif isinstance(status, int) and status >= 300:
            text = f"invalid status code: {status}"
        else:
            text = f"{name}: {message}"
        out = {"error": text, "name": name, "message": message, "stack": sdk.get("stack")}
        if "cause" in sdk:
            out["cause"] = sdk["cause"]
        return out
    name = _text(record.get("type")) or "Error"
    message = _text(record.get("message")) or "Function execution error"
    return {"error": f"{name}: {message}", "name": name, "message": message, "stack": None}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def lifecycle_events(row: RunRow) -> list[dict[str, Any]]:
    """The lifecycle events of an ended run (JSON objects, ids derived from the run): always
    ``function.finished``, and ``function.failed`` or ``function.cancelled``. None for a run
    that has not ended, was skipped, or was started by a lifecycle event."""
    status = _STATUS.get(row.status)
    if status is None:
        return []
    stored = serde.loads(row.input)
    events = input_events(stored)
    first = events[0] if events else {}
    if first.get("name") in LIFECYCLE_EVENTS:
        return []
    data: dict[str, Any] = {
        "function_id": row.function_id,
        "run_id": row.id,
        "event": first,
        "events": events,
    }
    if row.parent_run_id is not None and row.parent_step is not None:
        data["correlation_id"] = f"{row.parent_run_id}.{row.parent_step}"
    if row.status == "completed":
        data["result"] = serde.loads(row.output) if row.output else None
    else:
        data["error"] = standard_error(row.error, cancelled=row.status == "cancelled")
    data["_inngest"] = {"status": status}
    ts = int((row.ended_at or time.time()) * 1000)
    out = [{"id": f"{row.id}:finished", "name": FINISHED, "data": data, "user": {}, "ts": ts}]
    if row.status == "failed":
        out.append({"id": row.id, "name": FAILED, "data": data, "user": {}, "ts": ts})
    elif row.status == "cancelled":
        out.append({"id": row.id, "name": CANCELLED, "data": data, "user": {}, "ts": ts})
    return out


class _Store(Protocol):
    async def list_functions(self) -> list[FunctionRecord]: ...

    async def get_runs(self, run_ids: Sequence[str]) -> list[RunRow]: ...

    async def send_events(self, events: Sequence[EventIn]) -> list[SentEvent]: ...


class _Runtime(Protocol):
    @property
    def store(self) -> Any: ...

    @property
    def is_open(self) -> bool: ...


class LifecycleEmitter:
    """Sends the lifecycle events of the runs the store announces as ended (see the module
    docstring). ``abort(run_id)`` is called for runs a lifecycle event cancelled (a
    ``cancel`` on a lifecycle event)."""

    def __init__(self, runtime: _Runtime, abort: Any = None) -> None:
        self._runtime = runtime
        self._abort = abort
        self._pending: dict[str, None] = {}
        self._task: asyncio.Task[None] | None = None
        self._listening = False
        self._checked = float("-inf")
        self.sent = 0
        """Lifecycle events sent (duplicates included), for tests and diagnostics."""

    def invalidate(self) -> None:
        """Functions were registered or removed: read the registry again at the next end."""
        self._checked = float("-inf")

    def finished(self, run_ids: Sequence[str]) -> None:
        """The store says these runs ended (hub listener; called on the event loop)."""
        if not self._listening and time.monotonic() - self._checked < REGISTRY_TTL:
            return  # nothing listens: no cost
        for run_id in run_ids:
            self._pending[run_id] = None
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):  # no running loop: closing
                self._task = asyncio.get_running_loop().create_task(
                    self._flush(), name="perdure-lifecycle"
                )

    async def recover(self) -> int:
        """Announce again the runs whose lifecycle events a crash may have lost; how many.

        The events of a run are sent after its end is committed, so a process killed in
        between never sends them. A starting worker therefore takes the newest
        ``function.finished`` event stored, and announces again every run that ended after it
        (less :data:`RECOVERY_MARGIN`, at most :data:`RECOVERY_LIMIT`): the events' ids are
        derived from the runs, so those already sent are dropped by the store's dedupe."""
        store = self._runtime.store
        self._listening = listens(await store.list_functions())
        self._checked = time.monotonic()
        if not self._listening:
            return 0
        newest = await store.list_events(FINISHED, None, 1)
        since = (newest[0].received_at if newest else store.now()) - RECOVERY_MARGIN
        run_ids = await store.ended_since(since, RECOVERY_LIMIT)
        if len(run_ids) >= RECOVERY_LIMIT:
            log.warning(
                "lifecycle recovery: more than %d runs ended since the last lifecycle event; "
                "the %d earliest are announced again",
                RECOVERY_LIMIT,
                RECOVERY_LIMIT,
            )
        if run_ids:
            self.finished(run_ids)
        return len(run_ids)

    async def drain(self) -> None:
        """Wait until every announced run's events were sent."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def _flush(self) -> None:
        while self._pending and self._runtime.is_open:
            batch = list(self._pending)[:500]
            try:
                await self._emit(batch)
            except Exception as exc:  # the store went away: the run ids stay pending
                log.warning("lifecycle events not sent yet (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            for run_id in batch:
                self._pending.pop(run_id, None)

    async def _emit(self, run_ids: list[str]) -> None:
        store: _Store = self._runtime.store
        if time.monotonic() - self._checked >= REGISTRY_TTL:
            self._listening = listens(await store.list_functions())
            self._checked = time.monotonic()
        if not self._listening:
            return
        events: list[EventIn] = []
        for row in await store.get_runs(run_ids):
            for obj in lifecycle_events(row):
                body = orjson.dumps(obj).decode()
                events.append(EventIn(obj["id"], obj["name"], obj, body))
        if not events:
            return
        sent = await store.send_events(events)
        self.sent += len(events)
        if self._abort is not None:
            for result in sent:
                for cancelled in result.cancelled:
                    self._abort(cancelled)
