"""The database URL at the CLI's edge: passwords never printed, malformed URLs refused as bad
arguments, an unreachable database reported in one line, SQLite folders never made up."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from cli_helpers import Background, assert_one_line_error, clean_env, perdure, perdure_many

from conftest import new_pg_schema_url
from perdure.cli.output import redact_url

PASSWORD = "pa55-w0rd-never-printed"


def with_password(url: str, password: str = PASSWORD) -> str:
    """``url`` with ``password`` in its user information (the test server trusts local
    connections, so any password works; a URL that has one keeps its own)."""
    parts = urlsplit(url)
    if parts.password is not None:
        return url
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def secret_of(url: str) -> str:
    password = urlsplit(url).password
    assert password
    return password


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema, on a URL that carries a password."""
    for url in new_pg_schema_url():
        yield with_password(url)


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_hidden(url: str, *texts: str) -> None:
    secret = secret_of(url)
    for text in texts:
        assert secret not in text, text


# ---------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob:s3cret@db.example:5432/app", "postgresql://bob:***@db.example:5432/app"),
        ("postgres://:s3cret@db/app", "postgres://:***@db/app"),
        ("postgresql://bob@db/app", "postgresql://bob@db/app"),
        ("postgresql://b:p@ss@db/app?sslmode=require", "postgresql://b:***@db/app?sslmode=require"),
        (
            "postgresql://db/app?password=s3cret&schema=x",
            "postgresql://db/app?password=***&schema=x",
        ),
        ("postgresql://db/app?x=1&PASSWORD=s3cret", "postgresql://db/app?x=1&PASSWORD=***"),
        ("sqlite:///.perdure/perdure.db", "sqlite:///.perdure/perdure.db"),
        ("sqlite:////var/lib/a:b@c.db", "sqlite:////var/lib/a:b@c.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.postgres
def test_migrate_hides_the_password(pg_url: str) -> None:
    r = perdure("migrate", "--database-url", pg_url)
    assert r.returncode == 0, r.stderr
    assert redact_url(pg_url) in r.stdout and ":***@" in r.stdout
    assert "up to date" in r.stdout
    assert_hidden(pg_url, r.stdout, r.stderr)
    # a password given as a query parameter, through the environment twin
    plain = pg_url.replace(f":{PASSWORD}@", "@")
    env_url = f"{plain}&password={PASSWORD}"
    r = perdure("migrate", env=clean_env(PERDURE_DATABASE_URL=env_url))
    assert r.returncode == 0, r.stderr
    assert "password=***" in r.stdout
    assert PASSWORD not in r.stdout + r.stderr


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("args", "banner"),
    [
        (["dev", "--port", "0"], "perdure dev: serving"),
        (["server", "--port", "0", "--no-auth"], "perdure server: serving"),
    ],
)
def test_dev_and_server_banners_hide_the_password(
    tmp_path: Path, pg_url: str, args: list[str], banner: str
) -> None:
    proc = Background(tmp_path, [*args, "--database-url", pg_url], clean_env())
    try:
        out = proc.wait_for(banner)
    finally:
        status = proc.stop()
    assert status == 0, proc.stderr()
    assert f"database {redact_url(pg_url)};" in out
    assert_hidden(pg_url, proc.stdout(), proc.stderr())


@pytest.mark.postgres
def test_the_worker_log_hides_the_password(tmp_path: Path, pg_url: str) -> None:
    env = clean_env(PERDURE_DATABASE_URL=pg_url, PERDURE_LOG_LEVEL="info")
    proc = Background(tmp_path, ["worker", "cli_app:app"], env)
    try:
        logged = proc.wait_for("hosting", stream="stderr")
    finally:
        status = proc.stop()
    assert status == 0, proc.stderr()
    assert f"on {redact_url(pg_url)}" in logged
    assert_hidden(pg_url, proc.stdout(), proc.stderr())


# ---------------------------------------------------------------------- unreachable


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    url = f"postgresql://bob:{PASSWORD}@127.0.0.1:{closed_port()}/nowhere"
    commands = [
        ["runs", "list", "--database-url", url],
        ["functions", "--database-url", url],
        ["send", "some.event", "--database-url", url],
        ["migrate", "--database-url", url],
        ["dev", "--port", "0", "--database-url", url],
        ["server", "--port", "0", "--no-auth", "--database-url", url],
        ["worker", "cli_app:app", "--database-url", url],
    ]
    for argv, r in zip(commands, perdure_many(commands, cwd=tmp_path), strict=True):
        line = assert_one_line_error(r, 1)
        assert f"cannot open the database {redact_url(url)}: " in line, (argv, line)
        assert "refused" in line.lower(), (argv, line)
        assert_hidden(url, r.stdout, r.stderr)
        assert not r.stdout.strip(), (argv, r.stdout)  # no banner before the failure


# ---------------------------------------------------------------------- malformed


MALFORMED = [
    (f"postgresql://bob:{PASSWORD}@[::1/db", "Invalid IPv6 URL"),
    ("sqlite:///x.db?busy_timeout=soon", "busy_timeout must be a number of seconds"),
    ("sqlite:///x.db?journal=off", "unknown SQLite URL option"),
    (f"mysql://bob:{PASSWORD}@db/app", "unsupported database URL"),
    (f"postgresql://bob:{PASSWORD}@db/app?nonsense=1", "invalid PostgreSQL URL"),
    ("sqlite://relative.db", "sqlite:///path.db"),
]


def test_a_malformed_url_is_a_bad_argument_on_every_command(tmp_path: Path) -> None:
    commands: list[list[str]] = []
    for url, _ in MALFORMED:
        commands += [
            ["runs", "list", "--database-url", url],
            ["runs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--database-url", url],
            ["runs", "cancel", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--database-url", url],
            ["functions", "--database-url", url],
            ["send", "some.event", "--database-url", url],
            ["migrate", "--database-url", url],
            ["dev", "--port", "0", "--database-url", url],
            ["server", "--port", "0", "--no-auth", "--database-url", url],
            ["worker", "cli_app:app", "--database-url", url],
        ]
    results = perdure_many(commands, cwd=tmp_path)
    expected = dict(MALFORMED)
    for argv, r in zip(commands, results, strict=True):
        line = assert_one_line_error(r, 2)
        assert "'--database-url'" in line, (argv, line)
        assert expected[argv[-1]] in line, (argv, line)
        assert PASSWORD not in r.stdout + r.stderr, (argv, line)
        assert "ValueError" not in line, (argv, line)
    assert list(tmp_path.iterdir()) == []  # nothing was created on the way
    # the environment twin is checked the same way
    r = perdure("migrate", env=clean_env(PERDURE_DATABASE_URL=MALFORMED[0][0]), cwd=tmp_path)
    assert "Invalid IPv6 URL" in assert_one_line_error(r, 2)
    assert PASSWORD not in r.stderr


# ---------------------------------------------------------------------- SQLite folders


def test_migrate_refuses_a_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    r = perdure("migrate", "--database-url", f"sqlite:///{missing}/x.db", cwd=tmp_path)
    line = assert_one_line_error(r, 1)
    assert f"no folder {missing} " in line and "create it first" in line
    assert not (tmp_path / "no").exists()
    # the issue's own example: an absolute path under a folder that is not there
    if not os.path.exists("/nonexistent"):
        r = perdure("migrate", "--database-url", "sqlite:////nonexistent/dir/x.db", cwd=tmp_path)
        assert "no folder /nonexistent/dir " in assert_one_line_error(r, 1)
        assert not os.path.exists("/nonexistent")


def test_no_command_makes_up_a_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing/x.db"
    commands = [
        ["dev", "--port", "0", "--database-url", url],
        ["server", "--port", "0", "--no-auth", "--database-url", url],
        ["worker", "cli_app:app", "--database-url", url],
    ]
    for argv, r in zip(commands, perdure_many(commands, cwd=tmp_path), strict=True):
        assert "no folder" in assert_one_line_error(r, 1), argv
    for argv in (["runs", "list"], ["functions"], ["send", "x.y"]):
        r = perdure(*argv, "--database-url", url, cwd=tmp_path)
        assert "no database at" in assert_one_line_error(r, 1), argv
    assert list(tmp_path.iterdir()) == []


def test_dev_creates_the_default_folder(tmp_path: Path) -> None:
    """The README's zero-setup path: `perdure dev` in an empty directory."""
    proc = Background(tmp_path, ["dev", "--port", "0"], clean_env(PERDURE_LOG_LEVEL="warning"))
    try:
        out = proc.wait_for("Ctrl+C")
    finally:
        status = proc.stop()
    assert status == 0, proc.stderr()
    assert "database sqlite:///.perdure/perdure.db;" in out
    assert (tmp_path / ".perdure" / "perdure.db").exists()
    # the default location, named explicitly, is the default location
    (tmp_path / ".perdure" / "perdure.db").unlink()
    for extra in ("-wal", "-shm"):
        (tmp_path / ".perdure" / f"perdure.db{extra}").unlink(missing_ok=True)
    (tmp_path / ".perdure").rmdir()
    r = perdure("migrate", "--database-url", "sqlite:///.perdure/perdure.db", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ".perdure" / "perdure.db").exists()
