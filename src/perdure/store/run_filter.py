"""The filter of a runs listing (:meth:`perdure.store.base.Store.list_runs`) and its Python
twin, shared by both backends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class FilteredRow(Protocol):
    """What :meth:`RunFilter.matches` reads of a run (a :class:`~perdure.store.base.RunRow`)."""

    @property
    def id(self) -> str: ...
    @property
    def function_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def input(self) -> str: ...
    @property
    def event_id(self) -> str | None: ...
    @property
    def created_at(self) -> float: ...


@dataclass(slots=True)
class RunFilter:
    """Filters and cursor for listing runs (newest first). Every filter given must hold:

    - ``status``, ``function_id``, ``event_id`` (the event that started the run; the first
      of a batch): equal;
    - ``created_after`` / ``created_before``: ``created_at`` (store seconds) at or after /
      strictly before;
    - ``id_prefix``: the run id starts with it;
    - ``text``: the run's input (its JSON text) contains it, ignoring the case of ASCII letters;
    - ``ended``: ``True`` only ended runs, ``False`` only runs that have not ended.

    :meth:`matches` is the same test in Python (the stores' conformance suite checks that the
    two agree)."""

    status: str | None = None
    function_id: str | None = None
    before: str | None = None
    limit: int = 50
    created_after: float | None = None
    created_before: float | None = None
    id_prefix: str | None = None
    event_id: str | None = None
    text: str | None = None
    ended: bool | None = None

    def texts(self) -> tuple[str | None, ...]:
        """The filter's text values (what must be storable for a look-up to find anything)."""
        return (
            self.status,
            self.function_id,
            self.before,
            self.id_prefix,
            self.event_id,
            self.text,
        )

    def shape(self) -> tuple[bool, ...]:
        """Which filters are given, in a fixed order: the key of a backend's statement."""
        return (
            self.status is not None,
            self.function_id is not None,
            self.before is not None,
            self.created_after is not None,
            self.created_before is not None,
            self.id_prefix is not None,
            self.event_id is not None,
            self.text is not None,
            self.ended is not None,
        )

    def matches(self, row: FilteredRow) -> bool:
        """Whether ``row`` passes every filter (the cursor and limit aside)."""
        if self.status is not None and row.status != self.status:
            return False
        if self.function_id is not None and row.function_id != self.function_id:
            return False
        if self.created_after is not None and row.created_at < self.created_after:
            return False
        if self.created_before is not None and row.created_at >= self.created_before:
            return False
        if self.id_prefix is not None and not row.id.startswith(self.id_prefix):
            return False
        if self.event_id is not None and row.event_id != self.event_id:
            return False
        if self.text is not None and ascii_fold(self.text) not in ascii_fold(row.input):
            return False
        return self.ended is None or (row.status in ENDED_STATUSES) == self.ended


ENDED_STATUSES = ("completed", "failed", "cancelled", "skipped")
"""The statuses of a run that has ended."""

ID_PREFIX_END = "\U0010ffff"
"""Appended to an id prefix, the upper bound of the ids that start with it (the stores compare
ids byte-wise, and no character sorts after this one)."""


def ascii_fold(text: str) -> str:
    """``text`` with ASCII letters in lower case (what SQLite's ``lower()`` does)."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
