"""``cancel_on``: which functions an event may cancel runs of, and which runs it does cancel.

Pure. A store calls :func:`cancellers` with the registry and an arriving event's name (only
functions with a ``CancelOn`` whose pattern matches are looked at), selects each function's
non-terminal runs created inside the option's ``timeout`` window (narrowed in SQL by
:func:`match_filter` when the option has a ``match``), and keeps the runs for which
:func:`cancels` says yes. The SQL filter is only a pre-filter: :func:`cancels` decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from perdure import serde
from perdure.engine.flow.options import CancelOn, FlowControl
from perdure.engine.flow.reasons import reason
from perdure.engine.triggers import EventPattern

__all__ = [
    "Canceller",
    "cancel_reason",
    "cancellers",
    "cancels",
    "match_filter",
    "missing_match",
    "path_value",
]


class HasFlow(Protocol):
    """A registered function as the registry holds it (``FunctionRecord``)."""

    @property
    def id(self) -> str: ...

    @property
    def flow(self) -> FlowControl: ...


_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Canceller:
    """One ``CancelOn`` of one function that an arriving event matches by name."""

    function_id: str
    option: CancelOn

    def since(self, now: float) -> float | None:
        """Runs created before this time are outside the option's window (``None``: no
        window)."""
        t = self.option.timeout_seconds
        return None if t is None else now - t


def cancellers(functions: Iterable[HasFlow], event_name: str) -> list[Canceller]:
    """Every ``CancelOn`` (of every function) whose event pattern matches ``event_name``."""
    out: list[Canceller] = []
    for fn in functions:
        for option in fn.flow.cancel_on:
            if EventPattern.parse(option.event).matches(event_name):
                out.append(Canceller(fn.id, option))
    return out


def path_value(obj: Any, path: str) -> Any:
    """The value at a dotted path of a JSON object, or a private *missing* marker."""
    for part in path.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return _MISSING
    return obj


def cancels(option: CancelOn, run_event: Any, event: dict[str, Any]) -> bool:
    """Whether ``event`` (the arriving one) cancels a run whose triggering event is
    ``run_event`` (its JSON object): the ``match`` path is present in both and equal (as JSON
    values: ``1`` and ``1.0`` differ, ``null`` equals ``null``), and ``if_`` (CEL over
    ``event``, the run's, and ``async``, the new one) is true. The time window is the caller's
    (it selects runs by creation time)."""
    if option.match is not None:
        mine = path_value(run_event, option.match)
        theirs = path_value(event, option.match)
        if mine is _MISSING or theirs is _MISSING:
            return False
        if serde.dumps(mine) != serde.dumps(theirs):
            return False
    if option.expression is not None:
        return option.expression.evaluate({"event": run_event, "async": event})
    return True


def match_filter(option: CancelOn, event: dict[str, Any]) -> tuple[list[str], Any] | None:
    """The SQL pre-filter for ``match``: ``(path parts, the new event's value)`` when the value
    is a JSON scalar the database can compare directly, else ``None`` (no pre-filter; ``match``
    is then checked by :func:`cancels` alone). ``([], _)`` is never returned: a path always has
    a part."""
    if option.match is None:
        return None
    value = path_value(event, option.match)
    if value is _MISSING or isinstance(value, dict | list):
        return None
    parts = option.match.split(".")
    if any('"' in p or "\\" in p for p in parts):
        return None
    return parts, value


def missing_match(option: CancelOn, event: dict[str, Any]) -> bool:
    """Whether the new event lacks the ``match`` path (it then cancels nothing)."""
    return option.match is not None and path_value(event, option.match) is _MISSING


def cancel_reason(event_id: str, event_name: str) -> str:
    """The ``reason`` of a run cancelled by ``cancel_on``."""
    return reason(
        "cancel_on",
        "cancelled",
        f"cancelled by event {event_name} ({event_id})",
        event_id=event_id,
        event_name=event_name,
    )
