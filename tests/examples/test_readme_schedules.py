"""The README's schedules example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_schedules_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Schedules\n.*?```python\n(.*?)```", readme, re.S)
    assert code is not None, "the README has no schedules example"
    script = tmp_path / "schedules_example.py"
    script.write_text(code.group(1) + "\n\nimport asyncio\n\nasyncio.run(schedule_it())\n")
    env = dict(os.environ, PERDURE_DATABASE_URL=f"sqlite:///{tmp_path}/s.db")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"report of \d{4}-\d\d-\d\d sent to ops@example.com", done.stdout.strip())
