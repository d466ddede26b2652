"""Boolean filter expressions in CEL (Common Expression Language), as Inngest uses for ``if``.

An :class:`Expression` is compiled once (and cached by source) and evaluated against a mapping
of variables, such as ``{"event": {...}}`` for a trigger or ``{"event": ..., "async": ...}`` for
a wait. Evaluation never raises: anything but a boolean ``true`` result (a missing field, a type
mismatch, a division by zero, a non-boolean value) counts as "no match".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from perdure.errors import InvalidExpressionError

__all__ = ["NO_VALUE", "Expression", "validate"]

_CACHE_SIZE = 1024

# String and bytes literals, removed before looking for comprehension variables.
_STRING_LITERAL = re.compile(
    r"""[rRbB]{0,2}(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""",
    re.DOTALL,
)
# The variable a comprehension macro binds: the ``x`` of ``list.all(x, x > 0)``.
_COMPREHENSION = re.compile(
    r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,"
)


def _explain(error: Exception) -> str:
    """The parser's explanation, without the echoed source or the caret diagrams."""
    lines = [line.strip() for line in str(error).splitlines()]
    reasons = []
    for line in lines:
        index = line.find("ERROR: ")
        if index >= 0:
            reasons.append(line[index + len("ERROR: ") :].replace("<input>:", "at "))
    if reasons:
        return "; ".join(reasons)
    return " ".join(line for line in lines if line) or type(error).__name__


def _bound_names(source: str) -> frozenset[str]:
    return frozenset(_COMPREHENSION.findall(_STRING_LITERAL.sub("''", source)))


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled CEL boolean expression. Immutable; build it with :meth:`compile`."""

    source: str
    _program: Any = field(repr=False, compare=False)
    roots: frozenset[str] = field(compare=False)
    """The top-level variables the expression reads (``{"event"}`` for ``event.data.x > 1``).

    Names bound by comprehension macros (the ``x`` of ``list.all(x, x > 0)``) are left out.
    """

    @classmethod
    def compile(cls, src: str) -> Expression:
        """Compile ``src``, or return the cached expression compiled from the same source.

        Raises :class:`~perdure.errors.InvalidExpressionError` with the expression and the
        parser's explanation if it does not compile, or if it is empty.
        """
        if not isinstance(src, str):
            raise InvalidExpressionError(
                f"invalid expression {src!r}: expected a string, got {type(src).__name__}"
            )
        return _compile(src)

    def evaluate(self, variables: Mapping[str, Any]) -> bool:
        """Whether the expression yields boolean ``true`` with these variables.

        Never raises: a missing variable or field, a type error or any other evaluation error
        gives ``False``, and so does a result that is not a boolean.
        """
        try:
            result = self._program.execute(dict(variables))
        except BaseException as exc:
            # pyo3 reports Rust panics as PanicException, a BaseException.
            if isinstance(exc, Exception) or type(exc).__name__ == "PanicException":
                return False
            raise
        return result is True

    def value(self, variables: Mapping[str, Any]) -> Any:
        """The expression's result with these variables (any CEL value: a key, a number), or
        :data:`NO_VALUE` when evaluation fails (a missing field, a type error). Never raises."""
        try:
            return self._program.execute(dict(variables))
        except BaseException as exc:
            if isinstance(exc, Exception) or type(exc).__name__ == "PanicException":
                return NO_VALUE
            raise

    def __str__(self) -> str:
        """The source text."""
        return self.source


NO_VALUE: Any = type("NoValue", (), {"__repr__": lambda self: "NO_VALUE"})()
"""What :meth:`Expression.value` returns when the expression cannot be evaluated."""


@lru_cache(maxsize=_CACHE_SIZE)
def _compile(src: str) -> Expression:
    if not src.strip():
        raise InvalidExpressionError(f"invalid expression {src!r}: it is empty")
    try:
        import cel  # imported on first use: it is slow to import (~250 ms)

        program = cel.compile(src)
    except Exception as exc:
        raise InvalidExpressionError(f"invalid expression {src!r}: {_explain(exc)}") from None
    roots = frozenset(program.variables()) - _bound_names(src)
    return Expression(src, program, roots)


def validate(src: str, allowed_roots: Set[str]) -> Expression:
    """Compile ``src`` and check that it reads no top-level variable outside ``allowed_roots``.

    For example ``validate("event.data.total > 100", {"event"})`` for a trigger condition, or
    ``{"event", "async"}`` for a wait-for-event match. Raises
    :class:`~perdure.errors.InvalidExpressionError` naming the unknown variables.

    A name bound by a comprehension macro (``items.all(x, x > 0)``) is not a top-level variable;
    the check is syntactic, so such a name is also accepted where it is used outside its macro
    (where evaluation then fails, and the expression is false).
    """
    expression = Expression.compile(src)
    unknown = sorted(expression.roots - set(allowed_roots))
    if unknown:
        allowed = ", ".join(sorted(allowed_roots)) or "none"
        names = ", ".join(repr(name) for name in unknown)
        noun = "variable" if len(unknown) == 1 else "variables"
        raise InvalidExpressionError(
            f"invalid expression {src!r}: unknown {noun} {names} (allowed: {allowed})"
        )
    return expression
