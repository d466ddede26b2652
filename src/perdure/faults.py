"""Named fault points on the commit paths, inert unless a test arms them.

Points: ``after_claim`` (a run was claimed, before its function runs), ``before_commit`` and
``after_commit`` (around every store transaction commit), ``after_outcome`` (a run's outcome is
durable), ``event_fanout`` (inside the event transaction, before its runs are created).

Arm in-process with :func:`arm`, or in a subprocess with the environment variable
``PERDURE_FAULTS="point=action[@n][,...]"`` where action is ``kill`` (SIGKILL this process),
``raise`` (raise :class:`InjectedFault`) or ``stall:SECONDS``, and ``@n`` fires on the n-th hit
(default 1st). A disarmed point costs one dictionary truthiness check.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass


class InjectedFault(Exception):
    """Raised by an armed fault point whose action is ``raise``."""


@dataclass
class _Fault:
    action: str
    at: int
    hits: int = 0


_armed: dict[str, _Fault] = {}
_lock = threading.Lock()


def arm(point: str, action: str, at: int = 1) -> None:
    """Arm ``point`` to ``action`` (kill, raise, stall:SECONDS) on its ``at``-th hit."""
    with _lock:
        _armed[point] = _Fault(action, at)


def disarm(point: str | None = None) -> None:
    """Disarm one point, or all."""
    with _lock:
        if point is None:
            _armed.clear()
        else:
            _armed.pop(point, None)


def hit(point: str) -> None:
    """Pass a fault point."""
    if not _armed:
        return
    _hit(point)


def _hit(point: str) -> None:
    with _lock:
        fault = _armed.get(point)
        if fault is None:
            return
        fault.hits += 1
        if fault.hits != fault.at:
            return
        action = fault.action
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise InjectedFault(f"fault injected at {point}")
    elif action.startswith("stall:"):
        time.sleep(float(action.split(":", 1)[1]))


def _from_env() -> None:
    spec = os.environ.get("PERDURE_FAULTS", "")
    for part in filter(None, (p.strip() for p in spec.split(","))):
        point, _, rest = part.partition("=")
        action, _, at = rest.partition("@")
        arm(point, action, int(at) if at else 1)


_from_env()
