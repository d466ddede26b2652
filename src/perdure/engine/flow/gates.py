"""Creation-time flow control: the decisions taken when a run is created. Pure.

Five options decide against shared state in the transaction that creates the run (the stores
read the state, call these, write the result: ``store/sqlite/flow_gates.py``,
``store/postgres/flow_gates.py``). They apply in this order, the first that says no wins:

1. an explicit ``idempotency_key`` of ``app.start`` naming an existing run returns that run;
2. ``idempotency``: a key already used within 24 hours records the run as skipped;
3. ``rate_limit``: over the limit, the run is recorded as skipped (:mod:`.window`);
4. ``singleton``: with an active run of the key, ``skip`` records the new run as skipped,
   ``cancel`` cancels the active one and goes on;
5. ``debounce`` / ``batch``: the event joins the key's open run, or opens one.

Runs created by ``ctx.step.invoke`` (a parent run is set) pass no creation-time gate: they are
a part of their parent, which was already admitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from perdure import serde
from perdure.engine.flow.reasons import reason

__all__ = [
    "IDEMPOTENCY_SECONDS",
    "SKIPPED_ERROR",
    "BatchStep",
    "batch_add",
    "batch_open",
    "batch_reason",
    "debounce_due",
    "debounce_reason",
    "idempotency_reason",
    "input_events",
    "rate_limit_reason",
    "singleton_action",
    "singleton_cancel_reason",
    "singleton_skip_reason",
]

#: How long an idempotency key is remembered (as Inngest: 24 hours).
IDEMPOTENCY_SECONDS = 86_400.0

#: The ``error`` a skipped run records (``handle.result()`` raises it as a failure).
SKIPPED_ERROR = serde.dumps(
    {"type": "RunSkipped", "message": "flow control skipped this run: it never executed"}
)


def _bare(key: str) -> str:
    """The user's key value from a namespaced key (``r:<fn>:<value>`` -> ``<value>``)."""
    parts = key.split(":", 2)
    return parts[2] if len(parts) == 3 else ""


def idempotency_reason(key: str, first_run: str | None, until: float) -> str:
    """A run skipped because its idempotency key was used within the window."""
    return reason(
        "idempotency",
        "skipped",
        "a run with the same idempotency key was started within 24 hours",
        key=_bare(key),
        run_id=first_run,
        until=until,
    )


def rate_limit_reason(key: str, limit: int, period: float, retry_at: float | None) -> str:
    """A run skipped by the rate limit."""
    return reason(
        "rate_limit",
        "skipped",
        f"rate limit of {limit} per {period:g}s reached",
        key=_bare(key),
        limit=limit,
        period=period,
        retry_at=retry_at,
    )


SingletonAction = Literal["start", "skip", "cancel"]


def singleton_action(mode: str, active: str | None) -> SingletonAction:
    """What a new run does given the key's active run (``None``: there is none)."""
    if active is None:
        return "start"
    return "cancel" if mode == "cancel" else "skip"


def singleton_skip_reason(key: str, active: str) -> str:
    """A run skipped because another run of its singleton key is active."""
    return reason(
        "singleton",
        "skipped",
        f"run {active} of the same singleton key is active",
        key=key,
        active_run_id=active,
    )


def singleton_cancel_reason(key: str, replaced_by: str) -> str:
    """An active run cancelled because a new run of its singleton key started."""
    return reason(
        "singleton",
        "cancelled",
        f"replaced by run {replaced_by} of the same singleton key",
        key=key,
        replaced_by=replaced_by,
    )


def debounce_due(first: float, last: float, period: float, timeout: float | None) -> float:
    """When a debounce run opened at ``first`` whose latest event came at ``last`` is due:
    ``period`` after the last event, but never more than ``timeout`` after the first."""
    due = last + period
    return due if timeout is None else min(due, first + timeout)


@dataclass(frozen=True, slots=True)
class BatchStep:
    """A batch after one more event: its size, whether it closes (full: due at once), and
    when it is due."""

    size: int
    closes: bool
    due: float


def batch_open(now: float, max_size: int, timeout: float) -> BatchStep:
    """A new batch holding its first event (opened at ``now``)."""
    return BatchStep(1, max_size <= 1, now if max_size <= 1 else now + timeout)


def batch_add(size: int, max_size: int, now: float, due: float) -> BatchStep:
    """An open batch of ``size`` events, due at ``due``, after one more event at ``now``."""
    size += 1
    if size >= max_size:
        return BatchStep(size, True, min(now, due))
    return BatchStep(size, False, due)


def debounce_reason(key: str, due: float) -> str:
    """The reason an open debounce run records: it waits for events to stop."""
    return reason(
        "debounce",
        "debounced",
        "waiting for events of this key to stop (the run takes the last one)",
        key=key,
        until=due,
    )


def batch_reason(key: str, step: BatchStep) -> str:
    """The reason a batch run records: it accumulates events until full or its timeout."""
    message = "batch full" if step.closes else "accumulating events until full or timed out"
    return reason("batch", "batched", message, key=key, size=step.size, until=step.due)


def input_events(value: Any) -> list[dict[str, Any]]:
    """The events of a run's decoded input: a batch run's input is the JSON array of its
    events, every other run's is its one event."""
    if isinstance(value, list):
        return [e for e in value if isinstance(e, dict)]
    return [value]
