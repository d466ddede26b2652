"""What the commands share: options (each with its ``PERDURE_*`` twin), the database URL
rules, loading an app, and running a coroutine against an opened app.

Database URL rules (also in each command's ``--help`` and in docs/http-api.md):

- A malformed ``--database-url`` (``PERDURE_DATABASE_URL``) is a bad argument: one line, status
  2, before anything is opened. Its password is never printed (``postgresql://user:***@...``).
- A database that cannot be reached or opened: one line, status 1.
- The folder of a SQLite database must exist; perdure creates only its default folder,
  ``./.perdure/`` (so ``perdure dev`` works in an empty directory). The commands that read or
  write an existing database (``send``, ``runs``, ``functions``) also need the file itself.
"""

from __future__ import annotations

import asyncio
import getpass
import importlib
import os
import socket
import sqlite3
import sys
import traceback
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
import orjson

from perdure.app import App
from perdure.cli.output import hide_url, one_line, redact_url
from perdure.environments import check_env
from perdure.errors import InvalidInputError, StoreUnavailableError
from perdure.logs import LOG_FORMATS
from perdure.store import DEFAULT_SQLITE_PATH, open_store

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)
DEFAULT_FOLDER = os.path.dirname(DEFAULT_SQLITE_PATH)
_URL_HINT = "'--database-url'"


# ---------------------------------------------------------------------- debugging


def debug() -> bool:
    """Whether ``PERDURE_DEBUG`` asks for tracebacks."""
    return os.environ.get("PERDURE_DEBUG", "") not in ("", "0")


def debug_traceback() -> None:
    """Print the current exception's traceback when ``PERDURE_DEBUG`` is set."""
    if debug():
        traceback.print_exc()


def debug_hint() -> str:
    """The hint appended to unexpected errors."""
    return "" if debug() else " (set PERDURE_DEBUG=1 for the traceback)"


# ---------------------------------------------------------------------- options


def option(*decls: str, **attrs: Any) -> Callable[[F], F]:
    """``click.option`` that shows its environment twin in ``--help``."""
    attrs.setdefault("show_envvar", True)
    return click.option(*decls, **attrs)


def _database_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a malformed database URL as a bad argument, before anything is opened."""
    if value is None:
        return None
    hide_url(value)
    try:
        open_store(value)
    except InvalidInputError as exc:
        raise click.BadParameter(one_line(exc.message), ctx, param_hint=_URL_HINT) from None
    except ValueError as exc:  # what a URL parser raises, e.g. for a broken IPv6 host
        raise click.BadParameter(
            f"{redact_url(value)} is not a valid database URL: {one_line(str(exc))}",
            ctx,
            param_hint=_URL_HINT,
        ) from None
    return value


def env_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a malformed ``--env`` as a bad argument."""
    if value is None:
        return None
    try:
        return check_env(value)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message, ctx, param_hint="'--env'") from None


def selected_env() -> str | None:
    """The ``perdure --env`` (``PERDURE_ENV``) of the running command, if one was given."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None
    env = ctx.find_root().params.get("env")
    return env if isinstance(env, str) else None


def use_env(app: App) -> None:
    """Put ``app`` in the environment ``perdure --env`` selects, if one was given."""
    env = selected_env()
    if env is not None:
        app.env = env


def cli_actor() -> str:
    """Who the audit trail records for a command: ``cli:<login>@<host>``."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def database_option(f: F) -> F:
    """``--database-url`` / ``PERDURE_DATABASE_URL``, validated as it is parsed."""
    return option(
        "--database-url",
        envvar="PERDURE_DATABASE_URL",
        default=None,
        metavar="URL",
        callback=_database_url,
        help="sqlite:///path.db (its folder must exist) or postgresql://... "
        "[default: sqlite:///.perdure/perdure.db, folder created]",
    )(f)


def log_option(f: F) -> F:
    """``--log-level`` / ``PERDURE_LOG_LEVEL`` and ``--log-format`` / ``PERDURE_LOG_FORMAT``."""
    f = option(
        "--log-format",
        envvar="PERDURE_LOG_FORMAT",
        type=click.Choice(LOG_FORMATS, case_sensitive=False),
        default="text",
        show_default=True,
        help="Log lines as text, or one JSON object per line (with run_id, function_id, "
        "step_id and attempt when known).",
    )(f)
    return option(
        "--log-level",
        envvar="PERDURE_LOG_LEVEL",
        type=LOG_LEVELS,
        default="info",
        show_default=True,
        help="Log level (to stderr).",
    )(f)


def json_option(f: F) -> F:
    """``--json``: print the API's JSON shape instead of a table."""
    return option("--json", "as_json", is_flag=True, help="Print JSON (the API's shape).")(f)


def json_arg(text: str, option_hint: str) -> dict[str, Any]:
    """A JSON object argument (``-``: read from stdin)."""
    if text == "-":
        text = sys.stdin.read()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(
            f"not valid JSON: {exc.msg} at column {exc.colno}", param_hint=option_hint
        ) from None
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else type(value).__name__
        raise click.BadParameter(f"must be a JSON object, not {kind}", param_hint=option_hint)
    return value


# ---------------------------------------------------------------------- databases


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///`` URL (``None`` for other databases)."""
    if not url.startswith("sqlite:///"):
        return None
    return url[len("sqlite:///") :].partition("?")[0]


def check_folder(url: str | None) -> None:
    """Refuse a SQLite database whose folder does not exist, unless it is the default folder
    (``./.perdure/``), which the store creates."""
    path = None if url is None else sqlite_path(url)
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(folder) or folder == os.path.abspath(DEFAULT_FOLDER):
        return
    raise click.ClickException(
        f"no folder {folder} for the SQLite database {path}: create it first "
        f"(perdure creates only its default folder, ./{DEFAULT_FOLDER}/)"
    )


def client(url: str | None, *, must_exist: bool = True) -> App:
    """A throwaway app on the database, for the commands that work on the database alone.
    ``must_exist``: a SQLite file must already be there (nothing is created by a read)."""
    app = App("cli", url)
    use_env(app)
    path = sqlite_path(app.database_url)
    if must_exist and path is not None and not os.path.exists(path):
        raise click.ClickException(
            f"no database at {path} (start `perdure dev` here first, or pass "
            "--database-url / set PERDURE_DATABASE_URL)"
        )
    if not must_exist:
        check_folder(app.database_url)
    return app


async def open_app(app: App) -> None:
    """Open ``app``'s database, or fail with one clear line naming it (password hidden)."""
    hide_url(app.database_url)
    try:
        await app.open()
    except (StoreUnavailableError, sqlite3.Error, OSError) as exc:
        reason = exc.message if isinstance(exc, StoreUnavailableError) else str(exc)
        raise click.ClickException(
            f"cannot open the database {redact_url(app.database_url)}: "
            f"{one_line(reason or type(exc).__name__)}"
        ) from None


def with_app(app: App, work: Callable[[App], Coroutine[Any, Any, T]]) -> T:
    """Open ``app``, run ``work(app)``, close it."""

    async def main() -> T:
        await open_app(app)
        try:
            return await work(app)
        finally:
            await app.close()

    return asyncio.run(main())


# ---------------------------------------------------------------------- apps


def load_app(spec: str, param_hint: str | None = None) -> App:
    """Import ``module:attribute`` (or ``module`` with an ``app`` attribute) from the current
    directory or the Python path."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if not module_name:
        raise click.BadParameter(f"{spec!r} is not MODULE:APP", param_hint=param_hint)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(
            f"cannot import {module_name!r}: {exc}", param_hint=param_hint
        ) from None
    except Exception as exc:
        debug_traceback()
        raise click.ClickException(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}" + debug_hint()
        ) from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise click.BadParameter(
                f"{module_name!r} has no attribute {attr!r}", param_hint=param_hint
            )
    if not isinstance(obj, App):
        raise click.BadParameter(f"{spec!r} is not a perdure.App", param_hint=param_hint)
    return obj
