"""The README's quick start runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import perdure

ROOT = Path(__file__).resolve().parents[2]


def test_quick_start_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(import asyncio\n.*?)```", readme, re.S)
    assert code is not None, "the README has no quick start"
    script = tmp_path / "quick_start.py"
    script.write_text(code.group(1))
    env = dict(os.environ, PERDURE_DATABASE_URL=f"sqlite:///{tmp_path}/qs.db")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'charge': 'ch_A1', 'carrier': 'ups'}"


def test_flow_control_examples_register() -> None:
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Flow control.*?```python\n(.*?)```", readme, re.S)
    assert code is not None, "the README has no flow-control example"
    scope: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), scope)
    app = scope["app"]
    assert isinstance(app, perdure.App)
    options = {fid: f.record().flow.to_dict() for fid, f in app.functions.items()}
    assert set(options["charge"]) == {"concurrency"}
    assert set(options["send-email"]) == {"throttle"}
    assert set(options["send-sms"]) == {"rate_limit"}
    assert set(options["reindex"]) == {"debounce"}
    assert set(options["export-rows"]) == {"batch"}
    assert set(options["summarize"]) == {"priority"}
    assert set(options["sync-account"]) == {"singleton"}
    assert set(options["fulfil"]) == {"idempotency", "cancel_on", "timeouts"}
