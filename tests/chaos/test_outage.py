"""PostgreSQL stops for a few seconds under load and starts again.

Four workers and two servers (real processes) keep working while a client starts runs through
both servers, retrying 503s and connection errors with the same idempotency key. The real
PostgreSQL server is stopped (``pg_ctlcluster ... stop -m fast``) for ``OUTAGE`` seconds and
started again. Checked afterwards, from the ledger and the client's own record of every answer:

- every process is still running (nothing had to be restarted by hand), and starts succeed
  again after the outage;
- every start the API acknowledged with a 2xx exists and completed exactly once with the right
  output, and no step recorded was executed after it was recorded (invariants 1 and 2 of
  chaos_harness; invariant 3 does not apply: renewals fail during an outage while the workers
  are awake, so takeovers afterwards are legitimate);
- the API answered nothing but 2xx and 503, every 503 carried ``Retry-After``, and the outage
  was seen (at least one 503 from the API or ``/health``).

The database is restarted in the fixture's teardown too (and waited for with ``pg_isready``),
so a failing test leaves no later test without PostgreSQL. Without ``pg_ctlcluster`` or the
right to use it the test is skipped, unless ``PERDURE_REQUIRE_POSTGRES=1`` (CI): then it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from chaos_harness import (
    TOKEN,
    ChaosConfig,
    Cluster,
    Report,
    Starter,
    count_runs,
    fetch_runs,
    mono_ns,
    plan,
    read_ledger,
    verify,
    wait_complete,
)

from conftest import PG_URL, REQUIRE_PG, new_pg_schema_url

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.exclusive]

OUTAGE = 3.5
"""Seconds between the end of the stop and the start command (PostgreSQL answers again about
0.3 s after the start command)."""
LEASE = 2.0


def unavailable(reason: str) -> None:
    if REQUIRE_PG:
        pytest.fail(f"the outage test must run here (PERDURE_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"the outage test is skipped: {reason}")


@dataclass
class PostgresControl:
    """Stops and starts the local PostgreSQL cluster with pg_ctlcluster."""

    version: str
    host: str
    port: int
    log: list[str] = field(default_factory=list)

    def ctl(self, action: str) -> subprocess.CompletedProcess[str]:
        args = ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main", action]
        if action == "stop":
            args += ["-m", "fast"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=120)
        self.log.append(f"{' '.join(args)} -> {r.returncode} {r.stdout}{r.stderr}".strip())
        return r

    def ready(self) -> bool:
        r = subprocess.run(
            ["pg_isready", "-q", "-h", self.host, "-p", str(self.port)],
            capture_output=True,
            timeout=30,
        )
        return r.returncode == 0

    def start_and_wait(self, timeout: float = 90.0) -> int:
        """Start the cluster; return the monotonic time (ns) it first answered."""
        args = ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main", "start"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                proc.kill()
                break
            time.sleep(0.05)
        answered = mono_ns()
        out, _ = proc.communicate(timeout=timeout)
        self.log.append(f"{' '.join(args)} -> {proc.returncode} {out}".strip())
        self.ensure_running()
        return answered

    def ensure_running(self, timeout: float = 90.0) -> None:
        """Start the cluster if it does not answer; wait until it does."""
        deadline = time.monotonic() + timeout
        if not self.ready():
            self.ctl("start")
        while not self.ready():
            if time.monotonic() > deadline:
                raise AssertionError("PostgreSQL did not come back: " + "\n".join(self.log))
            time.sleep(0.2)


@pytest.fixture
def pg_control() -> Iterator[PostgresControl]:
    """The local cluster's controls; PostgreSQL is running again after the test, whatever
    happened in it."""
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_isready") is None:
        unavailable("pg_ctlcluster or pg_isready is not installed")
    try:
        versions = sorted(os.listdir("/etc/postgresql"))
    except OSError as exc:
        versions = []
        unavailable(f"no /etc/postgresql ({exc})")
    if len(versions) != 1:
        unavailable(f"expected one PostgreSQL version under /etc/postgresql, found {versions}")
    parts = urlsplit(PG_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    if host not in ("127.0.0.1", "localhost", "::1"):
        unavailable(f"PostgreSQL at {host} is not this machine's")
    control = PostgresControl(versions[0], host, port)
    status = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", control.version, "main", "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if status.returncode != 0 or not control.ready():
        unavailable(f"cannot control the cluster: {status.stdout}{status.stderr}".strip())
    try:
        yield control
    finally:
        control.ensure_running()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from new_pg_schema_url()


async def poll_health(
    http: httpx.AsyncClient, urls: list[str], seen: list[tuple[int, int | None, str | None]]
) -> None:
    while True:
        for url in urls:
            try:
                r = await http.get(f"{url}/health", timeout=8.0)
                seen.append((mono_ns(), r.status_code, r.headers.get("retry-after")))
            except httpx.TransportError as exc:
                seen.append((mono_ns(), None, type(exc).__name__))
        await asyncio.sleep(0.2)


@pytest.mark.timeout(300)
async def test_postgres_outage_under_load(
    pg_url: str, pg_control: PostgresControl, tmp_path: Path
) -> None:
    cfg = ChaosConfig(runs=120, min_steps=5, max_steps=10, step_ms=(20, 100), lease=LEASE)
    specs = plan(cfg)
    window = 14.0
    health: list[tuple[int, int | None, str | None]] = []
    # The servers wait at most 1 s for a database connection (the default is 5 s, longer than
    # this outage: requests would wait for the database to come back and never see a 503).
    server_url = f"{pg_url}&pool_timeout=1"
    with Cluster(pg_url, tmp_path, lease=LEASE, server_db_url=server_url) as cluster:
        urls = await cluster.start_servers(2)
        for i in range(4):
            cluster.spawn_worker(i)
        await cluster.wait_workers_ready()
        async with httpx.AsyncClient(timeout=10.0) as http:
            starter = Starter(http, urls)
            starts = asyncio.get_running_loop().create_task(
                starter.start_all(specs, window, 8, time.monotonic() + window + 120)
            )
            prober = asyncio.get_running_loop().create_task(poll_health(http, urls, health))
            try:
                await asyncio.sleep(4.0)  # under load
                stopping_at = mono_ns()
                stop = await asyncio.to_thread(pg_control.ctl, "stop")
                down_at = mono_ns()
                try:
                    if stop.returncode != 0:
                        unavailable(f"pg_ctlcluster stop failed: {pg_control.log[-1]}")
                    await asyncio.sleep(OUTAGE)
                finally:
                    up_at = await asyncio.to_thread(pg_control.start_and_wait)
                await starts
                await asyncio.sleep(1.0)
            finally:
                prober.cancel()
                starts.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await prober
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starts
            done, failed = await wait_complete(http, urls[0], len(specs), 120)
            run_ids = sorted({r for ids in starter.acks.values() for r in ids})
            runs = await fetch_runs(http, urls[1], run_ids)
            listed = await count_runs(http, urls[0], None)
        exits = cluster.unexpected_exits()
    report = Report()
    for problem in starter.unexpected + exits:
        report.fail(problem)
    verify(
        specs,
        starter.acks,
        runs,
        read_ledger(cluster.ledger_dir),
        cluster.events,
        LEASE,
        listed=listed,
        check_leases=False,
        report=report,
    )
    answers = [(a.mono_ns, a.status, a.retry_after) for a in starter.answers]
    statuses = sorted({str(s) for _, s, _ in answers + health})
    during = [a for a in answers + health if stopping_at <= a[0] <= up_at + 6 * 10**9]
    unavailable_answers = [a for a in answers + health if a[1] == 503]
    report.starts = len(starter.acks)
    report.answers = Counter(str(status) for _, status, _ in answers)
    ok_during = sum(a[1] in (200, 201) for a in answers if down_at <= a[0] <= up_at)
    print(
        f"outage {(up_at - down_at) / 1e9:.1f} s (stop took {(down_at - stopping_at) / 1e9:.1f}"
        f" s); {done} completed, {failed} failed; answers {statuses}; "
        f"503s: {len(unavailable_answers)} (during the outage {sum(a[1] == 503 for a in during)})"
        f"; 2xx answered while down (waited for the database): {ok_during}"
        f"\n{report.summary()}"
    )
    assert report.ok, report.summary()
    assert done == len(specs) and failed == 0
    # Only 2xx and 503 (with Retry-After); transport errors are allowed (a client retries).
    for _, status, retry_after in answers + health:
        assert status in (None, 200, 201, 503), (status, retry_after)
        if status == 503:
            assert retry_after is not None and int(retry_after) > 0
    assert any(a[1] == 503 for a in during), "the outage was not seen by the API"
    # Starts worked again after the outage, without restarting anything.
    assert any(a.mono_ns > up_at and a.status in (200, 201) for a in starter.answers)
    assert [e for e in cluster.events if e.kind == "kill"] == []
    assert TOKEN  # the API ran with authentication, as in production
