"""Function definitions and their triggers.

A :class:`FunctionDef` is what ``@app.function`` records: the callable, its id, its triggers and
its options. Its :meth:`FunctionDef.record` form is what the store keeps in the ``functions``
table, so that any process on the database (a client sending events, a server) routes events to
it without importing the user's code.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from perdure.engine.backoff import RetryPolicy
from perdure.engine.cron import CronSchedule
from perdure.engine.durations import to_seconds
from perdure.engine.expressions import Expression, validate
from perdure.engine.flow.options import FlowControl
from perdure.engine.ticks import CATCHUPS, CatchUp, Overlap, check_catchup, check_overlap
from perdure.engine.triggers import EventPattern
from perdure.errors import FunctionNotFoundError, InvalidInputError


@dataclass(frozen=True, slots=True)
class EventTrigger:
    """Start a run for each event whose name matches ``name`` (``*`` wildcards allowed) and, if
    given, whose ``if_`` CEL expression over ``event`` is true."""

    name: str
    if_: str | None = None
    pattern: EventPattern = field(init=False, repr=False, compare=False)
    expression: Expression | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", EventPattern.parse(self.name))
        expr = validate(self.if_, {"event"}) if self.if_ is not None else None
        object.__setattr__(self, "expression", expr)

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether the event (its JSON object) triggers this."""
        if not self.pattern.matches(event["name"]):
            return False
        return self.expression is None or self.expression.evaluate({"event": event})

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored."""
        out: dict[str, Any] = {"event": self.name}
        if self.if_ is not None:
            out["if"] = self.if_
        return out


@dataclass(frozen=True, slots=True)
class CronTrigger:
    """Start a run at every tick of a cron schedule (5 or 6 fields) in a time zone.

    After downtime, ``catchup`` says which missed ticks run (``"latest"``: the most recent one,
    if it is within ``catchup_seconds``; ``"none"``; ``"all"``: every one within the window);
    ``overlap="skip"`` starts no run while the trigger's previous run is active (see
    :mod:`perdure.runtime.scheduler`)."""

    expr: str
    tz: str = "UTC"
    catchup_seconds: float = 86400.0
    catchup: CatchUp = "latest"
    overlap: Overlap = "allow"
    schedule: CronSchedule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", CronSchedule.parse(self.expr, self.tz))
        if self.catchup_seconds < 0:
            raise InvalidInputError("catchup must not be negative")
        check_catchup(self.catchup)
        check_overlap(self.overlap)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored (``catchup`` is the window, in seconds)."""
        return {
            "cron": self.expr,
            "tz": self.tz,
            "catchup": self.catchup_seconds,
            "catchup_policy": self.catchup,
            "overlap": self.overlap,
        }


Trigger = EventTrigger | CronTrigger


def event(name: str, if_: str | None = None) -> EventTrigger:
    """A trigger on events named ``name`` (may end in ``*``), filtered by a CEL ``if_``."""
    return EventTrigger(name, if_)


def cron(
    expr: str,
    tz: str = "UTC",
    *,
    catchup: timedelta | float | str = timedelta(hours=24),
    catchup_window: timedelta | float | str | None = None,
    overlap: str = "allow",
) -> CronTrigger:
    """A trigger on a cron schedule: ``cron("0 9 * * *", tz="Europe/Paris")``.

    ``catchup``: what runs after downtime. A policy, ``"latest"`` (the most recent missed tick,
    once), ``"none"`` (nothing) or ``"all"`` (every missed tick, oldest first, at most 1,000),
    each within ``catchup_window`` (default 24 hours); or a duration, which is the window of
    ``"latest"`` (``0``: missed ticks are skipped). ``overlap``: ``"allow"`` (default) starts
    every tick's run; ``"skip"`` starts none while the previous run of this trigger is active.
    """
    if isinstance(catchup, str) and catchup in CATCHUPS:
        policy = check_catchup(catchup)
        window = 86400.0 if catchup_window is None else to_seconds(catchup_window)
    else:
        if catchup_window is not None:
            raise InvalidInputError(
                "catchup is a duration, which is the window: do not also give catchup_window "
                "(or give catchup as 'none', 'latest' or 'all')"
            )
        policy, window = "latest", to_seconds(catchup)
    return CronTrigger(expr, tz, window, policy, check_overlap(overlap))


def trigger_from_dict(value: dict[str, Any]) -> Trigger:
    """Rebuild a trigger from its stored JSON form."""
    if "cron" in value:
        return CronTrigger(
            value["cron"],
            value.get("tz", "UTC"),
            float(value.get("catchup", 86400.0)),
            value.get("catchup_policy", "latest"),
            value.get("overlap", "allow"),
        )
    return EventTrigger(value["event"], value.get("if"))


@dataclass(frozen=True, slots=True)
class FunctionRecord:
    """A function as the store keeps it: enough to route events and schedule crons."""

    id: str
    app: str
    triggers: tuple[Trigger, ...]
    config: dict[str, Any]
    flow: FlowControl = field(init=False, repr=False, compare=False)
    paused_at: float | None = field(default=None, compare=False)
    """When the function was paused (``None``: it runs). Kept apart from the function's row
    in the store (a sync does not change it); filled in by the query layer."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "flow", FlowControl.from_dict(self.config.get("flow")))

    def event_triggers(self) -> list[EventTrigger]:
        """The event triggers."""
        return [t for t in self.triggers if isinstance(t, EventTrigger)]


@dataclass(slots=True)
class FunctionDef:
    """A function registered with an :class:`~perdure.App`."""

    id: str
    fn: Callable[..., Any]
    triggers: tuple[Trigger, ...]
    retry: RetryPolicy
    is_async: bool
    max_crashes: int
    app_name: str = ""
    flow: FlowControl = field(default_factory=FlowControl)
    retention: float | None = None
    """Seconds its ended runs are kept (``None``: the App's retention)."""

    @classmethod
    def build(
        cls,
        fn: Callable[..., Any],
        *,
        id: str | None,
        trigger: Trigger | list[Trigger] | tuple[Trigger, ...] | None,
        retries: int | None,
        retry_policy: RetryPolicy | None,
        max_crashes: int,
        app_name: str,
        flow: dict[str, Any] | None = None,
        retention: timedelta | None = None,
    ) -> FunctionDef:
        """Validate options and build the definition."""
        if not callable(fn):
            raise InvalidInputError("@app.function decorates a function")
        fid = id or _default_id(fn)
        if not fid or len(fid) > 200 or any(ch.isspace() for ch in fid):
            raise InvalidInputError(
                f"function id {fid!r} must be 1-200 characters with no whitespace"
            )
        if trigger is None:
            triggers: tuple[Trigger, ...] = ()
        elif isinstance(trigger, EventTrigger | CronTrigger):
            triggers = (trigger,)
        else:
            triggers = tuple(trigger)
        for t in triggers:
            if not isinstance(t, EventTrigger | CronTrigger):
                raise InvalidInputError(
                    "trigger must be perdure.event(...) or perdure.cron(...), or a list of them"
                )
        policy = retry_policy or RetryPolicy()
        if retries is not None:
            policy = RetryPolicy(
                retries=retries,
                initial_delay=policy.initial_delay,
                max_delay=policy.max_delay,
                factor=policy.factor,
            )
        if max_crashes < 1:
            raise InvalidInputError("max_crashes must be at least 1")
        try:
            control = FlowControl.build(**(flow or {}))
        except InvalidInputError as exc:
            raise InvalidInputError(f"function {fid!r}: {exc}") from None
        keep = None
        if retention is not None:
            if not isinstance(retention, timedelta) or retention.total_seconds() <= 0:
                raise InvalidInputError(
                    f"function {fid!r}: retention must be a positive timedelta, not {retention!r}"
                )
            keep = retention.total_seconds()
        if control.batch is not None and any(isinstance(t, CronTrigger) for t in triggers):
            raise InvalidInputError(f"function {fid!r}: batch needs event triggers, not cron")
        return cls(
            id=fid,
            fn=fn,
            triggers=triggers,
            retry=policy,
            is_async=inspect.iscoroutinefunction(fn),
            max_crashes=max_crashes,
            app_name=app_name,
            flow=control,
            retention=keep,
        )

    def record(self) -> FunctionRecord:
        """The stored form of this definition."""
        return FunctionRecord(
            id=self.id,
            app=self.app_name,
            triggers=self.triggers,
            config={
                "retries": self.retry.retries,
                "retry_initial_delay": self.retry.initial_delay,
                "retry_max_delay": self.retry.max_delay,
                "retry_factor": self.retry.factor,
                "max_crashes": self.max_crashes,
                "sync": not self.is_async,
                "name": getattr(self.fn, "__qualname__", self.id),
                **({"flow": self.flow.to_dict()} if not self.flow.empty else {}),
                **({"retention": self.retention} if self.retention is not None else {}),
            },
        )


def _default_id(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", "")
    return name.replace("_", "-")


def function_id_of(target: Any) -> str:
    """The id of a function decorated with ``@app.function``, a :class:`FunctionDef`, or an id
    string; :class:`~perdure.errors.FunctionNotFoundError` for anything else."""
    if isinstance(target, str):
        return target
    if isinstance(target, FunctionDef):
        return target.id
    fid = getattr(target, "__perdure_function_id__", None)
    if isinstance(fid, str):
        return fid
    raise FunctionNotFoundError(
        f"{getattr(target, '__name__', target)!r} is not a perdure function "
        "(decorate it with @app.function)"
    )
