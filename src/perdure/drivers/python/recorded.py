"""What the Python driver records beside a step besides its result: the input a ``run`` step
was given (for the API and the dashboard), and the spec of a ``wait_for_event``."""

from __future__ import annotations

from typing import Any

from perdure import serde
from perdure.engine.expressions import validate
from perdure.engine.triggers import validate_event_name
from perdure.errors import InvalidInputError, PayloadTooLargeError, SerializationError
from perdure.store.base import WaitSpec
from perdure.store.common import MISSING, lookup_path
from perdure.types import Event


def step_input(args: tuple[Any, ...], kwargs: dict[str, Any], limit: int) -> str | None:
    """A ``run`` step's arguments as JSON text (``None`` without any). Arguments that are not
    JSON, or over ``limit`` bytes, are recorded by their types only: they never fail the
    step."""
    if not args and not kwargs:
        return None
    try:
        return serde.dumps_limited({"args": list(args), "kwargs": kwargs}, "input", limit)
    except (PayloadTooLargeError, SerializationError, TypeError, ValueError):
        names = [type(a).__name__ for a in args]
        names += [f"{k}: {type(v).__name__}" for k, v in kwargs.items()]
        return serde.dumps({"unrecorded": names})


def wait_spec(
    run_event: Event, event: str, match: str | None, if_: str | None, expires_at: float | None
) -> WaitSpec:
    """Validate a wait for ``event`` and compute what it matches in the run's event."""
    validate_event_name(event)
    if "*" in event:
        raise InvalidInputError("wait_for_event needs an exact event name, not a pattern")
    match_value = None
    if match is not None:
        found = lookup_path(run_event.to_dict(), match)
        if found is MISSING:
            raise InvalidInputError(
                f"wait_for_event match={match!r}: the run's event has no such field"
            )
        match_value = serde.dumps(found)
    if if_ is not None:
        validate(if_, {"event", "async"})
    return WaitSpec(event, match, match_value, if_, expires_at)
