"""The migration runner's rules, shared by both backends: numbered SQL files shipped inside a
backend's package (``sql/NNNN_name.sql``), the version recorded in ``perdure_meta``, and which
files a database at a given version still needs. Each backend applies them in its own
transaction (SQLite under ``BEGIN IMMEDIATE``, PostgreSQL under an advisory lock)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from perdure.errors import StoreUnavailableError


@dataclass(frozen=True, slots=True)
class Migrations:
    """The migrations of one backend: ``names[i]`` brings the schema to version ``i + 1``."""

    package: str
    names: tuple[str, ...]

    @property
    def latest(self) -> int:
        """The schema version this perdure knows."""
        return len(self.names)

    def read(self, name: str) -> str:
        """The text of a SQL file of the backend (``sql/<name>``)."""
        return resources.files(self.package).joinpath("sql", name).read_text()

    def pending(self, current: int) -> list[tuple[int, str]]:
        """The ``(version, file)`` pairs a database at version ``current`` still needs; raise
        if the database is newer than this perdure."""
        if current > self.latest:
            raise StoreUnavailableError(
                f"database schema version {current} is newer than this perdure "
                f"({self.latest}); upgrade perdure"
            )
        return [(n, name) for n, name in enumerate(self.names, start=1) if n > current]


def version_of(row: tuple[object, ...] | None) -> int:
    """The schema version read from ``perdure_meta`` (0: none recorded)."""
    return int(str(row[0])) if row else 0


def split_statements(sql: str) -> list[str]:
    """A SQL script's statements (``--`` comment lines dropped; no ``;`` inside literals)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
