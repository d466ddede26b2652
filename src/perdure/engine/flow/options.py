"""Flow-control options: the typed objects ``@app.function(...)`` takes, validated once.

Each option is a frozen dataclass exported from :mod:`perdure`. Periods and timeouts take a
:class:`~datetime.timedelta`, a number of seconds or a duration string (``"5m"``); keys and
expressions are CEL over ``event`` (:mod:`perdure.engine.expressions`), compiled when the option
is built, so a bad option fails at decoration. :class:`FlowControl` gathers a function's options,
has one JSON form (stored with the function record, so every process on the database applies
the same limits) and evaluates the per-run keys (:mod:`perdure.engine.flow.keys`).

Semantics follow Inngest's options of the same name; where perdure differs it says so in
``docs/flow-control.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from perdure._error_base import InvalidInputError
from perdure.engine.durations import to_seconds
from perdure.engine.expressions import Expression, validate

__all__ = [
    "PRIORITY_BOUND",
    "Batch",
    "CancelOn",
    "Concurrency",
    "Debounce",
    "FlowControl",
    "Priority",
    "RateLimit",
    "Singleton",
    "Throttle",
    "Timeouts",
]

#: Priority factors are clamped to [-PRIORITY_BOUND, PRIORITY_BOUND] seconds (as Inngest does).
PRIORITY_BOUND = 600
#: The most events one batch may hold.
MAX_BATCH_SIZE = 10_000
_MAX_LIMIT = 1_000_000
_MAX_PERIOD = 366 * 86400.0  # a year and a day

Period = timedelta | int | float | str


def _count(
    option: str, name: str, value: Any, *, minimum: int = 1, maximum: int = _MAX_LIMIT
) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{option}: {name} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise InvalidInputError(
            f"{option}: {name} must be between {minimum} and {maximum}, got {value}"
        )
    return value


def _period(option: str, name: str, value: Period, *, zero: bool = False) -> float:
    try:
        seconds = to_seconds(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{option}: {name}: {exc}") from None
    if seconds <= 0 and not zero:
        raise InvalidInputError(f"{option}: {name} must be longer than zero, got {value!r}")
    if seconds > _MAX_PERIOD:
        raise InvalidInputError(f"{option}: {name} must be at most 366 days, got {value!r}")
    return seconds


def _optional_period(option: str, name: str, value: Period | None) -> float | None:
    return None if value is None else _period(option, name, value)


def _expression(option: str, name: str, src: Any, roots: set[str]) -> Expression:
    if not isinstance(src, str):
        raise InvalidInputError(f"{option}: {name} must be a CEL expression string, got {src!r}")
    try:
        return validate(src, roots)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{option}: {name}: {exc}") from None


def _key(option: str, src: str | None) -> Expression | None:
    return None if src is None else _expression(option, "key", src, {"event"})


def _set(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, slots=True)
class Concurrency:
    """At most ``limit`` runs executing at once (a step in flight; sleeping and waiting runs do
    not count). ``key`` (CEL over ``event``) makes the limit per key value. ``scope="fn"``
    counts this function's runs; ``scope="env"`` (with a key) shares one limit across every
    function that uses the same key value: a named pool, such as one external API."""

    limit: int
    key: str | None = None
    scope: Literal["fn", "env"] = "fn"
    expression: Expression | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _count("concurrency", "limit", self.limit)
        if self.scope not in ("fn", "env"):
            raise InvalidInputError(f"concurrency: scope must be 'fn' or 'env', got {self.scope!r}")
        if self.scope == "env" and self.key is None:
            raise InvalidInputError("concurrency: scope='env' needs a key (the pool's name)")
        _set(self, "expression", _key("concurrency", self.key))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"limit": self.limit, "key": self.key, "scope": self.scope}


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most ``limit`` run starts per ``period`` (GCRA), plus ``burst`` starts ahead of that
    pace (Inngest's ``burst``: ``1`` admits ``limit + 1`` at once after a quiet period; ``0`` is
    a strict pace). Excess runs are delayed, never dropped, in FIFO order. Per ``key``."""

    limit: int
    period: Period = field(compare=False)
    burst: int = 1
    key: str | None = None
    period_seconds: float = field(init=False, repr=False)
    expression: Expression | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _count("throttle", "limit", self.limit)
        _count("throttle", "burst", self.burst, minimum=0)
        _set(self, "period_seconds", _period("throttle", "period", self.period))
        _set(self, "expression", _key("throttle", self.key))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "limit": self.limit,
            "period": self.period_seconds,
            "burst": self.burst,
            "key": self.key,
        }


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` runs per ``period`` (per ``key``); runs over it are **skipped**: they
    are recorded with status ``skipped`` and the reason, and never execute."""

    limit: int
    period: Period = field(compare=False)
    key: str | None = None
    period_seconds: float = field(init=False, repr=False)
    expression: Expression | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _count("rate_limit", "limit", self.limit)
        _set(self, "period_seconds", _period("rate_limit", "period", self.period))
        _set(self, "expression", _key("rate_limit", self.key))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"limit": self.limit, "period": self.period_seconds, "key": self.key}


@dataclass(frozen=True, slots=True)
class Debounce:
    """One run after the events stop for ``period`` (per ``key``), with the last event;
    ``timeout`` caps the total delay from the first event."""

    period: Period = field(compare=False)
    key: str | None = None
    timeout: Period | None = field(default=None, compare=False)
    period_seconds: float = field(init=False, repr=False)
    timeout_seconds: float | None = field(init=False, repr=False)
    expression: Expression | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _set(self, "period_seconds", _period("debounce", "period", self.period))
        _set(self, "timeout_seconds", _optional_period("debounce", "timeout", self.timeout))
        _set(self, "expression", _key("debounce", self.key))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"period": self.period_seconds, "key": self.key, "timeout": self.timeout_seconds}


@dataclass(frozen=True, slots=True)
class Batch:
    """One run per batch of up to ``max_size`` events (per ``key``), started when the batch is
    full or ``timeout`` after its first event. The function receives ``ctx.events``."""

    max_size: int
    timeout: Period = field(compare=False)
    key: str | None = None
    timeout_seconds: float = field(init=False, repr=False)
    expression: Expression | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _count("batch", "max_size", self.max_size, maximum=MAX_BATCH_SIZE)
        _set(self, "timeout_seconds", _period("batch", "timeout", self.timeout))
        _set(self, "expression", _key("batch", self.key))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"max_size": self.max_size, "timeout": self.timeout_seconds, "key": self.key}


@dataclass(frozen=True, slots=True)
class Priority:
    """``run``: an integer CEL expression over ``event``, in seconds of head start (clamped to
    [-600, 600]). A positive factor starts the run ahead of runs queued up to that many seconds
    earlier; a negative one delays it. FIFO within equal priority."""

    run: str
    expression: Expression = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _set(self, "expression", _expression("priority", "run", self.run, {"event"}))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"run": self.run}


@dataclass(frozen=True, slots=True)
class Singleton:
    """At most one active run per ``key``. ``mode="skip"`` skips new runs while one is active;
    ``mode="cancel"`` cancels the active one and starts the new one."""

    key: str | None = None
    mode: Literal["skip", "cancel"] = "skip"
    expression: Expression | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in ("skip", "cancel"):
            raise InvalidInputError(
                f"singleton: mode must be 'skip' or 'cancel', got {self.mode!r}"
            )
        _set(self, "expression", _key("singleton", self.key))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"key": self.key, "mode": self.mode}


@dataclass(frozen=True, slots=True)
class CancelOn:
    """Cancel the run (queued, running, sleeping or waiting) when an event named ``event``
    arrives that matches: ``match`` is a dotted path equal in both events
    (``"data.order_id"``), ``if_`` a CEL expression over ``event`` (the triggering event) and
    ``async`` (the new one). ``timeout``: listen only this long after the run was created."""

    event: str
    if_: str | None = None
    match: str | None = None
    timeout: Period | None = field(default=None, compare=False)
    timeout_seconds: float | None = field(init=False, repr=False)
    expression: Expression | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from perdure.engine.triggers import EventPattern

        if not isinstance(self.event, str) or not self.event:
            raise InvalidInputError(f"cancel_on: event must be an event name, got {self.event!r}")
        try:
            EventPattern.parse(self.event)
        except InvalidInputError as exc:
            raise InvalidInputError(f"cancel_on: event: {exc}") from None
        if self.match is not None and (
            not isinstance(self.match, str)
            or not self.match
            or any(not part for part in self.match.split("."))
        ):
            raise InvalidInputError(
                "cancel_on: match must be a dotted path such as 'data.order_id', "
                f"got {self.match!r}"
            )
        expr = None
        if self.if_ is not None:
            expr = _expression("cancel_on", "if_", self.if_, {"event", "async"})
        _set(self, "expression", expr)
        _set(self, "timeout_seconds", _optional_period("cancel_on", "timeout", self.timeout))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "event": self.event,
            "if": self.if_,
            "match": self.match,
            "timeout": self.timeout_seconds,
        }


@dataclass(frozen=True, slots=True)
class Timeouts:
    """``start``: cancel a run that waited longer than this to begin; ``finish``: cancel a run
    that has been going longer than this since it started. Both record the reason."""

    start: Period | None = field(default=None, compare=False)
    finish: Period | None = field(default=None, compare=False)
    start_seconds: float | None = field(init=False, repr=False)
    finish_seconds: float | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _set(self, "start_seconds", _optional_period("timeouts", "start", self.start))
        _set(self, "finish_seconds", _optional_period("timeouts", "finish", self.finish))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"start": self.start_seconds, "finish": self.finish_seconds}


@dataclass(frozen=True, slots=True)
class FlowControl:
    """Every flow-control option of one function (``None``/empty: not set)."""

    concurrency: tuple[Concurrency, ...] = ()
    throttle: Throttle | None = None
    rate_limit: RateLimit | None = None
    debounce: Debounce | None = None
    batch: Batch | None = None
    priority: Priority | None = None
    singleton: Singleton | None = None
    idempotency: str | None = None
    cancel_on: tuple[CancelOn, ...] = ()
    timeouts: Timeouts | None = None
    idempotency_expression: Expression | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.concurrency) > 2:
            raise InvalidInputError("concurrency: at most two limits")
        if len(self.concurrency) == 2 and all(c.key is None for c in self.concurrency):
            raise InvalidInputError("concurrency: two limits need at least one key")
        if self.debounce is not None and self.batch is not None:
            raise InvalidInputError("debounce and batch cannot be combined")
        expr = None
        if self.idempotency is not None:
            expr = _expression("idempotency", "expression", self.idempotency, {"event"})
        _set(self, "idempotency_expression", expr)

    @classmethod
    def build(
        cls,
        *,
        concurrency: Concurrency | int | Sequence[Concurrency] | None = None,
        throttle: Throttle | None = None,
        rate_limit: RateLimit | None = None,
        debounce: Debounce | None = None,
        batch: Batch | None = None,
        priority: Priority | str | None = None,
        singleton: Singleton | None = None,
        idempotency: str | None = None,
        cancel_on: CancelOn | Sequence[CancelOn] | None = None,
        timeouts: Timeouts | None = None,
    ) -> FlowControl:
        """Check the option types and build the set (raises ``InvalidInputError`` naming the
        option)."""
        if concurrency is None:
            limits: tuple[Concurrency, ...] = ()
        elif isinstance(concurrency, Concurrency):
            limits = (concurrency,)
        elif isinstance(concurrency, int) and not isinstance(concurrency, bool):
            limits = (Concurrency(concurrency),)
        elif isinstance(concurrency, list | tuple):
            limits = tuple(concurrency)
        else:
            raise InvalidInputError(
                "concurrency must be perdure.Concurrency(...), an integer, or a list of two"
            )
        for limit in limits:
            if not isinstance(limit, Concurrency):
                raise InvalidInputError(f"concurrency: expected perdure.Concurrency, got {limit!r}")
        _check_type("throttle", throttle, Throttle)
        _check_type("rate_limit", rate_limit, RateLimit)
        _check_type("debounce", debounce, Debounce)
        _check_type("batch", batch, Batch)
        if isinstance(priority, str):
            priority = Priority(priority)
        _check_type("priority", priority, Priority)
        _check_type("singleton", singleton, Singleton)
        _check_type("timeouts", timeouts, Timeouts)
        if cancel_on is None:
            cancels: tuple[CancelOn, ...] = ()
        elif isinstance(cancel_on, CancelOn):
            cancels = (cancel_on,)
        elif isinstance(cancel_on, list | tuple):
            cancels = tuple(cancel_on)
        else:
            raise InvalidInputError("cancel_on must be a list of perdure.CancelOn(...)")
        for c in cancels:
            if not isinstance(c, CancelOn):
                raise InvalidInputError(f"cancel_on: expected perdure.CancelOn, got {c!r}")
        return cls(
            concurrency=limits,
            throttle=throttle,
            rate_limit=rate_limit,
            debounce=debounce,
            batch=batch,
            priority=priority,
            singleton=singleton,
            idempotency=idempotency,
            cancel_on=cancels,
            timeouts=timeouts,
        )

    @property
    def empty(self) -> bool:
        """Whether no option is set."""
        return self == _NONE

    @property
    def per_run(self) -> bool:
        """Whether runs of this function carry flow-control state (keys, gates, deadlines):
        such runs are created through the flow-control path of the store (every option but
        ``cancel_on``; checked field by field: this runs on every start)."""
        return bool(self.concurrency) or any(
            getattr(self, name) is not None for name in _PER_RUN_FIELDS
        )

    @property
    def claim_gated(self) -> bool:
        """Whether claiming a run of this function is subject to limits (concurrency,
        throttle): such runs are never created already leased by the starting process."""
        return bool(self.concurrency) or self.throttle is not None

    def replace(self, **changes: Any) -> FlowControl:
        """A copy with some options changed."""
        values = {name: getattr(self, name) for name in _FIELDS}
        values.update(changes)
        return FlowControl(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (options not set are left out)."""
        out: dict[str, Any] = {}
        if self.concurrency:
            out["concurrency"] = [c.to_dict() for c in self.concurrency]
        for name in ("throttle", "rate_limit", "debounce", "batch", "priority", "singleton"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to_dict()
        if self.idempotency is not None:
            out["idempotency"] = self.idempotency
        if self.cancel_on:
            out["cancel_on"] = [c.to_dict() for c in self.cancel_on]
        if self.timeouts is not None:
            out["timeouts"] = self.timeouts.to_dict()
        return out

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> FlowControl:
        """Rebuild from the JSON form (as stored with the function record)."""
        if not value:
            return _NONE
        conc = tuple(
            Concurrency(c["limit"], c.get("key"), c.get("scope", "fn"))
            for c in value.get("concurrency", ())
        )
        th = value.get("throttle")
        rl = value.get("rate_limit")
        db = value.get("debounce")
        bt = value.get("batch")
        pr = value.get("priority")
        sg = value.get("singleton")
        to = value.get("timeouts")
        return cls(
            concurrency=conc,
            throttle=None
            if th is None
            else Throttle(th["limit"], th["period"], th.get("burst", 1), th.get("key")),
            rate_limit=None if rl is None else RateLimit(rl["limit"], rl["period"], rl.get("key")),
            debounce=None
            if db is None
            else Debounce(db["period"], db.get("key"), db.get("timeout")),
            batch=None if bt is None else Batch(bt["max_size"], bt["timeout"], bt.get("key")),
            priority=None if pr is None else Priority(pr["run"]),
            singleton=None if sg is None else Singleton(sg.get("key"), sg.get("mode", "skip")),
            idempotency=value.get("idempotency"),
            cancel_on=tuple(
                CancelOn(c["event"], c.get("if"), c.get("match"), c.get("timeout"))
                for c in value.get("cancel_on", ())
            ),
            timeouts=None if to is None else Timeouts(to.get("start"), to.get("finish")),
        )


def _check_type(option: str, value: object, kind: type) -> None:
    if value is not None and not isinstance(value, kind):
        raise InvalidInputError(f"{option} must be perdure.{kind.__name__}(...), got {value!r}")


_FIELDS = (
    "concurrency",
    "throttle",
    "rate_limit",
    "debounce",
    "batch",
    "priority",
    "singleton",
    "idempotency",
    "cancel_on",
    "timeouts",
)
_PER_RUN_FIELDS = tuple(f for f in _FIELDS if f not in ("concurrency", "cancel_on"))
_NONE = FlowControl()
