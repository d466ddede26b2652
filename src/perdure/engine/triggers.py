"""Event names and the patterns that functions are triggered by.

An event name is 1 to 256 printable characters with no whitespace and no ``*``, such as
``"order.placed"`` or ``"app/user.created"``. A trigger pattern follows the same rules but may
contain ``*``, which matches any run of characters, dots and slashes included, possibly empty:
``"order.*"`` matches ``"order.placed"`` and ``"order.item.added"`` but not ``"order"``; ``"*"``
matches every name. A pattern without ``*`` matches only the identical name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from perdure.errors import InvalidInputError

__all__ = ["MAX_EVENT_NAME_LENGTH", "EventPattern", "validate_event_name"]

MAX_EVENT_NAME_LENGTH = 256
"""The longest event name or trigger pattern, in characters."""


def _check(name: object, what: str, allow_wildcard: bool) -> str:
    if (
        isinstance(name, str)
        and 0 < len(name) <= MAX_EVENT_NAME_LENGTH
        and name.isprintable()  # False for every whitespace character but " "
        and " " not in name
        and (allow_wildcard or "*" not in name)
    ):
        return name
    if not isinstance(name, str):
        raise InvalidInputError(f"{what} must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidInputError(f"{what} is empty")
    if len(name) > MAX_EVENT_NAME_LENGTH:
        raise InvalidInputError(
            f"{what} {name[:40]!r}... is {len(name)} characters long, over the limit of "
            f"{MAX_EVENT_NAME_LENGTH}"
        )
    for index, char in enumerate(name):
        if char.isspace():
            raise InvalidInputError(f"{what} {name!r} contains whitespace at index {index}")
        if not char.isprintable():
            raise InvalidInputError(
                f"{what} {name!r} contains the non-printable character {char!r} at index {index}"
            )
        if char == "*" and not allow_wildcard:
            raise InvalidInputError(
                f"{what} {name!r} contains '*' at index {index}; only trigger patterns may"
            )
    return name


def validate_event_name(name: str) -> str:
    """Return ``name`` if it is a valid event name, else raise InvalidInputError saying why.

    Valid: a string of 1 to 256 printable characters, with no whitespace and no ``*``.
    """
    return _check(name, "event name", allow_wildcard=False)


@dataclass(frozen=True, slots=True)
class EventPattern:
    """A trigger pattern: an exact event name, or a glob where ``*`` matches any characters.

    Build one with :meth:`parse`. Patterns are equal when their text is.
    """

    pattern: str
    is_exact: bool = field(init=False, compare=False)
    """Whether the pattern has no ``*`` and so matches a single name."""
    prefix: str = field(init=False, compare=False)
    """The literal text before the first ``*`` (the whole pattern when it is exact)."""
    _suffix: str | None = field(init=False, repr=False, compare=False)
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, pattern: str) -> EventPattern:
        """Parse and validate a pattern; raises InvalidInputError saying what is wrong."""
        return cls(pattern)

    def __post_init__(self) -> None:
        pattern = _check(self.pattern, "event pattern", allow_wildcard=True)
        pieces = pattern.split("*")
        set_ = object.__setattr__
        set_(self, "is_exact", len(pieces) == 1)
        set_(self, "prefix", pieces[0])
        literals = [piece for piece in pieces[1:-1] if piece]
        suffix: str | None = None
        regex: re.Pattern[str] | None = None
        if len(pieces) > 1 and not literals:
            # "a*b", "a*", "*b", "**": a prefix and a suffix are enough.
            suffix = pieces[-1]
        elif len(pieces) > 1:
            regex = re.compile(".*".join(re.escape(piece) for piece in pieces), re.DOTALL)
        set_(self, "_suffix", suffix)
        set_(self, "_regex", regex)

    def matches(self, name: str) -> bool:
        """Whether the event name ``name`` matches this pattern."""
        if self.is_exact:
            return name == self.pattern
        suffix = self._suffix
        if suffix is not None:
            return (
                len(name) >= len(self.prefix) + len(suffix)
                and name.startswith(self.prefix)
                and name.endswith(suffix)
            )
        regex = self._regex
        assert regex is not None
        return regex.fullmatch(name) is not None

    def __str__(self) -> str:
        """The pattern text."""
        return self.pattern
