"""The long-running commands: ``perdure dev``, ``perdure server`` and ``perdure worker``.

Each prints a banner (the database URL without its password) and runs until SIGINT or
SIGTERM, then shuts down cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from perdure import logs
from perdure.app import App
from perdure.cli.options import (
    check_folder,
    database_option,
    load_app,
    log_option,
    open_app,
    option,
    use_env,
)
from perdure.cli.output import redact_url
from perdure.environments import DEFAULT_ENV
from perdure.logs import LogFormat

F = TypeVar("F", bound=Callable[..., Any])

DEMO_APP = "perdure.demo:app"


def configure_logging(level: str, fmt: LogFormat = "text") -> None:
    """Log to stderr at ``level``, as text or one JSON object per line (:mod:`perdure.logs`)."""
    logs.configure(level, fmt)


def run_until_signal(main: Coroutine[Any, Any, None]) -> None:
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


def _server_options(f: F) -> F:
    f = option(
        "--allowed-hosts",
        envvar="PERDURE_ALLOWED_HOSTS",
        default=None,
        metavar="HOSTS",
        help=(
            "Comma-separated Host names served (host, host:port, *.domain, *) [default: "
            "localhost names and loopback addresses without a token; any host with one]."
        ),
    )(f)
    f = log_option(f)
    f = database_option(f)
    f = option(
        "--port",
        envvar="PERDURE_PORT",
        type=click.IntRange(0, 65535),
        default=8288,
        show_default=True,
        help="Port to listen on (0: any free port, printed in the banner).",
    )(f)
    f = option(
        "--host",
        envvar="PERDURE_HOST",
        default="127.0.0.1",
        show_default=True,
        help="Address to listen on (0.0.0.0: every interface).",
    )(f)
    return f


def _lease_option(f: F) -> F:
    """``--lease``: how long a worker holds a run it executes without renewing the lease; a
    worker that dies (SIGKILL, a lost machine) leaves its runs to others after that long."""
    return option(
        "--lease",
        "lease_seconds",
        type=click.FloatRange(1, 3600),
        default=30.0,
        show_default=True,
        help="Lease length in seconds (a killed worker's runs resume elsewhere after it).",
    )(f)


def _inngest_options(f: F) -> F:
    """``perdure dev``'s options for apps on the Inngest SDKs (with the Inngest dev server's
    ``INNGEST_*`` environment names)."""
    f = option(
        "--poll-interval",
        envvar=["PERDURE_SDK_POLL_INTERVAL", "INNGEST_POLL_INTERVAL"],
        type=click.FloatRange(0.1, 86400, min_open=False),
        default=5.0,
        show_default=True,
        help="Seconds between sync PUTs to the -u apps.",
    )(f)
    f = option(
        "--no-poll",
        is_flag=True,
        envvar=["PERDURE_SDK_NO_POLL", "INNGEST_NO_POLL"],
        help="Sync the -u apps once; afterwards only retry those whose sync failed.",
    )(f)
    f = option(
        "--no-discovery",
        is_flag=True,
        envvar=["PERDURE_SDK_NO_DISCOVERY", "INNGEST_NO_DISCOVERY"],
        help="perdure dev: do not look for Inngest SDK apps on local ports (3000-3010, 8000, "
        "8080, ... and $PORT) while none is synced. perdure server never looks.",
    )(f)
    f = option(
        "-u",
        "--sdk-url",
        "sdk_urls",
        multiple=True,
        envvar=["PERDURE_SDK_URL", "INNGEST_SDK_URL"],
        metavar="URL",
        help="Serve URL of an Inngest SDK app to sync (repeatable; the environment variable "
        "takes several, separated by spaces or commas).",
    )(f)
    return f


def _key_options(f: F) -> F:
    """``perdure server``'s keys for apps on the Inngest SDKs in production mode (with the
    ``INNGEST_*`` names the SDKs and the Inngest server use)."""
    f = option(
        "--event-key",
        "event_keys",
        multiple=True,
        envvar=["PERDURE_EVENT_KEY", "INNGEST_EVENT_KEY"],
        metavar="KEY",
        help="An event key accepted by POST /e/{key} (repeatable; the environment variable "
        "takes several, separated by spaces or commas).",
    )(f)
    f = option(
        "--signing-key-fallback",
        "signing_key_fallbacks",
        multiple=True,
        envvar=["PERDURE_SIGNING_KEY_FALLBACK", "INNGEST_SIGNING_KEY_FALLBACK"],
        metavar="KEY",
        help="A previous signing key, still accepted from apps while keys rotate (repeatable).",
    )(f)
    f = option(
        "--signing-key",
        envvar=["PERDURE_SIGNING_KEY", "INNGEST_SIGNING_KEY"],
        default=None,
        metavar="KEY",
        help="Signing key shared with the Inngest SDK apps (hex, optionally 'signkey-<env>-'"
        " prefixed): calls to apps are signed with it, registration and the Inngest REST "
        "routes need it as bearer. Prefer the environment variable.",
    )(f)
    return f


def _inngest_keys(
    signing_key: str | None, fallbacks: tuple[str, ...], event_keys: tuple[str, ...]
) -> Any:
    """The server's :class:`~perdure.inngest.auth.InngestKeys`, or ``None`` without keys."""
    from perdure.inngest.auth import InngestKeys

    events = [k for value in event_keys for k in value.replace(",", " ").split()]
    if signing_key is None or not signing_key.strip():
        if events or any(fb.strip() for fb in fallbacks):
            raise click.UsageError(
                "an event key or a fallback signing key needs a signing key: set "
                "INNGEST_SIGNING_KEY or --signing-key"
            )
        return None
    if not events:
        raise click.UsageError(
            "self-hosted mode needs at least one event key: set INNGEST_EVENT_KEY or --event-key"
        )
    try:
        return InngestKeys.create(signing_key, fallbacks, events)
    except ValueError as exc:  # the message never holds the key
        raise click.BadParameter(str(exc), param_hint="'--signing-key'") from None


def _sdk_urls(values: tuple[str, ...]) -> list[str]:
    """The -u URLs, split on commas, each an absolute http(s) URL."""
    from urllib.parse import urlsplit

    out: list[str] = []
    for value in values:
        for part in value.split(","):
            u = part.strip()
            if not u:
                continue
            if "://" not in u:
                u = "http://" + u
            parts = urlsplit(u)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise click.BadParameter(
                    f"{part!r} is not an http(s) URL", param_hint="'-u' / '--sdk-url'"
                )
            out.append(u)
    return list(dict.fromkeys(out))


def _use_database(app: App, database_url: str | None) -> None:
    """Point ``app`` at the ``--database-url`` given (whose SQLite folder must exist)."""
    if database_url:
        check_folder(database_url)
        app.database_url = database_url
    use_env(app)


def _db_text(app: App) -> str:
    """The database (password hidden) and, unless it is ``default``, the environment."""
    text = redact_url(app.database_url)
    return text if app.env == DEFAULT_ENV else f"{text} (environment {app.env!r})"


def _bind(host: str, port: int) -> socket.socket:
    from perdure.server import bind_socket

    try:
        return bind_socket(host, port)
    except OSError as exc:
        raise click.ClickException(str(exc)) from None


async def _serve(asgi: Any, sock: socket.socket, banner: list[str], log_level: str) -> None:
    """Print the banner, then serve the ASGI app on the bound socket until cancelled."""
    from perdure.server import serve

    for line in banner:
        click.echo(line)
    sys.stdout.flush()
    verbose = log_level.lower() == "debug"
    await serve(asgi, sock, log_level="debug" if verbose else "warning", access_log=verbose)


@click.command()
@click.argument("app_spec", metavar="MODULE:APP")
@database_option
@option(
    "--concurrency",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="Runs executed at once.",
)
@_lease_option
@option("--functions", default=None, help="Comma-separated function ids to host [default: all].")
@log_option
def worker(
    app_spec: str,
    database_url: str | None,
    concurrency: int,
    lease_seconds: float,
    functions: str | None,
    log_level: str,
    log_format: LogFormat,
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
    configure_logging(log_level, log_format)
    app = load_app(app_spec, "'MODULE:APP'")
    fids = [f.strip() for f in functions.split(",") if f.strip()] if functions else None
    if fids:
        unknown = [f for f in fids if f not in app.functions]
        if unknown:
            raise click.BadParameter(
                f"unknown function id(s) {', '.join(unknown)}; {app_spec} has: "
                f"{', '.join(sorted(app.functions)) or 'none'}",
                param_hint="'--functions'",
            )
    _use_database(app, database_url)

    async def main() -> None:
        await open_app(app)
        try:
            w = app.worker(concurrency=concurrency, lease_seconds=lease_seconds, functions=fids)
            await w.start()
            logging.getLogger("perdure").info(
                "worker %s hosting %s on %s",
                w.id,
                ", ".join(w.function_ids),
                _db_text(app),
            )
            try:
                await asyncio.Event().wait()
            finally:
                await w.stop()
        finally:
            await app.close()

    run_until_signal(main())


@click.command()
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
@_lease_option
@_inngest_options
def dev(
    app_spec: str | None,
    host: str,
    port: int,
    database_url: str | None,
    log_level: str,
    log_format: LogFormat,
    allowed_hosts: str | None,
    lease_seconds: float,
    sdk_urls: tuple[str, ...],
    no_discovery: bool,
    no_poll: bool,
    poll_interval: float,
) -> None:
    """Run the HTTP server and a worker for an app, in one process, without authentication.

    The worker also runs the app's cron schedules. The database is the app's (SQLite in
    ./.perdure/, created if needed, unless PERDURE_DATABASE_URL or --database-url says
    otherwise; the folder of any other SQLite file must exist). With no --app, the bundled
    demo app runs, so you can see perdure working at once.

    Apps on the official Inngest SDKs (INNGEST_DEV=1, INNGEST_BASE_URL pointing here) sync
    with POST /fn/register and run on the same worker; -u URL makes perdure send the sync PUT
    to an app's serve URL at start and every --poll-interval seconds.

    \b
    Examples:
      perdure dev
      perdure dev --app shop.workflows:app --port 9000
      perdure dev -u http://127.0.0.1:8000/api/inngest
      curl localhost:8288/api/v1/runs
    """
    configure_logging(log_level, log_format)
    app = load_app(app_spec or DEMO_APP, "'--app'")
    _use_database(app, database_url)
    urls = _sdk_urls(sdk_urls)
    sock = _bind(host, port)
    from perdure.drivers.python import PythonDriver
    from perdure.inngest.apps import AppDirectory
    from perdure.inngest.driver import InngestDriver
    from perdure.inngest.routes import InngestRoutes
    from perdure.inngest.sync import AppPoller
    from perdure.runtime import Worker
    from perdure.server import create_app, socket_url

    url = socket_url(sock, host)
    from perdure.inngest.discovery import candidate_ports

    own_port = sock.getsockname()[1]
    discover = [] if no_discovery else candidate_ports(os.environ.get("PORT"), own_port)

    async def main() -> None:
        try:
            await open_app(app)
            inngest = InngestDriver(server_kind="dev", checkpointing=True)
            routes = InngestRoutes(app, inngest, server_kind="dev")
            poller = AppPoller(
                urls,
                interval=poll_interval,
                poll=not no_poll,
                discover_ports=discover,
                has_apps=lambda: bool(inngest.functions),
            )
            try:
                await routes.registry.load()
                # Before the worker: its first claims count in the app's metrics.
                asgi = create_app(
                    app,
                    dev=True,
                    api_token=None,
                    allowed_hosts=allowed_hosts,
                    extra_routes=routes.routes(),
                    response_headers=routes.headers,
                    apps=AppDirectory(routes.registry, poller=poller),
                )
                w = Worker(
                    app.runtime,
                    [PythonDriver(app.functions), inngest],
                    lease_seconds=lease_seconds,
                )
                await w.start()
                routes.registry.watcher.listeners.append(w.refresh)
                routes.registry.watcher.start()
                banner = [
                    f"perdure dev: serving app {app.name!r} ({len(app.functions)} functions) "
                    f"at {url} with a worker, database {_db_text(app)}; "
                    "Ctrl+C to stop"
                ]
                if app_spec is None:
                    banner.append(
                        'try: perdure send demo/order.placed --data \'{"order_id": "A1"}\''
                        f"  then open {url}/"
                    )
                if urls:
                    banner.append(f"syncing Inngest apps at {', '.join(urls)}")
                poller.start()  # the socket listens already: the apps' syncs queue until served
                await _serve(asgi, sock, banner, log_level)
            finally:
                await poller.stop()
                await routes.registry.watcher.stop()
                await app.close()
        finally:
            sock.close()

    run_until_signal(main())


@click.command()
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
@option(
    "--api-token",
    envvar="PERDURE_API_TOKEN",
    default=None,
    metavar="TOKEN",
    help="An admin token of the server's environment, accepted beside the keys of "
    "`perdure keys create` (prefer the environment variable).",
)
@option(
    "--no-auth",
    is_flag=True,
    envvar="PERDURE_NO_AUTH",
    help="Serve everything without authentication (only behind something that authenticates).",
)
@_key_options
@_lease_option
@_inngest_options
def server(
    app_spec: str | None,
    host: str,
    port: int,
    database_url: str | None,
    log_level: str,
    log_format: LogFormat,
    allowed_hosts: str | None,
    api_token: str | None,
    no_auth: bool,
    signing_key: str | None,
    signing_key_fallbacks: tuple[str, ...],
    event_keys: tuple[str, ...],
    lease_seconds: float,
    sdk_urls: tuple[str, ...],
    no_discovery: bool,
    no_poll: bool,
    poll_interval: float,
) -> None:
    """Run the HTTP server alone (no worker), for scaling out.

    Several server processes may share one PostgreSQL database; run workers separately with
    `perdure worker`. Every route but /health needs a key ('Authorization: Bearer TOKEN', or
    the dashboard's login), unless --no-auth is given explicitly: create keys with
    `perdure keys create`, or set an admin token with PERDURE_API_TOKEN. A key's
    environment decides what a request sees.

    \b
    Examples:
      perdure keys create ops --scope admin --database-url postgresql://db/perdure
      perdure server --host 0.0.0.0 --database-url postgresql://db/perdure
      curl -H 'Authorization: Bearer pdk_default_...' localhost:8288/api/v1/runs
    """
    configure_logging(log_level, log_format)
    if api_token is not None and not api_token.strip():
        raise click.BadParameter("the token is empty", param_hint="'--api-token'")
    if api_token is not None and no_auth:
        raise click.UsageError("--no-auth and an API token exclude each other")
    keys = _inngest_keys(signing_key, signing_key_fallbacks, event_keys)
    urls = _sdk_urls(sdk_urls)
    if urls and keys is None:
        raise click.UsageError("-u needs a signing key (INNGEST_SIGNING_KEY or --signing-key)")
    del no_discovery  # self-hosted: apps are named with -u, never looked for
    app = load_app(app_spec, "'--app'") if app_spec else App("server", database_url)
    _use_database(app, database_url)
    sock = _bind(host, port)
    from perdure.inngest.apps import AppDirectory
    from perdure.inngest.driver import InngestDriver
    from perdure.inngest.routes import InngestRoutes
    from perdure.inngest.sync import AppPoller
    from perdure.runtime import Worker
    from perdure.server import create_app, socket_url

    url = socket_url(sock, host)
    inngest = InngestDriver(server_kind="cloud", keys=keys)
    routes = InngestRoutes(app, inngest, server_kind="cloud", keys=keys, keys_required=True)
    poller = AppPoller(
        urls, interval=poll_interval, poll=not no_poll, server_kind="cloud", keys=keys
    )
    asgi = create_app(
        app,
        dev=no_auth,
        api_token=api_token,
        allowed_hosts=allowed_hosts,
        extra_routes=routes.routes(),
        response_headers=routes.headers,
        apps=AppDirectory(routes.registry, poller=poller, server_kind="cloud", keys=keys),
    )

    async def main() -> None:
        try:
            await open_app(app)
            w: Worker | None = None
            try:
                if app_spec:
                    await app.register()
                auth = "NO authentication" if no_auth else "keys required"
                banner = [
                    f"perdure server: serving at {url} ({auth}), database "
                    f"{_db_text(app)}; Ctrl+C to stop"
                ]
                if not no_auth and api_token is None:
                    now = app.store.now()
                    if not any(k.live(now) for k in await app.keys.list()):
                        banner.append(
                            "no key yet: create one with `perdure keys create NAME --scope "
                            "admin` (same database and environment)"
                        )
                if keys is not None:
                    # Runs of Inngest-SDK functions are executed here (the server calls the
                    # apps); native functions stay with `perdure worker`.
                    await routes.registry.load()
                    w = Worker(app.runtime, [inngest], lease_seconds=lease_seconds)
                    await w.start()
                    routes.registry.watcher.listeners.append(w.refresh)
                    routes.registry.watcher.start()
                    banner.append(
                        "self-hosted mode for Inngest SDK apps: signed calls, "
                        f"{len(keys.event_keys)} event key(s)"
                        + (f", syncing {', '.join(urls)}" if urls else "")
                    )
                poller.start()
                await _serve(asgi, sock, banner, log_level)
            finally:
                await poller.stop()
                await routes.registry.watcher.stop()
                if w is not None:
                    await w.stop()
                await app.close()
        finally:
            sock.close()

    run_until_signal(main())
