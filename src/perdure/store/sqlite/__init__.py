"""The SQLite backend: the store (:mod:`.store`), its writer thread and group commit
(:mod:`.writer`), its commit semantics (:mod:`.commit`), every statement (:mod:`.queries`) and
its schema migrations (``sql/``)."""

from perdure.store.sqlite.store import MIGRATIONS, SqliteStore

__all__ = ["MIGRATIONS", "SqliteStore"]
