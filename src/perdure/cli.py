"""The ``perdure`` command line.

Every option has a ``PERDURE_*`` environment twin (``--database-url`` is
``PERDURE_DATABASE_URL``). Bad arguments print one line and exit with status 2.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from typing import Any

import click

from perdure._version import __version__
from perdure.app import App
from perdure.errors import PerdureError


def load_app(spec: str) -> App:
    """Import ``module:attribute`` (or ``module`` with an ``app`` attribute) from the current
    directory or the Python path."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise click.BadParameter(f"{module_name!r} has no attribute {attr!r}")
    if not isinstance(obj, App):
        raise click.BadParameter(f"{spec!r} is not a perdure.App")
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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix":
                               "PERDURE"})
@click.version_option(__version__, prog_name="perdure")
def cli() -> None:
    """perdure: durable execution for Python.

    Functions made of steps whose results are checkpointed, so runs survive crashes, deploys
    and restarts.
    """


@cli.command()
def version() -> None:
    """Print the version."""
    click.echo(f"perdure {__version__}")


@cli.command()
@click.argument("app_spec", metavar="MODULE:APP")
@click.option("--database-url", envvar="PERDURE_DATABASE_URL", default=None,
              help="Database URL (default: the app's).")
@click.option("--concurrency", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Runs executed at once.")
@click.option("--lease", "lease_seconds", type=click.FloatRange(1, 3600), default=30.0,
              show_default=True, help="Lease length in seconds.")
@click.option("--functions", default=None,
              help="Comma-separated function ids to host (default: all).")
@click.option("--log-level", default="info", show_default=True)
def worker(app_spec: str, database_url: str | None, concurrency: int, lease_seconds: float,
           functions: str | None, log_level: str) -> None:
    """Run a worker for the functions of MODULE:APP."""
    configure_logging(log_level)
    app = load_app(app_spec)
    if database_url:
        app.database_url = database_url
    fids = [f.strip() for f in functions.split(",") if f.strip()] if functions else None

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


def main() -> None:
    """Entry point: turn perdure errors into one-line messages."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except PerdureError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
