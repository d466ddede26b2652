"""Claim-time admission: which due runs a claim may lease under concurrency and throttle. Pure.

A claim walks due runs of claim-gated functions in queue order (``available_at``, then
creation) and offers each to an :class:`Admission`:

- **Concurrency**: a run is admitted only if, for each of its limits (a key and the limit its
  function's current record gives), fewer than ``limit`` runs with that key hold a live lease
  (counted by the store from the runs table, then kept up to date here as runs are admitted).
  Otherwise it is *blocked*: it stays due, untouched, for a later claim.
- **Throttle** (run starts only): a run whose concurrency allows it takes the next start slot
  of its throttle key from GCRA (:func:`perdure.engine.flow.gcra.schedule`). If the slot is now
  it is admitted; otherwise it is *delayed*: the slot is reserved for it (the key's state moves
  on, so later runs queue behind it, FIFO) and the store moves the run's ``available_at`` to the
  slot's time. A run is delayed once; when it comes due it has already paid for its start.

Blocked keys are reported (:attr:`Admission.saturated`) so that the store can leave their other
runs out of its next candidate read: a saturated key never holds up runs of other keys behind it
in the queue (no head-of-line blocking).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from perdure.engine.flow.gcra import Rate, schedule
from perdure.engine.flow.options import FlowControl
from perdure.engine.flow.reasons import reason

__all__ = [
    "Admission",
    "Candidate",
    "Gate",
    "Offer",
    "Verdict",
    "blocked_message",
    "blocked_reason",
    "candidate_of",
    "delay_reason",
    "env_cap",
    "rate_of",
]


@dataclass(frozen=True, slots=True)
class Gate:
    """One concurrency limit on one key."""

    key: str
    limit: int


@dataclass(frozen=True, slots=True)
class Candidate:
    """A due run as the admission sees it: its concurrency gates, and its throttle key and rate
    when its start is still to be paid (``None`` otherwise)."""

    run_id: str
    gates: tuple[Gate, ...] = ()
    throttle: tuple[str, Rate] | None = None


class Verdict(enum.Enum):
    """What the claim does with a candidate."""

    ADMIT = "admit"
    BLOCKED = "blocked"
    DELAYED = "delayed"


@dataclass(frozen=True, slots=True)
class Offer:
    """The verdict on one candidate; ``until`` for a delayed one; ``gate`` the full gate of a
    blocked one, with ``running`` the count it saw."""

    verdict: Verdict
    until: float | None = None
    gate: Gate | None = None
    running: int = 0


@dataclass(slots=True)
class Admission:
    """The decisions of one claim.

    ``running``: live-lease counts of the keys involved (missing keys count 0); ``tats``: the
    GCRA state of the throttle keys involved (missing or ``None``: never seen or expired);
    ``want``: how many runs the claim may take; ``env_cap``: the largest limit any function
    gives an environment-scoped key (``e:...``), so that such a key is reported saturated only
    when no function could still use it.
    """

    now: float
    want: int
    running: dict[str, int] = field(default_factory=dict)
    tats: dict[str, float | None] = field(default_factory=dict)
    env_cap: int = 0
    admitted: list[str] = field(default_factory=list)
    saturated: set[str] = field(default_factory=set)
    #: Throttle keys whose state changed (the store writes them back).
    moved: set[str] = field(default_factory=set)

    @property
    def full(self) -> bool:
        """Whether the claim has taken as many runs as it may."""
        return len(self.admitted) >= self.want

    def _cap(self, gate: Gate) -> int:
        return max(gate.limit, self.env_cap) if gate.key.startswith("e:") else gate.limit

    def offer(self, c: Candidate) -> Offer:
        """Decide one candidate (offered in queue order) and update the state."""
        for gate in c.gates:
            n = self.running.get(gate.key, 0)
            if n >= gate.limit:
                if n >= self._cap(gate):
                    self.saturated.add(gate.key)
                return Offer(Verdict.BLOCKED, gate=gate, running=n)
        if c.throttle is not None:
            key, rate = c.throttle
            d = schedule(rate, self.tats.get(key), self.now)
            self.tats[key] = d.tat
            self.moved.add(key)
            if not d.allowed:
                return Offer(Verdict.DELAYED, until=d.at)
        for gate in c.gates:
            self.running[gate.key] = n = self.running.get(gate.key, 0) + 1
            if n >= self._cap(gate):
                self.saturated.add(gate.key)
        self.admitted.append(c.run_id)
        return Offer(Verdict.ADMIT)


def rate_of(spec: FlowControl) -> Rate | None:
    """The GCRA rate of a function's throttle (``None`` without one)."""
    th = spec.throttle
    return None if th is None else Rate(th.limit, th.period_seconds, th.burst)


def candidate_of(
    run_id: str,
    spec: FlowControl,
    keys: tuple[str | None, str | None],
    throttle_key: str | None,
) -> Candidate:
    """A due run of a function whose current options are ``spec``: its stored concurrency keys
    (``keys[i]`` is counted under ``spec.concurrency[i]``; a key stored before the function had
    that limit, or a limit removed since, is not gated) and its unpaid throttle key."""
    gates = tuple(
        Gate(key, spec.concurrency[i].limit)
        for i, key in enumerate(keys)
        if key is not None and i < len(spec.concurrency)
    )
    rate = rate_of(spec)
    throttle = None if throttle_key is None or rate is None else (throttle_key, rate)
    return Candidate(run_id, gates, throttle)


def env_cap(specs: Iterable[FlowControl]) -> int:
    """The largest environment-scoped concurrency limit among these functions (0: none)."""
    return max((c.limit for s in specs for c in s.concurrency if c.scope == "env"), default=0)


def delay_reason(key: str, until: float, rate: Rate) -> str:
    """The ``reason`` of a run the throttle delayed."""
    return reason(
        "throttle",
        "delayed",
        f"throttled: start delayed until {until:.3f} ({rate.limit} per {rate.period:g}s)",
        key=key,
        until=until,
        limit=rate.limit,
        period=rate.period,
        burst=rate.burst,
    )


def blocked_message(key: str, running: int, limit: int) -> str:
    """One sentence for a due run waiting for a concurrency slot."""
    return f"waiting for a concurrency slot: key {key}, {running} of {limit} running"


def blocked_reason(
    run_id: str,
    spec: FlowControl,
    keys: tuple[str | None, str | None],
    running: dict[str, int],
    now: float,
) -> str | None:
    """Why a due run of a function whose current options are ``spec`` waits, given the live
    leases of its keys (``running``): the ``reason`` of the first full concurrency limit, in
    the order a claim checks them, or ``None`` when a claim would admit it (it waits for a
    worker, not for a slot). The same decision as :meth:`Admission.offer`."""
    offer = Admission(now, 1, dict(running)).offer(candidate_of(run_id, spec, keys, None))
    if offer.verdict is not Verdict.BLOCKED or offer.gate is None:
        return None
    gate = offer.gate
    return reason(
        "concurrency",
        "waiting",
        blocked_message(gate.key, offer.running, gate.limit),
        key=gate.key,
        running=offer.running,
        limit=gate.limit,
    )
