"""The chaos test, CI size: 4 worker and 2 server processes on PostgreSQL, runs started over
HTTP, workers SIGKILLed (and restarted) and frozen at random; the invariants are checked from
the ledger the steps write (tests/chaos/chaos_harness.py documents each check).

``bench/chaos.py`` runs the long version (1,000 runs, 50 kills). ``CHAOS_SEED`` replays a seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos_harness import ChaosConfig, run_chaos

from conftest import new_pg_schema_url

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from new_pg_schema_url()


@pytest.mark.timeout(300)
async def test_chaos_kills_and_freezes(pg_url: str, tmp_path: Path) -> None:
    cfg = ChaosConfig(
        runs=150,
        kills=8,
        freezes=2,
        lease=2.0,
        seed=int(os.environ.get("CHAOS_SEED", "20261121")),
    )
    report = await run_chaos(cfg, pg_url, tmp_path, progress=print)
    print(f"seed {cfg.seed}\n{report.summary()}")
    assert report.ok, report.summary()
    assert report.kills == cfg.kills and report.freezes == cfg.freezes
    assert report.runs == cfg.runs
    # The chaos did interrupt steps (otherwise the test proves nothing).
    assert report.reexecuted > 0, report.summary()
