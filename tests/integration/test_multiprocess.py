"""Several worker processes share one SQLite file (WAL, busy timeout, retries)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import perdure

APPS = Path(__file__).resolve().parent.parent / "apps"
sys.path.insert(0, str(APPS))

import crashy  # noqa: E402


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
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
                "info",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


async def wait_hosting(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Wait until every worker logged that it hosts the app (it is claiming)."""
    deadline = time.monotonic() + 90
    for proc, log in zip(procs, logs, strict=True):
        while "hosting" not in log.read_text("utf-8", "replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker {proc.pid} did not start: {log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)


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
    logs = [tmp_path / f"worker-{i}.log" for i in range(3)]
    procs = [spawn(env, log) for log in logs]
    try:
        # Every worker is claiming before the first run exists: none can take all the work
        # for being the first one up.
        await wait_hosting(procs, logs)
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
    executions = Counter((run, step) for run, step, *_ in lines)
    # Nobody crashed, so every step ran exactly once, and the work was shared.
    assert len(executions) == 150 * crashy.STEPS
    assert set(executions.values()) == {1}
    assert len({pid for _, _, pid, *_ in lines}) >= 2
