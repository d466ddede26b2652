"""The ``perdure`` command group and its entry point (one-line errors, exit statuses)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from perdure._version import __version__
from perdure.cli.admin import migrate, version
from perdure.cli.functions import functions
from perdure.cli.keys import keys
from perdure.cli.ops import prune, workers
from perdure.cli.options import debug_hint, debug_traceback, env_callback, option
from perdure.cli.output import one_line
from perdure.cli.runs import runs
from perdure.cli.schedules import schedules
from perdure.cli.send import send
from perdure.cli.serving import dev, server, worker
from perdure.errors import PerdureError


@click.group(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "auto_envvar_prefix": "PERDURE",
        "max_content_width": 100,
    }
)
@click.version_option(__version__, prog_name="perdure")
@option(
    "--env",
    envvar="PERDURE_ENV",
    default=None,
    metavar="NAME",
    callback=env_callback,
    help="The environment: an isolated namespace of functions, runs, events, schedules and "
    "keys on the database [default: default]. Put it before the command: perdure --env "
    "staging runs list.",
)
def cli(env: str | None) -> None:
    """perdure: durable execution for Python.

    Functions made of steps whose results are checkpointed, so runs survive crashes, deploys
    and restarts.

    \b
    Start here:
      perdure dev                       # server + worker + the demo app, on SQLite
      perdure send demo/order.placed --data '{"order_id": "A1"}'
      perdure runs list
    """


for _command in (
    version,
    worker,
    dev,
    server,
    send,
    runs,
    schedules,
    functions,
    keys,
    workers,
    prune,
    migrate,
):
    cli.add_command(_command)


def _fail(message: str, status: int) -> None:
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(status)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one-line errors (never a password), status 2 for bad arguments, 1 for
    other failures, never a traceback (unless ``PERDURE_DEBUG=1``)."""
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
        _fail(one_line(exc.format_message()) + hint, exc.exit_code)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PerdureError as exc:
        _fail(str(exc), 1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(141)
    except Exception as exc:
        debug_traceback()
        _fail(f"{type(exc).__name__}: {exc}{debug_hint()}", 1)
