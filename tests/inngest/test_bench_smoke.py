"""bench/inngest_bench.py still runs (a tiny configuration; its figures are not checked: speed is
measured by the bench itself, never asserted in tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_inngest_bench_runs(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "inngest_bench.py"),
            *("--runs", "3", "--warmup", "1", "--concurrent", "5"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "perdure's share of a step" in out.stdout, out.stdout
    assert "5 at once:" in out.stdout, out.stdout
