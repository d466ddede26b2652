"""Column lists and row-to-record mapping shared by both backends (their queries select these
columns in this order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, LiteralString

from perdure import serde
from perdure.functions import FunctionRecord, trigger_from_dict
from perdure.store.base import RunRow, StoredStep

RUN_COLUMNS: Final[LiteralString] = (
    "id, function_id, status, input, output, error, attempt, event_id, idempotency_key, "
    "parent_run_id, parent_step, created_at, started_at, ended_at, available_at, lease_owner, "
    "reason, rerun_of, replay_of, replay_from_step"
)
"""The columns of a :class:`~perdure.store.base.RunRow`, in field order."""

STEP_COLUMNS: Final[LiteralString] = (
    "key, seq, kind, status, output, error, attempts, wake_at, started_at, ended_at, name, input"
)
"""The columns of a :class:`~perdure.store.base.StoredStep`, in field order."""

FUNCTION_COLUMNS: Final[LiteralString] = "id, app, triggers, config"
"""The columns :func:`function_from_row` reads."""


def run_from_row(row: Sequence[Any]) -> RunRow:
    """A run selected with :data:`RUN_COLUMNS`."""
    return RunRow(*row)


def step_from_row(row: Sequence[Any]) -> StoredStep:
    """A step selected with :data:`STEP_COLUMNS`."""
    return StoredStep(*row)


def function_from_row(row: Sequence[Any]) -> FunctionRecord:
    """A function selected with :data:`FUNCTION_COLUMNS`."""
    fid, app, triggers, config = row
    return FunctionRecord(
        fid, app, tuple(trigger_from_dict(t) for t in serde.loads(triggers)), serde.loads(config)
    )


def function_values(record: FunctionRecord) -> tuple[str, str, str, str]:
    """A function's column values, in :data:`FUNCTION_COLUMNS` order."""
    return (
        record.id,
        record.app,
        serde.dumps([t.to_dict() for t in record.triggers]),
        serde.dumps(record.config),
    )


class FunctionCache:
    """The registered functions as last read, and the registry version they were read at.

    Registering functions bumps a version in ``perdure_meta``; a store reads the version in the
    transaction that routes events and reloads the functions only when it changed.
    """

    __slots__ = ("paused", "records", "version")

    def __init__(self) -> None:
        self.version: str | None = None
        self.records: list[FunctionRecord] = []
        self.paused: frozenset[str] = frozenset()
        """The paused functions at ``version``, when the backend reads them with the registry
        (SQLite; pausing bumps the version)."""

    def replace(
        self, version: str, rows: Sequence[Sequence[Any]], paused: Sequence[str] = ()
    ) -> None:
        """Remember the functions read (rows of :data:`FUNCTION_COLUMNS`) at ``version``."""
        self.records = [function_from_row(row) for row in rows]
        self.paused = frozenset(paused)
        self.version = version
