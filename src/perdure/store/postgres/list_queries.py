"""The SQL of the run and event lists on PostgreSQL: this section of
:mod:`perdure.store.postgres.queries`, apart to keep each module short; the same conventions
(constant text per shape, named parameters)."""

from __future__ import annotations

import functools
from typing import Final, LiteralString

from perdure.store.rows import RUN_COLUMNS

_UPPER: LiteralString = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ'"
_LOWER: LiteralString = "'abcdefghijklmnopqrstuvwxyz'"
_RUN_FILTERS: Final[tuple[LiteralString, ...]] = (
    " AND status = %(status)s",
    " AND function_id = %(fid)s",
    " AND id < %(before)s",
    " AND created_at >= %(created_after)s",
    " AND created_at < %(created_before)s",
    " AND id >= %(id_lo)s AND id < %(id_hi)s",
    " AND event_id = %(event_id)s",
    # ASCII letters only, as ascii_fold (lower() would fold other letters by the locale)
    " AND strpos(translate(input, " + _UPPER + ", " + _LOWER + "), %(text)s) > 0",
    " AND (status IN ('completed', 'failed', 'cancelled', 'skipped')) = %(ended)s",
)


@functools.cache
def list_runs(shape: tuple[bool, ...]) -> LiteralString:
    """The statement listing runs, newest first, with the filters of ``shape``
    (:meth:`~perdure.store.base.RunFilter.shape`) given; one constant statement per shape."""
    where: LiteralString = ""
    for given, clause in zip(shape, _RUN_FILTERS, strict=True):
        if given:
            where += clause
    return (
        "SELECT "
        + RUN_COLUMNS
        + " FROM runs WHERE true"
        + where
        + " ORDER BY id DESC LIMIT %(limit)s"
    )


def _list_events(name: bool, before: bool) -> LiteralString:
    where: LiteralString = ""
    if name:
        where += " AND e.name = %(name)s"
    if before:
        where += " AND e.seq < %(before)s"
    return (
        "SELECT e.seq, e.id, e.name, e.body, e.received_at, "
        "ARRAY(SELECT r.id FROM runs r WHERE r.event_id = e.id ORDER BY r.id) "
        "FROM events e WHERE true" + where + " ORDER BY e.seq DESC LIMIT %(limit)s"
    )


LIST_EVENTS: Final[dict[tuple[bool, bool], LiteralString]] = {
    (n, b): _list_events(n, b) for n in (False, True) for b in (False, True)
}
