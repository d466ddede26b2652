"""One attempt of a run of an Inngest-SDK function: call requests, opcodes, the pending set.

Within one claim of the run the executor keeps calling the app until the run ends or must wait:

1. A **discovery** call (``stepId=step``) replays the function with the memoized steps. The SDK
   either finishes (200), runs the one new step at once and reports it (``StepRun``,
   ``StepError``, ``StepFailed``), or reports what it found (``StepPlanned``, ``Sleep``,
   ``WaitForEvent``, ``InvokeFunction``).
2. Several ops in one answer, one of them asynchronous, make a **parallel group**: their ids
   form the *pending set*, each ``StepPlanned`` gets a **targeted** call (``stepId=<id>``, run
   concurrently), sleeps, waits and invokes are recorded. While the set is open, calls carry
   ``disable_immediate_execution: true``; the next discovery is made when the set empties (or
   after each completion in ``race`` mode), and it clears the flag (request version 2, what both
   current SDKs speak). That is the protocol's scheduling (§6.7): the number of requests per run
   is the one the SDKs' own tests count. A re-plan of a step already in flight is ignored.
3. A step that must wait (a sleep, an event, an invoked run, a retry's backoff) is **parked**;
   when nothing is in flight and nothing is due, the attempt suspends until the earliest
   wake-up (or until the event or the child run resolves it) and the next claim resumes here:
   due steps are resolved from the records, a step due for a retry gets its targeted call, and
   a discovery follows once every open step is resolved.

Every step result is a perdure checkpoint under the SDK's hashed step id (the step key), made
durable before the next call (which may run another step body). Retries follow
:mod:`perdure.engine.attempts`: a ``StepError`` is retried with the step's own attempt count
(``ctx.attempt``), ``x-inngest-no-retry`` stops at once, ``Retry-After`` sets the delay; an
error answer to a discovery call is a run-level failure (the run's attempt count).

Known gaps (later slices): the pending set and ``race`` mode are not recorded, so after a
suspension a group resumes in ``wait`` mode and a planned step that had not run yet is
re-planned by the next discovery; the request version is learned again on each claim.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, NoReturn

from perdure import logs, serde
from perdure._signals import LeaseLost
from perdure.engine.attempts import Failure, retry_delay
from perdure.engine.expressions import validate
from perdure.engine.failures import ErrorInfo
from perdure.engine.flow.gates import input_events
from perdure.errors import FunctionNotFoundError, InvalidInputError, PayloadTooLargeError
from perdure.inngest import opcodes as oc
from perdure.inngest.call import DISCOVERY, UNKNOWN_VERSION, CallRequest, build_call
from perdure.inngest.functions import InngestFunction
from perdure.inngest.state import is_resolved, memo, record_error, stack_order
from perdure.runtime.attempt import Attempt
from perdure.store.base import NewRun, Outcome, StepWrite, StoredStep, WaitSpec

log = logging.getLogger("perdure.inngest")

#: Consecutive empty answers (nothing reported, nothing in flight) before the attempt fails.
MAX_EMPTY_ANSWERS = 3

Post = Callable[[CallRequest], Awaitable[tuple[int, dict[str, str], bytes]]]


@dataclass(slots=True)
class _Parked:
    wake_at: float | None
    status: str  # the run status it implies: sleeping, waiting (event, child), queued (retry)
    watch: bool


class _Stop(Exception):
    """The attempt has its outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.kind)
        self.outcome = outcome


class Execution:
    """One attempt of a run of ``fn``, calling the app with ``post``."""

    def __init__(
        self,
        attempt: Attempt,
        fn: InngestFunction,
        post: Post,
        *,
        server_kind: str,
        checkpointing: bool = False,
        names: MutableMapping[str, str] | None = None,
    ) -> None:
        self.names = names  # hashed step id -> the user's step id, learned from the ops
        self.attempt = attempt
        self.checkpointing = checkpointing
        self.fn = fn
        self.post = post
        self.server_kind = server_kind
        self.run_id = attempt.run_id
        self.steps: dict[str, StoredStep] = dict(attempt.steps)
        if names is not None:  # the names recorded before (another process, a restart)
            for key, step in self.steps.items():
                if step.name is not None and key not in names:
                    names[key] = step.name
        self.memos: dict[str, Any] = {k: memo(s) for k, s in self.steps.items() if is_resolved(s)}
        self.stack = stack_order(self.steps.values())
        self._next_seq = max((s.seq for s in self.steps.values()), default=-1) + 1
        self.events = input_events(serde.loads(attempt.input))
        self.pending: set[str] = set()
        self.race = False
        self.parked: dict[str, _Parked] = {}
        self.inflight: set[str] = set()  # steps with a targeted call in flight
        self.discovering = False
        self.want_discovery = False
        self.version = UNKNOWN_VERSION
        self.requests = 0
        self._empty = 0
        self._progress = False
        self._started: dict[str, float] = {}  # step id called -> when the call started
        self._answer_started: float | None = None  # of the answer being handled
        self._tasks: dict[asyncio.Task[oc.Response], str] = {}
        attempt.on_abort(self._aborted)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> Outcome | None:
        """Execute the attempt; its outcome, or ``None`` when the lease was lost."""
        try:
            try:
                await self._resume()
                while True:
                    self._start_calls()
                    if not self._tasks:
                        return self._suspension()
                    done, _ = await asyncio.wait(
                        set(self._tasks), return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        step_id = self._tasks.pop(task)
                        await self._handle(step_id, task.result())
            except _Stop as stop:
                return stop.outcome
        except (LeaseLost, asyncio.CancelledError):
            if self.attempt.aborted:
                return None
            raise
        finally:
            for task in self._tasks:
                task.cancel()

    def _aborted(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _start_calls(self) -> None:
        if self.want_discovery and not self.discovering:
            self.want_discovery = False
            self.discovering = True
            self._spawn(DISCOVERY)

    def _spawn(self, step_id: str) -> None:
        if step_id != DISCOVERY:
            self.inflight.add(step_id)
        task = asyncio.get_running_loop().create_task(self._call(step_id))
        self._tasks[task] = step_id

    async def _call(self, step_id: str) -> oc.Response:
        attempt = self.attempt
        if step_id != DISCOVERY:
            logs.step_in_task(step_id)  # this call's task: its logs name the step
        if step_id == DISCOVERY:
            # The run's attempt until a step makes progress; then a fresh item (Inngest's
            # attempts are per queue item: each step gets the full budget).
            tries = 0 if self._progress else attempt.attempt
        else:
            rec = self.steps.get(step_id)
            tries = rec.attempts if rec is not None and rec.status == "retrying" else 0
        request = build_call(
            url=self.fn.url,
            step_id=step_id,
            run_id=self.run_id,
            events=self.events,
            steps=self.memos,
            stack=self.stack,
            attempt=tries,
            max_attempts=self.fn.retry.retries + 1,
            disable_immediate_execution=bool(self.pending),
            version=self.version,
            server_kind=self.server_kind,
            fn_id=self.internal_fn_id if self.checkpointing else None,
            qi_id=self.queue_item_id if self.checkpointing else None,
        )
        await attempt.flush()  # earlier results are durable before the app runs a step body
        await attempt.ensure_lease()
        self._started[step_id] = attempt.now()
        self.requests += 1
        try:
            status, headers, body = await self.post(request)
        except Exception as exc:  # the app is unreachable, timed out, reset the connection
            if attempt.aborted:
                raise LeaseLost() from exc
            log.info("run %s: calling %s failed: %r", self.run_id, request.url, exc)
            return oc.Errored(
                0,
                {"name": "InngestCallError", "message": f"calling the app failed: {exc!r}"},
            )
        response, version = oc.parse_response(status, headers, body, attempt.now())
        if version is not None and version >= 0:
            self.version = version
        return response

    # ------------------------------------------------------------------ checkpoints

    @property
    def queue_item_id(self) -> str:
        """``ctx.qi_id``: this claim's lease token (checkpoints of another claim are stale)."""
        return str(self.attempt.token)

    @property
    def internal_fn_id(self) -> str:
        """``ctx.fn_id``: the function's id (the SDK only sends it back with checkpoints)."""
        return self.fn.id

    def record_checkpointed(self, op: oc.Op) -> None:
        """A run step the SDK checkpointed while its discovery call goes on: recorded (held,
        the caller flushes) and memoized as from a 206 answer, without a discovery of its own."""
        wanted = self.want_discovery
        self._answer_started = self._started.get(DISCOVERY)
        self._step_ran(op)
        self.want_discovery = wanted

    # ------------------------------------------------------------------ resuming

    async def _resume(self) -> None:
        """Resolve what came due while the run was suspended; open the steps still waiting."""
        now = self.attempt.now()
        unresolved = sorted(
            (s for s in self.steps.values() if not is_resolved(s)), key=lambda s: s.seq
        )
        for rec in unresolved:
            due = rec.wake_at is not None and rec.wake_at <= now
            if rec.status == "sleeping":
                if due or rec.wake_at is None:
                    self._hold(rec.key, "sleep", "completed", wake_at=rec.wake_at)
                    self._resolved(rec.key)
                else:
                    self._park(rec.key, rec.wake_at, "sleeping", watch=False)
            elif rec.status in ("waiting", "invoking"):
                if due:
                    current = await self.attempt.expire_step(rec.key)
                    self._adopt(current)
                else:
                    self._park(rec.key, rec.wake_at, "waiting", watch=True)
            elif rec.status == "retrying":
                self.pending.add(rec.key)
                if due or rec.wake_at is None:
                    self._spawn(rec.key)
                else:
                    self._park(rec.key, rec.wake_at, "queued", watch=False)
        self.pending.update(self.parked)
        self.pending.update(self.inflight)
        if not self.pending:
            self.want_discovery = True

    def _adopt(self, rec: StoredStep) -> None:
        self.steps[rec.key] = rec
        if is_resolved(rec):
            self.memos[rec.key] = memo(rec)
            self.stack.append(rec.key)

    # ------------------------------------------------------------------ answers

    async def _handle(self, step_id: str, response: oc.Response) -> None:
        self._answer_started = self._started.pop(step_id, None)
        if step_id == DISCOVERY:
            self.discovering = False
        else:
            self.inflight.discard(step_id)
        if isinstance(response, oc.Completed):
            self._complete(response.output)
        if isinstance(response, oc.Errored):
            if step_id == DISCOVERY:
                self._run_failed(response)
            await self._step_failed(step_id, response)
            return
        if not response.ops:
            self._nothing_reported()
            return
        self._empty = 0
        finished: str | None = None
        async_ops = [op for op in response.ops if op.op in oc.ASYNC_OPS]
        if len(response.ops) > 1 and async_ops:
            self.pending.update(op.id for op in async_ops if op.id not in self.memos)
            self.race = self.race or any(op.race for op in async_ops)
        for op in response.ops:
            if self.names is not None and op.id:
                self.names[op.id] = op.label
            if op.op == oc.RUN_COMPLETE:
                finished = serde.dumps(op.data)
            elif op.op == oc.DISCOVERY_REQUEST:
                self.want_discovery = True
            elif op.op in (oc.STEP_RUN, oc.STEP):
                self._step_ran(op)
            elif op.op in (oc.STEP_ERROR, oc.STEP_FAILED):
                await self._step_errored(op, response, final=op.op == oc.STEP_FAILED)
            elif op.op == oc.STEP_PLANNED:
                if op.id not in self.memos and op.id not in self.inflight:
                    self._spawn(op.id)
            elif op.op == oc.SLEEP:
                self._sleep(op)
            elif op.op == oc.WAIT_FOR_EVENT:
                await self._wait(op)
            elif op.op == oc.INVOKE_FUNCTION:
                await self._invoke(op)
            else:
                self._fatal(
                    ErrorInfo("InngestProtocolError", f"unsupported opcode {op.op!r} ({op.label})")
                )
        if finished is not None:
            self._complete(finished)

    def _nothing_reported(self) -> None:
        if self.inflight or self.parked or self.discovering:
            return
        self._empty += 1
        if self._empty < MAX_EMPTY_ANSWERS:
            self.want_discovery = True
            return
        self._run_failed(
            oc.Errored(
                206,
                {
                    "name": "InngestProtocolError",
                    "message": f"the app reported nothing to do {self._empty} times in a row",
                },
            )
        )

    def _step_ran(self, op: oc.Op) -> None:
        data = op.data if op.has_data else None
        if op.op == oc.STEP and isinstance(data, dict):  # legacy: already wrapped
            if data.get("error") is not None:
                self._record_failure(op.id, oc.error_object(data["error"], op.label))
                return
            data = data.get("data")
        try:
            text = serde.dumps_limited(
                data, f"output of step {op.label!r}", self.attempt.runtime.limits.step_output
            )
        except PayloadTooLargeError as exc:
            self._record_failure(op.id, {"name": "PayloadTooLargeError", "message": str(exc)})
            return
        attempts = self._attempts_before(op.id) + 1
        self._hold(op.id, "run", "completed", output=text, attempts=attempts)
        self._resolved(op.id)

    async def _step_errored(self, op: oc.Op, response: oc.Reported, *, final: bool) -> None:
        error = op.error or oc.error_object(op.data, f"step {op.label!r} failed")
        if not final:
            failures = self._attempts_before(op.id) + 1
            failure = Failure(
                ErrorInfo(str(error["name"]), str(error["message"])),
                retriable=response.retriable,
                retry_after=response.retry_after,
            )
            delay = retry_delay(self.fn.retry, failures, failure)
            if delay is not None:
                await self._retry_step(op.id, error, failures, delay)
                return
        self._record_failure(op.id, error)

    async def _step_failed(self, step_id: str, response: oc.Errored) -> None:
        """A targeted call failed as a whole (a function-level error, an unreachable app)."""
        failures = self._attempts_before(step_id) + 1
        failure = Failure(
            ErrorInfo(str(response.error["name"]), str(response.error["message"])),
            retriable=response.retriable,
            retry_after=response.retry_after,
        )
        delay = retry_delay(self.fn.retry, failures, failure)
        if delay is None:
            self._run_failed(response, final=True)
        await self._retry_step(step_id, response.error, failures, delay)

    async def _retry_step(
        self, key: str, error: dict[str, Any], failures: int, delay: float
    ) -> None:
        wake = self.attempt.now() + delay
        self._hold(
            key, "run", "retrying", error=record_error(error), attempts=failures, wake_at=wake
        )
        self.pending.add(key)
        self._park(key, wake, "queued", watch=False)

    def _record_failure(self, key: str, error: dict[str, Any]) -> None:
        attempts = self._attempts_before(key) + 1
        self._hold(key, "run", "failed", error=record_error(error), attempts=attempts)
        self._resolved(key)

    def _sleep(self, op: oc.Op) -> None:
        if op.id in self.memos or op.id in self.parked:
            return
        now = self.attempt.now()
        try:
            wake = oc.sleep_until(op, now)
        except InvalidInputError as exc:
            self._fatal(ErrorInfo("InvalidInputError", str(exc)))
        if wake <= now:
            self._hold(op.id, "sleep", "completed", wake_at=wake)
            self._resolved(op.id)
            return
        self._hold(op.id, "sleep", "sleeping", wake_at=wake)
        self._park(op.id, wake, "sleeping", watch=False)

    async def _wait(self, op: oc.Op) -> None:
        if op.id in self.memos or op.id in self.parked:
            return
        name = op.opts.get("event") or op.name
        expression = op.opts.get("if")
        try:
            if not isinstance(name, str) or not name:
                raise InvalidInputError(f"wait {op.label!r}: no event name")
            if expression is not None:
                if not isinstance(expression, str):
                    raise InvalidInputError(f"wait {op.label!r}: 'if' must be a string")
                validate(expression, {"event", "async"})
            timeout = oc.duration(op.opts.get("timeout"), f"wait {op.label!r}: timeout")
        except InvalidInputError as exc:
            self._fatal(ErrorInfo("InvalidExpressionError", str(exc)))
        expires = self.attempt.now() + (timeout or 0.0)
        spec = WaitSpec(name, None, None, expression, expires)
        await self._write(op.id, "wait", "waiting", wake_at=expires, wait=spec)
        self._park(op.id, expires, "waiting", watch=True)

    async def _invoke(self, op: oc.Op) -> None:
        if op.id in self.memos or op.id in self.parked:
            return
        fid = op.opts.get("function_id")
        payload = op.opts.get("payload")
        data = payload.get("data") if isinstance(payload, dict) else None
        try:
            if not isinstance(fid, str) or not fid:
                raise InvalidInputError(f"invoke {op.label!r}: no function_id")
            timeout = oc.duration(op.opts.get("timeout"), f"invoke {op.label!r}: timeout")
            async with self.attempt.store_call():
                try:
                    child: NewRun = await self.attempt.runtime.ops.child_run(
                        fid, data if data is not None else {}, self.run_id, op.id
                    )
                except FunctionNotFoundError:
                    native = await self._native_id(fid)
                    if native is None:
                        raise
                    child = await self.attempt.runtime.ops.child_run(
                        native, data if data is not None else {}, self.run_id, op.id
                    )
        except (FunctionNotFoundError, InvalidInputError) as exc:
            # The step fails (the SDK raises it in the caller), as Inngest does.
            self._record_failure(op.id, {"name": type(exc).__name__, "message": str(exc)})
            return
        deadline = None if timeout is None else self.attempt.now() + timeout
        await self._write(op.id, "invoke", "invoking", wake_at=deadline, child=child)
        self._park(op.id, deadline, "waiting", watch=True)

    async def _native_id(self, fid: str) -> str | None:
        """The native function an SDK means by ``<app>-<id>`` (the SDKs always invoke by
        ``<app id>-<function id>``; a native function's id need not carry its app's name)."""
        for record in await self.attempt.runtime.store.list_functions():
            if InngestFunction.from_record(record) is None and f"{record.app}-{record.id}" == fid:
                return record.id
        return None

    # ------------------------------------------------------------------ bookkeeping

    def _attempts_before(self, key: str) -> int:
        rec = self.steps.get(key)
        return rec.attempts if rec is not None and rec.status == "retrying" else 0

    def _step_write(self, key: str, kind: str, status: str, **fields: Any) -> StepWrite:
        rec = self.steps.get(key)
        if rec is None:
            seq = self._next_seq
            self._next_seq += 1
        else:
            seq = rec.seq
        now = self.attempt.now()
        started = now if rec is not None or self._answer_started is None else self._answer_started
        if self.names is not None and "name" not in fields:
            fields["name"] = self.names.get(key)
        op = self.attempt.step_write(key, seq, kind, status, started_at=started, **fields)
        self.steps[key] = StoredStep(
            key,
            seq,
            kind,
            status,
            op.output,
            op.error,
            op.attempts,
            op.wake_at,
            rec.started_at if rec is not None else started,
            now if status in ("completed", "failed") else None,
            op.name if op.name is not None else (rec.name if rec is not None else None),
        )
        return op

    def _hold(self, key: str, kind: str, status: str, **fields: Any) -> None:
        """Record a step; durable before the next call, or with the outcome."""
        self.attempt.hold(self._step_write(key, kind, status, **fields))

    async def _write(self, key: str, kind: str, status: str, **fields: Any) -> None:
        """Record a step now (a wait must match events from now on; an invoke starts a run)."""
        await self.attempt.write(self._step_write(key, kind, status, **fields))

    def _park(self, key: str, wake_at: float | None, status: str, *, watch: bool) -> None:
        self.parked[key] = _Parked(wake_at, status, watch)

    def _resolved(self, key: str) -> None:
        """A step has its value: memoize it; open the next discovery when the protocol says."""
        rec = self.steps[key]
        self._progress = True
        self.memos[key] = memo(rec)
        self.stack.append(key)
        self.parked.pop(key, None)
        if key in self.pending:
            self.pending.discard(key)
            if self.race or not self.pending:
                self.want_discovery = True
        else:
            self.want_discovery = True
        if not self.pending:
            self.race = False

    # ------------------------------------------------------------------ outcomes

    def _outcome(self, kind: Any, **fields: Any) -> Outcome:
        return Outcome(self.run_id, self.attempt.token, kind, **fields)

    def _complete(self, output: str) -> NoReturn:
        limit = self.attempt.runtime.limits.run_output
        size = len(output.encode())
        if size > limit:
            self._fatal(ErrorInfo.of(PayloadTooLargeError("the run's output", size, limit)))
        raise _Stop(self._outcome("complete", output=output))

    def _fatal(self, error: ErrorInfo) -> NoReturn:
        raise _Stop(self._outcome("fail", error=error.to_json()))

    def _run_failed(self, response: oc.Errored, *, final: bool = False) -> NoReturn:
        """The function failed as a whole: retry the run per its policy, or fail it."""
        error = record_error(response.error, response.status)
        if not final:
            failure = Failure(
                ErrorInfo(str(response.error["name"]), str(response.error["message"])),
                retriable=response.retriable,
                retry_after=response.retry_after,
            )
            delay = retry_delay(self.fn.retry, self.attempt.attempt + 1, failure)
            if delay is not None:
                at = self.attempt.now() + delay
                raise _Stop(self._outcome("retry", error=error, available_at=at))
        raise _Stop(self._outcome("fail", error=error))

    def _suspension(self) -> Outcome:
        if not self.parked:  # pragma: no cover - every path parks, calls or stops
            raise _Stop(
                self._outcome(
                    "fail",
                    error=ErrorInfo("InngestProtocolError", "the run has nothing to do").to_json(),
                )
            )
        wakes = [p.wake_at for p in self.parked.values() if p.wake_at is not None]
        statuses = {p.status for p in self.parked.values()}
        status = (
            "waiting" if "waiting" in statuses else "queued" if "queued" in statuses else "sleeping"
        )
        return self._outcome(
            "suspend",
            available_at=min(wakes) if wakes else None,
            status=status,
            watch_keys=tuple(k for k, p in self.parked.items() if p.watch),
        )
