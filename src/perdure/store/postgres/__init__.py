"""The PostgreSQL backend: the store (:mod:`.store`), its connection pool and transactions
(:mod:`.pool`), the database clock (:mod:`.clock`), how a commit batch becomes statements
(:mod:`.plan`), every statement (:mod:`.queries`), the LISTEN connection (:mod:`.listen`),
and the URL, channel names and schema migrations (:mod:`.schema`, ``sql/``)."""

from perdure.store.postgres.schema import (
    MIGRATIONS,
    SCHEMA_FILE,
    PgConfig,
    apply_schema,
    channel_name,
    migrate,
    parse_url,
)
from perdure.store.postgres.store import PostgresStore

__all__ = [
    "MIGRATIONS",
    "SCHEMA_FILE",
    "PgConfig",
    "PostgresStore",
    "apply_schema",
    "channel_name",
    "migrate",
    "parse_url",
]
