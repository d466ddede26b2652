"""The ``perdure`` commands, run in subprocesses against a temporary database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import cli_app
import click
import pytest
from cli_helpers import Populated, assert_one_line_error, clean_env, perdure, perdure_many

import perdure as pd
from perdure.cli import cli


async def _populate(url: str) -> Populated:
    app = pd.App("clitest", url)
    for fdef in cli_app.app.functions.values():
        app.function(id=fdef.id, trigger=list(fdef.triggers))(fdef.fn)
    async with app:
        async with app.worker():
            done = await app.start("square", {"n": 12})
            assert await done.result(timeout=30) == 144
            sleeping = await app.start("nap", {})
            for _ in range(600):
                if await sleeping.status() == pd.RunStatus.SLEEPING:
                    break
                await asyncio.sleep(0.05)
            else:  # pragma: no cover
                raise AssertionError("the nap run never slept")
        queued = [(await app.start("square", {"n": i})).run_id for i in range(3)]
        to_cancel = (await app.start("nap", {"later": True})).run_id
    return Populated(url, done.run_id, sleeping.run_id, queued, to_cancel)


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    """A SQLite database with ``clitest`` registered: one completed run, one sleeping run and
    three queued runs of square, one of nap (no worker runs while the CLI tests look)."""
    folder: Path = tmp_path_factory.mktemp("cli")
    return asyncio.run(_populate(f"sqlite:///{folder}/perdure.db"))


COMMANDS = [
    [],
    ["dev"],
    ["server"],
    ["worker"],
    ["send"],
    ["runs"],
    ["runs", "list"],
    ["runs", "show"],
    ["runs", "cancel"],
    ["functions"],
    ["migrate"],
    ["version"],
]


def test_version() -> None:
    r = perdure("version")
    assert r.returncode == 0 and r.stdout.strip() == f"perdure {pd.__version__}"
    r = perdure("--version")
    assert r.returncode == 0 and pd.__version__ in r.stdout


def test_help_of_every_command() -> None:
    results = perdure_many([[*cmd, "--help"] for cmd in COMMANDS])
    for cmd, r in zip(COMMANDS, results, strict=True):
        assert r.returncode == 0, (cmd, r.stderr)
        assert r.stderr == "", (cmd, r.stderr)
        assert r.stdout.startswith(f"Usage: {' '.join(['perdure', *cmd])}"), r.stdout
        if cmd not in ([], ["version"], ["runs"]):
            assert "Example" in r.stdout, cmd
        if cmd not in ([], ["version"], ["runs"]):
            assert "PERDURE_" in r.stdout, cmd  # every option has an environment twin
    helps = dict(zip((" ".join(c) for c in COMMANDS), (r.stdout for r in results), strict=True))
    assert "PERDURE_DATABASE_URL" in helps["runs list"]
    assert "PERDURE_API_TOKEN" in helps["server"] and "--no-auth" in helps["server"]
    assert "PERDURE_PORT" in helps["dev"] and "8288" in helps["dev"]
    assert "perdure.demo:app" in helps["dev"]
    # no arguments at all: the help, not an error
    r = perdure()
    assert r.returncode == 0 and r.stdout.startswith("Usage: perdure") and not r.stderr


BAD_ARGUMENTS = [
    ["no-such-command"],
    ["runs", "list", "--status", "finished"],
    ["runs", "list", "--limit", "0"],
    ["runs", "list", "--cursor", "not-a-run-id"],
    ["runs", "list", "--database-url", "mysql://localhost/db"],
    ["runs", "show"],
    ["send", "has space"],
    ["send", "ok.name", "--data", "[1, 2]"],
    ["send", "ok.name", "--data", "{not json"],
    ["worker", "no_such_module_xyz:app"],
    ["worker", "cli_app:app", "--functions", "nope"],
    ["dev", "--port", "70000"],
    ["--env", "Bad-Name", "runs", "list"],
    ["server", "--no-auth", "--api-token", "abc"],
]


def test_bad_arguments_give_one_line_and_status_2(tmp_path: Path) -> None:
    results = perdure_many(BAD_ARGUMENTS, cwd=tmp_path)
    for argv, r in zip(BAD_ARGUMENTS, results, strict=True):
        line = assert_one_line_error(r, 2)
        assert len(line) < 400, (argv, line)
    messages = {" ".join(a): r.stderr for a, r in zip(BAD_ARGUMENTS, results, strict=True)}
    assert "'finished' is not one of" in messages["runs list --status finished"]
    assert "must be a JSON object" in messages["send ok.name --data [1, 2]"]
    assert "whitespace" in messages["send has space"]
    assert "no_such_module_xyz" in messages["worker no_such_module_xyz:app"]
    assert "invalid environment name 'Bad-Name'" in messages["--env Bad-Name runs list"]
    assert not (tmp_path / ".perdure").exists()  # nothing was created on the way
    # and through the interpreter's own entry, as a shell runs it
    assert "'finished'" in assert_one_line_error(
        perdure("runs", "list", "--status", "finished", cwd=tmp_path), 2
    )


def test_failures_give_one_line_and_status_1(tmp_path: Path, populated: Populated) -> None:
    r = perdure("runs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--database-url", populated.url)
    assert "no run with id" in assert_one_line_error(r, 1)
    r = perdure("runs", "list", cwd=tmp_path)  # no database here
    assert "no database" in assert_one_line_error(r, 1)
    r = perdure("send", "some.event", cwd=tmp_path)  # not into a database nobody serves
    assert "no database" in assert_one_line_error(r, 1)
    assert not (tmp_path / ".perdure").exists()
    r = perdure("runs", "cancel", "nope", "--database-url", populated.url)
    assert "no run" in assert_one_line_error(r, 1)


def test_migrate_creates_and_reports_the_schema(tmp_path: Path) -> None:
    # The folder of a SQLite file must exist (only ./.perdure/ is created: see
    # test_cli_database.py); the file itself is created.
    (tmp_path / "sub").mkdir()
    url = f"sqlite:///{tmp_path}/sub/db.sqlite"
    first = perdure("migrate", "--database-url", url)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "sub" / "db.sqlite").exists()
    assert "schema version" in first.stdout and "up to date" in first.stdout
    again = perdure("migrate", "--database-url", url)
    assert again.returncode == 0 and again.stdout == first.stdout


def test_migrate_uses_the_environment_and_the_default_location(tmp_path: Path) -> None:
    r = perdure("migrate", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ".perdure" / "perdure.db").exists()


def test_functions(populated: Populated) -> None:
    r = perdure("functions", "--database-url", populated.url)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["FUNCTION", "APP", "TRIGGERS", "STATE"]
    text = r.stdout
    assert "event cli/shout" in text
    assert "cron 0 9 * * * (Europe/Paris)" in text
    assert "square" in text and "direct" in text
    data = json.loads(perdure("functions", "--json", "--database-url", populated.url).stdout)
    assert sorted(f["id"] for f in data["functions"]) == ["nap", "shout", "square"]


def test_send(populated: Populated, tmp_path: Path) -> None:
    r = perdure("send", "cli/shout", "--data", '{"text": "hey"}', "--database-url", populated.url)
    assert r.returncode == 0, r.stderr
    event_id = r.stdout.strip()
    assert len(event_id) == 26
    assert "started 1 run(s)" in r.stderr
    run_id = r.stderr.strip().rsplit(" ", 1)[-1]

    async def check() -> None:
        async with pd.App("check", populated.url) as app:
            run = await app.get_run(run_id)
            assert run.function_id == "shout" and run.event.id == event_id
            assert run.event.data == {"text": "hey"}
            runs = await app.list_runs(function="shout")
            assert run_id in [r.id for r in runs]

    asyncio.run(check())
    # an explicit id deduplicates; data from stdin; JSON output
    first = perdure("send", "cli/other", "--id", "evt-1", "--database-url", populated.url)
    assert first.stdout.strip() == "evt-1" and "started no runs" in first.stderr
    dup = perdure(
        "send",
        "cli/other",
        "--id",
        "evt-1",
        "--data",
        "-",
        "--json",
        "--database-url",
        populated.url,
        input='{"from": "stdin"}',
    )
    assert dup.returncode == 0, dup.stderr
    assert json.loads(dup.stdout)["events"] == [
        {"id": "evt-1", "duplicate": True, "run_ids": [], "skipped": []}
    ]


def test_runs_list(populated: Populated) -> None:
    r = perdure("runs", "list", "--database-url", populated.url)
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split()[:3] == ["RUN", "FUNCTION", "STATUS"]
    by_id = {row.split()[0]: row.split() for row in rows}
    assert by_id[populated.completed][1:3] == ["square", "completed"]
    assert by_id[populated.sleeping][1:3] == ["nap", "sleeping"]
    for run_id in populated.queued:
        assert by_id[run_id][2] == "queued"
    # pagination through --json and --cursor
    seen: list[str] = []
    cursor: str | None = None
    while True:
        argv = [
            "runs",
            "list",
            "--function",
            "square",
            "--limit",
            "2",
            "--json",
            "--database-url",
            populated.url,
        ]
        if cursor:
            argv += ["--cursor", cursor]
        page = json.loads(perdure(*argv).stdout)
        seen += [run["id"] for run in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [*reversed(populated.queued), populated.completed]
    page = json.loads(
        perdure(
            "runs", "list", "--status", "queued", "--json", "--database-url", populated.url
        ).stdout
    )
    assert set(populated.queued) <= {run["id"] for run in page["runs"]}
    assert {run["status"] for run in page["runs"]} == {"queued"}
    table = perdure("runs", "list", "--limit", "1", "--database-url", populated.url)
    assert len(table.stdout.splitlines()) == 2 and "--cursor" in table.stderr


def test_runs_show(populated: Populated) -> None:
    r = perdure("runs", "show", populated.completed, "--database-url", populated.url)
    assert r.returncode == 0, r.stderr
    fields = dict(line.split(None, 1) for line in r.stdout.splitlines()[:9] if " " in line)
    assert fields["status"] == "completed"
    assert fields["function"] == "square"
    assert fields["output"] == "144"
    assert "square" in r.stdout.split("steps", 1)[1]
    shown = json.loads(
        perdure(
            "runs", "show", populated.completed, "--json", "--database-url", populated.url
        ).stdout
    )
    assert shown["output"] == 144 and shown["steps"][0]["id"] == "square"
    assert shown["steps"][0]["output"] == 144
    r = perdure("runs", "show", populated.sleeping, "--database-url", populated.url)
    assert "sleeping" in r.stdout and "until" in r.stdout


def test_runs_cancel(populated: Populated) -> None:
    target = populated.to_cancel
    r = perdure("runs", "cancel", target, "--database-url", populated.url)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"run {target}: cancelled"
    shown = json.loads(
        perdure("runs", "show", target, "--json", "--database-url", populated.url).stdout
    )
    assert shown["status"] == "cancelled"
    again = perdure("runs", "cancel", target, "--database-url", populated.url)
    assert again.returncode == 0 and "already ended" in again.stdout


@pytest.mark.parametrize("env_name", ["PERDURE_DATABASE_URL"])
def test_database_url_from_the_environment(populated: Populated, env_name: str) -> None:
    r = perdure("runs", "list", "--json", env=clean_env(**{env_name: populated.url}))
    assert r.returncode == 0, r.stderr
    assert populated.completed in [run["id"] for run in json.loads(r.stdout)["runs"]]


def _options(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[str, click.Option, click.Context]]:
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("help", "version"):
            yield ctx.command_path, param, ctx
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options(sub, click.Context(sub, info_name=name, parent=ctx))


def test_every_option_has_an_environment_twin() -> None:
    root = click.Context(cli, info_name="perdure", auto_envvar_prefix="PERDURE")
    seen = 0
    for path, param, ctx in _options(cli, root):
        record = param.get_help_record(ctx)
        assert record is not None, (path, param.name)
        assert "env var: PERDURE_" in record[1], (path, param.name, record)
        seen += 1
    assert seen >= 25


def test_an_environment_twin_works(populated: Populated) -> None:
    env = clean_env(PERDURE_DATABASE_URL=populated.url, PERDURE_RUNS_LIST_LIMIT="1")
    r = perdure("runs", "list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["runs"]) == 1
