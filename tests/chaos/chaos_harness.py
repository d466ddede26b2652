"""The chaos harness shared by tests/chaos/ and bench/chaos.py.

Real processes on one PostgreSQL schema: ``perdure worker`` and ``perdure server`` subprocesses
(``python -m perdure.cli``) running tests/apps/chaosapp.py, an HTTP client that starts runs
through the servers (retrying on 503 and connection errors, with an idempotency key per run), a
chaos schedule that SIGKILLs (and restarts) random workers and optionally freezes some with
SIGSTOP/SIGCONT, and :func:`verify`, which checks the invariants from the ledger the steps
write (see chaosapp's docstring for its lines) and from the harness's own log of what it did
to each process -- never from the engine's tables. The only engine data read is the final state
of each run through the HTTP API (its output, and each step's recorded result and end time).

The invariants (every figure in nanoseconds of ``CLOCK_MONOTONIC`` unless said otherwise):

1. **Every run completes exactly once with the right output.** Every start the API
   acknowledged (2xx) names one run id per idempotency key; that run is ``completed`` with
   the output computed here from its input; every step ``s0..s<n-1>`` was executed (ledger)
   and recorded; the ledger holds no run the client was not given (no duplicate or phantom
   run ever executed); the API lists exactly as many runs as were started.
2. **A recorded step is never executed again after it was recorded.** A step's recorded
   output names the execution that produced it (``x``); that execution must have an ``E``
   line (its side effect finished) written before the record's ``ended_at`` (the database
   clock, read on the same machine, compared with the ledger's wall clock, 10 ms of slack
   ``WALL_SLACK_NS``). No execution of the step may *begin* (``B``) after ``ended_at``, with one
   exception the ledger can prove and no engine can prevent: the process was paused between
   calling the step (its ``A`` line) and starting the body (its ``B`` line) for at least
   ``threshold`` -- a pause after the engine checked its lease. And the recorded result is
   the one the run went on with: the execution that produced step k+1's recorded result
   received, as step k's result, the recorded one (its ``B`` line names it), so no stale
   write replaced a result after the run had moved past it.
3. **No step runs on two workers at once unless the first one's lease had expired.** A lease
   lives in the database, so the ledger cannot see it; what it can prove is when a process
   was *unable to renew* one. A worker renews its leases every ``lease/3`` on the same event
   loop that writes the ``P`` pulses; a responsive worker's lease therefore cannot lapse, and
   to lapse it needs an outage of at least ``lease - lease/3 - L`` (``L``: the renewal's
   database latency) during which the loop wrote nothing. So for every pair of consecutive
   executions E1, E2 of a step (ordered by their ``B`` lines), E1's process must show a gap
   in its ledger activity (any line, pulses included; killed: no line ever after; stopped:
   no line until continued) whose part before E2's ``B`` is at least
   ``threshold = lease/3`` (``L`` up to ``lease/3`` is tolerated) and which ended no earlier
   than ``lease`` before E1 began (a paused worker resumes executing only within a renewal
   interval of waking). This is stronger than "no overlap": it also fails a takeover that
   came too early after a *kill*, where nothing overlaps because the first worker is dead.
   Overlaps (E2 began before E1 ended: its ``E``/``C`` line, or its process's kill) are
   counted and, by the rule above, always follow such an outage. An execution with neither
   ``E`` nor ``C`` must belong to a process the harness killed.

Invariant 3 needs the database to answer: during a database outage renewals fail while the
worker is awake, and a takeover after the outage is legitimate. The outage test checks 1 and 2.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "tests" / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import chaosapp  # noqa: E402

TOKEN = "chaos-api-token-0123456789"
FUNCTION = "chain"
APP_SPEC = "chaosapp:app"
WALL_SLACK_NS = 10_000_000
"""Allowed disagreement between a ledger wall time and the database's ``now()`` (same host)."""
SEC = 1_000_000_000


def mono_ns() -> int:
    return time.monotonic_ns()


# ---------------------------------------------------------------------- configuration


@dataclass
class ChaosConfig:
    """What the chaos run does."""

    runs: int = 150
    min_steps: int = 5
    max_steps: int = 20
    step_ms: tuple[int, int] = (20, 250)
    kills: int = 8
    kill_every: tuple[float, float] = (0.5, 3.0)
    freezes: int = 2
    """Workers frozen with SIGSTOP for ``lease + U(0.5, 1.5)`` s, then continued."""
    workers: int = 4
    servers: int = 2
    lease: float = 2.0
    concurrency: int = 100
    seed: int = 1
    start_window: float | None = None
    """Seconds over which the starts are spread (default: the expected chaos duration)."""
    client_concurrency: int = 16
    complete_timeout: float = 180.0
    """Seconds to wait, after the chaos ends, for every run to complete."""

    def window(self) -> float:
        if self.start_window is not None:
            return self.start_window
        events = self.kills + self.freezes
        return max(1.0, events * (self.kill_every[0] + self.kill_every[1]) / 2)


@dataclass(frozen=True)
class RunSpec:
    """One run to start: its input and its expected output."""

    i: int
    seed: int
    ms: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"chaos-{self.i}"

    def data(self) -> dict[str, Any]:
        return {"i": self.i, "seed": self.seed, "ms": list(self.ms)}

    def expected(self) -> dict[str, int]:
        return {"i": self.i, "v": chaosapp.expected(self.seed, len(self.ms))}

    def steps(self) -> list[str]:
        return [f"s{k}" for k in range(len(self.ms))]


def plan(cfg: ChaosConfig) -> list[RunSpec]:
    """The runs, deterministic from the seed."""
    rng = random.Random(cfg.seed)
    out = []
    for i in range(cfg.runs):
        n = rng.randint(cfg.min_steps, cfg.max_steps)
        ms = tuple(rng.randint(*cfg.step_ms) for _ in range(n))
        out.append(RunSpec(i, rng.randrange(chaosapp.MODULUS), ms))
    return out


# ---------------------------------------------------------------------- processes


@dataclass
class Proc:
    """A subprocess the harness started."""

    role: str
    index: int
    popen: subprocess.Popen[bytes]
    log: Path
    out: Path | None = None
    url: str | None = None
    stopped: bool = False
    killed: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass(frozen=True)
class ProcEvent:
    """Something the harness did to a process (its own log, independent of the engine)."""

    kind: str  # spawn, kill, stop, cont, term
    role: str
    index: int
    pid: int
    mono_ns: int
    wall_ns: int


class Cluster:
    """Worker and server subprocesses on one database; :meth:`close` ends every one of them
    (also when a test fails half-way: use it as a context manager)."""

    def __init__(
        self,
        db_url: str,
        workdir: Path,
        *,
        lease: float = 2.0,
        concurrency: int = 100,
        worker_env: dict[str, str] | None = None,
        server_db_url: str | None = None,
    ) -> None:
        self.db_url = db_url
        self.server_db_url = server_db_url or db_url
        self.workdir = workdir
        self.lease = lease
        self.concurrency = concurrency
        self.worker_env = dict(worker_env or {})
        self.ledger_dir = workdir / "ledger"
        self.ledger_dir.mkdir(parents=True, exist_ok=True)
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.events: list[ProcEvent] = []
        self.procs: list[Proc] = []
        self.workers: dict[int, Proc] = {}
        self.servers: list[Proc] = []
        self._serial = itertools.count()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PERDURE_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(APPS), str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
        )
        env["PERDURE_DATABASE_URL"] = self.db_url
        env["CHAOS_LEDGER_DIR"] = str(self.ledger_dir)
        env.update(extra or {})
        return env

    def note(self, kind: str, proc: Proc) -> None:
        self.events.append(
            ProcEvent(kind, proc.role, proc.index, proc.pid, mono_ns(), time.time_ns())
        )

    def _popen(
        self, role: str, index: int, args: list[str], env: dict[str, str], out: Path | None
    ) -> Proc:
        log = self.logs / f"{role}-{index}-{next(self._serial)}.log"
        with log.open("wb") as ferr:
            if out is None:
                popen = subprocess.Popen(
                    [sys.executable, "-m", "perdure.cli", *args],
                    env=env,
                    cwd=self.workdir,
                    stdout=subprocess.DEVNULL,
                    stderr=ferr,
                )
            else:
                with out.open("wb") as fout:
                    popen = subprocess.Popen(
                        [sys.executable, "-m", "perdure.cli", *args],
                        env=env,
                        cwd=self.workdir,
                        stdout=fout,
                        stderr=ferr,
                    )
        proc = Proc(role, index, popen, log, out)
        self.procs.append(proc)
        self.note("spawn", proc)
        return proc

    def spawn_worker(self, index: int, extra_env: dict[str, str] | None = None) -> Proc:
        """Start worker ``index`` (replacing the slot's current one, which must be dead)."""
        env = self.env({**self.worker_env, **(extra_env or {})})
        args = [
            "worker",
            APP_SPEC,
            "--concurrency",
            str(self.concurrency),
            "--lease",
            str(self.lease),
            "--log-level",
            "info",
        ]
        proc = self._popen("worker", index, args, env, None)
        self.workers[index] = proc
        return proc

    def spawn_server(self, index: int) -> Proc:
        env = self.env({"PERDURE_API_TOKEN": TOKEN, "PERDURE_DATABASE_URL": self.server_db_url})
        out = self.logs / f"server-{index}-{next(self._serial)}.out"
        args = ["server", "--app", APP_SPEC, "--port", "0", "--log-level", "warning"]
        proc = self._popen("server", index, args, env, out)
        self.servers.append(proc)
        return proc

    async def start_servers(self, count: int, timeout: float = 90.0) -> list[str]:
        """Start ``count`` servers; wait for each banner and ``/health`` 200."""
        procs = [self.spawn_server(i) for i in range(count)]
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=5.0) as http:
            for proc in procs:
                assert proc.out is not None
                while proc.url is None:
                    match = re.search(r"http://127\.0\.0\.1:\d+", proc.out.read_text("utf-8"))
                    if match:
                        proc.url = match.group(0)
                        break
                    self._check_starting(proc, deadline)
                    await asyncio.sleep(0.05)
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(f"{proc.url}/health")).status_code == 200:
                            break
                    self._check_starting(proc, deadline)
                    await asyncio.sleep(0.05)
        return [p.url for p in procs if p.url]

    def _check_starting(self, proc: Proc, deadline: float) -> None:
        if not proc.alive() or time.monotonic() > deadline:
            raise AssertionError(
                f"{proc.role} {proc.index} (pid {proc.pid}) did not start: "
                + proc.log.read_text("utf-8", "replace")[-2000:]
            )

    async def wait_workers_ready(self, timeout: float = 90.0) -> None:
        """Wait until every current worker logged that it is hosting the app."""
        deadline = time.monotonic() + timeout
        for proc in list(self.workers.values()):
            while "hosting" not in proc.log.read_text("utf-8", "replace"):
                self._check_starting(proc, deadline)
                await asyncio.sleep(0.05)

    def kill(self, proc: Proc) -> None:
        """SIGKILL (a stopped process dies too) and reap."""
        if proc.alive():
            proc.popen.send_signal(signal.SIGKILL)
            self.note("kill", proc)
            proc.killed = True
        proc.popen.wait(timeout=30)

    def restart_worker(self, index: int) -> tuple[Proc, Proc]:
        """Kill worker ``index`` and start a new one in its slot."""
        old = self.workers[index]
        self.kill(old)
        return old, self.spawn_worker(index)

    def stop(self, proc: Proc) -> None:
        proc.popen.send_signal(signal.SIGSTOP)
        proc.stopped = True
        self.note("stop", proc)

    def cont(self, proc: Proc) -> None:
        if proc.alive():
            proc.popen.send_signal(signal.SIGCONT)
            self.note("cont", proc)
        proc.stopped = False

    def unexpected_exits(self) -> list[str]:
        """Processes that ended without being killed by the harness."""
        return [
            f"{p.role} {p.index} (pid {p.pid}) exited by itself with status "
            f"{p.popen.returncode}: {p.log.read_text('utf-8', 'replace')[-1500:]}"
            for p in self.procs
            if not p.killed and not p.alive()
        ]

    def close(self) -> None:
        """End every process: continue stopped ones, SIGTERM, then SIGKILL what remains."""
        live = [p for p in self.procs if p.alive()]
        for p in live:
            with contextlib.suppress(ProcessLookupError):
                p.popen.send_signal(signal.SIGCONT)
                p.popen.send_signal(signal.SIGTERM)
                self.note("term", p)
        deadline = time.monotonic() + 15
        for p in live:
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(timeout=30)


# ---------------------------------------------------------------------- the client


@dataclass(frozen=True)
class Answer:
    """One answer (or transport failure) seen by the client."""

    mono_ns: int
    server: int
    status: int | None  # None: a transport error
    error: str = ""
    retry_after: str | None = None
    run_id: str | None = None
    key: str | None = None


class Starter:
    """Starts runs through the servers' HTTP API, alternating between them; retries on 503
    and transport errors (with the same idempotency key, so a retry never makes a second
    run), until ``deadline``. Every answer is kept for the checks."""

    def __init__(self, http: httpx.AsyncClient, urls: list[str]) -> None:
        self.http = http
        self.urls = urls
        self.answers: list[Answer] = []
        self.acks: dict[int, list[str]] = defaultdict(list)
        self.unexpected: list[str] = []

    async def start(self, spec: RunSpec, deadline: float) -> str | None:
        body = {"data": spec.data(), "idempotency_key": spec.key}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        delay = 0.05
        for attempt in itertools.count():
            server = (spec.i + attempt) % len(self.urls)
            url = f"{self.urls[server]}/api/v1/functions/{FUNCTION}/runs"
            try:
                r = await self.http.post(url, json=body, headers=headers)
            except httpx.TransportError as exc:
                self.answers.append(Answer(mono_ns(), server, None, type(exc).__name__))
            else:
                run_id: str | None = None
                if r.status_code in (200, 201):
                    run_id = r.json()["run_id"]
                    self.acks[spec.i].append(run_id)
                self.answers.append(
                    Answer(
                        mono_ns(),
                        server,
                        r.status_code,
                        "" if r.status_code < 400 else r.text[:300],
                        r.headers.get("retry-after"),
                        run_id,
                        spec.key,
                    )
                )
                if run_id is not None:
                    return run_id
                if r.status_code != 503:
                    self.unexpected.append(f"start {spec.key}: HTTP {r.status_code} {r.text[:300]}")
                    return None
                with contextlib.suppress(ValueError, TypeError):
                    delay = min(float(r.headers.get("retry-after")), 1.0)
            if time.monotonic() > deadline:
                self.unexpected.append(f"start {spec.key}: no 2xx before the deadline")
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        return None  # pragma: no cover

    async def start_all(
        self, specs: list[RunSpec], window: float, concurrency: int, deadline: float
    ) -> None:
        """Start every run, spread evenly over ``window`` seconds."""
        sem = asyncio.Semaphore(concurrency)
        t0 = time.monotonic()

        async def one(spec: RunSpec) -> None:
            await asyncio.sleep(
                max(0.0, t0 + spec.i * window / max(1, len(specs)) - time.monotonic())
            )
            async with sem:
                await self.start(spec, deadline)

        await asyncio.gather(*(one(s) for s in specs))


async def get_json(http: httpx.AsyncClient, url: str, *, retry_for: float = 60.0) -> Any:
    """GET with the token, retrying 503 and transport errors for up to ``retry_for`` s."""
    deadline = time.monotonic() + retry_for
    headers = {"Authorization": f"Bearer {TOKEN}"}
    while True:
        try:
            r = await http.get(url, headers=headers)
            if r.status_code == 200:
                return r.json()
            if r.status_code != 503:
                raise AssertionError(f"GET {url}: HTTP {r.status_code} {r.text[:300]}")
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"GET {url}: no answer within {retry_for} s")
        await asyncio.sleep(0.2)


async def count_runs(http: httpx.AsyncClient, base: str, status: str | None) -> int:
    """How many runs of the chaos function the API lists (with ``status``)."""
    total = 0
    cursor = None
    while True:
        url = f"{base}/api/v1/runs?function_id={FUNCTION}&limit=500"
        if status:
            url += f"&status={status}"
        if cursor:
            url += f"&cursor={cursor}"
        page = await get_json(http, url)
        total += len(page["runs"])
        cursor = page["next_cursor"]
        if not cursor:
            return total


async def wait_complete(
    http: httpx.AsyncClient, base: str, expected: int, timeout: float
) -> tuple[int, int]:
    """Poll until ``expected`` runs are completed (or any failed, or the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        done = await count_runs(http, base, "completed")
        failed = await count_runs(http, base, "failed")
        if done >= expected or failed or time.monotonic() > deadline:
            return done, failed
        await asyncio.sleep(0.5)


async def fetch_runs(
    http: httpx.AsyncClient, base: str, run_ids: list[str], concurrency: int = 16
) -> dict[str, dict[str, Any]]:
    """``GET /api/v1/runs/{id}`` for every run."""
    sem = asyncio.Semaphore(concurrency)

    async def one(run_id: str) -> tuple[str, dict[str, Any]]:
        async with sem:
            return run_id, await get_json(http, f"{base}/api/v1/runs/{run_id}")

    return dict(await asyncio.gather(*(one(r) for r in run_ids)))


# ---------------------------------------------------------------------- the ledger


@dataclass
class Execution:
    """One execution of a step body, from its ledger lines."""

    run: str
    step: str
    x: str
    pid: int
    b_mono: int
    b_wall: int
    a_mono: int | None = None
    prev: str = "-"  # the previous step's result (its x) this execution continued from
    end: str | None = None  # E, C, or None (cut short)
    end_mono: int | None = None
    end_wall: int | None = None


@dataclass
class Ledger:
    executions: dict[tuple[str, str], list[Execution]] = field(default_factory=dict)
    by_x: dict[str, Execution] = field(default_factory=dict)
    activity: dict[int, list[int]] = field(default_factory=dict)
    calls: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)
    """(run, step) -> [(pid, mono)] of every A line (the function called the step)."""
    exits: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)
    """(run, step) -> [(pid, mono)] of every X line (the engine raised out of the step call)."""
    self_stops: list[tuple[int, int, str, str]] = field(default_factory=list)
    lines: int = 0


def read_ledger(directory: Path) -> Ledger:
    """Parse every ``ledger-<pid>.log`` in ``directory``."""
    led = Ledger()
    executions: dict[tuple[str, str], list[Execution]] = defaultdict(list)
    calls: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    exits: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for path in sorted(directory.glob("ledger-*.log")):
        last_call: dict[tuple[str, str], int] = {}
        times: list[int] = []
        pid = 0
        for raw in path.read_text("utf-8").splitlines():
            parts = raw.split()
            if len(parts) < 4:
                continue  # a line cut by a kill (cannot happen with one write; be lenient)
            kind, pid, mono, wall = parts[0], int(parts[1]), int(parts[2]), int(parts[3])
            led.lines += 1
            times.append(mono)
            if kind == "P":
                continue
            run, step, x = parts[4], parts[5], parts[6]
            if kind == "A":
                last_call[(run, step)] = mono
                calls[(run, step)].append((pid, mono))
            elif kind == "B":
                prev = parts[7] if len(parts) > 7 else "-"
                ex = Execution(run, step, x, pid, mono, wall, last_call.get((run, step)), prev)
                executions[(run, step)].append(ex)
                led.by_x[x] = ex
            elif kind in ("E", "C"):
                ex = led.by_x[x]
                ex.end, ex.end_mono, ex.end_wall = kind, mono, wall
            elif kind == "X":
                exits[(run, step)].append((pid, mono))
            elif kind == "S":
                led.self_stops.append((pid, mono, run, step))
        if times:
            times.sort()
            led.activity[pid] = times
    for execs in executions.values():
        execs.sort(key=lambda e: e.b_mono)
    led.executions = dict(executions)
    led.calls = dict(calls)
    led.exits = dict(exits)
    return led


def longest_outage(times: list[int], lo: int, hi: int) -> int:
    """The longest gap between consecutive activity instants of a process (or after its last
    one) that ends at or after ``lo``, counting only its part before ``hi``."""
    best = 0
    start = max(0, bisect.bisect_left(times, lo) - 1)
    for k in range(start, len(times)):
        t = times[k]
        if t >= hi:
            break
        nxt = times[k + 1] if k + 1 < len(times) else hi
        if nxt < lo:
            continue
        best = max(best, min(nxt, hi) - t)
    return best


# ---------------------------------------------------------------------- verification


def parse_iso_ns(text: str) -> int:
    """An API timestamp (ISO 8601, UTC, microseconds) in epoch nanoseconds."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(value.timestamp()) * SEC + value.microsecond * 1000


@dataclass
class Report:
    """What happened and what was checked."""

    runs: int = 0
    steps: int = 0
    executions: int = 0
    reexecuted: int = 0
    overlaps: int = 0
    kills: int = 0
    freezes: int = 0
    duration: float = 0.0
    starts: int = 0
    start_retries: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    late_after_pause: int = 0
    min_takeover_after_kill: float | None = None
    min_outage_before_takeover: float | None = None
    max_pulse_gap: float = 0.0
    violations: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def fail(self, message: str) -> None:
        self.violations.append(message)

    def summary(self) -> str:
        def secs(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f} s"

        lines = [
            f"runs               {self.runs}",
            f"steps              {self.steps} (executions {self.executions})",
            f"kills              {self.kills} (SIGKILL + restart)",
            f"freezes            {self.freezes} (SIGSTOP beyond the lease, then SIGCONT)",
            f"re-executed steps  {self.reexecuted} (overlapping in time: {self.overlaps}; begun "
            f"after the record by a worker paused after its lease check: {self.late_after_pause})",
            f"starts             {self.starts} acknowledged, {self.start_retries} retried "
            f"answers ({', '.join(f'{k}: {v}' for k, v in sorted(self.answers.items()))})",
            f"takeover gaps      min after a kill {secs(self.min_takeover_after_kill)}, "
            f"min outage before any takeover {secs(self.min_outage_before_takeover)}",
            f"max pulse gap      {secs(self.max_pulse_gap)} (outside harness freezes)",
            f"duration           {self.duration:.1f} s",
            "invariants         "
            + ("OK" if self.ok else f"VIOLATED ({len(self.violations)})")
            + f" [{', '.join(self.checks)}]",
        ]
        if self.violations:
            lines += ["violations:"] + [f"  - {v}" for v in self.violations[:40]]
            if len(self.violations) > 40:
                lines.append(f"  ... and {len(self.violations) - 40} more")
        return "\n".join(lines)


def verify(
    specs: list[RunSpec],
    acks: dict[int, list[str]],
    runs: dict[str, dict[str, Any]],
    led: Ledger,
    events: list[ProcEvent],
    lease: float,
    *,
    listed: int | None = None,
    check_leases: bool = True,
    report: Report | None = None,
) -> Report:
    """Check the invariants (see the module docstring); return the report."""
    rep = report or Report()
    threshold = int(lease / 3 * SEC)
    killed_at: dict[int, int] = {}
    for ev in events:
        if ev.kind == "kill":
            killed_at.setdefault(ev.pid, ev.mono_ns)
    stops = _stop_windows(events)

    # 1. every acknowledged start is one run, completed, with the right output.
    rep.checks.append("exactly-once output")
    spec_of: dict[str, RunSpec] = {}
    for spec in specs:
        ids = set(acks.get(spec.i, ()))
        if not ids:
            rep.fail(f"{spec.key}: the start was never acknowledged")
            continue
        if len(ids) > 1:
            rep.fail(f"{spec.key}: one idempotency key, several runs: {sorted(ids)}")
        for run_id in ids:
            spec_of[run_id] = spec
    rep.runs = len(spec_of)
    if listed is not None and listed != len(specs):
        rep.fail(f"the API lists {listed} runs of {FUNCTION!r}, {len(specs)} were started")
    recorded: dict[tuple[str, str], dict[str, Any]] = {}
    for run_id, spec in spec_of.items():
        run = runs.get(run_id)
        if run is None:
            rep.fail(f"{spec.key}: run {run_id} acknowledged but not found")
            continue
        if run["status"] != "completed" or run["output"] != spec.expected():
            rep.fail(
                f"{spec.key}: run {run_id} is {run['status']} with output {run['output']!r}"
                f" (error {run.get('error')!r}), expected completed with {spec.expected()!r}"
            )
        steps = {s["id"]: s for s in run["steps"]}
        if sorted(steps) != sorted(spec.steps()):
            rep.fail(f"{spec.key}: recorded steps {sorted(steps)} != {spec.steps()}")
        v = spec.seed
        for k, name in enumerate(spec.steps()):
            v = chaosapp.next_value(v, k)
            st = steps.get(name)
            if st is None:
                continue
            rep.steps += 1
            out = st["output"] if isinstance(st["output"], dict) else {}
            if st["status"] != "completed" or out.get("v") != v or not st["ended_at"]:
                rep.fail(f"{spec.key}: step {name} recorded as {st!r}, expected v={v}")
                continue
            recorded[(run_id, name)] = st
            if (run_id, name) not in led.executions:
                rep.fail(f"{spec.key}: step {name} recorded but never executed (no ledger line)")
    for run_id, step in led.executions:
        if run_id not in spec_of:
            rep.fail(f"run {run_id} executed step {step} but no start was acknowledged for it")

    # 2. a recorded step is never executed again after it was recorded.
    rep.checks.append("no execution after the record")
    for (run_id, name), st in recorded.items():
        execs = led.executions.get((run_id, name), [])
        rep.executions += len(execs)
        rep.reexecuted += max(0, len(execs) - 1)
        rec_ns = parse_iso_ns(st["ended_at"])
        producer = led.by_x.get(st["output"].get("x", ""))
        if producer is None or (producer.run, producer.step) != (run_id, name):
            rep.fail(
                f"{run_id} {name}: the recorded result names execution "
                f"{st['output'].get('x')!r}, which the ledger does not show"
            )
        elif producer.end != "E" or (producer.end_wall or 0) > rec_ns + WALL_SLACK_NS:
            rep.fail(
                f"{run_id} {name}: the recorded result of {producer.x} was recorded before "
                f"its side effect finished (end {producer.end}, {producer.end_wall} > "
                f"{rec_ns})"
            )
        for ex in execs:
            if ex.b_wall <= rec_ns + WALL_SLACK_NS:
                continue
            paused = ex.a_mono is not None and ex.b_mono - ex.a_mono >= threshold
            if paused:
                rep.late_after_pause += 1
                continue
            rep.fail(
                f"{run_id} {name}: execution {ex.x} (pid {ex.pid}) began "
                f"{(ex.b_wall - rec_ns) / 1e6:.1f} ms after the step was recorded"
            )

    for (run_id, name), st in recorded.items():
        k = int(name[1:])
        before = recorded.get((run_id, f"s{k - 1}"))
        producer = led.by_x.get(st["output"].get("x", ""))
        if k == 0 or before is None or producer is None:
            continue
        if producer.prev != before["output"].get("x"):
            rep.fail(
                f"{run_id} {name}: its recorded result was computed from s{k - 1}'s result "
                f"{producer.prev}, but s{k - 1}'s recorded result is {before['output'].get('x')}"
                " (a result was replaced after the run had gone on from it)"
            )

    # 3. leases: consecutive executions need an outage of the first one's process.
    for execs in led.executions.values():
        for ex in execs:
            if ex.end is None and ex.pid not in killed_at:
                rep.fail(
                    f"{ex.run} {ex.step}: execution {ex.x} (pid {ex.pid}) neither "
                    "finished nor was cut short by a kill"
                )
    rep.max_pulse_gap = _max_pulse_gap(led, killed_at, stops) / SEC
    if not check_leases:
        return rep
    rep.checks.append("lease exclusion")
    min_after_kill: int | None = None
    min_outage: int | None = None
    for (run_id, name), execs in led.executions.items():
        for prev, nxt in itertools.pairwise(execs):
            prev_end = prev.end_mono if prev.end is not None else killed_at.get(prev.pid)
            if prev_end is None or nxt.b_mono < prev_end:
                rep.overlaps += 1
            times = led.activity.get(prev.pid, [])
            outage = longest_outage(times, prev.b_mono - int(lease * SEC), nxt.b_mono)
            min_outage = outage if min_outage is None else min(min_outage, outage)
            if prev.end is None and prev.pid in killed_at and times:
                gap = nxt.b_mono - times[-1]
                min_after_kill = gap if min_after_kill is None else min(min_after_kill, gap)
            if outage < threshold:
                rep.fail(
                    f"{run_id} {name}: execution {nxt.x} (pid {nxt.pid}) began while the lease of"
                    f" {prev.x} (pid {prev.pid}) could not have expired: that process was out "
                    f"for at most {outage / 1e6:.0f} ms (< {threshold / 1e6:.0f} ms)"
                )
    rep.min_takeover_after_kill = None if min_after_kill is None else min_after_kill / SEC
    rep.min_outage_before_takeover = None if min_outage is None else min_outage / SEC
    return rep


def _stop_windows(events: list[ProcEvent]) -> dict[int, list[tuple[int, int]]]:
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)
    open_: dict[int, int] = {}
    for ev in events:
        if ev.kind == "stop":
            open_[ev.pid] = ev.mono_ns
        elif ev.kind in ("cont", "kill", "term") and ev.pid in open_:
            out[ev.pid].append((open_.pop(ev.pid), ev.mono_ns))
    for pid, start in open_.items():
        out[pid].append((start, 2**63))
    return out


def _max_pulse_gap(
    led: Ledger, killed_at: dict[int, int], stops: dict[int, list[tuple[int, int]]]
) -> int:
    """The longest silence of a live, unfrozen worker: how noisy the machine was."""
    worst = 0
    for pid, times in led.activity.items():
        windows = stops.get(pid, [])
        for a, b in itertools.pairwise(times):
            if any(s <= b and a <= e for s, e in windows):
                continue
            worst = max(worst, b - a)
    return worst


# ---------------------------------------------------------------------- one chaos run


async def chaos_schedule(
    cluster: Cluster, cfg: ChaosConfig, rng: random.Random, report: Report
) -> None:
    """``cfg.kills`` kills and ``cfg.freezes`` freezes of random workers, one every
    ``cfg.kill_every`` seconds, in a random order."""
    actions = ["kill"] * cfg.kills + ["freeze"] * cfg.freezes
    rng.shuffle(actions)
    thaws: list[asyncio.Task[None]] = []

    async def thaw(proc: Proc, after: float) -> None:
        await asyncio.sleep(after)
        cluster.cont(proc)

    try:
        for action in actions:
            await asyncio.sleep(rng.uniform(*cfg.kill_every))
            if action == "kill":
                cluster.restart_worker(rng.randrange(cfg.workers))
                report.kills += 1
            else:
                candidates = [p for p in cluster.workers.values() if p.alive() and not p.stopped]
                if not candidates:
                    continue
                proc = rng.choice(candidates)
                cluster.stop(proc)
                report.freezes += 1
                thaws.append(
                    asyncio.get_running_loop().create_task(
                        thaw(proc, cfg.lease + rng.uniform(0.5, 1.5))
                    )
                )
        await asyncio.gather(*thaws)
    finally:
        for t in thaws:
            t.cancel()
        for proc in list(cluster.workers.values()):
            if proc.stopped:
                cluster.cont(proc)


async def run_chaos(
    cfg: ChaosConfig,
    db_url: str,
    workdir: Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Start the cluster, run the workload under chaos, wait, verify. Every process is ended
    before this returns (or raises)."""
    say = progress or (lambda _: None)
    report = Report()
    specs = plan(cfg)
    rng = random.Random(cfg.seed * 7919 + 1)
    t0 = time.monotonic()
    with Cluster(db_url, workdir, lease=cfg.lease, concurrency=cfg.concurrency) as cluster:
        urls = await cluster.start_servers(cfg.servers)
        for i in range(cfg.workers):
            cluster.spawn_worker(i)
        await cluster.wait_workers_ready()
        say(f"{cfg.servers} servers and {cfg.workers} workers up in {time.monotonic() - t0:.1f} s")
        t_chaos = time.monotonic()
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        async with httpx.AsyncClient(timeout=10.0, limits=limits) as http:
            starter = Starter(http, urls)
            chaos = asyncio.get_running_loop().create_task(
                chaos_schedule(cluster, cfg, rng, report)
            )
            try:
                window = cfg.window()
                await starter.start_all(
                    specs, window, cfg.client_concurrency, time.monotonic() + window + 120
                )
                say(f"{len(starter.acks)} starts acknowledged")
                await chaos
            finally:
                if not chaos.done():
                    chaos.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await chaos
            say(f"chaos done ({report.kills} kills, {report.freezes} freezes); waiting for runs")
            done, failed = await wait_complete(http, urls[0], len(specs), cfg.complete_timeout)
            say(f"{done} completed, {failed} failed")
            run_ids = sorted({r for ids in starter.acks.values() for r in ids})
            runs = await fetch_runs(http, urls[-1], run_ids)
            listed = await count_runs(http, urls[0], None)
        report.duration = time.monotonic() - t_chaos
        for problem in starter.unexpected + cluster.unexpected_exits():
            report.fail(problem)
    report.starts = len(starter.acks)
    report.answers = Counter(
        str(a.status) if a.status is not None else a.error for a in starter.answers
    )
    report.start_retries = len(starter.answers) - sum(len(v) for v in starter.acks.values())
    led = read_ledger(cluster.ledger_dir)
    return verify(
        specs, starter.acks, runs, led, cluster.events, cfg.lease, listed=listed, report=report
    )
