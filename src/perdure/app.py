"""The :class:`App`: the functions you register and the client operations on runs and events.

An app is bound to one database. Any process on the same database can start runs, send events,
read, await and cancel runs; workers (``app.worker()`` or ``perdure worker module:app``) execute
them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from perdure import ids, serde
from perdure.clock import Clock
from perdure.engine.backoff import RetryPolicy
from perdure.engine.durations import to_seconds
from perdure.errors import (
    FunctionNotFoundError,
    InvalidInputError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
)
from perdure.functions import FunctionDef, Trigger
from perdure.store import default_url, open_store
from perdure.store.base import (
    ClaimedRun,
    EventIn,
    NewRun,
    RunFilter,
    RunRow,
    SentEvent,
    Store,
    StoredStep,
)
from perdure.types import TERMINAL_STATUSES, Event, RunInfo, RunStatus, StepInfo, to_datetime

if TYPE_CHECKING:
    from perdure.batching import Batcher
    from perdure.worker import Worker

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

INVOKED_EVENT = "perdure/function.invoked"
_RECENT = 4096
_POLL_SECONDS = 0.1
_POLL_MAX_SECONDS = 1.0
_KiB = 1024
_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Payload limits, in bytes of JSON. Over a limit: :class:`~perdure.errors.
    PayloadTooLargeError` (HTTP 413) and nothing is written."""

    event: int = 512 * _KiB
    run_input: int = 4 * _MiB
    run_output: int = 4 * _MiB
    step_output: int = 4 * _MiB


@dataclass(slots=True)
class _Outcome:
    status: str
    output: str | None
    error: str | None


class RunHandle:
    """A started run: its id, and a way to await its result."""

    def __init__(self, app: App, run_id: str, *, fresh: bool = False) -> None:
        self.app = app
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
        outcome = await self.app._wait_outcome(self.run_id, seconds, check_first=not self._fresh)
        if outcome.status == "completed":
            return serde.loads(outcome.output)
        if outcome.status == "cancelled":
            raise RunCancelledError(self.run_id)
        raise RunFailedError(self.run_id, serde.loads(outcome.error))

    def result_sync(self, timeout: float | timedelta | None = None) -> Any:
        """:meth:`result` for code outside asyncio."""
        return self.app._sync(self.result(timeout))

    async def status(self) -> RunStatus:
        """The run's current status."""
        return (await self.app.get_run(self.run_id, steps=False)).status


class App:
    """A perdure application: a name, a database, and the functions registered on it.

    ``database_url`` defaults to ``PERDURE_DATABASE_URL``, else a SQLite file under
    ``./.perdure/``. ``clock`` replaces the system clock (tests: :class:`perdure.testing.
    ManualClock`). ``retention`` is how long ended runs are kept (``None``: forever).
    """

    def __init__(
        self,
        name: str,
        database_url: str | None = None,
        *,
        clock: Clock | None = None,
        limits: Limits | None = None,
        retry_policy: RetryPolicy | None = None,
        retention: timedelta | None = timedelta(days=30),
    ) -> None:
        if not name or not isinstance(name, str):
            raise InvalidInputError("an app needs a name")
        self.name = name
        self.database_url = database_url or default_url()
        self.clock = clock
        self.limits = limits or Limits()
        self.retry_policy = retry_policy or RetryPolicy()
        self.retention = retention
        self.functions: dict[str, FunctionDef] = {}
        self._store: Store | None = None
        self._open_lock: asyncio.Lock | None = None
        self._workers: list[Worker] = []
        self._waiters: dict[str, list[asyncio.Future[_Outcome]]] = {}
        self._closing = False
        self._pollers: dict[
            asyncio.AbstractEventLoop, tuple[asyncio.Task[None], asyncio.Event]
        ] = {}
        self._recent: collections.OrderedDict[str, _Outcome] = collections.OrderedDict()
        self._starts: Batcher[NewRun, Any] | None = None
        self._sends: Batcher[EventIn, SentEvent] | None = None
        self._known_remote: set[str] = set()
        self._sync_loop: asyncio.AbstractEventLoop | None = None
        self._sync_thread: threading.Thread | None = None
        self._sync_lock = threading.Lock()

    # ------------------------------------------------------------------ registry

    @overload
    def function(self, fn: F, /) -> F: ...

    @overload
    def function(
        self,
        *,
        id: str | None = None,
        trigger: Trigger | Sequence[Trigger] | None = None,
        retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        max_crashes: int = 10,
    ) -> Callable[[F], F]: ...

    def function(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        id: str | None = None,
        trigger: Trigger | Sequence[Trigger] | None = None,
        retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        max_crashes: int = 10,
    ) -> Any:
        """Register ``async def f(ctx)`` or ``def f(ctx)`` as a durable function.

        ``id`` defaults to the function's name with ``_`` turned into ``-``. ``trigger`` is
        :func:`perdure.event`, :func:`perdure.cron`, or a list; none means the function is only
        started directly or invoked. ``retries`` (default 4) applies to each step and to the
        function body; ``retry_policy`` sets the backoff. A run that kills its worker more than
        ``max_crashes`` times fails.
        """

        def decorate(f: F) -> F:
            policy = retry_policy or self.retry_policy
            trig: Any = list(trigger) if isinstance(trigger, list | tuple) else trigger
            fdef = FunctionDef.build(
                f,
                id=id,
                trigger=trig,
                retries=retries,
                retry_policy=policy,
                max_crashes=max_crashes,
                app_name=self.name,
            )
            if fdef.id in self.functions and self.functions[fdef.id].fn is not f:
                raise InvalidInputError(f"a function with id {fdef.id!r} is already registered")
            self.functions[fdef.id] = fdef
            try:
                f.__perdure_function_id__ = fdef.id  # type: ignore[attr-defined]
            except (AttributeError, TypeError):  # pragma: no cover - builtins
                pass
            return f

        if fn is not None:
            return decorate(fn)
        return decorate

    def function_id(self, target: Any) -> str:
        """The id of a decorated function, a :class:`FunctionDef`, or an id string."""
        if isinstance(target, str):
            return target
        if isinstance(target, FunctionDef):
            return target.id
        fid = getattr(target, "__perdure_function_id__", None)
        if isinstance(fid, str):
            return fid
        raise FunctionNotFoundError(
            f"{getattr(target, '__name__', target)!r} is not a perdure function "
            "(decorate it with @app.function)"
        )

    # ------------------------------------------------------------------ lifecycle

    def _is_closing(self) -> bool:
        return self._closing

    @property
    def is_open(self) -> bool:
        """Whether the database is open."""
        return self._store is not None

    @property
    def store(self) -> Store:
        """The opened store (call :meth:`open` first; client methods do it for you)."""
        if self._store is None:
            raise RuntimeError("the app is not open: use `async with app:` or `await app.open()`")
        return self._store

    async def open(self) -> None:
        """Connect to the database and apply migrations (idempotent)."""
        if self._store is not None:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self.is_open:
                return
            store = open_store(self.database_url, clock=self.clock)
            await store.open()
            store.on_finished(self._runs_finished_elsewhere)
            self._closing = False
            from perdure.batching import Batcher

            self._starts = Batcher(store.create_runs, max_batch=2000)
            self._sends = Batcher(store.send_events, max_batch=500)
            self._store = store

    async def close(self) -> None:
        """Stop this app's workers and close the database."""
        for worker in list(self._workers):
            await worker.stop()
        # Let the result pollers finish their current read rather than cancel it mid-query.
        self._closing = True
        for loop, (task, poll_now) in list(self._pollers.items()):
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(poll_now.set)
            if loop is asyncio.get_running_loop():
                try:
                    await asyncio.wait_for(asyncio.shield(task), 2.0)
                except (TimeoutError, Exception):
                    task.cancel()
            else:
                loop.call_soon_threadsafe(task.cancel)
        if self._store is not None:
            if self._starts is not None:
                await self._starts.drain()
            if self._sends is not None:
                await self._sends.drain()
            await self._store.close()
            self._store = None
        if self._sync_loop is not None:
            loop, self._sync_loop = self._sync_loop, None
            loop.call_soon_threadsafe(loop.stop)
            if self._sync_thread is not None:
                self._sync_thread.join(timeout=5)

    async def __aenter__(self) -> App:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def register(self) -> None:
        """Record this app's functions in the database (workers do it when they start)."""
        await self.open()
        await self.store.register_functions([f.record() for f in self.functions.values()])

    def worker(self, **options: Any) -> Worker:
        """A worker for this app's functions: ``async with app.worker(): ...``.

        Options: ``concurrency`` (runs at once, default 500), ``sync_concurrency`` (threads for
        plain ``def`` functions and sync step bodies, default 32), ``lease_seconds`` (30),
        ``poll_interval`` (seconds between checks for work from other processes; SQLite 0.1,
        PostgreSQL 2, where notifications wake workers at once),
        ``functions`` (ids to host; default all).
        """
        from perdure.worker import Worker

        return Worker(self, **options)

    # ------------------------------------------------------------------ client: runs

    async def _check_function(self, fid: str) -> None:
        if fid in self.functions or fid in self._known_remote:
            return
        known = {f.id for f in await self.store.list_functions()}
        self._known_remote = known
        if fid not in known:
            raise FunctionNotFoundError(f"no function with id {fid!r} is registered")

    def _invocation(self, data: Any, event_id: str) -> str:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InvalidInputError("run data must be a JSON object (a dict)")
        now = self._store.now() if self._store is not None else time.time()
        event = {
            "id": event_id,
            "name": INVOKED_EVENT,
            "data": data,
            "user": {},
            "ts": int(now * 1000),
        }
        return serde.dumps_limited(event, "the run's input", self.limits.run_input)

    async def start(
        self,
        function: Any,
        data: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> RunHandle:
        """Start a run of ``function`` (decorated function or id) with ``data`` (its
        ``ctx.event.data``). The same ``idempotency_key`` always gives the same run."""
        fid = self.function_id(function)
        run_id = ids.new_id()
        body = self._invocation(data, run_id)
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 256
        ):
            raise InvalidInputError("idempotency_key must be a string of 1-256 characters")
        await self.open()
        await self._check_function(fid)
        assert self._starts is not None
        run = NewRun(run_id, fid, body, idempotency_key=idempotency_key)
        # A worker of this process hosting the function takes the run at once: it is created
        # already leased to it, which saves the claim round trip.
        local = next((w for w in self._workers if w.reserve(fid)), None)
        if local is None:
            created = await self._starts.call(run)
        else:
            run.lease_owner, run.lease_seconds = local.id, local.lease_seconds
            asked_at = self.store.now()
            try:
                created = await self._starts.call(run)
                if created.token is not None:
                    claimed = ClaimedRun(run.id, fid, created.token, body, 0, {}, 0)
                    local.launch_started(claimed, asked_at)
            finally:
                local.unreserve()
        return RunHandle(self, created.id, fresh=created.created)

    def handle(self, run_id: str) -> RunHandle:
        """A handle on an existing run."""
        return RunHandle(self, run_id)

    async def child_run(self, function_id: str, data: Any, parent: str, key: str) -> NewRun:
        """The run an ``invoke`` step creates; its idempotency key makes retries safe."""
        await self._check_function(function_id)
        run_id = ids.new_id()
        return NewRun(
            run_id,
            function_id,
            self._invocation(data, run_id),
            idempotency_key=f"invoke:{parent}:{key}",
            parent_run_id=parent,
            parent_step=key,
        )

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunInfo:
        """A run with its status, input event, output or error, steps and timestamps."""
        await self.open()
        row = await self.store.get_run(run_id)
        if row is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        recorded = await self.store.get_steps(run_id) if steps else []
        return run_info(row, recorded)

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
        flt = RunFilter(
            status=None if status is None else RunStatus(status).value,
            function_id=None if function is None else self.function_id(function),
            before=before,
            limit=max(1, min(limit, 1000)),
        )
        return [run_info(r, []) for r in await self.store.list_runs(flt)]

    async def cancel(self, run_id: str) -> RunInfo:
        """Cancel a queued, running, sleeping or waiting run: it becomes ``cancelled`` and
        never resumes (a step body already executing finishes, but nothing it returns is
        recorded). Cancelling an ended run changes nothing."""
        await self.open()
        row = await self.store.cancel_run(run_id)
        if row is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        for worker in self._workers:
            worker.abort_run(run_id)
        if row.status == "cancelled":
            self._run_finished(run_id, "cancelled", None, row.error)
        return run_info(row, await self.store.get_steps(run_id))

    # ------------------------------------------------------------------ client: events

    def _event_in(self, event: Event) -> EventIn:
        if not isinstance(event, Event):
            raise InvalidInputError("send() takes perdure.Event objects")
        obj = event.stamped().to_dict()
        body = serde.dumps_limited(obj, f"event {event.name!r}", self.limits.event)
        return EventIn(obj["id"], obj["name"], obj, body)

    async def send(self, events: Event | Sequence[Event]) -> list[str]:
        """Send events; return their ids. Each starts the runs of the functions it triggers
        and resumes the runs waiting for it. Everything is validated before anything is
        written."""
        items = [events] if isinstance(events, Event) else list(events)
        prepared = [self._event_in(e) for e in items]
        await self.open()
        assert self._sends is not None
        results = await asyncio.gather(*(self._sends.submit(e) for e in prepared))
        return [r.id for r in results]

    async def send_detailed(self, events: Sequence[Event]) -> list[SentEvent]:
        """Like :meth:`send`, also telling duplicates and the runs each event started."""
        prepared = [self._event_in(e) for e in events]
        await self.open()
        return await self.store.send_events(prepared)

    # ------------------------------------------------------------------ results

    def _run_finished(
        self, run_id: str, status: str, output: str | None, error: str | None
    ) -> None:
        outcome = _Outcome(status, output, error)
        self._recent[run_id] = outcome
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        for fut in self._waiters.pop(run_id, ()):
            _settle(fut, outcome)

    def _held_locally(self, run_id: str) -> bool:
        return any(run_id in w._active for w in self._workers)

    def _runs_finished_elsewhere(self, run_ids: Sequence[str]) -> None:
        """The store says these runs ended (another process, or a notification): look now.
        Runs a worker of this process holds are left out: that worker reports them itself."""
        if any(r in self._waiters and not self._held_locally(r) for r in run_ids):
            for loop, (_, poll_now) in list(self._pollers.items()):
                with contextlib.suppress(RuntimeError):  # that loop is closed
                    loop.call_soon_threadsafe(poll_now.set)

    async def _wait_outcome(
        self, run_id: str, timeout: float | None, *, check_first: bool
    ) -> _Outcome:
        """Wait for a run's outcome: told at once by a worker of this process, by the store's
        notifications, or found by one shared poller that reads all awaited runs at once."""
        await self.open()
        recent = self._recent.get(run_id)
        if recent is not None:
            return recent
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[_Outcome] = loop.create_future()
        self._waiters.setdefault(run_id, []).append(fut)
        try:
            if check_first:
                row = await self.store.get_run(run_id)
                if row is None:
                    raise RunNotFoundError(f"no run with id {run_id!r}")
                if row.status in TERMINAL_STATUSES:
                    return _Outcome(row.status, row.output, row.error)
            poller = self._pollers.get(loop)
            if poller is None or poller[0].done():
                poll_now = asyncio.Event()
                task = loop.create_task(self._poll_outcomes(poll_now))
                self._pollers[loop] = (task, poll_now)
            try:
                return await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                raise TimeoutError(f"run {run_id} did not finish within {timeout}s") from None
        finally:
            waiters = self._waiters.get(run_id)
            if waiters is not None and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    del self._waiters[run_id]

    async def _poll_outcomes(self, poll_now: asyncio.Event) -> None:
        """While anyone in this loop awaits a result, read the awaited runs' states (one query
        per 500 runs), for runs ended by other processes. The interval starts at
        ``_POLL_SECONDS`` and backs off to ``_POLL_MAX_SECONDS`` while nothing ends elsewhere;
        a store notification cuts the wait short. Runs a local worker holds are skipped."""
        loop = asyncio.get_running_loop()
        interval = _POLL_SECONDS
        try:
            while self._store is not None and self._waiters and not self._is_closing():
                poll_now.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(poll_now.wait(), interval)
                if self._is_closing():
                    break
                interval = min(interval * 1.5, _POLL_MAX_SECONDS)
                one_loop = len(self._pollers) == 1
                mine = [
                    r
                    for r, futs in self._waiters.items()
                    if (one_loop or any(f.get_loop() is loop for f in futs))
                    and not self._held_locally(r)
                ]
                for start in range(0, len(mine), 500):
                    try:
                        rows = await self.store.get_runs(mine[start : start + 500])
                    except Exception:  # the store is down or closing: try again later
                        break
                    for row in rows:
                        if row.status in TERMINAL_STATUSES:
                            interval = _POLL_SECONDS
                            outcome = _Outcome(row.status, row.output, row.error)
                            for fut in self._waiters.get(row.id, ()):
                                _settle(fut, outcome)
        finally:
            if self._pollers.get(loop, (None,))[0] is asyncio.current_task():
                del self._pollers[loop]

    # ------------------------------------------------------------------ sync twins

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("use the async method inside asyncio (this is the sync twin)")
        with self._sync_lock:
            if self._sync_loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="perdure-sync", daemon=True)
                thread.start()
                self._sync_loop, self._sync_thread = loop, thread
        return asyncio.run_coroutine_threadsafe(coro, self._sync_loop).result()

    def start_sync(
        self,
        function: Any,
        data: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> RunHandle:
        """:meth:`start` for code outside asyncio."""
        return self._sync(self.start(function, data, idempotency_key=idempotency_key))

    def send_sync(self, events: Event | Sequence[Event]) -> list[str]:
        """:meth:`send` for code outside asyncio."""
        return self._sync(self.send(events))

    def get_run_sync(self, run_id: str) -> RunInfo:
        """:meth:`get_run` for code outside asyncio."""
        return self._sync(self.get_run(run_id))

    def cancel_sync(self, run_id: str) -> RunInfo:
        """:meth:`cancel` for code outside asyncio."""
        return self._sync(self.cancel(run_id))

    def close_sync(self) -> None:
        """:meth:`close` for code outside asyncio."""
        if self._sync_loop is None:
            return
        loop = self._sync_loop
        asyncio.run_coroutine_threadsafe(self._close_keep_loop(), loop).result()
        self._sync_loop = None
        loop.call_soon_threadsafe(loop.stop)
        if self._sync_thread is not None:
            self._sync_thread.join(timeout=5)
            self._sync_thread = None
        if not loop.is_running():
            loop.close()

    async def _close_keep_loop(self) -> None:
        loop, self._sync_loop = self._sync_loop, None
        try:
            await self.close()
        finally:
            self._sync_loop = loop


def _settle(fut: asyncio.Future[_Outcome], outcome: _Outcome) -> None:
    """Resolve a result future, from its own loop or another thread's."""

    def settle() -> None:
        if not fut.done():
            fut.set_result(outcome)

    loop = fut.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        settle()
    else:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)


def run_info(row: RunRow, steps: list[StoredStep]) -> RunInfo:
    """A client view of a stored run."""
    return RunInfo(
        id=row.id,
        function_id=row.function_id,
        status=RunStatus(row.status),
        event=Event.from_stored(serde.loads(row.input)),
        output=serde.loads(row.output),
        error=serde.loads(row.error),
        attempt=row.attempt,
        created_at=to_datetime(row.created_at),  # type: ignore[arg-type]
        started_at=to_datetime(row.started_at),
        ended_at=to_datetime(row.ended_at),
        parent_run_id=row.parent_run_id,
        idempotency_key=row.idempotency_key,
        steps=[
            StepInfo(
                id=s.key,
                kind=s.kind,
                status=s.status,
                output=serde.loads(s.output),
                error=serde.loads(s.error),
                attempts=s.attempts,
                position=s.seq,
                started_at=to_datetime(s.started_at),
                ended_at=to_datetime(s.ended_at),
                wake_at=to_datetime(s.wake_at),
            )
            for s in steps
        ],
    )
