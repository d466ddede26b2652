"""``perdure workers``, ``perdure functions pause|resume`` and ``perdure prune``, run in
subprocesses against a temporary SQLite database, as a user would."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from cli_helpers import assert_one_line_error, perdure

import perdure as pd


async def _setup(url: str) -> list[str]:
    """Functions ``a`` (retention 1 hour) and ``b``: two ended runs of ``a``, one of ``b``,
    one queued run of ``a`` (paused); the worker stopped cleanly."""
    app = pd.App("clitest", url)

    @app.function(id="a", retention=timedelta(hours=1))
    async def a(ctx: pd.Context) -> int:
        return 1

    @app.function(id="b")
    async def b(ctx: pd.Context) -> int:
        return 2

    async with app, app.worker():
        done = [await app.start("a"), await app.start("a"), await app.start("b")]
        for h in done:
            await h.result(timeout=30)
    async with app:
        await app.pause("a")
        await app.start("a")  # queued while paused: not ended, never pruned
    return [h.run_id for h in done]


def _ended_long_ago(url: str, hours: float) -> None:
    """Move every ended run's end back by ``hours`` (the CLI runs on the real clock)."""
    import sqlite3

    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE runs SET ended_at = ended_at - ? WHERE ended_at IS NOT NULL", (hours * 3600,)
        )


def test_functions_pause_resume_and_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    asyncio.run(_setup(url))
    env_args = ["--database-url", url]
    r = perdure("functions", *env_args)
    assert r.returncode == 0, r.stderr
    states = {line.split()[0]: line.split()[-1] for line in r.stdout.splitlines()[1:]}
    assert states == {"a": "paused", "b": "active"}
    r = perdure("functions", "resume", "a", "--json", *env_args)
    assert r.returncode == 0 and json.loads(r.stdout) == {
        "id": "a",
        "paused": False,
        "paused_at": None,
    }
    r = perdure("functions", "pause", "b", *env_args)
    assert r.returncode == 0 and r.stdout.startswith("b paused since ")
    r = perdure("functions", "show", "b", *env_args)
    assert "paused since" in r.stdout
    assert_one_line_error(perdure("functions", "pause", "zzz", *env_args), 1)
    # The worker of _setup stopped cleanly: no live worker, one stopped with --all.
    r = perdure("workers", *env_args)
    assert r.returncode == 0 and "no live workers" in r.stderr
    r = perdure("workers", "--all", "--json", *env_args)
    [w] = json.loads(r.stdout)["workers"]
    assert (
        w["status"] == "stopped" and w["app"] == "clitest" and sorted(w["functions"]) == ["a", "b"]
    )
    r = perdure("workers", "--all", *env_args)
    assert "stopped" in r.stdout and "WORKER" in r.stdout


def test_prune_dry_run_then_real(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    ids = asyncio.run(_setup(url))
    _ended_long_ago(url, 2)
    args = ["--database-url", url]
    r = perdure("prune", "--dry-run", "--json", *args)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "dry_run": True,
        "functions": [{"function_id": "a", "runs": 2}],
        "total": 2,
    }  # b keeps the default 30 days
    r = perdure("prune", "--dry-run", *args)
    assert "would be pruned; nothing was deleted" in r.stdout and "a" in r.stdout
    r = perdure("runs", "list", "--json", *args)
    assert {run["id"] for run in json.loads(r.stdout)["runs"]} >= set(ids)  # nothing deleted
    r = perdure("prune", "--older-than", "1h", "--dry-run", "--json", *args)
    assert json.loads(r.stdout)["functions"] == [
        {"function_id": "a", "runs": 2},
        {"function_id": "b", "runs": 1},
    ]
    r = perdure("prune", "--json", *args)
    assert json.loads(r.stdout)["deleted"] == 2
    r = perdure("runs", "list", "--json", *args)
    left = json.loads(r.stdout)["runs"]
    assert {run["function_id"] for run in left} == {"a", "b"}  # b's run, and a's queued one
    assert ids[2] in {run["id"] for run in left}
    r = perdure("prune", *args)
    assert r.returncode == 0 and "nothing to prune" in r.stdout
    assert_one_line_error(perdure("prune", "--older-than", "soon", *args), 2)
