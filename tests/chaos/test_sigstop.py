"""A worker frozen with SIGSTOP beyond its lease: another worker finishes the run, and when the
first one is continued its late work changes nothing.

Real processes on PostgreSQL (``perdure server`` and ``perdure worker`` subprocesses running
tests/apps/chaosapp.py); the facts come from the steps' ledger and the harness's own log, the
run's state from the HTTP API. Nothing here waits a fixed time: every wait is for a ledger line,
a process state or a run state, with a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from chaos_harness import (
    Cluster,
    Execution,
    Report,
    RunSpec,
    Starter,
    get_json,
    mono_ns,
    read_ledger,
    verify,
)

from conftest import new_pg_schema_url

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LEASE = 2.0
T = TypeVar("T")


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from new_pg_schema_url()


async def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_completed(http: httpx.AsyncClient, url: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while True:
        run: dict[str, Any] = await get_json(http, f"{url}/api/v1/runs/{run_id}")
        if run["status"] not in ("queued", "running", "sleeping", "waiting"):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} is still {run['status']}")
        await asyncio.sleep(0.1)


def execution(cluster: Cluster, run_id: str, step: str, pid: int) -> Execution | None:
    execs = read_ledger(cluster.ledger_dir).executions.get((run_id, step), [])
    return next((e for e in execs if e.pid == pid), None)


def ended(cluster: Cluster, run_id: str, step: str, pid: int) -> Execution | None:
    """The execution of ``step`` by ``pid``, once it has ended (an E or a C line)."""
    found = execution(cluster, run_id, step, pid)
    return found if found is not None and found.end is not None else None


def left_call(cluster: Cluster, run_id: str, step: str, pid: int) -> str | None:
    """How the function in process ``pid`` left its call of ``step``: ``"raised"`` (an X line:
    the engine stopped the run there), ``"went on"`` (it called the next step), or None yet."""
    led = read_ledger(cluster.ledger_dir)
    if any(p == pid for p, _ in led.exits.get((run_id, step), [])):
        return "raised"
    after = f"s{int(step[1:]) + 1}"
    if any(p == pid for p, _ in led.calls.get((run_id, after), [])):
        return "went on"
    return None


def producer_pid(run: dict[str, Any], step: str) -> int:
    recorded = next(s for s in run["steps"] if s["id"] == step)
    return int(recorded["output"]["x"].split("-")[0])


def process_state(pid: int) -> str:
    """The kernel's state letter of a process (T: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def check_ledger(cluster: Cluster, spec: RunSpec, run_id: str, run: dict[str, Any]) -> Report:
    report = verify(
        [spec],
        {spec.i: [run_id]},
        {run_id: run},
        read_ledger(cluster.ledger_dir),
        cluster.events,
        LEASE,
    )
    assert report.ok, report.summary()
    return report


@pytest.mark.timeout(180)
async def test_sigstop_mid_step_beyond_the_lease(pg_url: str, tmp_path: Path) -> None:
    spec = RunSpec(0, 4242, (50, 1500, 50, 50))
    with Cluster(pg_url, tmp_path, lease=LEASE) as cluster:
        [url] = await cluster.start_servers(1)
        # The first worker's s1 cannot end its side effect before the process is continued:
        # however slow the machine, the SIGSTOP below lands in the middle of it.
        first = cluster.spawn_worker(0, {"CHAOS_HOLD_UNTIL_CONT": "s1"})
        await cluster.wait_workers_ready()
        async with httpx.AsyncClient(timeout=10.0) as http:
            run_id = await Starter(http, [url]).start(spec, time.monotonic() + 60)
            assert run_id is not None
            # Freeze the first worker in the middle of s1's side effect.
            stuck = await wait_for(
                lambda: execution(cluster, run_id, "s1", first.pid), "the first worker's s1"
            )
            cluster.stop(first)
            stopped_at = mono_ns()
            await wait_for(lambda: process_state(first.pid) == "T", "SIGSTOP to take effect")
            frozen = execution(cluster, run_id, "s1", first.pid)
            assert frozen is not None and frozen.end is None, frozen
            second = cluster.spawn_worker(1)
            done = await wait_completed(http, url, run_id)
            assert done["status"] == "completed" and done["output"] == spec.expected(), done
            continued_at = mono_ns()  # before SIGCONT: the process cannot run before this
            cluster.cont(first)
            # The ledger shows the first worker resumed and finished s1's side effect (or was
            # cancelled in it, if its heartbeat learnt of the takeover first).
            resumed = await wait_for(
                lambda: ended(cluster, run_id, "s1", first.pid),
                "the first worker to resume",
            )
            # Its late result of s1 is held, not yet written (a completed step's checkpoint
            # travels with the next write): the step call returns, and the function is stopped
            # when it calls s2, whose body must not start before s1's result is durable: the
            # held checkpoint is rejected there (the engine raises out of the call of s2). It
            # goes no further: no side effect, no write, no outcome of its own.
            left = await wait_for(
                lambda: left_call(cluster, run_id, "s1", first.pid),
                "the first worker's function to leave its call of s1",
            )
            assert left in ("raised", "went on"), left
            if left == "went on":
                left = await wait_for(
                    lambda: left_call(cluster, run_id, "s2", first.pid),
                    "the first worker's function to leave its call of s2",
                )
            assert left == "raised", left
            assert execution(cluster, run_id, "s2", first.pid) is None
            after = await get_json(http, f"{url}/api/v1/runs/{run_id}")
            assert after == done
            assert first.alive() and second.alive()
    assert resumed.end_mono is not None and resumed.end_mono > continued_at
    print(f"the frozen worker's s1 ended with {resumed.end!r} after SIGCONT")
    # The recorded results: s0 by the first worker, everything after by the second.
    assert producer_pid(done, "s0") == first.pid
    for step in ("s1", "s2", "s3"):
        assert producer_pid(done, step) == second.pid, step
    taken = execution(cluster, run_id, "s1", second.pid)
    assert taken is not None and taken.b_mono > stopped_at
    assert taken.b_mono < resumed.end_mono  # the two executions of s1 overlapped in time
    assert stuck.b_mono < stopped_at
    report = check_ledger(cluster, spec, run_id, done)
    assert report.overlaps == 1 and report.reexecuted == 1


@pytest.mark.timeout(180)
async def test_a_worker_paused_between_steps_starts_no_step_after_waking(
    pg_url: str, tmp_path: Path
) -> None:
    """The first worker stops itself right after its call of s0 returned (SIGSTOP to its own
    pid), the second takes the run over and finishes it; continued, the first worker calls s1
    with a lease it can no longer hold: it must not start s1's side effect.

    s0's result was held when the worker stopped (a completed step's checkpoint travels with
    the next write, made durable before the next step's body starts): the second worker runs s0
    again and records it; the first one's held checkpoint is rejected when it calls s1."""
    spec = RunSpec(0, 777, (50, 300, 50))
    with Cluster(pg_url, tmp_path, lease=LEASE) as cluster:
        [url] = await cluster.start_servers(1)
        first = cluster.spawn_worker(0, {"CHAOS_SELF_STOP_AFTER": "s0"})
        await cluster.wait_workers_ready()
        async with httpx.AsyncClient(timeout=10.0) as http:
            run_id = await Starter(http, [url]).start(spec, time.monotonic() + 60)
            assert run_id is not None
            await wait_for(
                lambda: read_ledger(cluster.ledger_dir).self_stops, "the first worker to stop"
            )
            await wait_for(lambda: process_state(first.pid) == "T", "SIGSTOP to take effect")
            first.stopped = True
            cluster.note("stop", first)
            second = cluster.spawn_worker(1)
            done = await wait_completed(http, url, run_id)
            assert done["status"] == "completed" and done["output"] == spec.expected(), done
            continued_at = mono_ns()  # before SIGCONT: the process cannot run before this
            cluster.cont(first)
            # It woke up and called s1 (its A line) ...
            await wait_for(
                lambda: any(
                    pid == first.pid and mono > continued_at
                    for pid, mono in read_ledger(cluster.ledger_dir).calls.get((run_id, "s1"), [])
                ),
                "the first worker to call s1 after waking",
            )
            # ... and the engine stopped it there (its lease check failed): it goes no further.
            left = await wait_for(
                lambda: left_call(cluster, run_id, "s1", first.pid),
                "the first worker's function to leave its call of s1",
            )
            assert left == "raised", left
            after = await get_json(http, f"{url}/api/v1/runs/{run_id}")
            assert after == done
            assert first.alive() and second.alive()
    # ... but never began its side effect.
    assert execution(cluster, run_id, "s1", first.pid) is None
    assert producer_pid(done, "s0") == second.pid  # the first one's s0 was never recorded
    assert producer_pid(done, "s1") == second.pid and producer_pid(done, "s2") == second.pid
    check_ledger(cluster, spec, run_id, done)
