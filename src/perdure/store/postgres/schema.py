"""Configuration and schema of the PostgreSQL backend: the database URL, the NOTIFY channel
names, and migrations (the shared runner's rules, applied under an advisory lock)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from perdure.errors import InvalidInputError, StoreUnavailableError
from perdure.store.migrations import Migrations, version_of
from perdure.store.postgres import queries as q

Conn = psycopg.AsyncConnection[TupleRow]

MIGRATIONS = Migrations(
    "perdure.store.postgres",
    (
        "0001_init.sql",
        "0002_flow.sql",
        "0003_schedules.sql",
        "0004_flow_gates.sql",
        "0005_flow_cancel.sql",
        "0006_step_names.sql",
        "0007_rerun.sql",
        "0008_operations.sql",
        "0009_access.sql",
        "0010_traces.sql",
        "0011_step_inputs.sql",
        "0012_app_syncs.sql",
    ),
)
SCHEMA_FILE = "schema.sql"
"""The complete current schema, applied to an empty database (equal to every migration)."""
_OUR_PARAMS = ("schema", "pool_min_size", "pool_max_size", "pool_timeout")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


# ---------------------------------------------------------------------- configuration


@dataclass(slots=True)
class PgConfig:
    """A parsed database URL: what libpq sees, and our own options."""

    conninfo: str
    schema: str
    kwargs: dict[str, Any]
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout: float = 5.0


def parse_url(url: str) -> PgConfig:
    """Split ``postgresql://...?schema=NAME&...`` into libpq's URL and our options."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in params if k in _OUR_PARAMS}
    rest = [(k, v) for k, v in params if k not in _OUR_PARAMS]
    conninfo = urlunsplit(parts._replace(query=urlencode(rest, quote_via=quote)))
    schema = ours.get("schema") or "public"
    if not _SCHEMA_NAME.match(schema):
        raise InvalidInputError(
            f"invalid schema name {schema!r}: use letters, digits and underscores (at most 63)"
        )
    try:
        given = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise InvalidInputError(f"invalid PostgreSQL URL: {exc}") from None
    options = str(given.get("options") or "")
    options = f'{options} -c search_path="{schema}"'.strip()
    kwargs: dict[str, Any] = {"options": options, "prepare_threshold": 2}
    if "application_name" not in given:
        kwargs["application_name"] = "perdure"
    try:
        cfg = PgConfig(conninfo, schema, kwargs)
        if "pool_min_size" in ours:
            cfg.pool_min_size = int(ours["pool_min_size"])
        if "pool_max_size" in ours:
            cfg.pool_max_size = int(ours["pool_max_size"])
        if "pool_timeout" in ours:
            cfg.pool_timeout = float(ours["pool_timeout"])
    except ValueError as exc:
        raise InvalidInputError(f"invalid pool option in the PostgreSQL URL: {exc}") from None
    if not 0 <= cfg.pool_min_size <= cfg.pool_max_size or cfg.pool_max_size < 1:
        raise InvalidInputError("pool sizes must satisfy 0 <= pool_min_size <= pool_max_size")
    return cfg


def channel_name(kind: str, schema: str) -> str:
    """The NOTIFY channel of ``kind`` (wake, done) for a schema (at most 63 bytes)."""
    name = f"perdure_{kind}_{schema}"
    if len(name.encode()) > 63:
        name = f"perdure_{kind}_{hashlib.sha1(schema.encode()).hexdigest()[:24]}"
    return name


def _lock_key(schema: str) -> int:
    digest = hashlib.blake2b(f"perdure-migrate:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# ---------------------------------------------------------------------- migrations


async def apply_schema(conn: Conn, schema: str, *, fresh_from_file: bool = True) -> int:
    """Bring ``schema`` up to date under an advisory lock; return its version.

    An empty schema gets ``schema.sql`` (or, with ``fresh_from_file=False``, every numbered
    migration in turn: the schema test checks that both give the same result).
    """
    async with conn.transaction():
        await conn.execute(q.MIGRATION_LOCK, {"key": _lock_key(schema)})
        ident = sql.Identifier(schema)
        if await (await conn.execute(q.SCHEMA_EXISTS, {"schema": schema})).fetchone() is None:
            await conn.execute(sql.SQL(q.CREATE_SCHEMA).format(ident))
        await conn.execute(sql.SQL(q.SET_LOCAL_SEARCH_PATH).format(ident))
        current = 0
        if await (await conn.execute(q.HAS_META, {"schema": schema})).fetchone() is not None:
            current = version_of(await (await conn.execute(q.SCHEMA_VERSION)).fetchone())
        pending = MIGRATIONS.pending(current)
        if current == 0 and fresh_from_file:
            await conn.execute(MIGRATIONS.read(SCHEMA_FILE).encode())
            current = MIGRATIONS.latest
            await conn.execute(q.SET_SCHEMA_VERSION, {"version": str(current)})
            pending = []
        for number, name in pending:
            await conn.execute(MIGRATIONS.read(name).encode())
            await conn.execute(q.SET_SCHEMA_VERSION, {"version": str(number)})
            current = number
    return current


async def migrate(url: str) -> int:
    """Create the schema if needed and apply pending migrations (``perdure migrate``);
    return the schema version."""
    cfg = parse_url(url)
    try:
        conn = await psycopg.AsyncConnection.connect(cfg.conninfo, autocommit=True, **cfg.kwargs)
        async with conn:
            return await apply_schema(conn, cfg.schema)
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise StoreUnavailableError(f"PostgreSQL is unavailable: {exc}") from exc
