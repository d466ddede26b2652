"""``perdure schedules ...``, run in subprocesses against a temporary database, as a user would."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import cli_app
import pytest
from cli_helpers import Background, assert_one_line_error, clean_env, perdure, perdure_many

import perdure as pd


async def _register(url: str) -> None:
    app = pd.App("clitest", url)
    for fdef in cli_app.app.functions.values():
        app.function(id=fdef.id, trigger=list(fdef.triggers))(fdef.fn)
    async with app:
        await app.register()


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A SQLite database with the functions of ``clitest`` registered, and no worker."""
    url = f"sqlite:///{tmp_path}/perdure.db"
    asyncio.run(_register(url))
    return url


SUBCOMMANDS = ["list", "show", "create", "pause", "resume", "delete", "trigger"]


def test_help_of_every_schedules_command() -> None:
    results = perdure_many(
        [["schedules", "--help"]] + [["schedules", c, "--help"] for c in SUBCOMMANDS]
    )
    for name, r in zip(["", *SUBCOMMANDS], results, strict=True):
        assert r.returncode == 0 and r.stderr == "", (name, r.stderr)
        assert r.stdout.startswith(f"Usage: perdure schedules {name}".rstrip()), r.stdout
        assert "Example" in r.stdout, name
        if name:
            assert "PERDURE_DATABASE_URL" in r.stdout, name


def test_create_show_list_pause_resume_trigger_delete(db: str) -> None:
    u = ["--database-url", db]
    r = perdure(
        "schedules",
        "create",
        "daily",
        "square",
        "0 9 * * 1-5",
        "--tz",
        "Europe/Paris",
        "--data",
        '{"n": 7}',
        "--overlap",
        "allow",
        "--catchup",
        "all",
        "--catchup-window",
        "2h",
        *u,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("schedule daily created: square at 0 9 * * 1-5 (Europe/Paris)")
    r = perdure("schedules", "show", "daily", "--json", *u)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert (shown["id"], shown["function_id"], shown["data"]) == ("daily", "square", {"n": 7})
    assert (shown["overlap"], shown["catchup"], shown["catchup_window"]) == ("allow", "all", 7200.0)
    assert shown["paused"] is False and shown["next_tick"] is not None
    results = perdure_many(
        [
            ["schedules", "create", "b-other", "shout", "@hourly", "--paused", "--json", *u],
            ["schedules", "show", "daily", *u],
            ["schedules", "pause", "daily", *u],
            ["schedules", "list", *u],
            ["schedules", "list", "--json", "--limit", "1", *u],
            ["schedules", "list", "--json", "--function", "square", *u],
            ["schedules", "resume", "daily", "--json", *u],
            ["schedules", "trigger", "daily", *u],
        ]
    )
    for r in results:
        assert r.returncode == 0, (r.args, r.stderr)
    created, show, paused, listed, page, by_fn, resumed, triggered = results
    assert json.loads(created.stdout)["paused"] is True
    assert "state     active" in show.stdout and "0 run(s)" in show.stdout
    assert paused.stdout.strip() == "schedule daily: paused"
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "SCHEDULE",
        "FUNCTION",
        "CRON",
        "STATE",
        "NEXT",
        "TICK",
        "(UTC)",
        "RUNS",
    ]
    assert lines[1].startswith("b-other") and "paused" in lines[1] and lines[1].endswith("0")
    assert lines[2].startswith("daily") and "paused" in lines[2]
    one = json.loads(page.stdout)
    assert [s["id"] for s in one["schedules"]] == ["b-other"] and one["next_cursor"] == "b-other"
    assert "more: perdure schedules list --cursor" not in page.stderr  # JSON carries the cursor
    assert [s["id"] for s in json.loads(by_fn.stdout)["schedules"]] == ["daily"]
    assert json.loads(resumed.stdout)["paused"] is False
    run_id = triggered.stdout.strip()
    assert len(run_id) == 26
    r = perdure("runs", "show", run_id, "--json", *u)
    run = json.loads(r.stdout)
    assert run["event"]["schedule"] == {
        "id": "daily",
        "tick": run["event"]["schedule"]["tick"],
        "manual": True,
    }
    assert run["event"]["data"] == {"n": 7} and run["status"] == "queued"
    r = perdure("schedules", "list", "--cursor", "b-other", *u)
    assert r.returncode == 0 and r.stdout.splitlines()[1].startswith("daily")
    r = perdure("schedules", "delete", "daily", *u)
    assert r.returncode == 0 and r.stdout.strip() == "schedule daily: deleted"
    assert "no schedule with id 'daily'" in assert_one_line_error(
        perdure("schedules", "show", "daily", *u), 1
    )


def test_bad_arguments_give_one_line_and_status_2(db: str, tmp_path: Path) -> None:
    u = ["--database-url", db]
    bad = [
        ["schedules", "create", "has space", "square", "@daily", *u],
        ["schedules", "create", "s", "square", "61 * * * *", *u],
        ["schedules", "create", "s", "square", "@daily", "--tz", "Mars/Olympus", *u],
        ["schedules", "create", "s", "square", "@daily", "--data", "[1]", *u],
        ["schedules", "create", "s", "square", "@daily", "--overlap", "queue", *u],
        ["schedules", "create", "s", "square", "@daily", "--catchup", "every", *u],
        ["schedules", "create", "s", "square", "@daily", "--catchup-window", "-2h", *u],
        ["schedules", "create", "s", "square", *u],
        ["schedules", "list", "--cursor", "no spaces", *u],
        ["schedules", "list", "--limit", "0", *u],
    ]
    results = perdure_many(bad, cwd=tmp_path)
    lines = [assert_one_line_error(r, 2) for r in results]
    assert "schedule id 'has space'" in lines[0]
    assert "'CRON'" in lines[1] and "minute" in lines[1]
    assert "'--tz'" in lines[2] and "Mars/Olympus" in lines[2]
    assert "must be a JSON object" in lines[3]
    assert "'queue' is not one of" in lines[4]
    assert "'--catchup-window'" in lines[6]
    assert "CRON" in lines[7]
    r = perdure("schedules", "list", *u)
    assert r.returncode == 0 and "no schedules" in r.stderr  # nothing was created


def test_failures_give_one_line_and_status_1(db: str) -> None:
    u = ["--database-url", db]
    assert perdure("schedules", "create", "taken", "square", "@daily", *u).returncode == 0
    results = perdure_many(
        [
            ["schedules", "create", "taken", "square", "@daily", *u],
            ["schedules", "create", "s", "ghost", "@daily", *u],
            ["schedules", "show", "nope", *u],
            ["schedules", "pause", "nope", *u],
            ["schedules", "resume", "nope", *u],
            ["schedules", "delete", "nope", *u],
            ["schedules", "trigger", "nope", *u],
        ]
    )
    lines = [assert_one_line_error(r, 1) for r in results]
    assert "'taken' already exists" in lines[0]
    assert "no function with id 'ghost'" in lines[1]
    assert all("no schedule with id 'nope'" in line for line in lines[2:])


def test_a_worker_process_fires_a_schedule_the_cli_created(db: str, tmp_path: Path) -> None:
    u = ["--database-url", db]
    worker = Background(tmp_path, ["worker", "cli_app:app", *u], clean_env())
    try:
        worker.wait_for("hosting", stream="stderr")
        r = perdure(
            "schedules", "create", "every-second", "square", "* * * * * *", "--data", '{"n": 3}', *u
        )
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 30
        while True:
            shown = json.loads(perdure("schedules", "show", "every-second", "--json", *u).stdout)
            if shown["last_run_id"]:
                run = json.loads(perdure("runs", "show", shown["last_run_id"], "--json", *u).stdout)
                if run["status"] == "completed":
                    break
            assert time.monotonic() < deadline, shown
            time.sleep(0.2)
        assert run["output"] == 9
        assert run["event"]["schedule"]["id"] == "every-second"
        assert run["event"]["schedule"]["manual"] is False
        assert perdure("schedules", "pause", "every-second", *u).returncode == 0
    finally:
        assert worker.stop() == 0, worker.stderr()
