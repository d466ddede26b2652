"""A worker killed right after a run's end was committed, before it sent the run's lifecycle
events: the next worker to start sends them (once), so an on-failure handler still runs.

The test's own client is closed while the run ends: on PostgreSQL every open process hears of
runs ending elsewhere and would send the events itself."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import perdure

APPS = Path(__file__).resolve().parent.parent / "apps"
DEADLINE = 60.0


def spawn(url: str, log: Path, faults: str | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("PERDURE_FAULTS", None)
    env.update(
        {
            "PERDURE_DATABASE_URL": url,
            "LCRASH_GATE": str(log.parent / "gate"),
            "PYTHONPATH": os.pathsep.join([str(APPS), env.get("PYTHONPATH", "")]),
        }
    )
    if faults is not None:
        env["PERDURE_FAULTS"] = faults
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "perdure.cli", "worker", "lifecycle_crash:app"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


async def test_the_next_worker_sends_the_events_a_killed_one_did_not(
    db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    killed = spawn(db_url, log, "after_outcome=kill")
    try:
        async with perdure.App("lcrash", db_url) as client:
            end = time.monotonic() + DEADLINE
            while not await client.store.list_functions():  # the worker registered them
                assert killed.poll() is None and time.monotonic() < end, log.read_text()
                await asyncio.sleep(0.05)
            handle = await client.start("breaks")
        (tmp_path / "gate").touch()  # the run may fail now
        end = time.monotonic() + DEADLINE
        while killed.poll() is None:  # killed once the failure was durable
            assert time.monotonic() < end, "the fault never fired"
            await asyncio.sleep(0.05)
        assert killed.returncode == -9, log.read_text()
    finally:
        if killed.poll() is None:
            killed.kill()
        killed.wait(10)
    async with perdure.App("lcrash", db_url) as client:
        assert (await client.get_run(handle.run_id)).status == "failed"
        events = await client.query.list_events(
            name="inngest/function.failed", before=None, limit=10
        )
        assert events.items == []  # lost with the process ...

        worker = spawn(db_url, log, None)  # ... and sent by the next worker
        try:
            end = time.monotonic() + DEADLINE
            while not (runs := await client.list_runs(function="on-failed")):
                assert worker.poll() is None and time.monotonic() < end, log.read_text()
                await asyncio.sleep(0.05)
            (handler,) = runs
            result = await client.handle(handler.id).result(timeout=DEADLINE)
            assert result == handle.run_id
            events = await client.query.list_events(
                name="inngest/function.failed", before=None, limit=10
            )
            assert len(events.items) == 1
        finally:
            worker.terminate()
            worker.wait(20)
