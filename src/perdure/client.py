"""Client operations on runs and events, embedded: start, send, get, list, cancel, rerun,
replay, results.

Any process on the database can use them; workers execute the runs. Starts and events are group
committed (:class:`~perdure.runtime.batching.Batcher`): many concurrent callers share one
transaction, and each returns only once its own write is durable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from perdure import ids, serde
from perdure.engine.durations import to_seconds
from perdure.engine.flow.gates import input_events
from perdure.engine.flow.keys import RunFlow, run_flow
from perdure.engine.flow.options import FlowControl
from perdure.errors import (
    FunctionNotFoundError,
    InvalidInputError,
    RunCancelledError,
    RunFailedError,
    RunNotEndedError,
    RunNotFoundError,
)
from perdure.functions import function_id_of
from perdure.inngest.lifecycle import LifecycleEmitter
from perdure.query import Query, run_info
from perdure.results import ResultWaiter, RunOutcome
from perdure.runtime.batching import Batcher
from perdure.runtime.metrics import count_ended
from perdure.runtime.runtime import Runtime
from perdure.store.access import AuditIn
from perdure.store.base import (
    ClaimedRun,
    CreatedRun,
    EventIn,
    NewRun,
    RunOrigin,
    SentEvent,
    StoredStep,
)
from perdure.store.traces import TRACE_KEY
from perdure.sync import SyncBridge
from perdure.types import Event, FunctionPause, RunInfo, RunStatus, to_datetime

log = logging.getLogger("perdure.client")

INVOKED_EVENT = "perdure/function.invoked"


class HandleSource(Protocol):
    """What a :class:`RunHandle` needs from its client: the embedded :class:`Client`, or the
    remote one (:class:`perdure.remote.Client`)."""

    @property
    def bridge(self) -> SyncBridge:
        """The sync twins' bridge (:class:`~perdure.sync.SyncBridge`)."""
        ...

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunInfo:
        """The run."""
        ...

    async def wait_outcome(
        self, run_id: str, timeout: float | None, *, check_first: bool
    ) -> RunOutcome:
        """Wait for the run to end (``TimeoutError`` after ``timeout`` seconds)."""
        ...


class RunHandle:
    """A started run: its id, and a way to await its result."""

    def __init__(self, client: HandleSource, run_id: str, *, fresh: bool = False) -> None:
        self.client = client
        self.run_id = run_id
        self._fresh = fresh

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r})"

    @property
    def created(self) -> bool:
        """Whether :meth:`App.start` created this run (False: its idempotency key named an
        existing run, or this is a handle on an existing run)."""
        return self._fresh

    async def result(self, timeout: float | timedelta | None = None) -> Any:
        """Wait for the run to end; return its output, or raise :class:`RunFailedError` /
        :class:`RunCancelledError` (and ``TimeoutError`` if ``timeout`` passes first)."""
        seconds = None if timeout is None else to_seconds(timeout)
        outcome = await self.client.wait_outcome(self.run_id, seconds, check_first=not self._fresh)
        if outcome.status == "completed":
            return serde.loads(outcome.output)
        if outcome.status == "cancelled":
            raise RunCancelledError(self.run_id)
        raise RunFailedError(self.run_id, serde.loads(outcome.error))

    def result_sync(self, timeout: float | timedelta | None = None) -> Any:
        """:meth:`result` for code outside asyncio."""
        return self.client.bridge.call(self.result(timeout))

    async def status(self) -> RunStatus:
        """The run's current status."""
        return (await self.client.get_run(self.run_id, steps=False)).status


class ClientSyncTwins:
    """The ``_sync`` twins of the client operations both clients have (the App's embedded
    one and :class:`perdure.remote.Client`), each running its coroutine on ``bridge``."""

    bridge: SyncBridge

    if TYPE_CHECKING:

        async def start(
            self,
            function: Any,
            data: dict[str, Any] | None = None,
            *,
            idempotency_key: str | None = None,
        ) -> RunHandle: ...

        async def send(self, events: Event | Sequence[Event]) -> list[str]: ...

        async def get_run(self, run_id: str, *, steps: bool = True) -> RunInfo: ...

        async def cancel(self, run_id: str) -> RunInfo: ...

        async def rerun(self, run_id: str) -> RunHandle: ...

        async def replay(self, run_id: str, *, from_step: str) -> RunHandle: ...

        async def pause(self, function: Any) -> FunctionPause: ...

        async def resume(self, function: Any) -> FunctionPause: ...

    def start_sync(
        self,
        function: Any,
        data: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> RunHandle:
        """:meth:`start` for code outside asyncio."""
        return self.bridge.call(self.start(function, data, idempotency_key=idempotency_key))

    def send_sync(self, events: Event | Sequence[Event]) -> list[str]:
        """:meth:`send` for code outside asyncio."""
        return self.bridge.call(self.send(events))

    def get_run_sync(self, run_id: str, *, steps: bool = True) -> RunInfo:
        """:meth:`get_run` for code outside asyncio."""
        return self.bridge.call(self.get_run(run_id, steps=steps))

    def cancel_sync(self, run_id: str) -> RunInfo:
        """:meth:`cancel` for code outside asyncio."""
        return self.bridge.call(self.cancel(run_id))

    def rerun_sync(self, run_id: str) -> RunHandle:
        """:meth:`rerun` for code outside asyncio."""
        return self.bridge.call(self.rerun(run_id))

    def replay_sync(self, run_id: str, *, from_step: str) -> RunHandle:
        """:meth:`replay` for code outside asyncio."""
        return self.bridge.call(self.replay(run_id, from_step=from_step))

    def pause_sync(self, function: Any) -> FunctionPause:
        """:meth:`pause` for code outside asyncio."""
        return self.bridge.call(self.pause(function))

    def resume_sync(self, function: Any) -> FunctionPause:
        """:meth:`resume` for code outside asyncio."""
        return self.bridge.call(self.resume(function))


class Client:
    """The client operations of one runtime. ``functions`` are the ids this process defines
    (others are looked up in the database); ``bridge`` runs coroutines for the sync twins."""

    def __init__(self, runtime: Runtime, functions: Mapping[str, Any], bridge: Any) -> None:
        self.runtime = runtime
        self.functions = functions
        self.bridge = bridge
        self.results = ResultWaiter(runtime)
        # Lifecycle events (inngest/function.*) of the runs the store announces as ended.
        self.lifecycle = LifecycleEmitter(runtime, runtime.hub.abort)
        runtime.hub.on_finished_elsewhere(self.lifecycle.finished)
        self.query = Query(runtime)
        self._starts: Batcher[NewRun, CreatedRun] | None = None
        self._sends: Batcher[EventIn, SentEvent] | None = None
        self._known_remote: dict[str, FlowControl] = {}
        runtime.client = self

    async def open(self) -> None:
        """Open the runtime (idempotent)."""
        if self._starts is None or not self.runtime.is_open:
            await self.runtime.open()
            store = self.runtime.store
            self._starts = Batcher(store.create_runs, max_batch=2000)
            self._sends = Batcher(store.send_events, max_batch=500)
            self.results.reopen()

    async def close(self) -> None:
        """Flush queued starts and events; stop the result pollers."""
        await self.results.close()
        await self.lifecycle.drain()
        if self._starts is not None:
            await self._starts.drain()
        if self._sends is not None:
            await self._sends.drain()
        self._starts = self._sends = None

    # ------------------------------------------------------------------ runs

    async def _check_function(self, fid: str) -> FlowControl:
        """The function's flow control; ``FunctionNotFoundError`` if it is not registered."""
        local = self.functions.get(fid)
        if local is not None:
            flow: FlowControl = local.flow
            return flow
        known = self._known_remote.get(fid)
        if known is not None:
            return known
        self._known_remote = {f.id: f.flow for f in await self.runtime.store.list_functions()}
        if fid not in self._known_remote:
            raise FunctionNotFoundError(f"no function with id {fid!r} is registered")
        return self._known_remote[fid]

    def invocation(self, data: Any, event_id: str) -> str:
        """The input (an invocation event, JSON text) of a run started with ``data``."""
        return self._invocation(data, event_id)[1]

    def _invocation(self, data: Any, event_id: str) -> tuple[dict[str, Any], str]:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidInputError("run data must be a JSON object (a dict)")
        now = self.runtime.store.now() if self.runtime.is_open else time.time()
        event = {
            "id": event_id,
            "name": INVOKED_EVENT,
            "data": data,
            "user": {},
            "ts": int(now * 1000),
        }
        tracer = self.runtime.tracer
        if tracer is not None:
            carrier = tracer.carrier()
            if carrier is not None:
                event[TRACE_KEY] = carrier
        body = serde.dumps_limited(event, "the run's input", self.runtime.limits.run_input)
        return event, body

    async def start(
        self,
        function: Any,
        data: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> RunHandle:
        """Start a run of ``function`` (decorated function or id) with ``data`` (its
        ``ctx.event.data``). The same ``idempotency_key`` always gives the same run."""
        fid = function_id_of(function)
        run_id = ids.new_id()
        event, body = self._invocation(data, run_id)
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 256
        ):
            raise InvalidInputError("idempotency_key must be a string of 1-256 characters")
        await self.open()
        spec = await self._check_function(fid)
        assert self._starts is not None
        run = NewRun(run_id, fid, body, idempotency_key=idempotency_key)
        run.flow = run_flow(fid, spec, event)
        # A worker of this process hosting the function takes the run at once: it is created
        # already leased to it, which saves the claim round trip (not for runs under flow
        # control, which the claim decides).
        local = None if run.flow is not None else self.runtime.hub.reserve(fid)
        if local is None:
            created = await self._starts.call(run)
        else:
            run.lease_owner, run.lease_seconds = local.id, local.lease_seconds
            asked_at = self.runtime.store.now()
            try:
                created = await self._starts.call(run)
                if created.token is not None:
                    claimed = ClaimedRun(run.id, fid, created.token, body, 0, {}, 0, first=True)
                    local.launch_started(claimed, asked_at)
            finally:
                local.unreserve()
        if created.skipped and created.created:
            self.runtime.metrics.run_ended(fid, "skipped")
        return RunHandle(self, created.id, fresh=created.created)

    def handle(self, run_id: str) -> RunHandle:
        """A handle on an existing run."""
        return RunHandle(self, run_id)

    async def child_run(self, function_id: str, data: Any, parent: str, key: str) -> NewRun:
        """The run an ``invoke`` step creates; its idempotency key makes retries safe."""
        spec = await self._check_function(function_id)
        run_id = ids.new_id()
        event, body = self._invocation(data, run_id)
        run = NewRun(
            run_id,
            function_id,
            body,
            idempotency_key=f"invoke:{parent}:{key}",
            parent_run_id=parent,
            parent_step=key,
        )
        run.flow = run_flow(function_id, spec, event)
        return run

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunInfo:
        """A run with its status, input event, output or error, steps and timestamps."""
        await self.open()
        return await self.query.get_run(run_id, steps=steps)

    async def list_runs(
        self,
        *,
        status: str | RunStatus | None = None,
        function: Any = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunInfo]:
        """Runs, newest first; ``before`` is the last id of the previous page."""
        await self.open()
        page = await self.query.list_runs(
            status=status,
            function_id=None if function is None else function_id_of(function),
            before=before,
            limit=limit,
        )
        return page.items

    async def cancel(self, run_id: str, *, actor: str | None = None) -> RunInfo:
        """Cancel a queued, running, sleeping or waiting run: it becomes ``cancelled`` and
        never resumes (a step body already executing finishes, but nothing it returns is
        recorded). Cancelling an ended run changes nothing. ``actor`` is who the audit
        trail records (when the run was cancelled by this call)."""
        await self.open()
        store = self.runtime.store
        counted = self.runtime.metrics.enabled
        before = await store.get_run(run_id) if counted or actor is not None else None
        row = await store.cancel_run(run_id)
        if row is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        self.runtime.hub.abort(run_id)
        if counted and row.status == "cancelled" and before and before.status != "cancelled":
            self.runtime.metrics.run_ended(row.function_id, "cancelled")
        if row.status == "cancelled":
            self.results.finished(run_id, "cancelled", None, row.error)
        if actor is not None and row.status == "cancelled" and before and not before.ended_at:
            await self._audit([AuditIn(actor, "cancel", run_id)])
        return run_info(row, await store.get_steps(run_id))

    async def pause(self, function: Any, *, actor: str | None = None) -> FunctionPause:
        """Pause a function (decorated function or id): its runs are still created (events,
        starts, invokes) and queue, but none starts until :meth:`resume`; its cron triggers
        and schedules skip their ticks. A pause survives the function's re-registration.
        Pausing a paused function changes nothing. Raises
        :class:`~perdure.errors.FunctionNotFoundError` for an unknown function."""
        return await self._set_paused(function, True, actor)

    async def resume(self, function: Any, *, actor: str | None = None) -> FunctionPause:
        """Resume a paused function: its queued runs start, in their queue order."""
        return await self._set_paused(function, False, actor)

    async def _set_paused(self, function: Any, paused: bool, actor: str | None) -> FunctionPause:
        fid = function_id_of(function)
        await self.open()
        await self._check_function(fid)
        at = await self.runtime.store.set_function_paused(fid, paused)
        if actor is not None:
            await self._audit([AuditIn(actor, "pause" if paused else "resume", target=fid)])
        return FunctionPause(fid, at is not None, to_datetime(at))

    async def rerun(self, run_id: str, *, actor: str | None = None) -> RunHandle:
        """Start a new run of the same function with the same input (the event or events
        that triggered ``run_id``); it records ``rerun_of``. Any run may be rerun, ended or
        not. Raises :class:`RunNotFoundError` for an unknown run. ``actor``: who the audit
        trail records, on both runs."""
        return await self._derive(run_id, None, actor)

    async def replay(self, run_id: str, *, from_step: str, actor: str | None = None) -> RunHandle:
        """Start a new run of an ended run's function with the same input that keeps the
        recorded results of the steps before ``from_step`` (a step's id, or its name as
        written) and executes from it on; it records ``replay_of`` and ``replay_from_step``.
        Raises :class:`RunNotFoundError` for an unknown run, :class:`RunNotEndedError` for a
        run that has not ended, and :class:`InvalidInputError` for a step the run did not
        record."""
        if not isinstance(from_step, str) or not from_step:
            raise InvalidInputError("from_step must be a non-empty string (a step id)")
        return await self._derive(run_id, from_step, actor)

    async def _derive(
        self, run_id: str, from_step: str | None, actor: str | None = None
    ) -> RunHandle:
        """A rerun (``from_step=None``) or a replay of ``run_id``."""
        if not isinstance(run_id, str) or not run_id:
            raise InvalidInputError("a run id must be a non-empty string")
        await self.open()
        store = self.runtime.store
        row = await store.get_run(run_id)
        if row is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        origin = RunOrigin(row.id, "rerun")
        if from_step is not None:
            if not RunStatus(row.status).terminal:
                raise RunNotEndedError(
                    f"run {row.id} is {row.status}: only an ended run can be replayed "
                    "(rerun starts any run again)"
                )
            step = _step_named(await store.get_steps(row.id), from_step, row.id)
            origin = RunOrigin(row.id, "replay", step.key, step.seq)
        spec = await self._check_function(row.function_id)
        run = NewRun(ids.new_id(), row.function_id, row.input, event_id=row.event_id)
        run.flow = _derived_flow(run_flow(row.function_id, spec, _first_event(row.input)))
        created = await store.create_derived_run(run, origin)
        if created is None:  # pruned meanwhile
            raise RunNotFoundError(f"no run with id {run_id!r}")
        if actor is not None:
            action = origin.kind
            detail = None if from_step is None else {"from_step": origin.from_step}
            await self._audit(
                [
                    AuditIn(actor, action, row.id, created.id, detail),
                    AuditIn(actor, f"{action}_of", created.id, row.id, detail),
                ]
            )
        return RunHandle(self, created.id, fresh=True)

    async def _audit(self, entries: Sequence[AuditIn]) -> None:
        """Append to the audit trail; a failure to record is logged, never raised (the
        action itself has happened)."""
        try:
            await self.runtime.store.record_audit(entries)
        except Exception:
            log.exception("could not record %s in the audit trail", entries[0].action)

    async def wait_outcome(
        self, run_id: str, timeout: float | None, *, check_first: bool
    ) -> RunOutcome:
        """Wait for a run's outcome (see :class:`~perdure.results.ResultWaiter`)."""
        await self.open()
        return await self.results.wait(run_id, timeout, check_first=check_first)

    # ------------------------------------------------------------------ events

    def _event_in(self, event: Event) -> EventIn:
        if not isinstance(event, Event):
            raise InvalidInputError("send() takes perdure.Event objects")
        obj = event.stamped().to_dict()
        tracer = self.runtime.tracer
        if tracer is not None:
            carrier = tracer.carrier()
            if carrier is not None:
                obj[TRACE_KEY] = carrier
        body = serde.dumps_limited(obj, f"event {event.name!r}", self.runtime.limits.event)
        return EventIn(obj["id"], obj["name"], obj, body)

    async def recover(self) -> None:
        """The lifecycle events a crash may have lost are sent (see
        :meth:`~perdure.inngest.lifecycle.LifecycleEmitter.recover`)."""
        await self.lifecycle.recover()

    async def send(self, events: Event | Sequence[Event]) -> list[str]:
        """Send events; return their ids. Each starts the runs of the functions it triggers
        and resumes the runs waiting for it. Everything is validated before anything is
        written."""
        items = [events] if isinstance(events, Event) else list(events)
        prepared = [self._event_in(e) for e in items]
        await self.open()
        assert self._sends is not None
        results = await asyncio.gather(*(self._sends.submit(e) for e in prepared))
        await self._abort_cancelled(results)
        return [r.id for r in results]

    async def _abort_cancelled(self, sent: Sequence[SentEvent]) -> None:
        """Runs cancelled by the events (``cancel_on``): a local worker stops them at once
        (any other stops at its next step: the cancel moved the fencing token). The runs
        they cancelled and those flow control skipped are counted."""
        cancelled = [run_id for s in sent for run_id in s.cancelled]
        for run_id in cancelled:
            self.runtime.hub.abort(run_id)
        if self.runtime.metrics.enabled:
            metrics, store = self.runtime.metrics, self.runtime.store
            await count_ended(metrics, store, cancelled, "cancelled")
            await count_ended(metrics, store, [r for s in sent for r in s.skipped], "skipped")

    async def send_detailed(self, events: Sequence[Event]) -> list[SentEvent]:
        """Like :meth:`send`, also telling duplicates and the runs each event started."""
        prepared = [self._event_in(e) for e in events]
        await self.open()
        sent = await self.runtime.store.send_events(prepared)
        await self._abort_cancelled(sent)
        return sent


def _step_named(steps: Sequence[StoredStep], wanted: str, run_id: str) -> StoredStep:
    """The recorded step a replay starts from: the one whose id is ``wanted``, else the one
    whose name as written is (an Inngest SDK step's id is a hash of its name)."""
    for s in steps:
        if s.key == wanted:
            return s
    named = [s for s in steps if s.name == wanted]
    if len(named) == 1:
        return named[0]
    if named:
        keys = ", ".join(s.key for s in named)
        raise InvalidInputError(
            f"run {run_id} recorded several steps named {wanted!r} (ids {keys}): name one by id"
        )
    known = ", ".join(repr(s.name or s.key) for s in steps[:20]) or "none"
    raise InvalidInputError(
        f"run {run_id} recorded no step {wanted!r} to replay from (its steps: {known})"
    )


def _first_event(stored_input: str) -> dict[str, Any]:
    """The (first) triggering event of a run's stored input."""
    events = input_events(serde.loads(stored_input))
    first = events[0] if events else {}
    return first if isinstance(first, dict) else {}


def _derived_flow(flow: RunFlow | None) -> RunFlow | None:
    """A rerun's or replay's flow control: the limits the claim enforces (concurrency,
    throttle, priority, the start timeout) apply; the decisions taken when a run is created
    from an event (idempotency, rate limit, debounce, batch, singleton) do not: an explicit
    rerun is not a duplicate event, nor one to batch or debounce."""
    if flow is None:
        return None
    return dataclasses.replace(
        flow,
        rate_key=None,
        idempotency_key=None,
        debounce_key=None,
        batch_key=None,
        singleton_key=None,
    )
