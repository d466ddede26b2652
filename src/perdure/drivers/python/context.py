"""The context handed to a function: the event, the run id, the attempt, and the steps.

``async def`` functions get a :class:`Context` whose step methods are awaitables (steps awaited
together with ``asyncio.gather`` run in parallel). Plain ``def`` functions get a
:class:`SyncContext` whose step methods block and return values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar, overload

from perdure import serde
from perdure.drivers.python.execution import RetryAt, RunExecution
from perdure.engine.durations import to_seconds
from perdure.errors import InvalidInputError
from perdure.functions import function_id_of
from perdure.types import Event

P = ParamSpec("P")
T = TypeVar("T")

Duration = timedelta | float | int | str

logger = logging.getLogger("perdure.run")


def _deadline(when: datetime) -> float:
    if not isinstance(when, datetime):
        raise InvalidInputError("sleep_until needs a datetime")
    if when.tzinfo is None:
        raise InvalidInputError("sleep_until needs an aware datetime (with a time zone)")
    return when.timestamp()


def _timeout(timeout: Duration | None) -> float | None:
    return None if timeout is None else to_seconds(timeout)


def _events(events: Event | list[Event]) -> list[Event]:
    items = [events] if isinstance(events, Event) else list(events)
    if not items or not all(isinstance(e, Event) for e in items):
        raise InvalidInputError("send_event needs a perdure.Event or a non-empty list of them")
    return items


class Step:
    """Step methods for ``async def`` functions. Every method returns an awaitable; its key and
    position are fixed at call time, so ``asyncio.gather`` of steps is deterministic."""

    __slots__ = ("_ex",)

    def __init__(self, ex: RunExecution) -> None:
        self._ex = ex

    @overload
    def run(
        self,
        step_id: str,
        fn: Callable[P, Coroutine[Any, Any, T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Coroutine[Any, Any, T]: ...

    @overload
    def run(
        self, step_id: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, T]: ...

    def run(
        self, step_id: str, fn: Callable[P, Any], *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, Any]:
        """Run ``fn(*args, **kwargs)`` as a step: once, checkpointed, retried on error.

        ``fn`` may be sync (it then runs in a thread) or async. Its result must be
        JSON-serializable; pydantic models and dataclasses come back as such when ``fn``'s
        return annotation names them.
        """
        key, seq = self._ex.next_key(step_id)
        return self._ex.run_step(key, seq, fn, args, kwargs)

    def sleep(self, step_id: str, duration: Duration) -> Coroutine[Any, Any, None]:
        """Suspend the run for ``duration`` (timedelta, seconds, or "1h30m")."""
        seconds = to_seconds(duration)
        key, seq = self._ex.next_key(step_id)
        return self._ex.sleep_until(key, seq, self._ex.now() + seconds)

    def sleep_until(self, step_id: str, when: datetime) -> Coroutine[Any, Any, None]:
        """Suspend the run until ``when`` (an aware datetime)."""
        deadline = _deadline(when)
        key, seq = self._ex.next_key(step_id)
        return self._ex.sleep_until(key, seq, deadline)

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        match: str | None = None,
        if_: str | None = None,
        timeout: Duration | None = None,
    ) -> Coroutine[Any, Any, Event | None]:
        """Wait for the first event named ``event``, sent after the wait began, that matches:
        ``match="data.order_id"`` (equal to the same field of this run's event) and/or a CEL
        ``if_`` over ``event`` (this run's event) and ``async`` (the candidate). Returns the
        event, or ``None`` when ``timeout`` passes first."""
        seconds = _timeout(timeout)
        key, seq = self._ex.next_key(step_id)
        return self._ex.wait_for_event(key, seq, event, match, if_, seconds)

    def send_event(
        self, step_id: str, events: Event | list[Event]
    ) -> Coroutine[Any, Any, list[str]]:
        """Send one or more events, exactly once; returns their ids."""
        items = _events(events)
        key, seq = self._ex.next_key(step_id)
        return self._ex.send_event(key, seq, items)

    def invoke(
        self,
        step_id: str,
        *,
        function: Any,
        data: dict[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """Start ``function`` (a decorated function or its id) with ``data`` and return its
        output; its failure raises :class:`~perdure.StepError` here."""
        fid = function_id_of(function)
        seconds = _timeout(timeout)
        key, seq = self._ex.next_key(step_id)
        return self._ex.invoke(key, seq, fid, data or {}, seconds)

    async def parallel(self, *steps: Awaitable[T]) -> list[T]:
        """Await several steps at once (the same as ``asyncio.gather``)."""
        return list(await asyncio.gather(*steps))


class SyncStep:
    """Step methods for plain ``def`` functions: the same as :class:`Step`, but blocking."""

    __slots__ = ("_ex",)

    def __init__(self, ex: RunExecution) -> None:
        self._ex = ex

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._ex.loop).result()

    def run(self, step_id: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` as a step (in this thread): once, checkpointed."""
        ex = self._ex
        key, seq = ex.next_key(step_id)
        rec = ex.recorded(key, seq, "run")
        tp = serde.return_type(fn)
        attempts_before = 0
        if rec is not None:
            if rec.status == "completed":
                value: T = serde.decode_as(rec.output, tp)
                return value
            if rec.status == "failed":
                raise ex.step_error(key, rec)
            attempts_before = rec.attempts
            if rec.wake_at is not None and rec.wake_at > ex.now():
                self._call(ex.park(key, rec.wake_at, "queued", watch=False))
        lease = ex.lease
        if lease.holding:  # the previous steps' results are durable before this body
            self._call(lease.flush())
        started = ex.now()
        if lease.aborted or started >= lease.lease_sure_until:
            self._call(lease.confirm_lease())
        result: Any = None
        exc: BaseException | None = None
        try:
            result = fn(*args, **kwargs)
        except Exception as err:
            exc = err
        given = ex.encode_input(args, kwargs)
        out: Any = self._call(
            ex.after_body(key, seq, attempts_before, started, result, exc, tp, given)
        )
        if isinstance(out, RetryAt):
            self._call(ex.park(key, out.wake_at, "queued", watch=False))
        value_out: T = out
        return value_out

    def sleep(self, step_id: str, duration: Duration) -> None:
        """Suspend the run for ``duration``."""
        seconds = to_seconds(duration)
        key, seq = self._ex.next_key(step_id)
        self._call(self._ex.sleep_until(key, seq, self._ex.now() + seconds))

    def sleep_until(self, step_id: str, when: datetime) -> None:
        """Suspend the run until ``when`` (an aware datetime)."""
        deadline = _deadline(when)
        key, seq = self._ex.next_key(step_id)
        self._call(self._ex.sleep_until(key, seq, deadline))

    def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        match: str | None = None,
        if_: str | None = None,
        timeout: Duration | None = None,
    ) -> Event | None:
        """Wait for a matching event; ``None`` on timeout (see :meth:`Step.wait_for_event`)."""
        seconds = _timeout(timeout)
        key, seq = self._ex.next_key(step_id)
        return self._call(self._ex.wait_for_event(key, seq, event, match, if_, seconds))

    def send_event(self, step_id: str, events: Event | list[Event]) -> list[str]:
        """Send one or more events, exactly once; returns their ids."""
        items = _events(events)
        key, seq = self._ex.next_key(step_id)
        return self._call(self._ex.send_event(key, seq, items))

    def invoke(
        self,
        step_id: str,
        *,
        function: Any,
        data: dict[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> Any:
        """Run another function and return its output."""
        fid = function_id_of(function)
        seconds = _timeout(timeout)
        key, seq = self._ex.next_key(step_id)
        return self._call(self._ex.invoke(key, seq, fid, data or {}, seconds))


class _BaseContext:
    __slots__ = ("_ex",)

    def __init__(self, ex: RunExecution) -> None:
        self._ex = ex

    @property
    def event(self) -> Event:
        """The event that started the run (for a direct start: ``perdure/function.invoked``
        with the start's data)."""
        return self._ex.event

    @property
    def events(self) -> list[Event]:
        """The run's events: for a function with ``batch=``, every event of the batch in
        arrival order (``event`` is the first); otherwise a list of the one event."""
        return list(self._ex.events)

    @property
    def run_id(self) -> str:
        """This run's id."""
        return self._ex.run_id

    @property
    def function_id(self) -> str:
        """This function's id."""
        return self._ex.fdef.id

    @property
    def attempt(self) -> int:
        """How many earlier attempts of the function body failed (0 on the first)."""
        return self._ex.attempt

    @property
    def logger(self) -> logging.Logger:
        """A logger for the function."""
        return logger


class Context(_BaseContext):
    """The context of an ``async def`` function."""

    __slots__ = ("step",)

    def __init__(self, ex: RunExecution) -> None:
        super().__init__(ex)
        self.step = Step(ex)


class SyncContext(_BaseContext):
    """The context of a plain ``def`` function."""

    __slots__ = ("step",)

    def __init__(self, ex: RunExecution) -> None:
        super().__init__(ex)
        self.step = SyncStep(ex)
