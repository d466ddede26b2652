"""``open_store``: which URLs build which store, and malformed ones refused with a clear error."""

from __future__ import annotations

import pytest

from perdure.errors import InvalidInputError
from perdure.store import open_store
from perdure.store.sqlite import SqliteStore


def test_sqlite_urls_and_options() -> None:
    store = open_store("sqlite:///tmp/x.db?synchronous=normal&busy_timeout=2.5")
    assert isinstance(store, SqliteStore)
    assert store.path == "tmp/x.db"
    assert open_store("sqlite:////abs/x.db").url == "sqlite:////abs/x.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://x.db", "must look like"),
        ("sqlite:///", "file path"),
        ("sqlite:///:memory:", "file path"),
        ("sqlite:///x.db?mode=ro", "unknown SQLite URL option"),
        ("sqlite:///x.db?synchronous=OFF", "synchronous"),
        ("sqlite:///x.db?busy_timeout=abc", "busy_timeout"),
        ("sqlite:///x.db?busy_timeout=-1", "busy_timeout"),
        ("sqlite:///x.db?busy_timeout=nan", "busy_timeout"),
        ("mysql://h/db", "unsupported database URL"),
        ("postgresql://h/db?schema=no-dash", "invalid schema name"),
        ("postgresql://h/db?pool_max_size=many", "pool option"),
    ],
)
def test_malformed_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        open_store(url)
