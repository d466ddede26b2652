"""The sync state of the apps on the official Inngest SDKs, as both backends store it: one row
per app (its last registration and its last sync attempt) and one per app URL the servers send
the sync ``PUT`` to (its last outcome), with the part of the storage protocol that writes and
reads them.

Writes are one small upsert per attempt, whatever the number of attempts (the dev server polls
its ``-u`` URLs every few seconds): a row holds the *last* attempt only, never a history. The
rows are the environment's own, like every table; every server of the database reads the same
ones. Times are the store's clock. What the rows mean for the apps listing is
:mod:`perdure.inngest.sync_log`'s and :mod:`perdure.inngest.apps`'s business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

SyncKind = Literal["app", "url"]
"""What a row is about: an app (``name`` is its id) or an app URL (``name`` is the URL)."""

APP_SYNC_COLUMNS: Final = (
    "kind, name, url, sdk, framework, synced_at, attempt_at, attempt_ok, attempt_error,"
    " attempt_source"
)
"""The columns of ``app_syncs`` an :class:`AppSyncRow` is read from, in its field order."""

TEXT_LIMIT: Final = 2000
"""The most characters :func:`clip` keeps of a text (an error message, an app name or URL)."""


@dataclass(frozen=True, slots=True)
class AppSyncIn:
    """One sync attempt to record on the row ``(kind, name)``: its outcome (``ok``, the
    ``error``) and how it came (``source``: ``register``, ``poll`` or ``resync``). ``url``
    replaces the row's URL (``None`` keeps it). With ``synced`` (a registration that was
    stored) the attempt is also the row's last sync: its time, ``sdk`` and ``framework``."""

    kind: SyncKind
    name: str
    ok: bool
    source: str
    error: str | None = None
    url: str | None = None
    synced: bool = False
    sdk: str | None = None
    framework: str | None = None


@dataclass(frozen=True, slots=True)
class AppSyncRow:
    """A stored row: the last sync (``synced_at``, ``sdk``, ``framework``; ``None`` until
    one) and the last attempt (``attempt_at``, ``ok``, ``error``, ``source``)."""

    kind: SyncKind
    name: str
    url: str
    sdk: str | None
    framework: str | None
    synced_at: float | None
    attempt_at: float
    ok: bool
    error: str | None
    source: str


def app_sync_from_row(row: Sequence[Any]) -> AppSyncRow:
    """An :class:`AppSyncRow` from the columns of :data:`APP_SYNC_COLUMNS`."""
    kind, name, url, sdk, framework, synced_at, attempt_at, ok, error, source = row
    return AppSyncRow(
        kind=kind,
        name=name,
        url=url,
        sdk=sdk,
        framework=framework,
        synced_at=None if synced_at is None else float(synced_at),
        attempt_at=float(attempt_at),
        ok=bool(ok),
        error=error,
        source=source,
    )


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` as a sync row can hold it: at most ``limit`` characters, NUL characters and
    unpaired surrogates replaced (for text from the network: error messages, names)."""
    text = text[:limit].replace("\x00", "\ufffd")
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


class AppSyncStore(Protocol):
    """Where the Inngest apps' sync state is kept."""

    async def record_app_sync(self, sync: AppSyncIn) -> AppSyncRow:
        """Upsert the row of ``(sync.kind, sync.name)`` with this attempt (see
        :class:`AppSyncIn`); return it as stored. InvalidInputError (nothing written) for text
        that cannot be stored or a kind other than ``app`` and ``url``."""
        ...

    async def list_app_syncs(self) -> list[AppSyncRow]:
        """Every row, by kind then name."""
        ...

    async def delete_app_syncs(self, kind: SyncKind, names: Sequence[str]) -> int:
        """Delete the rows of ``names`` of ``kind`` (an app removed); how many there were."""
        ...
