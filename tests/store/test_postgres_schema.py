"""The PostgreSQL schema: ``schema.sql`` (fresh installs) equals the numbered migrations, and
migrations are safe to run from several processes at once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import psycopg
import pytest

from conftest import PG_URL, new_pg_schema_url
from perdure.errors import StoreUnavailableError
from perdure.store import postgres
from perdure.store.postgres import apply_schema, migrate, parse_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def url_a() -> Iterator[str]:
    yield from new_pg_schema_url()


@pytest.fixture
def url_b() -> Iterator[str]:
    yield from new_pg_schema_url()


def schema_of(url: str) -> str:
    return parse_url(url).schema


CATALOG: dict[str, str] = {
    "tables": """
        SELECT c.relname, c.relkind::text, coalesce(c.reloptions::text, '')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(s)s AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
    """,
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text,
               a.attgenerated::text, coalesce(co.collname, '')
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
        WHERE n.nspname = %(s)s AND c.relkind IN ('r', 'p') AND a.attnum > 0
          AND NOT a.attisdropped
    """,
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %(s)s
    """,
    "constraints": """
        SELECT c.relname, con.conname, con.contype::text, pg_get_constraintdef(con.oid)
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(s)s
    """,
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid),
               pg_get_function_result(p.oid), p.prosrc, p.provolatile::text,
               p.proparallel::text, p.prokind::text
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = %(s)s
    """,
    "sequences": """
        SELECT sequencename, data_type::text, start_value, increment_by, cycle
        FROM pg_sequences WHERE schemaname = %(s)s
    """,
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %(s)s AND NOT t.tgisinternal
    """,
}


def introspect(schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the catalog says about a schema, with the schema's name factored out."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    pattern = re.compile(rf'\b"?{re.escape(schema)}"?\.')
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for what, query in CATALOG.items():
            rows = conn.execute(query, {"s": schema}).fetchall()
            out[what] = sorted(
                tuple(pattern.sub("<schema>.", v) if isinstance(v, str) else v for v in row)
                for row in rows
            )
        out["meta"] = sorted(
            conn.execute(
                psycopg.sql.SQL("SELECT key, value FROM {}.perdure_meta").format(
                    psycopg.sql.Identifier(schema)
                )
            ).fetchall()
        )
    return out


async def build(url: str, *, from_file: bool) -> None:
    cfg = parse_url(url)
    async with await psycopg.AsyncConnection.connect(
        cfg.conninfo, autocommit=True, **cfg.kwargs
    ) as conn:
        latest = postgres.MIGRATIONS.latest
        assert await apply_schema(conn, cfg.schema, fresh_from_file=from_file) == latest


async def test_schema_file_equals_the_migrations(url_a: str, url_b: str) -> None:
    await build(url_a, from_file=False)
    await build(url_b, from_file=True)
    migrated, fresh = introspect(schema_of(url_a)), introspect(schema_of(url_b))
    # The comparison means something: the schema has its tables, indexes and function.
    assert {row[0] for row in fresh["tables"]} >= {
        "perdure_meta",
        "functions",
        "runs",
        "steps",
        "waits",
        "events",
        "event_ids",
        "cron_ticks",
    }
    assert len(fresh["indexes"]) >= 10 and fresh["functions"]
    assert ("schema_version", str(postgres.MIGRATIONS.latest)) in fresh["meta"]
    for what in fresh:
        assert migrated[what] == fresh[what], what


def test_migration_files_are_numbered_in_order() -> None:
    folder = resources.files("perdure.store.postgres").joinpath("sql")
    files = sorted(p.name for p in folder.iterdir() if re.match(r"^\d{4}_.*\.sql$", p.name))
    assert tuple(files) == postgres.MIGRATIONS.names
    assert [int(f[:4]) for f in files] == list(range(1, len(files) + 1))
    assert folder.joinpath(postgres.SCHEMA_FILE).is_file()


async def test_concurrent_migrations_do_not_race(url_a: str) -> None:
    # Several processes starting at once on an empty schema: the advisory lock serializes
    # them, one creates the schema, the others find it up to date.
    versions = await asyncio.gather(*(migrate(url_a) for _ in range(6)))
    assert versions == [postgres.MIGRATIONS.latest] * 6
    assert await migrate(url_a) == postgres.MIGRATIONS.latest


async def test_migrate_creates_a_missing_schema() -> None:
    import uuid

    schema = f"t_new_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}schema={schema}"
    try:
        assert await migrate(url) == postgres.MIGRATIONS.latest
        assert introspect(schema)["meta"]
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    psycopg.sql.Identifier(schema)
                )
            )


async def test_a_newer_schema_is_refused(url_a: str) -> None:
    await migrate(url_a)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL(
                "UPDATE {}.perdure_meta SET value = '999' WHERE key = 'schema_version'"
            ).format(psycopg.sql.Identifier(schema_of(url_a)))
        )
    with pytest.raises(StoreUnavailableError, match="newer"):
        await migrate(url_a)
