"""The runtime's driver seam, proved with a second driver that has nothing of the Python SDK.

``ScriptedDriver`` executes a scripted list of steps (values, sleeps, failures) through the
:class:`~perdure.runtime.driver.Driver` protocol only: it reads the recorded steps of the
attempt, checkpoints with ``attempt.write``, checks the lease before each step body and returns
one outcome. The runtime runs it with leases, retries, the crash cap, suspension and takeover,
on both backends; no ``App``, ``Context`` or ``RunExecution`` is involved.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from perdure import ids
from perdure._signals import LeaseLost
from perdure.engine.attempts import Failure, retry_delay
from perdure.engine.backoff import RetryPolicy
from perdure.engine.failures import ErrorInfo
from perdure.functions import FunctionRecord, Trigger
from perdure.runtime import Attempt, Runtime, Worker
from perdure.store.base import NewRun, Outcome, RunRow
from perdure.testing import ManualClock

DEADLINE = 60.0


@dataclass(frozen=True)
class Value:
    """A step whose body returns ``value``; it fails ``fail_times`` times first."""

    key: str
    value: Any
    fail_times: int = 0


@dataclass(frozen=True)
class Sleep:
    """A durable sleep of ``seconds``."""

    key: str
    seconds: float


@dataclass(frozen=True)
class Block:
    """A step whose body waits for ``gate`` the first time it runs (to lose its lease)."""

    key: str
    value: Any
    gate: asyncio.Event


@dataclass(frozen=True)
class Gated:
    """A step whose n-th body (in this driver) waits for ``gates[n]``."""

    key: str
    value: Any
    gates: tuple[asyncio.Event, ...]


Op = Value | Sleep | Block | Gated


@dataclass(frozen=True)
class ScriptedFunction:
    """A hosted function of the scripted driver (satisfies ``HostedFunction``)."""

    id: str
    script: tuple[Op, ...]
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(retries=2, initial_delay=5.0, max_delay=5.0)
    )
    max_crashes: int = 2
    triggers: tuple[Trigger, ...] = ()

    def record(self) -> FunctionRecord:
        return FunctionRecord(self.id, "scripted", (), {"driver": "scripted"})


@dataclass
class ScriptedDriver:
    """Executes scripted functions; ``ledger`` records every step body that started."""

    scripts: dict[str, ScriptedFunction]
    block: bool = False  # whether Block steps wait for their gate in this driver
    ledger: list[tuple[str, str, int]] = field(default_factory=list)
    closed: bool = False

    @property
    def functions(self) -> Mapping[str, ScriptedFunction]:
        return self.scripts

    async def close(self) -> None:
        self.closed = True

    async def execute(self, attempt: Attempt) -> Outcome | None:
        fn = self.scripts[attempt.function.id]
        outputs: list[Any] = []
        try:
            for seq, op in enumerate(fn.script):
                rec = attempt.steps.get(op.key)
                if rec is not None and rec.status == "completed":
                    if rec.output is not None:
                        outputs.append(json.loads(rec.output))
                    continue
                if isinstance(op, Sleep):
                    if rec is None:
                        wake = attempt.now() + op.seconds
                        await attempt.write(
                            attempt.step_write(op.key, seq, "sleep", "sleeping", wake_at=wake)
                        )
                    else:
                        wake = rec.wake_at or 0.0
                    if attempt.now() < wake:
                        return Outcome(
                            attempt.run_id, attempt.token, "suspend", available_at=wake,
                            status="sleeping",
                        )  # fmt: skip
                    attempt.write_soon(
                        attempt.step_write(op.key, seq, "sleep", "completed", wake_at=wake)
                    )
                    continue
                before = rec.attempts if rec is not None else 0
                if rec is not None and rec.wake_at is not None and rec.wake_at > attempt.now():
                    return Outcome(
                        attempt.run_id, attempt.token, "suspend", available_at=rec.wake_at
                    )
                await attempt.ensure_lease()
                self.ledger.append((attempt.run_id, op.key, attempt.token))
                if isinstance(op, Block) and self.block:
                    await op.gate.wait()
                if isinstance(op, Gated):
                    await op.gates[self.bodies(attempt.run_id).count(op.key) - 1].wait()
                if isinstance(op, Value) and before < op.fail_times:
                    failure = Failure(ErrorInfo("ScriptError", f"{op.key} failed"))
                    delay = retry_delay(fn.retry, before + 1, failure, rand=lambda: 1.0)
                    status = "failed" if delay is None else "retrying"
                    wake_at = None if delay is None else attempt.now() + delay
                    await attempt.write(
                        attempt.step_write(
                            op.key, seq, "run", status, error=failure.error.to_json(),
                            attempts=before + 1, wake_at=wake_at,
                        )
                    )  # fmt: skip
                    if wake_at is None:
                        error = ErrorInfo.of(RuntimeError(f"step {op.key} failed for good"))
                        return Outcome(attempt.run_id, attempt.token, "fail", error=error.to_json())
                    return Outcome(attempt.run_id, attempt.token, "suspend", available_at=wake_at)
                text = json.dumps(op.value)
                await attempt.write(
                    attempt.step_write(
                        op.key, seq, "run", "completed", output=text, attempts=before + 1
                    )
                )
                outputs.append(op.value)
        except LeaseLost:
            return None
        return Outcome(attempt.run_id, attempt.token, "complete", output=json.dumps(outputs))

    def bodies(self, run_id: str) -> list[str]:
        return [k for r, k, _ in self.ledger if r == run_id]


async def start(runtime: Runtime, function_id: str) -> str:
    run_id = ids.new_id()
    body = json.dumps({"id": run_id, "name": "scripted/start", "data": {}, "user": {}, "ts": 0})
    await runtime.store.create_runs([NewRun(run_id, function_id, body)])
    return run_id


async def wait_for(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` until true, failing after a generous deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not await check():
        if loop.time() > end:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def ended(runtime: Runtime, run_id: str) -> RunRow:
    async def done() -> bool:
        row = await runtime.store.get_run(run_id)
        return row is not None and row.status in ("completed", "failed", "cancelled")

    await wait_for(f"run {run_id} to end", done)
    row = await runtime.store.get_run(run_id)
    assert row is not None
    return row


async def status_is(runtime: Runtime, run_id: str, status: str) -> None:
    async def check() -> bool:
        row = await runtime.store.get_run(run_id)
        return row is not None and row.status == status

    await wait_for(f"run {run_id} to be {status}", check)


async def retry_queued(runtime: Runtime, run_id: str, key: str, attempts: int) -> None:
    """Wait until step ``key`` recorded ``attempts`` failed attempts and the run is queued for
    its retry."""

    async def check() -> bool:
        row = await runtime.store.get_run(run_id)
        steps = {s.key: s for s in await runtime.store.get_steps(run_id)}
        step = steps.get(key)
        return (
            row is not None
            and row.status == "queued"
            and step is not None
            and (step.status, step.attempts) == ("retrying", attempts)
        )

    await wait_for(f"step {key} of run {run_id} to be retried after {attempts} failures", check)


@pytest.fixture
async def runtime(db_url: str) -> AsyncIterator[Runtime]:
    rt = Runtime(db_url, clock=ManualClock())
    await rt.open()
    try:
        yield rt
    finally:
        await rt.close()


def clock_of(runtime: Runtime) -> ManualClock:
    assert isinstance(runtime.clock, ManualClock)
    return runtime.clock


async def test_a_scripted_run_sleeps_retries_and_completes(runtime: Runtime) -> None:
    fn = ScriptedFunction("steps", (Value("a", 1), Sleep("nap", 3600), Value("b", 2, 2)))
    driver = ScriptedDriver({fn.id: fn})
    clock = clock_of(runtime)
    async with Worker(runtime, [driver], lease_seconds=30):
        run_id = await start(runtime, fn.id)
        await status_is(runtime, run_id, "sleeping")
        await clock.advance(3600)
        for failed in (1, 2):  # two failed attempts of "b", each retried after 5 s
            await retry_queued(runtime, run_id, "b", failed)
            await clock.advance(5)
        row = await ended(runtime, run_id)
    assert driver.closed
    assert row.status == "completed"
    assert json.loads(row.output or "null") == [1, 2]
    # "a" ran once (answered from its checkpoint on every replay); "b" ran three times.
    assert driver.bodies(run_id) == ["a", "b", "b", "b"]
    steps = {s.key: s for s in await runtime.store.get_steps(run_id)}
    assert (steps["b"].status, steps["b"].attempts) == ("completed", 3)
    assert steps["nap"].status == "completed"


async def test_a_step_out_of_retries_fails_the_run(runtime: Runtime) -> None:
    fn = ScriptedFunction("doomed", (Value("x", 0, fail_times=10),))
    driver = ScriptedDriver({fn.id: fn})
    clock = clock_of(runtime)
    async with Worker(runtime, [driver], lease_seconds=30):
        run_id = await start(runtime, fn.id)
        for failed in (1, 2):
            await retry_queued(runtime, run_id, "x", failed)
            await clock.advance(5)
        row = await ended(runtime, run_id)
    assert row.status == "failed"
    assert ErrorInfo.from_json(row.error).message == "step x failed for good"
    (step,) = await runtime.store.get_steps(run_id)
    assert (step.status, step.attempts) == ("failed", 3)
    assert ErrorInfo.from_json(step.error) == ErrorInfo("ScriptError", "x failed")


async def test_the_crash_cap_fails_a_run_that_keeps_killing_workers(runtime: Runtime) -> None:
    fn = ScriptedFunction("poison", (Value("v", 1),), max_crashes=2)
    driver = ScriptedDriver({fn.id: fn})
    clock = clock_of(runtime)
    await runtime.store.register_functions([fn.record()])
    run_id = await start(runtime, fn.id)
    for i in range(3):  # three workers claim it and die without a word
        claim = await runtime.store.claim(f"dead-{i}", [fn.id], 1, 30.0)
        assert [r.id for r in claim.runs] == [run_id]
        await clock.advance(31)
    async with Worker(runtime, [driver], lease_seconds=30):
        row = await ended(runtime, run_id)
    assert row.status == "failed"
    assert ErrorInfo.from_json(row.error).type == "WorkerCrashError"
    assert driver.bodies(run_id) == []  # the cap stops it before any step body


async def test_a_lost_lease_is_taken_over_and_the_old_writes_are_fenced(db_url: str) -> None:
    clock = ManualClock()
    first_rt = Runtime(db_url, clock=clock)
    second_rt = Runtime(db_url, clock=clock)
    gate = asyncio.Event()
    fn = ScriptedFunction("slow", (Value("a", "A"), Block("b", "B", gate)))
    first, second = ScriptedDriver({fn.id: fn}, block=True), ScriptedDriver({fn.id: fn})
    await first_rt.open()
    await second_rt.open()
    try:
        # One slot: while it holds the run, the first worker cannot claim it back itself.
        async with Worker(first_rt, [first], concurrency=1, lease_seconds=30, worker_id="first"):
            run_id = await start(first_rt, fn.id)

            async def blocked() -> bool:
                return first.bodies(run_id) == ["a", "b"]

            await wait_for("the first worker to block in step b", blocked)
            # The first worker stalls past its lease; the second takes the run over.
            await clock.advance(31)
            async with Worker(second_rt, [second], lease_seconds=30, worker_id="second"):
                row = await ended(second_rt, run_id)
                gate.set()  # the first worker wakes up: its checkpoint must be rejected

                async def first_done() -> bool:
                    return not first_rt.hub.held_locally(run_id)

                await wait_for("the first worker to give up the run", first_done)
        steps = await second_rt.store.get_steps(run_id)
    finally:
        await second_rt.close()
        await first_rt.close()
    assert row.status == "completed"
    assert json.loads(row.output or "null") == ["A", "B"]
    assert second.bodies(run_id) == ["b"]  # "a" came from the first worker's checkpoint
    tokens = [t for r, k, t in first.ledger + second.ledger if k == "b"]
    assert len(set(tokens)) == 2  # two leases, fenced apart
    (a, b) = steps
    assert (a.key, a.attempts, b.key, b.attempts) == ("a", 1, "b", 1)


async def test_a_worker_that_claims_its_own_stalled_run_again_keeps_the_new_attempt(
    runtime: Runtime,
) -> None:
    """Stalled past its lease, a worker may claim its own run again: when the stale attempt
    ends (fenced off), the new one is still the worker's (held, heartbeated) and completes."""
    first_gate, second_gate = asyncio.Event(), asyncio.Event()
    fn = ScriptedFunction("stall", (Gated("g", "G", (first_gate, second_gate)),))
    driver = ScriptedDriver({fn.id: fn})
    clock = clock_of(runtime)
    async with Worker(runtime, [driver], concurrency=2, lease_seconds=30) as worker:
        run_id = await start(runtime, fn.id)

        async def bodies(n: int) -> bool:
            return driver.bodies(run_id).count("g") == n

        await wait_for("the first body of g", lambda: bodies(1))
        await clock.advance(31)  # the lease expires under the stalled body: claimed again
        await wait_for("the second body of g", lambda: bodies(2))
        first_gate.set()  # the stale attempt's checkpoint is rejected; it ends

        async def stale_ended() -> bool:
            steps = await runtime.store.get_steps(run_id)
            return not steps and worker.free_slots == 1

        await wait_for("the stale attempt to end", stale_ended)
        assert worker.holds(run_id)  # the new attempt is still this worker's
        second_gate.set()
        row = await ended(runtime, run_id)
    assert row.status == "completed"
    assert json.loads(row.output or "null") == ["G"]
