"""The Python driver's execution of one attempt: step bookkeeping, memoization, suspension.

A run's function executes *continuously*: each step's result is checkpointed as it completes, and
the function goes on with the value once the checkpoint is durable. Only a suspension (a sleep, a
wait, a retry backoff, a crash) ends an execution; the next one replays the function from the top
and answers completed steps from the records loaded at claim time (no read per step).

Step keys: a step's key is its id; the n-th call of the same id in one execution gets
``id:n`` (n >= 2). Each call also gets a *position* (call order). Replaying code whose step at a
recorded position has a different key, or whose recorded step moved, fails the run with a
:class:`~perdure.errors.NonDeterminismError` naming the step: changed code never silently diverges.

Suspension: a step that must wait (sleep, wait_for_event, invoke, retry backoff) *parks*. When
every step body of the run has finished and its checkpoint is durable, and at least one step is
parked, the run suspends: the parked calls raise :class:`~perdure._signals.Suspend`, the function
unwinds, and the worker commits the suspension with the earliest wake-up time.

Leases, fenced writes and the lease check before a step body belong to the runtime's
:class:`~perdure.runtime.attempt.Attempt` (``self.lease``); retry decisions to
:mod:`perdure.engine.attempts`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, NoReturn

from perdure import logs, serde
from perdure._signals import Fatal, LeaseLost, Suspend
from perdure.drivers.python.recorded import step_input, wait_spec
from perdure.engine.attempts import Failure, retry_delay
from perdure.engine.failures import ErrorInfo
from perdure.engine.flow.gates import input_events
from perdure.errors import (
    InvalidInputError,
    NonDeterminismError,
    NonRetriableError,
    PayloadTooLargeError,
    SerializationError,
    StepError,
)
from perdure.functions import FunctionDef
from perdure.runtime.attempt import Attempt
from perdure.store.base import Outcome, StepWrite, StoredStep, WaitSpec
from perdure.store.inputs import storable
from perdure.types import Event

MAX_STEP_ID = 200

log = logging.getLogger("perdure.worker")


@dataclass(slots=True)
class _Parked:
    key: str
    wake_at: float | None
    status: str  # the run status this park implies: sleeping, waiting, queued
    watch: bool  # resolved from outside (an event or a child run)
    fut: asyncio.Future[None]


@dataclass(frozen=True, slots=True)
class RetryAt:
    """A step attempt failed and will be retried at ``wake_at``."""

    wake_at: float


class RunExecution:
    """Everything one execution attempt of a Python function needs; shared by the step APIs."""

    def __init__(self, lease: Attempt, fdef: FunctionDef, step_pool: Executor) -> None:
        self.lease = lease
        self.fdef = fdef
        self.step_pool = step_pool
        self.run_id = lease.run_id
        self.attempt = lease.attempt
        self.input = lease.input
        self.steps = lease.steps
        self.now = lease.store.now
        self.tracer = lease.runtime.tracer
        self._event: Event | None = None
        self._events: list[Event] | None = None
        self.loop = asyncio.get_running_loop()
        self._positions = {s.seq: s.key for s in lease.steps.values()}
        self._counters: dict[str, int] = {}
        self._used: set[str] = set()
        self._seq = 0
        self._inflight = 0
        self._parked: list[_Parked] = []
        self._check_scheduled = False
        self.suspended = False
        self.task: asyncio.Future[Any] | None = None
        lease.on_abort(self._aborted)

    @property
    def aborted(self) -> bool:
        """Whether the attempt was aborted (lease lost, cancelled, worker stopping)."""
        return self.lease.aborted

    @property
    def event(self) -> Event:
        """The run's triggering event (decoded on first use)."""
        if self._event is None:
            self._event = self.events[0]
        return self._event

    @property
    def events(self) -> list[Event]:
        """The run's events: a batch run's, in arrival order; otherwise its one event."""
        if self._events is None:
            stored = input_events(serde.loads(self.input))
            self._events = [Event.from_stored(e) for e in stored]
        return self._events

    # ------------------------------------------------------------------ bookkeeping

    def next_key(self, step_id: str) -> tuple[str, int]:
        """Assign the key and position of a step call (deterministic in call order)."""
        if (
            not isinstance(step_id, str)
            or not step_id
            or len(step_id) > MAX_STEP_ID
            or not storable(step_id)
        ):
            raise InvalidInputError(
                f"a step id must be a non-empty string of at most {MAX_STEP_ID} characters"
                " (no NUL characters)"
            )
        if self.aborted:
            raise LeaseLost()
        n = self._counters.get(step_id, 0) + 1
        key = step_id if n == 1 else f"{step_id}:{n}"
        while key in self._used:
            n += 1
            key = f"{step_id}:{n}"
        self._counters[step_id] = n
        self._used.add(key)
        seq = self._seq
        self._seq += 1
        return key, seq

    def recorded(self, key: str, seq: int, kind: str) -> StoredStep | None:
        """The recorded step for this call, checking that the code still matches it."""
        rec = self.steps.get(key)
        if rec is not None:
            if rec.seq != seq:
                self._mismatch(
                    f"step {key!r} was recorded at position {rec.seq} but the code now calls it "
                    f"at position {seq}: steps were added, removed or reordered before it"
                )
            if rec.kind != kind:
                self._mismatch(
                    f"step {key!r} was recorded as a {rec.kind!r} step but the code now calls "
                    f"it as a {kind!r} step"
                )
            return rec
        other = self._positions.get(seq)
        if other is not None:
            self._mismatch(
                f"the code now calls step {key!r} at position {seq}, where this run recorded "
                f"step {other!r}: a step was renamed or removed"
            )
        return None

    def _mismatch(self, message: str) -> NoReturn:
        raise Fatal(NonDeterminismError(message))

    # ------------------------------------------------------------------ durable writes

    async def write(self, op: StepWrite) -> None:
        """Make a checkpoint durable (see :meth:`Attempt.write`)."""
        await self.lease.write(op)

    def step_write(self, key: str, seq: int, kind: str, status: str, **fields: Any) -> StepWrite:
        """A checkpoint for this run."""
        return self.lease.step_write(key, seq, kind, status, **fields)

    async def ensure_lease(self, started: float) -> None:
        """Before a step body that starts at ``started`` (store time): the lease must be sure."""
        lease = self.lease
        if lease.aborted or started >= lease.lease_sure_until:
            await lease.confirm_lease()

    # ------------------------------------------------------------------ step outcomes

    def step_error(self, key: str, rec: StoredStep) -> StepError:
        """The StepError a recorded failure raises."""
        err = ErrorInfo.from_json(rec.error)
        return StepError(key, err.type, err.message)

    def encode_output(self, key: str, value: Any) -> str:
        """Serialize a step's output within the size limit (non-retriable on failure)."""
        try:
            return serde.dumps_limited(
                value, f"output of step {key!r}", self.lease.runtime.limits.step_output
            )
        except (PayloadTooLargeError, SerializationError) as exc:
            raise NonRetriableError(str(exc)) from exc

    def encode_input(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """What a ``run`` step was given (:func:`~.recorded.step_input`)."""
        return step_input(args, kwargs, self.lease.runtime.limits.step_output)

    async def after_body(
        self,
        key: str,
        seq: int,
        attempts_before: int,
        started: float,
        value: Any,
        exc: BaseException | None,
        tp: Any,
        given: str | None = None,
    ) -> Any:
        """Record what a step body did: its value, a final failure (raises StepError), or a
        retry (returns :class:`RetryAt`; the caller parks once its body is accounted for).
        ``given``: the step's recorded input (:meth:`encode_input`)."""
        if exc is None:
            try:
                text = self.encode_output(key, value)
            except NonRetriableError as err:
                exc = err
            else:
                # Held, not awaited: it is made durable with the next write, before the next
                # step's body, or with the outcome (see Attempt.hold).
                self.lease.hold(
                    self.step_write(
                        key,
                        seq,
                        "run",
                        "completed",
                        output=text,
                        attempts=attempts_before + 1,
                        started_at=started,
                        input=given,
                    )
                )
                if value is None or (type(value) in _IMMUTABLE and _plain(tp)):
                    return value  # what a replay would decode, without decoding it
                return serde.decode_as(text, tp)
        if not isinstance(exc, Exception):
            raise exc
        attempts = attempts_before + 1
        failure = Failure.of(exc)
        error = failure.error.to_json()
        delay = retry_delay(self.fdef.retry, attempts, failure)
        if delay is None:
            await self.write(
                self.step_write(
                    key,
                    seq,
                    "run",
                    "failed",
                    error=error,
                    attempts=attempts,
                    started_at=started,
                    input=given,
                )
            )
            raise StepError(key, type(exc).__name__, str(exc)) from exc
        wake = self.now() + delay
        await self.write(
            self.step_write(
                key,
                seq,
                "run",
                "retrying",
                error=error,
                attempts=attempts,
                wake_at=wake,
                started_at=started,
                input=given,
            )
        )
        return RetryAt(wake)

    # ------------------------------------------------------------------ suspension

    async def park(self, key: str, wake_at: float | None, status: str, watch: bool) -> NoReturn:
        """Park a step until the run suspends (raises :class:`Suspend`)."""
        if self.aborted:
            raise LeaseLost()
        fut: asyncio.Future[None] = self.loop.create_future()
        self._parked.append(_Parked(key, wake_at, status, watch, fut))
        self._schedule_check()
        await fut
        raise Suspend()  # pragma: no cover - the future only ever fails

    def body_started(self) -> None:
        """A step body (or a durable write) is in flight: do not suspend yet."""
        self._inflight += 1

    def body_finished(self) -> None:
        """A step body finished; suspend if nothing else can make progress."""
        self._inflight -= 1
        if self._parked and self._inflight == 0:
            self._schedule_check()

    def _schedule_check(self) -> None:
        if not self._check_scheduled:
            self._check_scheduled = True
            # Two hops: let steps started in the same loop iteration (gather) begin first.
            self.loop.call_soon(self.loop.call_soon, self._check)

    def _check(self) -> None:
        self._check_scheduled = False
        if self.suspended or self._inflight or not self._parked:
            return
        self.suspended = True
        for parked in self._parked:
            if not parked.fut.done():
                parked.fut.set_exception(Suspend())

    def suspension(self) -> Outcome:
        """The outcome that suspends this run until its earliest wake-up."""
        wakes = [p.wake_at for p in self._parked if p.wake_at is not None]
        statuses = {p.status for p in self._parked}
        status = (
            "waiting" if "waiting" in statuses else "queued" if "queued" in statuses else "sleeping"
        )
        return Outcome(
            self.run_id,
            self.lease.token,
            "suspend",
            available_at=min(wakes) if wakes else None,
            status=status,
            watch_keys=tuple(p.key for p in self._parked if p.watch),
        )

    def _aborted(self) -> None:
        """The attempt was aborted: stop the function at its next step."""
        for parked in self._parked:
            if not parked.fut.done():
                parked.fut.set_exception(LeaseLost())
        if self.task is None or not self.fdef.is_async:
            return  # a thread cannot be interrupted; it stops at its next step call
        try:
            current = asyncio.current_task()
        except RuntimeError:
            current = None
        if self.task is not current:  # from inside, the LeaseLost raised next unwinds it
            self.task.cancel()

    # ------------------------------------------------------------------ steps

    async def run_step(
        self,
        key: str,
        seq: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """``step.run`` in an async function."""
        rec = self.recorded(key, seq, "run")
        tp = serde.return_type(fn)
        attempts_before = 0
        if rec is not None:
            if rec.status == "completed":
                return serde.decode_as(rec.output, tp)
            if rec.status == "failed":
                raise self.step_error(key, rec)
            attempts_before = rec.attempts
            if rec.wake_at is not None and rec.wake_at > self.now():
                await self.park(key, rec.wake_at, "queued", watch=False)
        self.body_started()
        try:
            if self.lease.holding:  # the previous steps' results are durable before this body
                await self.lease.flush()
            started = self.now()
            await self.ensure_lease(started)
            value: Any = None
            exc: BaseException | None = None
            try:
                with logs.step(key):
                    tracer = self.tracer
                    if tracer is None:
                        value = await self._body(fn, args, kwargs)
                    else:
                        with tracer.step(key, "run", attempts_before + 1) as span:
                            try:
                                value = await self._body(fn, args, kwargs)
                            except Exception as err:
                                span.failed(err)
                                raise
            except Exception as err:
                exc = err
            given = self.encode_input(args, kwargs)
            result = await self.after_body(
                key, seq, attempts_before, started, value, exc, tp, given
            )
        finally:
            self.body_finished()
        if isinstance(result, RetryAt):
            await self.park(key, result.wake_at, "queued", watch=False)
        return result

    async def _body(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if _is_async(fn):
            return await fn(*args, **kwargs)
        # The body's thread logs (and traces) with this run and step too.
        run = contextvars.copy_context().run
        value = await self.loop.run_in_executor(self.step_pool, run, _call, fn, args, kwargs)
        if isinstance(value, Awaitable):
            value = await value
        return value

    def executed(self, key: str, kind: str) -> None:
        """A step of ``kind`` other than ``run`` is executed now (not answered from its
        checkpoint): its span, when tracing."""
        tracer = self.tracer
        if tracer is not None:
            with tracer.step(key, kind, 1):
                pass

    async def sleep_until(self, key: str, seq: int, wake_at: float) -> None:
        """``step.sleep`` and ``step.sleep_until``."""
        rec = self.recorded(key, seq, "sleep")
        if rec is None:
            self.executed(key, "sleep")
            self.body_started()
            try:
                await self.write(self.step_write(key, seq, "sleep", "sleeping", wake_at=wake_at))
            finally:
                self.body_finished()
        else:
            if rec.status == "completed":
                return
            wake_at = rec.wake_at if rec.wake_at is not None else wake_at
        if self.now() >= wake_at:
            self.lease.write_soon(self.step_write(key, seq, "sleep", "completed", wake_at=wake_at))
            return
        await self.park(key, wake_at, "sleeping", watch=False)

    def wait_spec(
        self, event: str, match: str | None, if_: str | None, expires_at: float | None
    ) -> WaitSpec:
        """Validate a wait and compute what it matches (:func:`~.recorded.wait_spec`)."""
        return wait_spec(self.event, event, match, if_, expires_at)

    async def resolve_expired(self, key: str) -> StoredStep:
        """A wait or invoke step whose deadline passed: time it out (unless resolved)."""
        self.body_started()
        try:
            return await self.lease.expire_step(key)
        finally:
            self.body_finished()

    async def wait_for_event(
        self,
        key: str,
        seq: int,
        event: str,
        match: str | None,
        if_: str | None,
        timeout: float | None,
    ) -> Event | None:
        """``step.wait_for_event``: the matching event, or None on timeout."""
        rec = self.recorded(key, seq, "wait")
        if rec is None:
            expires = None if timeout is None else self.now() + timeout
            spec = self.wait_spec(event, match, if_, expires)
            self.executed(key, "wait")
            self.body_started()
            try:
                given = {"event": event, "match": match, "if": if_, "timeout": timeout}
                await self.write(
                    self.step_write(
                        key,
                        seq,
                        "wait",
                        "waiting",
                        wake_at=expires,
                        wait=spec,
                        input=serde.dumps(given),
                    )
                )
            finally:
                self.body_finished()
            await self.park(key, expires, "waiting", watch=True)
        if rec.status == "waiting":
            if rec.wake_at is None or rec.wake_at > self.now():
                await self.park(key, rec.wake_at, "waiting", watch=True)
            rec = await self.resolve_expired(key)
        return _event_or_none(rec.output)

    async def invoke(
        self, key: str, seq: int, function_id: str, data: Any, timeout: float | None
    ) -> Any:
        """``step.invoke``: start another function's run and return its output."""
        rec = self.recorded(key, seq, "invoke")
        if rec is None:
            self.executed(key, "invoke")
            async with self.lease.store_call():
                child = await self.lease.runtime.ops.child_run(function_id, data, self.run_id, key)
            deadline = None if timeout is None else self.now() + timeout
            self.body_started()
            try:
                sent = serde.loads(child.input)  # the invocation event, data as encoded
                given = serde.dumps({"function": function_id, "data": sent.get("data")})
                await self.write(
                    self.step_write(
                        key,
                        seq,
                        "invoke",
                        "invoking",
                        wake_at=deadline,
                        child=child,
                        input=given,
                    )
                )
            finally:
                self.body_finished()
            await self.park(key, deadline, "waiting", watch=True)
        if rec.status == "invoking":
            if rec.wake_at is None or rec.wake_at > self.now():
                await self.park(key, rec.wake_at, "waiting", watch=True)
            rec = await self.resolve_expired(key)
        if rec.status == "failed":
            raise self.step_error(key, rec)
        return serde.loads(rec.output)

    async def send_event(self, key: str, seq: int, events: list[Event]) -> list[str]:
        """``step.send_event``: send once; replays return the recorded ids."""
        rec = self.recorded(key, seq, "send")
        if rec is not None and rec.status == "completed":
            return list(serde.loads(rec.output))
        self.executed(key, "send")
        self.body_started()
        try:
            await self.lease.flush()  # the events may carry earlier results: record them first
            stamped = [e.stamped(self.child_key(key, i)) for i, e in enumerate(events)]
            async with self.lease.store_call():
                ids = await self.lease.runtime.ops.send(stamped)
            given = serde.dumps({"events": [e.to_dict() for e in stamped]})
            await self.write(
                self.step_write(key, seq, "send", "completed", output=serde.dumps(ids), input=given)
            )
            return ids
        finally:
            self.body_finished()

    def child_key(self, key: str, index: int) -> str:
        """A deterministic id for the index-th event sent by a send_event step."""
        return f"{self.run_id}-{key}-{index}"


_IMMUTABLE = frozenset({bool, int, str})  # not float: JSON turns NaN into null
_PLAIN_TYPES = frozenset({Any, bool, int, float, str, object})


def _plain(tp: Any) -> bool:
    try:
        return tp in _PLAIN_TYPES
    except TypeError:  # an unhashable annotation
        return False


@functools.lru_cache(maxsize=4096)
def _is_async(fn: Callable[..., Any]) -> bool:
    return asyncio.iscoroutinefunction(fn)


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return fn(*args, **kwargs)


def _event_or_none(output: str | None) -> Event | None:
    value = serde.loads(output)
    if value is None:
        return None
    return Event.from_stored(value)
