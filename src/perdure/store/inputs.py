"""Input hardening at the store, the same on both backends.

Text the databases cannot hold must never reach them: PostgreSQL rejects NUL characters (and
every driver rejects lone surrogates, which cannot be encoded as UTF-8), and SQLite would store
a NUL silently. Look-ups with such a value find nothing; writes that would store one raise
:class:`~perdure.errors.InvalidInputError` before anything is written. Integer cursors and
limits are clamped to what a 64-bit column can compare with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from perdure.errors import InvalidInputError
from perdure.store.app_syncs import AppSyncIn
from perdure.store.base import NewRun, NewSchedule
from perdure.store.run_filter import ID_PREFIX_END, RunFilter, ascii_fold

INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)


def storable(value: str | None) -> bool:
    """Whether ``value`` can be stored as text (``None`` can)."""
    if value is None:
        return True
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def all_storable(values: Iterable[str | None]) -> bool:
    """Whether every value can be stored as text."""
    return all(storable(v) for v in values)


def require_storable(what: str, value: str | None) -> None:
    """Raise :class:`InvalidInputError` if ``value`` cannot be stored."""
    if not storable(value):
        raise InvalidInputError(
            f"{what} must not contain NUL characters or unpaired surrogates: {value!r}"
        )


def seq_cursor(before: int | None) -> int | None:
    """A sequence-number cursor (``seq < before``) as a 64-bit value: a cursor above every
    sequence number is no cursor; one below every sequence number stays below (finds nothing)."""
    if before is None or before > INT64_MAX:
        return None
    return max(before, INT64_MIN)


def row_limit(limit: int) -> int:
    """A page size as a 64-bit value (at least 0)."""
    return min(max(limit, 0), INT64_MAX)


def require_storable_runs(runs: Sequence[NewRun]) -> None:
    """Raise :class:`InvalidInputError` if a run to create carries text that cannot be stored."""
    for r in runs:
        require_storable("a run id", r.id)
        require_storable("a function id", r.function_id)
        require_storable("an event id", r.event_id)
        require_storable("an idempotency key", r.idempotency_key)
        require_storable("a parent run id", r.parent_run_id)
        require_storable("a parent step id", r.parent_step)
        require_storable("a worker id", r.lease_owner)


def require_storable_schedule(schedule: NewSchedule) -> None:
    """Raise :class:`InvalidInputError` if a schedule to create carries text that cannot be
    stored."""
    require_storable("a schedule id", schedule.id)
    require_storable("a function id", schedule.function_id)
    require_storable("a cron expression", schedule.cron)
    require_storable("a time zone", schedule.tz)
    require_storable("a schedule's data", schedule.data)


def require_valid_app_sync(sync: AppSyncIn) -> None:
    """Raise :class:`InvalidInputError` if a sync attempt to record has an unknown kind or
    carries text that cannot be stored."""
    if sync.kind not in ("app", "url"):
        raise InvalidInputError(f"a sync row's kind is 'app' or 'url', not {sync.kind!r}")
    require_storable("an app name or URL", sync.name)
    require_storable("an app URL", sync.url)
    require_storable("a sync error", sync.error)
    require_storable("a sync source", sync.source)
    require_storable("an SDK", sync.sdk)
    require_storable("a framework", sync.framework)


def run_filter_params(flt: RunFilter) -> dict[str, Any] | None:
    """The parameters of a backend's runs listing for ``flt`` (named as its statements name
    them), or ``None`` when a text filter cannot be stored, so that nothing can match."""
    if not all_storable(flt.texts()):
        return None
    prefix = flt.id_prefix
    return {
        "status": flt.status,
        "fid": flt.function_id,
        "before": flt.before,
        "created_after": flt.created_after,
        "created_before": flt.created_before,
        "id_lo": prefix,
        "id_hi": None if prefix is None else prefix + ID_PREFIX_END,
        "event_id": flt.event_id,
        "text": None if flt.text is None else ascii_fold(flt.text),
        "ended": flt.ended,
        "limit": row_limit(flt.limit),
    }
