"""The app of the chaos tests (tests/chaos/, bench/chaos.py): a chain of steps whose bodies write
a ledger before and after their side effect, plus a pulse showing when the process was awake.

Function ``chain``: input ``{"i": int, "seed": int, "ms": [int, ...]}``; one step ``s<k>`` per
entry of ``ms``, whose side effect lasts ``ms[k]`` milliseconds; output
``{"i": i, "v": expected(seed, len(ms))}``. Each step returns ``{"v": ..., "x": EXEC}`` where
``EXEC`` names the execution of the body that produced it, so a reader of the run can tell which
execution's result was recorded.

Environment:

- ``CHAOS_LEDGER_DIR``: each process appends to ``ledger-<pid>.log`` there (default ``.``).
- ``CHAOS_PULSE``: seconds between pulse lines (default 0.1).
- ``CHAOS_SELF_STOP_AFTER``: a step id; the process sends itself SIGSTOP once, right after that
  step's checkpoint is durable and before the next step is called (a worker paused between two
  steps, at a precise point).
- ``CHAOS_HOLD_UNTIL_CONT``: a step id; this process's executions of that step do not end
  their side effect (once its ``ms`` have passed) before the process received SIGCONT: a test
  that freezes the process in the middle of the step cannot lose the race against a side
  effect that ends by itself first, and the side effect ends as soon as the process is
  continued.

Ledger lines, space-separated: ``KIND PID MONO_NS WALL_NS [RUN STEP EXEC [PREV]]``, where MONO_NS is
``time.monotonic_ns()`` (one clock for every process of the machine) and WALL_NS
``time.time_ns()`` (the clock PostgreSQL's ``now()`` reads on the same machine):

- ``P`` pulse: the worker's event loop ran at this instant (a task on the loop writes one every
  ``CHAOS_PULSE`` seconds; the same loop renews the worker's leases).
- ``A`` the function is about to call step STEP (before the engine decides whether to run it).
- ``B`` execution EXEC of step STEP begins: written *before* the side effect. PREV is the
  ``x`` of the previous step's result as this execution of the function received it (``-`` for
  ``s0``): the value the run continued from.
- ``E`` execution EXEC finished its side effect; its result is about to be returned.
- ``C`` execution EXEC was cancelled during its side effect (the worker lost the lease).
- ``X`` the engine raised out of the call of step STEP (this process stops executing the run
  there: its lease was lost, or it was cancelled); written after any checkpoint it attempted
  for the step was answered.
- ``S`` the process is about to stop itself (``CHAOS_SELF_STOP_AFTER``).

Every line is one ``os.write`` on a file descriptor opened with ``O_APPEND``: when ``write``
returns, the line is in the kernel's page cache and survives a SIGKILL of the process (it would
need an fsync to survive a power loss, which these tests do not simulate).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from typing import Any

import perdure

app = perdure.App("chaos")

LEDGER_DIR = os.environ.get("CHAOS_LEDGER_DIR", ".")
PULSE_SECONDS = float(os.environ.get("CHAOS_PULSE", "0.1"))
SELF_STOP_AFTER = os.environ.get("CHAOS_SELF_STOP_AFTER", "")
HOLD_UNTIL_CONT = os.environ.get("CHAOS_HOLD_UNTIL_CONT", "")
MODULUS = 1_000_003

_fd: int | None = None
_pid = 0
_exec_numbers = itertools.count(1)
_pulse: asyncio.Task[None] | None = None
_stopped_once = False
_continued: asyncio.Event | None = None


def ledger(kind: str, *fields: str) -> None:
    """Append one line to this process's ledger (one write system call)."""
    global _fd, _pid
    if _fd is None or _pid != os.getpid():
        _pid = os.getpid()
        path = os.path.join(LEDGER_DIR, f"ledger-{_pid}.log")
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    line = " ".join((kind, str(_pid), str(time.monotonic_ns()), str(time.time_ns()), *fields))
    os.write(_fd, (line + "\n").encode())


async def _pulse_forever() -> None:
    while True:
        ledger("P")
        await asyncio.sleep(PULSE_SECONDS)


def _ensure_pulse() -> None:
    global _pulse
    if _pulse is None or _pulse.done():
        _pulse = asyncio.get_running_loop().create_task(_pulse_forever(), name="chaos-pulse")


def _ensure_cont_handler() -> None:
    global _continued
    if HOLD_UNTIL_CONT and _continued is None:
        _continued = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGCONT, _continued.set)


def next_value(v: int, k: int) -> int:
    """The value after step ``k``."""
    return (v * 31 + k + 7) % MODULUS


def expected(seed: int, steps: int) -> int:
    """The ``v`` that ``chain`` returns for ``seed`` and ``steps`` steps."""
    v = seed
    for k in range(steps):
        v = next_value(v, k)
    return v


async def side_effect(run_id: str, step: str, k: int, v: int, ms: int, prev: str) -> dict[str, Any]:
    """The body of step ``s<k>``: ledger, side effect (``ms`` milliseconds), ledger."""
    x = f"{os.getpid()}-{next(_exec_numbers)}"
    ledger("B", run_id, step, x, prev)
    try:
        await asyncio.sleep(ms / 1000)
        if step == HOLD_UNTIL_CONT and _continued is not None:
            await _continued.wait()
    except BaseException:
        ledger("C", run_id, step, x)
        raise
    ledger("E", run_id, step, x)
    return {"v": next_value(v, k), "x": x}


@app.function(id="chain", max_crashes=1000)
async def chain(ctx: perdure.Context) -> dict[str, int]:
    global _stopped_once
    _ensure_pulse()
    _ensure_cont_handler()
    data = ctx.event.data
    v = int(data["seed"])
    prev = "-"
    for k, ms in enumerate(data["ms"]):
        step = f"s{k}"
        ledger("A", ctx.run_id, step, "-")
        try:
            out = await ctx.step.run(step, side_effect, ctx.run_id, step, k, v, int(ms), prev)
        except BaseException:
            ledger("X", ctx.run_id, step, "-")
            raise
        v, prev = int(out["v"]), str(out["x"])
        if step == SELF_STOP_AFTER and not _stopped_once:
            _stopped_once = True
            ledger("S", ctx.run_id, step, "-")
            os.kill(os.getpid(), signal.SIGSTOP)
    return {"i": int(data["i"]), "v": v}
