"""The ``perdure`` command line.

Every option has a ``PERDURE_*`` environment twin, shown in each command's ``--help``
(``--database-url`` is ``PERDURE_DATABASE_URL``). Bad arguments print one line starting with
``error:`` and exit with status 2; other failures print one line and exit with status 1.
``PERDURE_DEBUG=1`` adds the traceback of unexpected errors.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click
import orjson

from perdure._version import __version__
from perdure.app import App
from perdure.engine.triggers import validate_event_name
from perdure.errors import InvalidInputError, PerdureError
from perdure.types import Event, RunInfo, RunStatus

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

DEMO_APP = "perdure.demo:app"
LOG_LEVELS = click.Choice(["debug", "info", "warning", "error"], case_sensitive=False)


# ---------------------------------------------------------------------- helpers


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
        _debug_traceback()
        raise click.ClickException(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
            + ("" if _debug() else " (set PERDURE_DEBUG=1 for the traceback)")
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


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_until_signal(main: Any) -> None:
    """Run a coroutine until SIGINT or SIGTERM, then cancel it so it shuts down cleanly."""

    async def runner() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(main)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(runner())


def _debug() -> bool:
    return os.environ.get("PERDURE_DEBUG", "") not in ("", "0")


def _debug_traceback() -> None:
    if _debug():
        traceback.print_exc()


def _option(*decls: str, **attrs: Any) -> Callable[[F], F]:
    attrs.setdefault("show_envvar", True)
    return click.option(*decls, **attrs)


def _database_option(f: F) -> F:
    return _option(
        "--database-url",
        envvar="PERDURE_DATABASE_URL",
        default=None,
        metavar="URL",
        help="sqlite:///path.db or postgresql://... [default: sqlite:///.perdure/perdure.db]",
    )(f)


def _log_option(f: F) -> F:
    return _option(
        "--log-level",
        envvar="PERDURE_LOG_LEVEL",
        type=LOG_LEVELS,
        default="info",
        show_default=True,
        help="Log level (to stderr).",
    )(f)


def _server_options(f: F) -> F:
    f = _log_option(f)
    f = _database_option(f)
    f = _option(
        "--port",
        envvar="PERDURE_PORT",
        type=click.IntRange(0, 65535),
        default=8288,
        show_default=True,
        help="Port to listen on (0: any free port, printed in the banner).",
    )(f)
    f = _option(
        "--host",
        envvar="PERDURE_HOST",
        default="127.0.0.1",
        show_default=True,
        help="Address to listen on (0.0.0.0: every interface).",
    )(f)
    return f


def _check_url(url: str | None) -> None:
    """Refuse a malformed database URL as a bad argument (before anything is opened)."""
    if url is None:
        return
    from perdure.store import open_store

    try:
        open_store(url)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message, param_hint="'--database-url'") from None


def _client(url: str | None, *, must_exist: bool = True) -> App:
    """A throwaway app on the database, for the database-side commands."""
    _check_url(url)
    app = App("cli", url)
    if must_exist and app.database_url.startswith("sqlite:///"):
        path = app.database_url[len("sqlite:///") :].partition("?")[0]
        if not os.path.exists(path):
            raise click.ClickException(
                f"no database at {path} (start `perdure dev` here first, or pass "
                "--database-url / set PERDURE_DATABASE_URL)"
            )
    return app


def _with_app(app: App, work: Callable[[App], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        async with app:
            return await work(app)

    return asyncio.run(main())


def _json_arg(text: str, option: str) -> dict[str, Any]:
    if text == "-":
        text = sys.stdin.read()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(
            f"not valid JSON: {exc.msg} at column {exc.colno}", param_hint=option
        ) from None
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else type(value).__name__
        raise click.BadParameter(f"must be a JSON object, not {kind}", param_hint=option)
    return value


def _dumps(value: Any, *, pretty: bool = False) -> str:
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(value, option=option).decode()


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S") + "Z"


def _duration(run: RunInfo) -> str:
    if run.started_at is None:
        return "-"
    end = run.ended_at
    if end is None:
        return "..."
    seconds = (end - run.started_at).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.1f}m"


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], status_column: int | None = None
) -> None:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    click.echo(click.style(line.rstrip(), bold=True))
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        if status_column is not None:
            cells[status_column] = (
                _status(row[status_column]) + cells[status_column][len(row[status_column]) :]
            )
        click.echo("  ".join(cells).rstrip())


def _short(value: Any, width: int = 60) -> str:
    text = _dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


_STATUS_COLORS = {
    "completed": "green",
    "failed": "red",
    "cancelled": "bright_black",
    "running": "cyan",
}


def _status(status: str) -> str:
    return click.style(status, fg=_STATUS_COLORS.get(status))


# ---------------------------------------------------------------------- commands


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "auto_envvar_prefix": "PERDURE",
        "max_content_width": 100,
    }
)
@click.version_option(__version__, prog_name="perdure")
def cli() -> None:
    """perdure: durable execution for Python.

    Functions made of steps whose results are checkpointed, so runs survive crashes, deploys
    and restarts.

    \b
    Start here:
      perdure dev                       # server + worker + the demo app, on SQLite
      perdure send demo/order.placed --data '{"order_id": "A1"}'
      perdure runs list
    """


@cli.command()
def version() -> None:
    """Print the version."""
    click.echo(f"perdure {__version__}")


@cli.command()
@click.argument("app_spec", metavar="MODULE:APP")
@_database_option
@_option(
    "--concurrency",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="Runs executed at once.",
)
@_option(
    "--lease",
    "lease_seconds",
    type=click.FloatRange(1, 3600),
    default=30.0,
    show_default=True,
    help="Lease length in seconds.",
)
@_option("--functions", default=None, help="Comma-separated function ids to host [default: all].")
@_log_option
def worker(
    app_spec: str,
    database_url: str | None,
    concurrency: int,
    lease_seconds: float,
    functions: str | None,
    log_level: str,
) -> None:
    """Run a worker for the functions of MODULE:APP (and their cron schedules).

    Start as many workers as you like, on as many machines as share the database: each run is
    executed by one worker at a time, and a dead worker's runs are taken over when its lease
    expires.

    \b
    Examples:
      perdure worker shop.workflows:app
      PERDURE_DATABASE_URL=postgresql://db/perdure perdure worker shop.workflows:app
      perdure worker shop.workflows:app --functions fulfil-order,refund
    """
    configure_logging(log_level)
    _check_url(database_url)
    app = load_app(app_spec, "'MODULE:APP'")
    if database_url:
        app.database_url = database_url
    fids = [f.strip() for f in functions.split(",") if f.strip()] if functions else None
    if fids:
        unknown = [f for f in fids if f not in app.functions]
        if unknown:
            raise click.BadParameter(
                f"unknown function id(s) {', '.join(unknown)}; {app_spec} has: "
                f"{', '.join(sorted(app.functions)) or 'none'}",
                param_hint="'--functions'",
            )

    async def main() -> None:
        async with app:
            w = app.worker(concurrency=concurrency, lease_seconds=lease_seconds, functions=fids)
            await w.start()
            logging.getLogger("perdure").info(
                "worker %s hosting %s on %s", w.id, ", ".join(w.function_ids), app.database_url
            )
            try:
                await asyncio.Event().wait()
            finally:
                await w.stop()

    run_until_signal(main())


def _bind(host: str, port: int) -> Any:
    from perdure.server import bind_socket

    try:
        return bind_socket(host, port)
    except OSError as exc:
        raise click.ClickException(str(exc)) from None


async def _serve(asgi: Any, sock: Any, banner: list[str], log_level: str) -> None:
    """Print the banner, then serve the ASGI app on the bound socket until cancelled."""
    from perdure.server import serve

    for line in banner:
        click.echo(line)
    sys.stdout.flush()
    debug = log_level.lower() == "debug"
    await serve(asgi, sock, log_level="debug" if debug else "warning", access_log=debug)


@cli.command()
@click.option(
    "--app",
    "app_spec",
    envvar="PERDURE_APP",
    show_envvar=True,
    default=None,
    metavar="MODULE:APP",
    help=f"The app to serve and run [default: the bundled demo, {DEMO_APP}].",
)
@_server_options
def dev(
    app_spec: str | None, host: str, port: int, database_url: str | None, log_level: str
) -> None:
    """Run the HTTP server and a worker for an app, in one process, without authentication.

    The worker also runs the app's cron schedules. The database is the app's (SQLite under
    ./.perdure/ unless PERDURE_DATABASE_URL or --database-url says otherwise). With no --app,
    the bundled demo app runs, so you can see perdure working at once.

    \b
    Examples:
      perdure dev
      perdure dev --app shop.workflows:app --port 9000
      curl localhost:8288/api/v1/runs
    """
    configure_logging(log_level)
    _check_url(database_url)
    app = load_app(app_spec or DEMO_APP, "'--app'")
    if database_url:
        app.database_url = database_url
    sock = _bind(host, port)
    from perdure.server import create_app, socket_url

    url = socket_url(sock, host)

    async def main() -> None:
        try:
            async with app:
                w = app.worker()
                await w.start()
                banner = [
                    f"perdure dev: serving app {app.name!r} ({len(app.functions)} functions) "
                    f"at {url} with a worker, database {app.database_url}; Ctrl+C to stop"
                ]
                if app_spec is None:
                    banner.append(
                        'try: perdure send demo/order.placed --data \'{"order_id": "A1"}\''
                        f"  then open {url}/"
                    )
                await _serve(create_app(app, dev=True, api_token=None), sock, banner, log_level)
        finally:
            sock.close()

    run_until_signal(main())


@cli.command()
@click.option(
    "--app",
    "app_spec",
    envvar="PERDURE_APP",
    show_envvar=True,
    default=None,
    metavar="MODULE:APP",
    help="Register this app's functions (runs are executed by `perdure worker`).",
)
@_server_options
@_option(
    "--api-token",
    envvar="PERDURE_API_TOKEN",
    default=None,
    metavar="TOKEN",
    help="Bearer token required on /api/v1 (prefer the environment variable).",
)
@_option(
    "--no-auth",
    is_flag=True,
    envvar="PERDURE_NO_AUTH",
    help="Serve the API without authentication (only behind something that authenticates).",
)
def server(
    app_spec: str | None,
    host: str,
    port: int,
    database_url: str | None,
    log_level: str,
    api_token: str | None,
    no_auth: bool,
) -> None:
    """Run the HTTP server alone (no worker), for scaling out.

    Several server processes may share one PostgreSQL database; run workers separately with
    `perdure worker`. The /api/v1 routes require 'Authorization: Bearer TOKEN' (/health stays
    open), unless --no-auth is given explicitly.

    \b
    Examples:
      PERDURE_API_TOKEN=s3cret perdure server --host 0.0.0.0 \\
          --database-url postgresql://db/perdure
      curl -H 'Authorization: Bearer s3cret' localhost:8288/api/v1/runs
    """
    configure_logging(log_level)
    if api_token is not None and not api_token.strip():
        raise click.BadParameter("the token is empty", param_hint="'--api-token'")
    if api_token is None and not no_auth:
        raise click.UsageError(
            "perdure server needs an API token: set PERDURE_API_TOKEN or --api-token "
            "(or pass --no-auth to serve without authentication)"
        )
    if api_token is not None and no_auth:
        raise click.UsageError("--no-auth and an API token exclude each other")
    _check_url(database_url)
    app = load_app(app_spec, "'--app'") if app_spec else App("server", database_url)
    if database_url:
        app.database_url = database_url
    sock = _bind(host, port)
    from perdure.server import create_app, socket_url

    url = socket_url(sock, host)
    asgi = create_app(app, dev=api_token is None, api_token=api_token)

    async def main() -> None:
        try:
            async with app:
                if app_spec:
                    await app.register()
                auth = "bearer token required" if api_token else "NO authentication"
                banner = [
                    f"perdure server: serving at {url} ({auth}), database {app.database_url}; "
                    "Ctrl+C to stop"
                ]
                await _serve(asgi, sock, banner, log_level)
        finally:
            sock.close()

    run_until_signal(main())


@cli.command()
@click.argument("name")
@_option(
    "--data",
    default="{}",
    show_default=True,
    metavar="JSON",
    help="The event's data, a JSON object ('-': read it from stdin).",
)
@_option("--id", "event_id", default=None, help="Event id (deduplicates for 24 h).")
@_option("--user", default=None, metavar="JSON", help="The event's user object.")
@_option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_database_option
def send(
    name: str,
    data: str,
    event_id: str | None,
    user: str | None,
    as_json: bool,
    database_url: str | None,
) -> None:
    """Send an event NAME: it starts the runs of the functions it triggers and resumes the
    runs waiting for it. Prints the event id.

    \b
    Examples:
      perdure send demo/order.placed --data '{"order_id": "A1"}'
      echo '{"order_id": "A1"}' | perdure send demo/order.delivered --data -
      perdure send billing.tick --id tick-2024-06-01
    """
    payload = _json_arg(data, "'--data'")
    user_obj = _json_arg(user, "'--user'") if user is not None else {}
    try:
        validate_event_name(name)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message, param_hint="'NAME'") from None
    try:
        event = Event(name=name, data=payload, id=event_id or "", user=user_obj)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message, param_hint="'--id'") from None
    app = _client(database_url)
    sent = _with_app(app, lambda a: a.send_detailed([event]))
    if as_json:
        click.echo(
            _dumps(
                {
                    "ids": [s.id for s in sent],
                    "events": [
                        {"id": s.id, "duplicate": s.duplicate, "run_ids": s.run_ids} for s in sent
                    ],
                }
            )
        )
        return
    for s in sent:
        click.echo(s.id)
        if s.duplicate:
            click.echo(f"duplicate: event {s.id} was already received; nothing started", err=True)
        elif s.run_ids:
            click.echo(f"started {len(s.run_ids)} run(s): {', '.join(s.run_ids)}", err=True)
        else:
            click.echo("started no runs (no function is triggered by this event)", err=True)


@cli.group()
def runs() -> None:
    """List, inspect and cancel runs.

    \b
    Examples:
      perdure runs list --status failed
      perdure runs show 01J0Z3Q8X2V4K6M8N0P2R4T6W8
      perdure runs cancel 01J0Z3Q8X2V4K6M8N0P2R4T6W8
    """


@runs.command("list")
@_option(
    "--status",
    type=click.Choice([s.value for s in RunStatus], case_sensitive=False),
    default=None,
    help="Only runs in this state.",
)
@_option("--function", "function_id", default=None, metavar="ID", help="Only this function.")
@_option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="Runs per page.",
)
@_option("--cursor", default=None, help="The next-page cursor printed by the previous page.")
@_option("--json", "as_json", is_flag=True, help="Print JSON (the API's shape).")
@_database_option
def runs_list(
    status: str | None,
    function_id: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    database_url: str | None,
) -> None:
    """List runs, newest first.

    \b
    Examples:
      perdure runs list
      perdure runs list --status failed --function fulfil-order --limit 50
      perdure runs list --json | jq '.runs[].id'
    """
    from perdure import ids

    if cursor is not None and not ids.is_valid(cursor):
        raise click.BadParameter(f"{cursor!r} is not a run id", param_hint="'--cursor'")
    app = _client(database_url)
    found = _with_app(
        app,
        lambda a: a.list_runs(
            status=status,
            function=function_id,
            before=None if cursor is None else cursor.upper(),
            limit=limit + 1,
        ),
    )
    page = found[:limit]
    next_cursor = page[-1].id if len(found) > limit else None
    if as_json:
        items = []
        for run in page:
            item = run.to_dict()
            del item["steps"]
            items.append(item)
        click.echo(_dumps({"runs": items, "next_cursor": next_cursor}))
        return
    if not page:
        click.echo("no runs", err=True)
        return
    rows = [[r.id, r.function_id, r.status.value, _when(r.created_at), _duration(r)] for r in page]
    _table(["RUN", "FUNCTION", "STATUS", "CREATED (UTC)", "TOOK"], rows, status_column=2)
    if next_cursor:
        click.echo(f"more: perdure runs list --cursor {next_cursor}", err=True)


def _get_run(app: App, run_id: str) -> RunInfo:
    return _with_app(app, lambda a: a.get_run(run_id))


@runs.command("show")
@click.argument("run_id")
@_option("--json", "as_json", is_flag=True, help="Print JSON (the API's shape).")
@_database_option
def runs_show(run_id: str, as_json: bool, database_url: str | None) -> None:
    """Show a run: status, timestamps, input, output or error, and its steps.

    \b
    Example:
      perdure runs show 01J0Z3Q8X2V4K6M8N0P2R4T6W8
    """
    run = _get_run(_client(database_url), run_id)
    if as_json:
        click.echo(_dumps(run.to_dict(), pretty=True))
        return
    fields = [
        ("run", run.id),
        ("function", run.function_id),
        ("status", _status(run.status.value)),
        ("attempt", str(run.attempt)),
        ("created", _when(run.created_at)),
        ("started", _when(run.started_at)),
        ("ended", _when(run.ended_at)),
        ("event", f"{run.event.name} {_short(run.event.data, 200)}"),
    ]
    if run.parent_run_id:
        fields.append(("parent", run.parent_run_id))
    if run.idempotency_key:
        fields.append(("key", run.idempotency_key))
    if run.status.value == "completed":
        fields.append(("output", _dumps(run.output)))
    if run.error is not None:
        fields.append(("error", f"{run.error.get('type')}: {run.error.get('message')}"))
    for label, value in fields:
        click.echo(f"{label:<9}{value}")
    if not run.steps:
        click.echo("steps    none")
        return
    click.echo("steps")
    rows = []
    for s in run.steps:
        if s.error is not None:
            detail = f"{s.error.get('type')}: {s.error.get('message')}"
        elif s.wake_at is not None and s.status in ("sleeping", "waiting"):
            detail = f"until {_when(s.wake_at)}"
        else:
            detail = _short(s.output)
        rows.append([str(s.position), s.id, s.kind, s.status, str(s.attempts), detail])
    _table(["#", "STEP", "KIND", "STATUS", "ATTEMPTS", "OUTPUT / ERROR"], rows, status_column=3)


@runs.command("cancel")
@click.argument("run_id")
@_database_option
def runs_cancel(run_id: str, database_url: str | None) -> None:
    """Cancel a queued, running, sleeping or waiting run: it becomes cancelled and never
    resumes. An ended run is left as it is.

    \b
    Example:
      perdure runs cancel 01J0Z3Q8X2V4K6M8N0P2R4T6W8
    """
    app = _client(database_url)

    async def work(a: App) -> tuple[RunStatus, RunInfo]:
        before = await a.get_run(run_id, steps=False)
        return before.status, await a.cancel(run_id)

    before, after = _with_app(app, work)
    if before.terminal:
        click.echo(f"run {run_id} had already ended ({before.value}); nothing changed")
    else:
        click.echo(f"run {run_id}: {after.status.value}")


@cli.command()
@_option("--json", "as_json", is_flag=True, help="Print JSON (the API's shape).")
@_database_option
def functions(as_json: bool, database_url: str | None) -> None:
    """List the functions registered in the database (workers and servers register them).

    \b
    Example:
      perdure functions --database-url sqlite:///.perdure/perdure.db
    """
    app = _client(database_url)
    records = sorted(_with_app(app, lambda a: a.store.list_functions()), key=lambda r: r.id)
    if as_json:
        click.echo(_dumps({"functions": [r.to_dict() for r in records]}))
        return
    if not records:
        click.echo("no functions registered (start a worker or `perdure dev`)", err=True)
        return
    rows = []
    for r in records:
        triggers = []
        for t in r.triggers:
            d = t.to_dict()
            if "cron" in d:
                triggers.append(f"cron {d['cron']} ({d['tz']})")
            else:
                triggers.append(f"event {d['event']}" + (f" if {d['if']}" if "if" in d else ""))
        rows.append([r.id, r.app, ", ".join(triggers) or "direct/invoke"])
    _table(["FUNCTION", "APP", "TRIGGERS"], rows)


@cli.command()
@_database_option
def migrate(database_url: str | None) -> None:
    """Create the database if needed and apply pending schema migrations.

    Workers and servers do this when they start; run it yourself to migrate ahead of a deploy.

    \b
    Example:
      perdure migrate --database-url postgresql://db/perdure
    """
    app = _client(database_url, must_exist=False)

    async def work(a: App) -> str:
        version = getattr(a.store, "schema_version", None)
        if version is None:
            return "migrations applied"
        current, latest = await version()
        state = "up to date" if current == latest else f"latest known: {latest}"
        return f"schema version {current} ({state})"

    state = _with_app(app, work)
    click.echo(f"database {app.database_url}: {state}")


# ---------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one-line errors, status 2 for bad arguments, never a traceback."""
    no_args_help: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())
    try:
        cli.main(args=argv, prog_name="perdure", standalone_mode=False)
    except no_args_help as exc:
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PerdureError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(141)
    except Exception as exc:
        _debug_traceback()
        click.echo(
            f"error: {type(exc).__name__}: {exc}"
            + ("" if _debug() else " (set PERDURE_DEBUG=1 for the traceback)"),
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
