"""The :class:`App`: the functions you register, and a façade over the client operations.

An app is bound to one database. Any process on the same database can start runs, send events,
read, await and cancel runs; workers (``app.worker()`` or ``perdure worker module:app``) execute
them. The App only wires the parts together: the registry and the decorator live here, the
client operations in :mod:`perdure.client`, the sync twins' loop in :mod:`perdure.sync`, and
execution in the runtime (:mod:`perdure.runtime`) through the Python driver
(:mod:`perdure.drivers.python`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from perdure.client import INVOKED_EVENT, Client, ClientSyncTwins, RunHandle
from perdure.clock import Clock
from perdure.drivers.python import PythonDriver
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
from perdure.environments import check_env, env_from_environment
from perdure.errors import InvalidInputError
from perdure.functions import FunctionDef, Trigger, function_id_of
from perdure.keys import Keys
from perdure.limits import Limits
from perdure.query import Query
from perdure.runtime import Runtime, Worker
from perdure.schedules import Schedules
from perdure.store import default_url
from perdure.store.base import SentEvent, Store
from perdure.sync import SyncBridge
from perdure.types import Event, FunctionPause, RunInfo, RunStatus

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

__all__ = ["INVOKED_EVENT", "App", "Limits", "RunHandle"]

F = TypeVar("F", bound=Callable[..., Any])


class App(ClientSyncTwins):
    """A perdure application: a name, a database, and the functions registered on it.

    ``database_url`` defaults to ``PERDURE_DATABASE_URL``, else a SQLite file under
    ``./.perdure/``. ``env`` is the environment, an isolated namespace on that database
    (:mod:`perdure.environments`; default ``PERDURE_ENV``, else ``default``). ``clock``
    replaces the system clock (tests: :class:`perdure.testing.ManualClock`). ``retention``
    is how long ended runs are kept (``None``: forever). ``tracing`` turns OpenTelemetry spans
    of runs and steps on (``True``, or a ``TracerProvider`` to use) or off (``False``); the
    default ``None`` traces when the process has configured a global tracer provider
    (:mod:`perdure.runtime.tracing`, docs/observability.md).
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
        env: str | None = None,
        tracing: bool | TracerProvider | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise InvalidInputError("an app needs a name")
        self.name = name
        self.retry_policy = retry_policy or RetryPolicy()
        self.functions: dict[str, FunctionDef] = {}
        self.runtime = Runtime(
            database_url or default_url(),
            clock=clock,
            limits=limits or Limits(),
            retention=retention,
            env=check_env(env) if env is not None else env_from_environment(),
            tracing=tracing,
        )
        self.bridge = SyncBridge()
        self.client = Client(self.runtime, self.functions, self.bridge)
        self.schedules = Schedules(self.client)
        """Schedules created at run time (:class:`~perdure.schedules.Schedules`)."""
        self.keys = Keys(self.client)
        """API keys, dashboard sessions and the audit trail of this app's environment
        (:class:`~perdure.keys.Keys`)."""

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
        concurrency: Concurrency | int | Sequence[Concurrency] | None = None,
        throttle: Throttle | None = None,
        rate_limit: RateLimit | None = None,
        debounce: Debounce | None = None,
        batch: Batch | None = None,
        priority: Priority | str | None = None,
        singleton: Singleton | None = None,
        idempotency: str | None = None,
        cancel_on: CancelOn | Sequence[CancelOn] | None = None,
        timeouts: Timeouts | None = None,
        retention: timedelta | None = None,
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
        concurrency: Concurrency | int | Sequence[Concurrency] | None = None,
        throttle: Throttle | None = None,
        rate_limit: RateLimit | None = None,
        debounce: Debounce | None = None,
        batch: Batch | None = None,
        priority: Priority | str | None = None,
        singleton: Singleton | None = None,
        idempotency: str | None = None,
        cancel_on: CancelOn | Sequence[CancelOn] | None = None,
        timeouts: Timeouts | None = None,
        retention: timedelta | None = None,
    ) -> Any:
        """Register ``async def f(ctx)`` or ``def f(ctx)`` as a durable function.

        ``id`` defaults to the function's name with ``_`` turned into ``-``. ``trigger`` is
        :func:`perdure.event`, :func:`perdure.cron`, or a list; none means the function is only
        started directly or invoked. ``retries`` (default 4) applies to each step and to the
        function body; ``retry_policy`` sets the backoff. A run that kills its worker more than
        ``max_crashes`` times fails.

        Flow control (see ``docs/flow-control.md``): ``concurrency`` (runs executing at once,
        per key, per function or shared), ``throttle`` (starts per period, excess delayed),
        ``rate_limit`` (runs per period, excess skipped), ``debounce``, ``batch``, ``priority``
        (a CEL integer: seconds of head start), ``singleton``, ``idempotency`` (a CEL key: one
        run per key within 24 hours), ``cancel_on`` (events that cancel a run) and
        ``timeouts`` (start and finish). Bad options raise ``InvalidInputError`` here, naming
        the function and the option.

        ``retention`` is how long this function's ended runs are kept, instead of the App's
        ``retention`` (docs/operations.md).
        """
        flow = {
            "concurrency": concurrency,
            "throttle": throttle,
            "rate_limit": rate_limit,
            "debounce": debounce,
            "batch": batch,
            "priority": priority,
            "singleton": singleton,
            "idempotency": idempotency,
            "cancel_on": cancel_on,
            "timeouts": timeouts,
        }

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
                flow=flow,
                retention=retention,
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
        return function_id_of(target)

    # ------------------------------------------------------------------ configuration

    @property
    def database_url(self) -> str:
        """The database this app uses (settable until it is opened)."""
        return self.runtime.database_url

    @database_url.setter
    def database_url(self, url: str) -> None:
        if self.runtime.is_open:
            raise RuntimeError("the app is open: set database_url before opening it")
        self.runtime.database_url = url

    @property
    def env(self) -> str:
        """The environment this app's functions, runs and events live in (settable until
        the app is opened)."""
        return self.runtime.env

    @env.setter
    def env(self, env: str) -> None:
        if self.runtime.is_open:
            raise RuntimeError("the app is open: set env before opening it")
        self.runtime.env = check_env(env)

    @property
    def clock(self) -> Clock | None:
        """The clock given to the store (``None``: the system clock)."""
        return self.runtime.clock

    @property
    def limits(self) -> Limits:
        """The payload limits."""
        return self.runtime.limits

    @property
    def retention(self) -> timedelta | None:
        """How long ended runs are kept (``None``: forever)."""
        return self.runtime.retention

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_open(self) -> bool:
        """Whether the database is open."""
        return self.runtime.is_open

    @property
    def query(self) -> Query:
        """The read side (runs, steps, events, functions as the API and CLI show them)."""
        return self.client.query

    @property
    def store(self) -> Store:
        """The opened store (call :meth:`open` first; client methods do it for you)."""
        return self.runtime.store

    async def open(self) -> None:
        """Connect to the database and apply migrations (idempotent)."""
        await self.client.open()

    async def close(self) -> None:
        """Stop this app's workers and close the database."""
        for worker in list(self.runtime.hub.workers):
            await worker.stop()
        await self.client.close()
        await self.runtime.close()
        self.bridge.stop()

    async def __aenter__(self) -> App:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def register(self) -> None:
        """Record this app's functions in the database (workers do it when they start)."""
        await self.open()
        await self.store.register_functions([f.record() for f in self.functions.values()])

    def worker(self, *, sync_concurrency: int = 32, **options: Any) -> Worker:
        """A worker for this app's functions: ``async with app.worker(): ...``.

        Options: ``concurrency`` (runs at once, default 500), ``sync_concurrency`` (threads for
        plain ``def`` functions and sync step bodies, default 32), ``lease_seconds`` (30),
        ``poll_interval`` (seconds between checks for work from other processes; SQLite 0.1,
        PostgreSQL 2, where notifications wake workers at once),
        ``functions`` (ids to host; default all).
        """
        driver = PythonDriver(self.functions, sync_concurrency=sync_concurrency)
        return Worker(self.runtime, [driver], **options)

    # ------------------------------------------------------------------ client operations

    async def start(
        self,
        function: Any,
        data: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> RunHandle:
        """Start a run of ``function`` (decorated function or id) with ``data`` (its
        ``ctx.event.data``). The same ``idempotency_key`` always gives the same run."""
        return await self.client.start(function, data, idempotency_key=idempotency_key)

    def handle(self, run_id: str) -> RunHandle:
        """A handle on an existing run."""
        return self.client.handle(run_id)

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunInfo:
        """A run with its status, input event, output or error, steps and timestamps."""
        return await self.client.get_run(run_id, steps=steps)

    async def list_runs(
        self,
        *,
        status: str | RunStatus | None = None,
        function: Any = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunInfo]:
        """Runs, newest first; ``before`` is the last id of the previous page."""
        return await self.client.list_runs(
            status=status, function=function, before=before, limit=limit
        )

    async def cancel(self, run_id: str, *, actor: str | None = None) -> RunInfo:
        """Cancel a queued, running, sleeping or waiting run: it becomes ``cancelled`` and
        never resumes (a step body already executing finishes, but nothing it returns is
        recorded). Cancelling an ended run changes nothing. The run's audit trail records
        ``actor`` (default ``app:<name>``)."""
        return await self.client.cancel(run_id, actor=actor or self._actor)

    async def rerun(self, run_id: str, *, actor: str | None = None) -> RunHandle:
        """Start a new run of the same function with the same input (the event or events
        that triggered ``run_id``); the new run records ``rerun_of``. Any run may be rerun,
        ended or not. Raises :class:`~perdure.errors.RunNotFoundError` for an unknown run.
        Both runs' audit trails record ``actor`` (default ``app:<name>``)."""
        return await self.client.rerun(run_id, actor=actor or self._actor)

    @property
    def _actor(self) -> str:
        return f"app:{self.name}"

    async def replay(self, run_id: str, *, from_step: str, actor: str | None = None) -> RunHandle:
        """Start a new run from an ended run that keeps the recorded results of the steps
        before ``from_step`` (a step's id, or its name as written) and executes from that step
        on; the new run records ``replay_of`` and ``replay_from_step``. Raises
        :class:`~perdure.errors.RunNotFoundError` (unknown run),
        :class:`~perdure.errors.RunNotEndedError` (the run has not ended) or
        :class:`~perdure.errors.InvalidInputError` (the run recorded no such step). Both
        runs' audit trails record ``actor`` (default ``app:<name>``)."""
        return await self.client.replay(run_id, from_step=from_step, actor=actor or self._actor)

    async def pause(self, function: Any, *, actor: str | None = None) -> FunctionPause:
        """Pause a function (decorated function or id): its runs are created and queue, none
        starts until :meth:`resume`; its cron triggers and schedules skip their ticks
        meanwhile (docs/operations.md). The pause is kept in the database, apart from the
        function's registration: restarting workers or syncing keeps it. Raises
        :class:`~perdure.errors.FunctionNotFoundError` for an unknown function."""
        return await self.client.pause(function, actor=actor or self._actor)

    async def resume(self, function: Any, *, actor: str | None = None) -> FunctionPause:
        """Resume a paused function: its queued runs start, in their queue order. The audit
        trail records ``actor`` for both (default ``app:<name>``)."""
        return await self.client.resume(function, actor=actor or self._actor)

    async def send(self, events: Event | Sequence[Event]) -> list[str]:
        """Send events; return their ids. Each starts the runs of the functions it triggers
        and resumes the runs waiting for it. Everything is validated before anything is
        written."""
        return await self.client.send(events)

    async def send_detailed(self, events: Sequence[Event]) -> list[SentEvent]:
        """Like :meth:`send`, also telling duplicates and the runs each event started."""
        return await self.client.send_detailed(events)

    # ------------------------------------------------------------------ sync twins

    def close_sync(self) -> None:
        """:meth:`close` for code outside asyncio."""
        self.bridge.close_with(self.close)
