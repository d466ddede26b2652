"""Configuration and schema of the PostgreSQL backend: the database URL, the NOTIFY channel
names, and migrations (applied under an advisory lock, versioned in ``perdure_meta``)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from perdure.errors import InvalidInputError, StoreUnavailableError
from perdure.store import postgres_sql as q

Conn = psycopg.AsyncConnection[TupleRow]

MIGRATIONS = ("0001_init.sql",)
SCHEMA_FILE = "schema.sql"
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


def _sql_file(name: str) -> bytes:
    return resources.files("perdure.store").joinpath("sql/postgres", name).read_bytes()


async def apply_schema(conn: Conn, schema: str, *, fresh_from_file: bool = True) -> int:
    """Bring ``schema`` up to date under an advisory lock; return its version.

    An empty schema gets ``schema.sql`` (or, with ``fresh_from_file=False``, every numbered
    migration in turn: the schema test checks that both give the same result).
    """
    latest = len(MIGRATIONS)
    async with conn.transaction():
        await conn.execute(q.MIGRATION_LOCK, {"key": _lock_key(schema)})
        ident = sql.Identifier(schema)
        if await (await conn.execute(q.SCHEMA_EXISTS, {"schema": schema})).fetchone() is None:
            await conn.execute(sql.SQL(q.CREATE_SCHEMA).format(ident))
        await conn.execute(sql.SQL(q.SET_LOCAL_SEARCH_PATH).format(ident))
        current = 0
        if await (await conn.execute(q.HAS_META, {"schema": schema})).fetchone() is not None:
            row = await (await conn.execute(q.SCHEMA_VERSION)).fetchone()
            current = int(row[0]) if row else 0
        if current > latest:
            raise StoreUnavailableError(
                f"database schema version {current} is newer than this perdure ({latest}); "
                "upgrade perdure"
            )
        if current == 0 and fresh_from_file:
            await conn.execute(_sql_file(SCHEMA_FILE))
            current = latest
            await conn.execute(q.SET_SCHEMA_VERSION, {"version": str(current)})
        for number, name in enumerate(MIGRATIONS, start=1):
            if number <= current:
                continue
            await conn.execute(_sql_file(name))
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
