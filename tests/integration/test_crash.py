"""Kill a real worker process with SIGKILL, repeatedly: runs resume where they stopped."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import defaultdict
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


def read_ledger(ledger: Path) -> list[tuple[str, str, int, int]]:
    out = []
    for line in ledger.read_text().splitlines():
        run_id, step, pid, ns = line.split()
        out.append((run_id, step, int(pid), int(ns)))
    return out


@pytest.mark.slow
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
        proc = spawn_worker(db_url, ledger)
        try:
            for _ in range(6):
                await asyncio.sleep(rng.uniform(0.3, 1.2))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed.add(proc.pid)
                proc = spawn_worker(db_url, ledger)
            results = await asyncio.gather(*(h.result(timeout=120) for h in handles))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()
        assert results == [crashy.expected(i) for i in range(30)]
        runs = {h.run_id: await client.get_run(h.run_id) for h in handles}

    executions: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for run_id, step, pid, ns in read_ledger(ledger):
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
    # At most one in-flight step per run can be lost per kill, and kills did interrupt steps.
    print(f"re-executed steps: {reexecuted}")
    assert 0 < reexecuted <= 6 * 30
