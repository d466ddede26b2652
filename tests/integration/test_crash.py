"""Kill a real worker process with SIGKILL, repeatedly: runs resume where they stopped.

No kill is fired on a timer: each one waits for the ledger to show the new worker executing
steps, freezes it (SIGSTOP), and kills it only if the ledger proves a step body was in flight at
that instant; otherwise the worker is continued and the test waits for its next step.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

import perdure

APPS = Path(__file__).resolve().parent.parent / "apps"
sys.path.insert(0, str(APPS))

import crashy  # noqa: E402


def spawn_worker(url: str, ledger: Path, lease: float = 1.5) -> subprocess.Popen[bytes]:
    log = (ledger.parent / "worker.log").open("ab")
    env = dict(os.environ)
    env.update(
        {
            "PERDURE_DATABASE_URL": url,
            "LEDGER": str(ledger),
            "CRASHY_STEP_SECONDS": str(STEP_SECONDS),
            "PYTHONPATH": os.pathsep.join([str(APPS), env.get("PYTHONPATH", "")]),
        }
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "perdure.cli",
            "worker",
            "crashy:app",
            "--lease",
            str(lease),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()
    return proc


STEP_SECONDS = 0.2
"""How long each step body lasts at least (``CRASHY_STEP_SECONDS`` of the workers)."""
DEADLINE = 120.0


def read_ledger(ledger: Path) -> list[tuple[str, str, int, int, int]]:
    """``(run_id, step, pid, wall_ns, mono_ns)`` per execution, in the order written."""
    out = []
    for line in ledger.read_text().splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue  # the last line, read while its writer is still writing it
        run_id, step, pid, wall, mono = parts
        out.append((run_id, step, int(pid), int(wall), int(mono)))
    return out


def process_state(pid: int) -> str:
    """The kernel's state letter of a process (T: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


async def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)


async def kill_mid_step(
    proc: subprocess.Popen[bytes], ledger: Path, steps_first: int, all_done: Callable[[], bool]
) -> bool:
    """SIGKILL ``proc`` at an instant when the ledger proves one of its step bodies in flight,
    once it has begun ``steps_first`` step bodies. Returns False (nothing killed) if every run
    completed first, so that no step was left to interrupt."""

    def alive() -> None:
        if proc.poll() is not None:
            raise AssertionError(f"worker {proc.pid} exited by itself: {proc.returncode}")

    def begun(want: int) -> Callable[[], bool]:
        def check() -> bool:
            alive()
            return sum(1 for e in read_ledger(ledger) if e[2] == proc.pid) >= want or all_done()

        return check

    def stopped() -> bool:
        alive()
        return process_state(proc.pid) == "T"

    want = steps_first
    while True:
        await wait_until(begun(want), f"worker {proc.pid} to begin {want} step bodies")
        if all_done():
            return False
        proc.send_signal(signal.SIGSTOP)
        await wait_until(stopped, f"SIGSTOP to take effect on worker {proc.pid}")
        frozen_at = time.monotonic_ns()
        mine = [e for e in read_ledger(ledger) if e[2] == proc.pid]
        # A body whose line is younger than its duration had not returned when the process was
        # frozen (it is frozen since before frozen_at): its checkpoint was never sent.
        if any(frozen_at < mono + STEP_SECONDS * 1e9 for *_, mono in mine):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        proc.send_signal(signal.SIGCONT)
        want = len(mine) + 1


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_sigkill_the_worker_repeatedly(db_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    client = perdure.App("crashy", db_url)
    client.function(id="chain")(crashy.chain)
    rng = random.Random(7)
    killed: set[int] = set()
    async with client:
        await client.register()
        handles = [await client.start("chain", {"seed": i}) for i in range(30)]
        results_task = asyncio.ensure_future(
            asyncio.gather(*(h.result(timeout=300) for h in handles))
        )
        proc = spawn_worker(db_url, ledger)
        try:
            for _ in range(6):
                # Each kill lands after a random number of step bodies of the new worker.
                if not await kill_mid_step(proc, ledger, rng.randint(1, 12), results_task.done):
                    break
                killed.add(proc.pid)
                proc = spawn_worker(db_url, ledger)
            results = await asyncio.wait_for(results_task, 180)
        finally:
            results_task.cancel()
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
        assert results == [crashy.expected(i) for i in range(30)]
        # Every run completing before the first kill would prove nothing about recovery.
        assert killed, "every run completed before the first kill"
        runs = {h.run_id: await client.get_run(h.run_id) for h in handles}

    executions: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for run_id, step, pid, ns, _ in read_ledger(ledger):
        executions[(run_id, step)].append((pid, ns))
    assert set(executions) == {(r, f"s{i}") for r in runs for i in range(crashy.STEPS)}
    reexecuted = 0
    for (run_id, step), runs_of_step in executions.items():
        runs_of_step.sort(key=lambda e: e[1])
        recorded = next(s for s in runs[run_id].steps if s.id == step)
        assert recorded.status == "completed" and recorded.attempts == 1
        assert recorded.ended_at is not None
        # No execution started after the step's result was recorded.
        checkpoint_ns = int(recorded.ended_at.timestamp() * 1e9)
        assert all(ns <= checkpoint_ns + 5_000_000 for _, ns in runs_of_step), (run_id, step)
        # Every execution but the last was cut short by a kill.
        for pid, _ in runs_of_step[:-1]:
            assert pid in killed, (run_id, step, runs_of_step)
        reexecuted += len(runs_of_step) - 1
    assert all(r.status == perdure.RunStatus.COMPLETED for r in runs.values())
    # At most one in-flight step per run can be lost per kill, and the kills did interrupt steps:
    # each kill cut short at least one body (the ledger showed it in flight), which had to run
    # again.
    print(f"kills: {len(killed)}, re-executed steps: {reexecuted}")
    assert 0 < len(killed) <= reexecuted <= len(killed) * 30
