"""perdure driving an app on the official Inngest Python SDK: the server's share of a step
(issue 8).

    python bench/inngest_bench.py [--backend sqlite|postgres] [--runs 200] [--concurrent 200]
                                  [--repeat N] [--pg-url URL] [--profile DIR]

The app (``bench/inngest_app.py``: a function of 3 steps whose bodies return ``None``, on
FastAPI + uvicorn) runs in its own process. perdure runs in this one as ``perdure dev`` does:
its HTTP server on uvicorn (the app syncs itself through ``/fn/register``), a worker with the
Python and the Inngest drivers, a SQLite file (or a PostgreSQL schema).

Measured:

- **sequential**: one run at a time, from the event sent to the result awaited; per step =
  per run / 3. The run's 4 call requests (one per step and the final one) are recorded and
  replayed straight to the app by a plain HTTP client (aiohttp, as the driver), pausing
  between calls as long as perdure does (an app that idles answers its next call later): the
  **baseline**. *perdure's share of a step* = the median time from an answer to the next
  call (the step's checkpoint, building the next request) + how much longer a call takes in
  a run than replayed; the target is 1 ms. The run's start (event sent to first call) and end
  (last answer to result awaited) are printed apart.
  The time the app spent inside its handler (its own middleware) is printed too.
- **concurrent**: ``--concurrent`` runs started at once; runs/s, and the CPU seconds per run
  of each process (perdure's and the app's) with each one's utilisation of a core: the
  throughput is limited by whichever side is near one core (both are single event loops).
- ``--profile DIR``: the concurrent phase again under pyinstrument (perdure's process), text
  and HTML reports in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

import perdure
from perdure import Event

PG_URL = os.environ.get("PERDURE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
HERE = Path(__file__).resolve().parent
STEPS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclass
class Recorded:
    """Call requests perdure sent (url, body, headers), while recording is on."""

    on: bool = False
    calls: list[tuple[str, bytes, dict[str, str]]] | None = None
    spans: list[tuple[float, float]] | None = None
    """When each call began and ended (``perf_counter``), while not ``None``."""

    def wrap(self, post: Any) -> Any:
        """``post`` (the driver's call), recording each call request while ``on``."""

        async def recording(request: Any) -> Any:
            if self.on and self.calls is not None:
                headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
                self.calls.append((request.url, request.body, headers))
            began = time.perf_counter()
            try:
                return await post(request)
            finally:
                if self.spans is not None:
                    self.spans.append((began, time.perf_counter()))

        return recording


class Bench:
    """perdure (server, worker, driver) in this process; the SDK app in a child process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.app = perdure.App("bench-host", url)
        self.recorded = Recorded()

    async def __aenter__(self) -> Bench:
        import uvicorn

        from perdure.drivers.python import PythonDriver
        from perdure.inngest.driver import InngestDriver
        from perdure.inngest.routes import InngestRoutes
        from perdure.runtime import Worker
        from perdure.server import create_app

        await self.app.open()
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(900, connect=10))
        self.driver = InngestDriver(server_kind="dev", checkpointing=True)
        self.driver._post = self.recorded.wrap(self.driver._post)  # type: ignore[method-assign]
        routes = InngestRoutes(self.app, self.driver, server_kind="dev")
        await routes.registry.load()
        asgi = create_app(
            self.app,
            dev=True,
            api_token=None,
            extra_routes=routes.routes(),
            response_headers=routes.headers,
        )
        port = free_port()
        self.origin = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning")
        )
        self.serving = asyncio.create_task(self.server.serve())
        app_port = free_port()
        self.app_origin = f"http://127.0.0.1:{app_port}"
        self.child = subprocess.Popen(  # noqa: ASYNC220 - once, before anything is measured
            [sys.executable, str(HERE / "inngest_app.py"), str(app_port), self.origin]
        )
        async with httpx.AsyncClient() as c:
            end = time.monotonic() + 60
            while True:
                try:
                    if (await c.get(f"{self.app_origin}/stats")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > end or self.child.poll() is not None:
                    raise SystemExit("the SDK app did not start")
                await asyncio.sleep(0.05)
            res = await c.put(f"{self.app_origin}/api/inngest", timeout=30)
            res.raise_for_status()
        self.worker = Worker(self.app.runtime, [PythonDriver(self.app.functions), self.driver])
        await self.worker.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.worker.stop()
        self.server.should_exit = True
        await self.serving
        await self.http.aclose()
        self.child.terminate()
        self.child.wait(10)
        await self.app.close()

    async def stats(self) -> dict[str, float]:
        res = await self.http.get(f"{self.app_origin}/stats")
        data: dict[str, float] = res.json()
        return data

    async def run_one(self) -> float:
        began = time.perf_counter()
        (sent,) = await self.app.send_detailed([Event(name="bench/three", data={})])
        (run_id,) = sent.run_ids
        out = await self.app.handle(run_id).result(timeout=120)
        assert out == 1, out
        return time.perf_counter() - began

    async def sequential(self, runs: int, warmup: int) -> dict[str, float]:
        for _ in range(warmup):
            await self.run_one()
        # The requests of one run, for the replay.
        self.recorded.calls, self.recorded.on = [], True
        await self.run_one()
        self.recorded.on = False
        calls = self.recorded.calls
        before = await self.stats()
        times, starts, ends, gaps, inside_calls = [], [], [], [], []
        for _ in range(runs):
            self.recorded.spans = spans = []
            began = time.perf_counter()
            took = await self.run_one()
            done = began + took
            times.append(took)
            starts.append(spans[0][0] - began)
            ends.append(done - spans[-1][1])
            gaps += [b[0] - a[1] for a, b in itertools.pairwise(spans)]
            inside_calls += [end - start for start, end in spans]
        self.recorded.spans = None
        after = await self.stats()
        gap = statistics.median(gaps)
        replay, replay_calls = [], []
        async with aiohttp.ClientSession() as plain:  # the client the driver uses, warm
            for _ in range(runs + 1):
                for index, (url, body, headers) in enumerate(calls):
                    if index:  # the app idles between calls as long as it does in a run
                        until = time.perf_counter() + gap
                        while time.perf_counter() < until:
                            pass
                    call_began = time.perf_counter()
                    async with plain.post(url, data=body, headers=headers) as res:
                        await res.read()
                        assert res.status in (200, 206), res.status
                    replay_calls.append(time.perf_counter() - call_began)
                replay.append(sum(replay_calls[-len(calls) :]))  # the calls, not the pauses
        replay, replay_calls = replay[1:], replay_calls[len(calls) :]  # the first connected
        per_run = statistics.median(times)
        base = statistics.median(replay)
        call = statistics.median(inside_calls)
        plain_call = statistics.median(replay_calls)
        inside = (after["seconds"] - before["seconds"]) / runs
        return {
            "requests_per_run": (after["requests"] - before["requests"]) / runs,
            "calls_replayed": len(calls),
            "per_run_ms": per_run * 1000,
            "p99_run_ms": sorted(times)[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
            "replay_run_ms": base * 1000,
            "app_inside_run_ms": inside * 1000,
            "per_step_ms": per_run / STEPS * 1000,
            "start_ms": statistics.median(starts) * 1000,
            "end_ms": statistics.median(ends) * 1000,
            "gap_ms": gap * 1000,
            "call_ms": call * 1000,
            "plain_call_ms": plain_call * 1000,
            "share_per_step_ms": (gap + max(0.0, call - plain_call)) * 1000,
        }

    async def concurrent(self, n: int) -> dict[str, float]:
        before, cpu0, began = await self.stats(), cpu_seconds(), time.perf_counter()
        sent = await self.app.send_detailed([Event(name="bench/three", data={}) for _ in range(n)])
        ids = [r for s in sent for r in s.run_ids]
        outs = await asyncio.gather(*(self.app.handle(r).result(timeout=600) for r in ids))
        wall = time.perf_counter() - began
        cpu, after = cpu_seconds() - cpu0, await self.stats()
        assert outs == [1] * n
        app_cpu = after["cpu"] - before["cpu"]
        return {
            "runs_per_s": n / wall,
            "wall_s": wall,
            "perdure_cpu_ms_per_run": cpu / n * 1000,
            "app_cpu_ms_per_run": app_cpu / n * 1000,
            "perdure_core_use": cpu / wall,
            "app_core_use": app_cpu / wall,
        }


async def measure(args: argparse.Namespace, url: str) -> tuple[dict[str, float], dict[str, float]]:
    async with Bench(url) as b:
        seq = await b.sequential(args.runs, args.warmup)
        await b.concurrent(min(args.concurrent, 50))  # warm the connection pool
        conc = await b.concurrent(args.concurrent)
        if args.profile:
            from pyinstrument import Profiler

            out = Path(args.profile)
            profiler = Profiler(async_mode="disabled")
            profiler.start()
            await b.concurrent(args.concurrent)
            profiler.stop()
            (out / "inngest_concurrent.txt").write_text(profiler.output_text(show_all=False))
            (out / "inngest_concurrent.html").write_text(profiler.output_html())
            print(f"profile: {out}/inngest_concurrent.txt (.html)")
    return seq, conc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--concurrent", type=int, default=200)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--pg-url", default=PG_URL)
    p.add_argument("--profile", default=None, metavar="DIR")
    args = p.parse_args()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    seqs, concs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            if args.backend == "sqlite":
                url = f"sqlite:///{tmp}/{uuid.uuid4().hex}.db"
            else:
                url = f"{args.pg_url}?schema=ibench_{uuid.uuid4().hex[:8]}"
            seq, conc = asyncio.run(measure(args, url))
            print(f"repeat {i + 1}: {fmt(seq)}\n          {fmt(conc)}")
            seqs.append(seq)
            concs.append(conc)
            args.profile = None  # profile once
    seq = {k: statistics.median(s[k] for s in seqs) for k in seqs[0]}
    conc = {k: statistics.median(c[k] for c in concs) for k in concs[0]}
    print(f"\n{args.backend}, Inngest Python SDK app (FastAPI + uvicorn), 3 steps, medians:")
    print(
        f"  sequential: {seq['per_run_ms']:.2f} ms/run (p99 {seq['p99_run_ms']:.2f}), "
        f"{seq['requests_per_run']:.0f} requests/run; the same requests replayed with no "
        f"engine: {seq['replay_run_ms']:.2f} ms/run of calls (the app inside its handler: "
        f"{seq['app_inside_run_ms']:.2f} ms/run)"
    )
    ratio = seq["per_run_ms"] / seq["replay_run_ms"]
    verdict = "ok" if seq["share_per_step_ms"] <= 1.0 else "MISSED"
    print(
        f"  per step {seq['per_step_ms']:.2f} ms = {ratio:.2f}x the replay. Inside a run: "
        f"{seq['gap_ms']:.2f} ms from an answer to the next call (the step's checkpoint), "
        f"calls of {seq['call_ms']:.2f} ms against {seq['plain_call_ms']:.2f} ms replayed with "
        f"the same pauses; start (event to first call) {seq['start_ms']:.2f} ms, end (last "
        f"answer to result) {seq['end_ms']:.2f} ms"
    )
    print(
        f"  perdure's share of a step (the gap + the call's excess over the replay): "
        f"{seq['share_per_step_ms']:.2f} ms (target <= 1 ms: {verdict})"
    )
    busier = "the app" if conc["app_core_use"] >= conc["perdure_core_use"] else "perdure"
    print(
        f"  {args.concurrent} at once: {conc['runs_per_s']:.0f} runs/s; CPU per run: perdure "
        f"{conc['perdure_cpu_ms_per_run']:.2f} ms, app {conc['app_cpu_ms_per_run']:.2f} ms; "
        f"core use: perdure {conc['perdure_core_use']:.2f}, app {conc['app_core_use']:.2f} "
        f"(the busier side: {busier})"
    )


def fmt(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.2f}" for k, v in d.items())


if __name__ == "__main__":
    main()
