"""Access records both backends store the same way: API keys (hashed), dashboard sessions and
the audit trail, with the part of the storage protocol that reads and writes them.

Each environment's tables hold its own keys, sessions and audit (see
:mod:`perdure.environments`), so a key can only ever be found in its own environment. The
rules (what a token looks like, which scope allows what) are in :mod:`perdure.keys`; the
stores only keep rows. Times are the store's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from perdure import serde

KEY_COLUMNS = (
    "id, name, scopes, prefix, created_by, created_at, expires_at, last_used_at, revoked_at"
)
"""The columns of ``api_keys`` a :class:`KeyRow` is read from, in its field order."""

AUDIT_COLUMNS = "seq, at, actor, action, run_id, target, detail"
"""The columns of ``audit`` an :class:`AuditRow` is read from."""


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key to store: ``token_hash`` is the SHA-256 of the token (the token itself is never
    stored); ``prefix`` is its first characters, shown to tell keys apart."""

    id: str
    name: str
    scopes: tuple[str, ...]
    token_hash: str
    prefix: str
    created_by: str | None = None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A stored key (without its hash)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    prefix: str
    created_by: str | None
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None

    def live(self, now: float) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A dashboard session and the key it was opened with."""

    key: KeyRow
    csrf: str
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class AuditIn:
    """One action to record: who (``actor``), what (``action``: ``cancel``, ``rerun``,
    ``replay``, ``key.create``...), on which run or other object, with a JSON-able detail."""

    actor: str
    action: str
    run_id: str | None = None
    target: str | None = None
    detail: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """A recorded action."""

    seq: int
    at: float
    actor: str
    action: str
    run_id: str | None
    target: str | None
    detail: dict[str, Any] | None


def key_from_row(row: Sequence[Any]) -> KeyRow:
    """A :class:`KeyRow` from the columns :data:`KEY_COLUMNS`."""
    return KeyRow(
        id=row[0],
        name=row[1],
        scopes=tuple(serde.loads(row[2])),
        prefix=row[3],
        created_by=row[4],
        created_at=float(row[5]),
        expires_at=None if row[6] is None else float(row[6]),
        last_used_at=None if row[7] is None else float(row[7]),
        revoked_at=None if row[8] is None else float(row[8]),
    )


def session_from_row(row: Sequence[Any]) -> SessionRow:
    """A :class:`SessionRow` from ``csrf, created_at, expires_at`` then :data:`KEY_COLUMNS`."""
    return SessionRow(
        key=key_from_row(row[3:]), csrf=row[0], created_at=float(row[1]), expires_at=float(row[2])
    )


def audit_from_row(row: Sequence[Any]) -> AuditRow:
    """An :class:`AuditRow` from the columns :data:`AUDIT_COLUMNS`."""
    return AuditRow(
        seq=int(row[0]),
        at=float(row[1]),
        actor=row[2],
        action=row[3],
        run_id=row[4],
        target=row[5],
        detail=None if row[6] is None else serde.loads(row[6]),
    )


def scopes_text(scopes: Sequence[str]) -> str:
    """The stored form of a key's scopes (a JSON array)."""
    return serde.dumps(list(scopes))


def detail_text(detail: dict[str, Any] | None) -> str | None:
    """The stored form of an audit entry's detail."""
    return None if detail is None else serde.dumps(detail)


class AccessStore(Protocol):
    """The part of :class:`~perdure.store.base.Store` that keeps keys, sessions and audit."""

    async def create_key(self, key: NewKey) -> KeyRow:
        """Store a key; return it as stored."""
        ...

    async def list_keys(self) -> list[KeyRow]:
        """Every key of the environment, revoked ones too, newest first."""
        ...

    async def key_by_hash(self, token_hash: str) -> KeyRow | None:
        """The key whose token hashes to ``token_hash`` (revoked or expired ones too)."""
        ...

    async def revoke_key(self, key_id: str) -> KeyRow | None:
        """Revoke a key (idempotent) and end its sessions; ``None`` for an unknown id."""
        ...

    async def touch_key(self, key_id: str) -> None:
        """Record that the key was just used."""
        ...

    async def create_session(
        self, token_hash: str, key_id: str, csrf: str, expires_at: float
    ) -> None:
        """Open a session (and delete the expired ones)."""
        ...

    async def get_session(self, token_hash: str) -> SessionRow | None:
        """The session whose token hashes to ``token_hash``, with its key."""
        ...

    async def delete_session(self, token_hash: str) -> None:
        """End a session."""
        ...

    async def record_audit(self, entries: Sequence[AuditIn]) -> None:
        """Append to the audit trail."""
        ...

    async def list_audit(
        self, run_id: str | None = None, before: int | None = None, limit: int = 100
    ) -> list[AuditRow]:
        """The audit trail, newest first: of one run, or all of it; ``before`` is a ``seq``."""
        ...
