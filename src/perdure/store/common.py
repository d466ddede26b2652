"""Logic shared by every store backend: event routing and wait matching. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perdure import ids, serde
from perdure.engine.expressions import Expression
from perdure.engine.flow.keys import run_flow
from perdure.functions import FunctionRecord
from perdure.store.base import NewRun

MISSING = object()


def lookup_path(obj: Any, path: str) -> Any:
    """``lookup_path(event, "data.order_id")``; :data:`MISSING` when a part is absent."""
    for part in path.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return MISSING
    return obj


def runs_for_event(
    functions: Sequence[FunctionRecord], event: dict[str, Any], body: str
) -> list[NewRun]:
    """The runs an event starts: one per function with a matching trigger."""
    out: list[NewRun] = []
    for fn in functions:
        for trig in fn.event_triggers():
            if trig.matches(event):
                run = NewRun(ids.new_id(), fn.id, body, event_id=event["id"])
                run.flow = run_flow(fn.id, fn.flow, event)
                out.append(run)
                break
    return out


def wait_matches(
    match_path: str | None,
    match_value: str | None,
    expression: str | None,
    run_input: str | bytes,
    event: dict[str, Any],
) -> bool:
    """Whether ``event`` satisfies a wait registered by a run whose triggering event is
    ``run_input`` (JSON text)."""
    if match_path is not None:
        value = lookup_path(event, match_path)
        if value is MISSING or serde.dumps(value) != match_value:
            return False
    if expression is not None:
        original = serde.loads(run_input)
        return Expression.compile(expression).evaluate({"event": original, "async": event})
    return True
