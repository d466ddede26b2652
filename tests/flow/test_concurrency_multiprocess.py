"""Concurrency limits across worker processes, one of them SIGKILLed mid-run, on both
backends: every run completes, the limits are never exceeded (from the intervals the step
bodies recorded), and the killed worker's slots come back when its leases expire, not before."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flow_intervals import ledger_spans, max_overlap, overlap_by_key, read_ledger

import perdure

APPS = Path(__file__).resolve().parent.parent / "apps"
LEASE = 2.0


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "perdure.cli", "worker", "flowy:app"),
                *("--concurrency", "20", "--lease", str(LEASE), "--log-level", "info"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


async def wait_hosting(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + 90
    for proc, log in zip(procs, logs, strict=True):
        while "hosting" not in log.read_text("utf-8", "replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker {proc.pid} did not start: {log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_limits_hold_across_processes_with_a_worker_killed(
    db_url: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    env = dict(os.environ)
    env.update(
        {
            "PERDURE_DATABASE_URL": db_url,
            "LEDGER": str(ledger),
            "FLOWY_GLOBAL": "5",
            "PYTHONPATH": os.pathsep.join([str(APPS), env.get("PYTHONPATH", "")]),
        }
    )
    sys.path.insert(0, str(APPS))
    import flowy

    client = perdure.App("flowy", db_url)
    limits = [perdure.Concurrency(5), perdure.Concurrency(1, key="event.data.k")]
    client.function(id="limited", concurrency=limits)(flowy.limited)
    logs = [tmp_path / f"worker-{i}.log" for i in range(3)]
    procs = [spawn(env, log) for log in logs]
    try:
        await wait_hosting(procs, logs)
        async with client:
            await client.register()
            handles = await asyncio.gather(
                *(client.start("limited", {"k": f"k{i % 20}"}) for i in range(300))
            )
            # Kill a worker while it executes a body (it wrote a start without an end).
            by_pid = {p.pid: p for p in procs}
            deadline = time.monotonic() + 60
            victim: subprocess.Popen[bytes] | None = None
            while victim is None:
                rows = read_ledger(ledger)
                ended = {(r[0], r[3]) for r in rows if r[2] == "end"}
                running = [r[3] for r in rows if r[2] == "start" and (r[0], r[3]) not in ended]
                if running and len(rows) > 40:
                    victim = by_pid[running[-1]]
                    break
                assert time.monotonic() < deadline, "no body ran"
                await asyncio.sleep(0.002)
            victim.send_signal(signal.SIGKILL)
            killed_at = time.monotonic_ns()
            victim.wait()
            results = await asyncio.gather(*(h.result(timeout=180) for h in handles))
        assert sorted(results) == sorted(f"k{i % 20}" for i in range(300))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    spans, cut = ledger_spans(read_ledger(ledger), {victim.pid: killed_at})
    assert cut, "no body was cut short"
    assert max_overlap((s, e) for _, s, e in spans) <= 5
    assert max(overlap_by_key(spans).values()) == 1
    # The killed worker's slot came back when its lease expired, not before: the next body of
    # that key started no earlier than a lease renewal (a third of the lease) before expiry.
    for key, at in cut:
        later = [s for k, s, _ in spans if k == key and s * 1e9 > at]
        assert later, f"no later run of {key}"
        assert min(later) * 1e9 - at >= (LEASE * 2 / 3 - 0.1) * 1e9, (key, min(later) - at / 1e9)
