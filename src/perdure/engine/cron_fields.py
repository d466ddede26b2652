"""The fields of a cron expression: their bounds and names, parsing one field into the set of
values it allows, and rendering a set back in normalized form (see :mod:`perdure.engine.cron`
for the rules)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from perdure.errors import InvalidCronError

_MONTH_NAMES: dict[str, int] = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}
_DAY_NAMES: dict[str, int] = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# The most days each month can have (February in a leap year).
MAX_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True, slots=True)
class _Spec:
    """How one field is written: its name, bounds and value names."""

    name: str
    low: int
    high: int  # the largest value that may be written
    implicit_high: int  # where ``*`` and ``a/n`` stop
    names: Mapping[str, int] | None = None


_SECOND = _Spec("second", 0, 59, 59)
_MINUTE = _Spec("minute", 0, 59, 59)
_HOUR = _Spec("hour", 0, 23, 23)
_DOM = _Spec("day-of-month", 1, 31, 31)
_MONTH = _Spec("month", 1, 12, 12, _MONTH_NAMES)
_DOW = _Spec("day-of-week", 0, 7, 6, _DAY_NAMES)
SPECS = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW)


class Field:
    """The values of one field, with tables for the next and previous value in O(1)."""

    __slots__ = ("high", "low", "nxt", "prv", "values")

    def __init__(self, values: frozenset[int], low: int, high: int) -> None:
        self.values = tuple(sorted(values))
        self.low = low
        self.high = high
        nxt = [-1] * (high + 2)
        following = -1
        for x in range(high + 1, -1, -1):
            if x in values:
                following = x
            nxt[x] = following
        prv = [-1] * (high + 2)
        preceding = -1
        for x in range(high + 2):
            if x in values:
                preceding = x
            prv[x] = preceding
        self.nxt = tuple(nxt)
        self.prv = tuple(prv)

    @property
    def is_full(self) -> bool:
        return len(self.values) == self.high - self.low + 1

    def next(self, x: int) -> int:
        """The smallest value >= x, or -1 (x is in 0..high+1)."""
        return self.nxt[x]

    def prev(self, x: int) -> int:
        """The largest value <= x, or -1 (x is in -1..high)."""
        return self.prv[x] if x >= 0 else -1


def cron_error(expr: str, problem: str) -> InvalidCronError:
    return InvalidCronError(f"invalid cron expression {expr!r}: {problem}")


def _field_error(expr: str, spec: _Spec, text: str, problem: str) -> InvalidCronError:
    return cron_error(expr, f"{spec.name} field {text!r}: {problem}")


def _parse_value(token: str, spec: _Spec, expr: str, text: str) -> int:
    if token.isascii() and token.isdigit():
        value = int(token)
        if not spec.low <= value <= spec.high:
            raise _field_error(
                expr, spec, text, f"value {value} is out of range {spec.low}-{spec.high}"
            )
        return value
    if spec.names is not None and token.upper() in spec.names:
        return spec.names[token.upper()]
    if not token:
        raise _field_error(expr, spec, text, "missing value")
    expected = "a number"
    if spec is _MONTH:
        expected = "a number or a month name (JAN-DEC)"
    elif spec is _DOW:
        expected = "a number or a weekday name (SUN-SAT)"
    raise _field_error(expr, spec, text, f"{token!r} is not {expected}")


def parse_field(text: str, spec: _Spec, expr: str) -> tuple[frozenset[int], bool]:
    """The values of a field and whether it is unrestricted in the Vixie sense (``*``...)."""
    values: set[int] = set()
    items = text.split(",")
    for item in items:
        if not item:
            raise _field_error(expr, spec, text, "empty list item")
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()):
                raise _field_error(
                    expr, spec, text, f"step {step_text!r} in {item!r} is not a number"
                )
            step = int(step_text)
            if step == 0:
                raise _field_error(expr, spec, text, f"step in {item!r} is zero")
        if base in ("*", "?"):
            start, end = spec.low, spec.implicit_high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _parse_value(first, spec, expr, text)
            end = _parse_value(last, spec, expr, text)
            if start > end:
                raise _field_error(
                    expr, spec, text, f"range {base!r} starts after it ends ({start} > {end})"
                )
        else:
            start = _parse_value(base, spec, expr, text)
            end = spec.implicit_high if slash else start
            if start > end:  # "7/2" in day-of-week
                raise _field_error(expr, spec, text, f"{item!r} starts after {spec.implicit_high}")
        values.update(range(start, end + 1, step))
    if spec is _DOW and 7 in values:
        values.discard(7)
        values.add(0)
    unrestricted = len(items) == 1 and items[0][:1] in ("*", "?")
    return frozenset(values), unrestricted


def render_field(f: Field, star: bool | None) -> str:
    """A canonical text for a field that parses back to the same values.

    ``star`` says whether the text must start with ``*`` (True), must not (False), or may (None);
    it matters for the day fields, where it decides between the "either" and "both" rules.
    """
    values = f.values
    if star is not False:
        step = values[1] - values[0] if len(values) > 1 else f.high - f.low + 1
        if f.is_full:
            return "*"
        if (star or len(values) > 1) and values == tuple(range(f.low, f.high + 1, step)):
            return f"*/{step}"
    if len(values) >= 3:
        step = values[1] - values[0]
        if step > 1 and values == tuple(range(values[0], values[-1] + 1, step)):
            return f"{values[0]}-{values[-1]}/{step}"
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{values[i]}-{values[j]}")
        else:
            parts.extend(str(v) for v in values[i : j + 1])
        i = j + 1
    return ",".join(parts)
