"""bench/statement_floor.py replays perdure's own statements of a sequential run: it still runs
against the current store code on each backend, and every write it replays is applied (its
figures are not checked: speed is measured by the bench, never asserted in tests)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def statement_floor() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # it imports its sibling floor_commit
    try:
        return importlib.import_module("statement_floor")
    finally:
        sys.path.remove(str(BENCH))


def test_the_replay_applies_every_statement(db_url: str, statement_floor: ModuleType) -> None:
    if db_url.startswith("sqlite:///"):
        out = statement_floor.statements_sqlite(db_url.removeprefix("sqlite:///"), 3, 1)
    else:
        out = statement_floor.statements_postgres(db_url, 3, 1)
    assert out["runs"] == 3 and out["median_ms"] > 0
