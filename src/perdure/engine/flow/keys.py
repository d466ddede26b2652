"""The flow-control state of one run, evaluated from its function's options and its event.

:func:`run_flow` turns a function's :class:`~perdure.engine.flow.options.FlowControl` and the
run's triggering event into a :class:`RunFlow`: the key strings its limits are counted under,
its priority and its start deadline. The stores keep these in the run's row; the decisions read
them. Pure.

Key strings are namespaced so that limits of different kinds and functions never share a key by
accident: ``c:<fn>`` / ``c:<fn>:<value>`` for a function-scoped concurrency limit, ``e:<value>``
for an environment-scoped one (shared by every function using the same value), ``t:<fn>[:<v>]``
throttle, ``r:<fn>[:<v>]`` rate limit, ``i:<fn>:<v>`` idempotency. Debounce, batch and singleton
keys are the bare value (their rows are looked up together with the function id). A key
expression that cannot be evaluated (a missing field) gives the value ``null``: such runs share
one key. Strings are used as they are; other values as their JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perdure import serde
from perdure.engine.expressions import NO_VALUE, Expression
from perdure.engine.flow.options import PRIORITY_BOUND, FlowControl

__all__ = ["RunFlow", "key_value", "priority_of", "run_flow"]


@dataclass(frozen=True, slots=True)
class RunFlow:
    """What flow control needs to know about one run (stored in its row)."""

    spec: FlowControl
    concurrency_keys: tuple[str | None, str | None] = (None, None)
    throttle_key: str | None = None
    rate_key: str | None = None
    idempotency_key: str | None = None
    debounce_key: str | None = None
    batch_key: str | None = None
    singleton_key: str | None = None
    priority: int = 0
    start_timeout: float | None = None

    @property
    def create_gated(self) -> bool:
        """Whether creating the run needs a decision against stored state (rate limit,
        idempotency, debounce, batch, singleton)."""
        return (
            self.rate_key is not None
            or self.idempotency_key is not None
            or self.debounce_key is not None
            or self.batch_key is not None
            or self.singleton_key is not None
        )


def key_value(expression: Expression | None, event: dict[str, Any]) -> str | None:
    """The key an expression gives for an event (``None`` without an expression)."""
    if expression is None:
        return None
    value = expression.value({"event": event})
    if isinstance(value, str):
        return value
    if value is NO_VALUE:
        return "null"
    try:
        return serde.dumps(value)
    except Exception:
        return str(value)


def priority_of(spec: FlowControl, event: dict[str, Any]) -> int:
    """The run's priority factor in seconds, clamped to ±600 (0 when not an integer)."""
    if spec.priority is None:
        return 0
    value = spec.priority.expression.value({"event": event})
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return 0
        value = int(value)
    return max(-PRIORITY_BOUND, min(PRIORITY_BOUND, value))


def _scoped(prefix: str, function_id: str, value: str | None) -> str:
    return f"{prefix}:{function_id}" if value is None else f"{prefix}:{function_id}:{value}"


def run_flow(function_id: str, spec: FlowControl, event: dict[str, Any]) -> RunFlow | None:
    """The flow state of a run of ``function_id`` triggered by ``event`` (its JSON object);
    ``None`` when the function has no per-run flow control."""
    if not spec.per_run:
        return None
    ckeys: list[str | None] = [None, None]
    for i, c in enumerate(spec.concurrency):
        value = key_value(c.expression, event)
        if c.scope == "env":
            ckeys[i] = f"e:{value}"
        else:
            ckeys[i] = _scoped("c", function_id, value)
    th, rl = spec.throttle, spec.rate_limit
    idem = spec.idempotency_expression
    return RunFlow(
        spec=spec,
        concurrency_keys=(ckeys[0], ckeys[1]),
        throttle_key=None
        if th is None
        else _scoped("t", function_id, key_value(th.expression, event)),
        rate_key=None if rl is None else _scoped("r", function_id, key_value(rl.expression, event)),
        idempotency_key=None if idem is None else _scoped("i", function_id, key_value(idem, event)),
        debounce_key=None
        if spec.debounce is None
        else key_value(spec.debounce.expression, event) or "",
        batch_key=None if spec.batch is None else key_value(spec.batch.expression, event) or "",
        singleton_key=None
        if spec.singleton is None
        else key_value(spec.singleton.expression, event) or "",
        priority=priority_of(spec, event),
        start_timeout=None if spec.timeouts is None else spec.timeouts.start_seconds,
    )
