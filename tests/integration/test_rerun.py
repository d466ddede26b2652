"""Rerun and replay from a step, at the SDK and the CLI: a replay keeps the recorded results of
the steps before the named one (their bodies do not run again) and executes from it on; a rerun
executes everything again. Bodies are counted by the test's own steps."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import perdure


def build(ledger: Counter[str], broken: dict[str, bool]) -> perdure.App:
    app = perdure.App("rr", retention=None)

    def body(name: str) -> Any:
        def run() -> str:
            ledger[name] += 1
            if name == "c" and broken["c"]:
                raise perdure.NonRetriableError("c is broken")
            return f"{name}{ledger[name]}"

        return run

    async def order(ctx: perdure.Context) -> list[str]:
        out = [await ctx.step.run(k, body(k)) for k in ("a", "b")]
        await ctx.step.sleep("nap", 0.01)
        out.append(await ctx.step.run("c", body("c")))
        return out

    app.function(id="plain", retries=0)(order)
    app.function(id="limited", retries=0, concurrency=3)(order)  # the gated claim path

    @app.function(id="once", idempotency="event.data.n")
    async def once(ctx: perdure.Context) -> Any:
        return await ctx.step.run("a", body("once"))

    @app.function(id="waits")
    async def waits(ctx: perdure.Context) -> Any:
        return await ctx.step.wait_for_event("w", event="never.sent", timeout=3600)

    return app


async def ended(app: perdure.App, run_id: str) -> perdure.RunInfo:
    deadline = time.monotonic() + 60
    while True:
        run = await app.get_run(run_id)
        if run.status.terminal:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is still {run.status}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("fid", ["plain", "limited"])
async def test_replay_keeps_the_steps_before_and_rerun_runs_everything(
    db_url: str, fid: str
) -> None:
    ledger: Counter[str] = Counter()
    broken = {"c": True}
    app = build(ledger, broken)
    app.database_url = db_url
    async with app, app.worker():
        first = await ended(app, (await app.start(fid, {"n": 1})).run_id)
        assert first.status is perdure.RunStatus.FAILED
        assert ledger == {"a": 1, "b": 1, "c": 1}

        broken["c"] = False
        replay = await app.replay(first.id, from_step="c")
        done = await ended(app, replay.run_id)
        assert done.status is perdure.RunStatus.COMPLETED
        assert done.output == ["a1", "b1", "c2"]  # a and b: the original's results
        assert ledger == {"a": 1, "b": 1, "c": 2}
        assert (done.replay_of, done.replay_from_step, done.rerun_of) == (first.id, "c", None)
        assert done.event.data == {"n": 1} and done.event.id == first.event.id
        kept = {s.id: s.output for s in done.steps}
        assert kept == {"a": "a1", "b": "b1", "nap": None, "c": "c2"}

        # From an earlier step: it and everything after it run again.
        again = await ended(app, (await app.replay(done.id, from_step="b")).run_id)
        assert again.output == ["a1", "b2", "c3"]
        assert ledger == {"a": 1, "b": 2, "c": 3}

        rerun = await ended(app, (await app.rerun(first.id)).run_id)
        assert rerun.status is perdure.RunStatus.COMPLETED and rerun.output == ["a2", "b3", "c4"]
        assert (rerun.rerun_of, rerun.replay_of, rerun.replay_from_step) == (first.id, None, None)
        assert ledger == {"a": 2, "b": 3, "c": 4}
        # The originals are untouched.
        assert (await app.get_run(first.id)).status is perdure.RunStatus.FAILED

        with pytest.raises(perdure.InvalidInputError, match="'nope'"):
            await app.replay(first.id, from_step="nope")
        with pytest.raises(perdure.RunNotFoundError):
            await app.replay("01J00000000000000000000000", from_step="a")
        with pytest.raises(perdure.RunNotFoundError):
            await app.rerun("01J00000000000000000000000")


async def test_replay_needs_an_ended_run_rerun_does_not(db_url: str) -> None:
    app = build(Counter(), {"c": False})
    app.database_url = db_url
    async with app, app.worker():
        handle = await app.start("waits")
        deadline = time.monotonic() + 60
        while (await app.get_run(handle.run_id)).status is not perdure.RunStatus.WAITING:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        with pytest.raises(perdure.RunNotEndedError, match="waiting"):
            await app.replay(handle.run_id, from_step="w")
        second = await app.rerun(handle.run_id)
        assert (await app.get_run(second.run_id)).rerun_of == handle.run_id
        for run_id in (handle.run_id, second.run_id):
            await app.cancel(run_id)


async def test_a_rerun_is_not_refused_by_the_functions_idempotency(db_url: str) -> None:
    ledger: Counter[str] = Counter()
    app = build(ledger, {"c": False})
    app.database_url = db_url
    async with app, app.worker():
        first = await ended(app, (await app.start("once", {"n": 5})).run_id)
        dup = await ended(app, (await app.start("once", {"n": 5})).run_id)
        assert dup.status is perdure.RunStatus.SKIPPED  # the same key within 24 hours
        rerun = await ended(app, (await app.rerun(first.id)).run_id)
        assert rerun.status is perdure.RunStatus.COMPLETED and rerun.output == "once2"
        replay = await ended(app, (await app.replay(first.id, from_step="a")).run_id)
        assert replay.output == "once3" and ledger == {"once": 3}


def test_sync_twins(tmp_path: Path) -> None:
    app = build(Counter(), {"c": False})
    app.database_url = f"sqlite:///{tmp_path}/sync.db"
    try:
        app.bridge.call(app.register())
        queued = app.start_sync("plain", {"n": 2})
        with pytest.raises(perdure.RunNotEndedError):
            app.replay_sync(queued.run_id, from_step="a")
        rerun = app.rerun_sync(queued.run_id)
        info = app.get_run_sync(rerun.run_id)
        assert info.rerun_of == queued.run_id and info.event.data == {"n": 2}
        app.cancel_sync(queued.run_id)
        with pytest.raises(perdure.InvalidInputError, match="no step 'a'"):
            app.replay_sync(queued.run_id, from_step="a")
    finally:
        app.close_sync()


def perdure_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perdure.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
    )


async def test_cli_rerun_and_replay(tmp_path: Path) -> None:
    ledger: Counter[str] = Counter()
    broken = {"c": True}
    app = build(ledger, broken)
    db = f"sqlite:///{tmp_path}/cli.db"
    app.database_url = db
    async with app, app.worker():
        first = await ended(app, (await app.start("plain")).run_id)
        broken["c"] = False
        res = await asyncio.to_thread(
            perdure_cli, "runs", "replay", first.id, "--from-step", "c", "--database-url", db
        )
        assert res.returncode == 0, res.stderr
        assert f"replay of {first.id} from step c (3 steps kept)" in res.stdout
        new_id = res.stdout.split()[1].rstrip(":")
        assert (await ended(app, new_id)).output == ["a1", "b1", "c2"]
        shown = await asyncio.to_thread(perdure_cli, "runs", "show", new_id, "--database-url", db)
        assert f"replay of {first.id} from step c" in shown.stdout, shown.stderr

        res = await asyncio.to_thread(
            perdure_cli, "runs", "rerun", first.id, "--json", "--database-url", db
        )
        assert res.returncode == 0, res.stderr
        rerun = json.loads(res.stdout)
        assert rerun["rerun_of"] == first.id and rerun["replay_of"] is None
        assert (await ended(app, rerun["id"])).output == ["a2", "b2", "c3"]
        assert ledger == {"a": 2, "b": 2, "c": 3}

        bad = await asyncio.to_thread(
            perdure_cli, "runs", "replay", first.id, "--from-step", "zz", "--database-url", db
        )
        assert bad.returncode != 0 and "'zz'" in bad.stderr
