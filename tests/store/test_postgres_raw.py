"""The dedicated connections' statements sent through libpq directly
(:mod:`perdure.store.postgres.raw`): the same rows and errors as psycopg's cursor, and a
connection that fails or is interrupted mid-statement is replaced, never reused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from conftest import new_pg_schema_url
from perdure.errors import StoreUnavailableError
from perdure.store.postgres import parse_url
from perdure.store.postgres.pool import Dedicated, Pool
from perdure.store.postgres.raw import RawConn, compiled

pytestmark = pytest.mark.postgres

ROW = (
    "SELECT %(s)s::text, %(n)s::int8, %(f)s::float8, %(b)s::bool, %(none)s::text,"
    " %(n)s::int8 + 1, '50%%'::text, %(j)s::jsonb ->> 'k'"
)
PARAMS = {"s": "é\n'x", "n": 2**62, "f": 0.1, "b": True, "none": None, "j": '{"k": "v"}'}


def test_placeholders_become_numbered_once_per_name() -> None:
    c = compiled(ROW)
    assert c.names == ("s", "n", "f", "b", "none", "j")
    assert c.sql.decode() == (
        "SELECT $1::text, $2::int8, $3::float8, $4::bool, $5::text,"
        " $2::int8 + 1, '50%'::text, $6::jsonb ->> 'k'"
    )
    assert compiled(ROW) is c


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from new_pg_schema_url()


@pytest.fixture
async def conn(pg_url: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    cfg = parse_url(pg_url)
    c = await psycopg.AsyncConnection.connect(cfg.conninfo, autocommit=True, **cfg.kwargs)
    try:
        yield c
    finally:
        await c.close()


async def test_rows_are_those_of_a_cursor(
    conn: psycopg.AsyncConnection[tuple[object, ...]],
) -> None:
    raw = RawConn(conn)
    expected = await (await conn.execute(ROW, PARAMS)).fetchall()
    assert await raw.execute(ROW, PARAMS) == expected
    assert await raw.execute(ROW, PARAMS) == expected  # prepared now
    assert expected == [("é\n'x", 2**62, 0.1, True, None, 2**62 + 1, "50%", "v")]
    assert await raw.execute("CREATE TEMP TABLE t (id int8 PRIMARY KEY)", {}) == []


async def test_errors_are_psycopgs_and_the_connection_stays_usable(
    conn: psycopg.AsyncConnection[tuple[object, ...]],
) -> None:
    raw = RawConn(conn)
    await conn.execute("CREATE TEMP TABLE u (id int8 PRIMARY KEY)")
    insert = "INSERT INTO u (id) VALUES (%(id)s::int8) RETURNING id"
    assert await raw.execute(insert, {"id": 1}) == [(1,)]
    with pytest.raises(psycopg.errors.UniqueViolation):
        await raw.execute(insert, {"id": 1})
    with pytest.raises(psycopg.errors.SyntaxError):
        await raw.execute("SELEC %(id)s::int8", {"id": 1})
    assert await raw.execute(insert, {"id": 2}) == [(2,)]
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def _backend_pid(d: Dedicated) -> int:
    rows = await d.write_one("SELECT pg_backend_pid()", {})
    return int(str(rows[0][0]))


@pytest.fixture
async def dedicated(pg_url: str) -> AsyncIterator[Dedicated]:
    pool = Pool(parse_url(pg_url), "raw-test")
    await pool.open()
    d = Dedicated(parse_url(pg_url), pool)
    try:
        yield d
    finally:
        await d.close()
        await pool.close()


async def test_a_terminated_connection_is_unavailable_then_replaced(
    dedicated: Dedicated, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    pid = await _backend_pid(dedicated)
    await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreUnavailableError):
        await _backend_pid(dedicated)
    assert await _backend_pid(dedicated) != pid


async def test_a_statement_interrupted_by_cancellation_closes_its_connection(
    dedicated: Dedicated, conn: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    pid = await _backend_pid(dedicated)
    sleep = dedicated.write_one("SELECT pg_sleep(%(s)s::float8)", {"s": 30})
    task = asyncio.ensure_future(sleep)
    for _ in range(3000):  # until the statement is running on the server (30 s at most)
        cur = await conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,))
        row = await cur.fetchone()
        if row is not None and row[0] == "active":
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the statement never started on the server")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _backend_pid(dedicated) != pid  # a new connection, not the interrupted one
