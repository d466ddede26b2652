"""Several worker processes share one SQLite file (WAL, busy timeout, retries)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import perdure

APPS = Path(__file__).resolve().parent.parent / "apps"
sys.path.insert(0, str(APPS))

import crashy  # noqa: E402


def spawn(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "perdure.cli",
            "worker",
            "crashy:app",
            "--concurrency",
            "20",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
async def test_three_worker_processes_on_one_sqlite_file(sqlite_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    env = dict(os.environ)
    env.update(
        {
            "PERDURE_DATABASE_URL": sqlite_url,
            "LEDGER": str(ledger),
            "CRASHY_STEP_SECONDS": "0.005",
            "PYTHONPATH": os.pathsep.join([str(APPS), env.get("PYTHONPATH", "")]),
        }
    )
    client = perdure.App("crashy", sqlite_url)
    client.function(id="chain")(crashy.chain)
    procs = [spawn(env) for _ in range(3)]
    try:
        async with client:
            await client.register()
            handles = await asyncio.gather(
                *(client.start("chain", {"seed": i}) for i in range(150))
            )
            results = await asyncio.gather(*(h.result(timeout=120) for h in handles))
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
    assert results == [crashy.expected(i) for i in range(150)]
    lines = [line.split() for line in ledger.read_text().splitlines()]
    executions = Counter((run, step) for run, step, _, _ in lines)
    # Nobody crashed, so every step ran exactly once, and the work was shared.
    assert len(executions) == 150 * crashy.STEPS
    assert set(executions.values()) == {1}
    assert len({pid for _, _, pid, _ in lines}) >= 2
