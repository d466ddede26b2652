"""The flow-control options of an Inngest function configuration, mapped onto perdure's own.

An app on the official Inngest SDKs declares its options in the ``/fn/register`` payload (JSON
field names of the Python SDK 0.5.x ``FunctionConfig`` and the TypeScript SDK 4.x
``getConfig``). Each maps one to one onto :class:`~perdure.engine.flow.options.FlowControl`,
so the same engine decides for native and Inngest functions:

==================  ======================================================================
Inngest             perdure
==================  ======================================================================
``concurrency``     a number, an object or a list of up to two ``{limit, key?, scope?}``:
                    :class:`Concurrency`; scope ``fn`` (default) or ``env``; ``account``
                    counts as ``env`` (one perdure database is one account and one
                    environment); a limit of 0 or less means "no limit" (dropped)
``throttle``        ``{limit, period, burst?, key?}``: :class:`Throttle` (burst default 1)
``rateLimit``       ``{limit, period, key?}``: :class:`RateLimit`
``debounce``        ``{period, key?, timeout?}``: :class:`Debounce`
``batchEvents``     ``{maxSize, timeout, key?}``: :class:`Batch` (``if`` is refused: perdure
                    batches every event of the function)
``priority``        ``{run}``: :class:`Priority`
``singleton``       ``{mode, key?}``: :class:`Singleton`
``idempotency``     a CEL string: ``FlowControl.idempotency`` (one run per value per 24 h)
``timeouts``        ``{start?, finish?}``: :class:`Timeouts`
``cancel``          ``[{event, if?, timeout?}]``: :class:`CancelOn` (TS rewrites ``match`` into
                    ``if`` before sending)
==================  ======================================================================

Durations are Inngest time strings (``"5s"``, ``"1m30s"``, ``"1d"``). Every error names the
option and the field.
"""

from __future__ import annotations

from typing import Any

from perdure.engine.flow.options import (
    Batch,
    CancelOn,
    Concurrency,
    Debounce,
    FlowControl,
    Priority,
    RateLimit,
    Singleton,
    Throttle,
    Timeouts,
)
from perdure.errors import InvalidInputError

__all__ = ["flow_from_config"]


def _fail(option: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{option}: {message}")


def _object(option: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(option, f"must be a JSON object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _int(option: str, obj: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = obj.get(name, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(option, f"{name} must be an integer, got {_kind(value)}")
    return value


def _str(option: str, obj: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(option, f"{name} must be a non-empty string, got {_kind(value)}")
    return value


def _duration(option: str, obj: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    """A time string, kept as the string (perdure's options parse it and say what is wrong)."""
    return _str(option, obj, name, required=required)


def _concurrency(value: Any) -> tuple[Concurrency, ...]:
    option = "concurrency"
    if isinstance(value, int | float) and not isinstance(value, bool):
        items: list[Any] = [{"limit": value}]
    elif isinstance(value, dict):
        items = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise _fail(option, f"must be a number, an object or an array, got {_kind(value)}")
    if len(items) > 2:
        raise _fail(option, f"at most 2 limits, got {len(items)}")
    out: list[Concurrency] = []
    for i, item in enumerate(items):
        where = f"{option}[{i}]" if isinstance(value, list) else option
        obj = _object(where, item)
        limit = _int(where, obj, "limit")
        if limit <= 0:  # Inngest: 0 means "the account's maximum", i.e. no function limit
            continue
        key = _str(where, obj, "key")
        scope = obj.get("scope") or "fn"
        if scope not in ("fn", "env", "account"):
            raise _fail(where, f"scope must be 'fn', 'env' or 'account', got {_kind(scope)}")
        try:
            out.append(Concurrency(limit, key, "fn" if scope == "fn" else "env"))
        except InvalidInputError as exc:
            raise _fail(where, exc.message.removeprefix("concurrency: ")) from None
    return tuple(out)


def _throttle(value: Any) -> Throttle:
    option = "throttle"
    obj = _object(option, value)
    burst = obj.get("burst")
    period = _duration(option, obj, "period", required=True)
    return Throttle(
        _int(option, obj, "limit"),
        period or "",
        1 if burst is None else _int(option, obj, "burst"),
        _str(option, obj, "key"),
    )


def _rate_limit(value: Any) -> RateLimit:
    option = "rateLimit"
    obj = _object(option, value)
    period = _duration(option, obj, "period", required=True)
    return RateLimit(_int(option, obj, "limit"), period or "", _str(option, obj, "key"))


def _debounce(value: Any) -> Debounce:
    option = "debounce"
    obj = _object(option, value)
    period = _duration(option, obj, "period", required=True)
    return Debounce(period or "", _str(option, obj, "key"), _duration(option, obj, "timeout"))


def _batch(value: Any) -> Batch:
    option = "batchEvents"
    obj = _object(option, value)
    if obj.get("if") is not None:
        raise _fail(
            option,
            "'if' is not supported by perdure yet (every event of the function is batched); "
            "filter with the trigger's expression instead",
        )
    timeout = _duration(option, obj, "timeout", required=True)
    return Batch(_int(option, obj, "maxSize"), timeout or "", _str(option, obj, "key"))


def _priority(value: Any) -> Priority | None:
    obj = _object("priority", value)
    run = _str("priority", obj, "run")
    return None if run is None else Priority(run)


def _singleton(value: Any) -> Singleton:
    option = "singleton"
    obj = _object(option, value)
    mode = obj.get("mode")
    if mode not in ("skip", "cancel"):
        raise _fail(option, f"mode must be 'skip' or 'cancel', got {_kind(mode)}")
    return Singleton(_str(option, obj, "key"), mode)


def _timeouts(value: Any) -> Timeouts | None:
    option = "timeouts"
    obj = _object(option, value)
    start, finish = _duration(option, obj, "start"), _duration(option, obj, "finish")
    return None if start is None and finish is None else Timeouts(start, finish)


def _cancel(value: Any) -> tuple[CancelOn, ...]:
    option = "cancel"
    if not isinstance(value, list):
        raise _fail(option, f"must be an array, got {_kind(value)}")
    out = []
    for i, item in enumerate(value):
        where = f"{option}[{i}]"
        obj = _object(where, item)
        event = _str(where, obj, "event", required=True) or ""
        try:
            out.append(
                CancelOn(event, _str(where, obj, "if"), None, _duration(where, obj, "timeout"))
            )
        except InvalidInputError as exc:
            raise _fail(where, exc.message.removeprefix("cancel_on: ")) from None
    return tuple(out)


def flow_from_config(fn: dict[str, Any]) -> FlowControl:
    """The :class:`FlowControl` of one function of a ``/fn/register`` payload (InvalidInputError
    naming the option when one is invalid)."""
    get = fn.get
    values: dict[str, Any] = {}
    try:
        if get("concurrency") is not None:
            values["concurrency"] = _concurrency(get("concurrency"))
        if get("throttle") is not None:
            values["throttle"] = _throttle(get("throttle"))
        if get("rateLimit") is not None:
            values["rate_limit"] = _rate_limit(get("rateLimit"))
        if get("debounce") is not None:
            values["debounce"] = _debounce(get("debounce"))
        if get("batchEvents") is not None:
            values["batch"] = _batch(get("batchEvents"))
        if get("priority") is not None:
            values["priority"] = _priority(get("priority"))
        if get("singleton") is not None:
            values["singleton"] = _singleton(get("singleton"))
        idempotency = get("idempotency")
        if idempotency is not None:
            if not isinstance(idempotency, str) or not idempotency.strip():
                raise _fail("idempotency", f"must be a CEL expression, got {_kind(idempotency)}")
            values["idempotency"] = idempotency
        if get("timeouts") is not None:
            values["timeouts"] = _timeouts(get("timeouts"))
        if get("cancel") is not None:
            values["cancel_on"] = _cancel(get("cancel"))
        return FlowControl(**values)
    except InvalidInputError as exc:
        raise InvalidInputError(_inngest_names(exc.message)) from None


_NAMES = {"rate_limit:": "rateLimit:", "batch:": "batchEvents:", "cancel_on:": "cancel:"}


def _inngest_names(message: str) -> str:
    """perdure's option names in an error message, as the Inngest payload spells them."""
    for ours, theirs in _NAMES.items():
        if message.startswith(ours):
            return theirs + message[len(ours) :]
    return message
