"""Shared fixtures: a fresh database per test, on SQLite and (when configured) PostgreSQL.

PostgreSQL tests read the server's address from ``PERDURE_TEST_POSTGRES_URL`` (for example
``postgresql://postgres@127.0.0.1:5432/test``). On a laptop without it they are skipped with a
message; ``.ci/run`` sets it and sets ``PERDURE_REQUIRE_POSTGRES=1``, which turns a missing or
unreachable server into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from perdure.store import open_store
from perdure.store.base import Store
from perdure.testing import ManualClock

PG_URL = os.environ.get("PERDURE_TEST_POSTGRES_URL", "")
REQUIRE_PG = os.environ.get("PERDURE_REQUIRE_POSTGRES", "") == "1"


def _pg_reachable() -> str | None:
    if not PG_URL:
        return "PERDURE_TEST_POSTGRES_URL is not set"
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # pragma: no cover - depends on the machine
        return f"PostgreSQL at {PG_URL} is unreachable: {exc}"
    return None


_PG_PROBLEM: str | None = None
_PG_CHECKED = False


def pg_problem() -> str | None:
    """Why PostgreSQL tests cannot run here (None if they can)."""
    global _PG_PROBLEM, _PG_CHECKED
    if not _PG_CHECKED:
        _PG_PROBLEM = _pg_reachable()
        _PG_CHECKED = True
    return _PG_PROBLEM


def new_pg_schema_url() -> Iterator[str]:
    """A URL pointing at a fresh, empty schema; dropped afterwards, with the schemas of the
    environments made on it (``<schema>_env_<name>``)."""
    problem = pg_problem()
    if problem is not None:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required here: {problem}")
        pytest.skip(f"PostgreSQL tests skipped: {problem}")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}schema={schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            envs = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                (f"{schema}\\_env\\_%",),
            ).fetchall()
            for (name,) in [(schema,), *envs]:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/perdure.db"
    else:
        yield from new_pg_schema_url()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database URL."""
    return f"sqlite:///{tmp_path}/perdure.db"


STORE_T0 = 1_800_000_000.0
"""The time the store tests' manual clock starts at."""


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at :data:`STORE_T0` (the store conformance suite's)."""
    return ManualClock(STORE_T0)


@pytest.fixture
async def store(db_url: str, clock: ManualClock) -> AsyncIterator[Store]:
    """An opened store on a fresh database of each backend, on the manual clock."""
    s = open_store(db_url, clock=clock)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
