"""``perdure migrate`` and ``perdure version``."""

from __future__ import annotations

import click

from perdure._version import __version__
from perdure.app import App
from perdure.cli.options import client, database_option, with_app
from perdure.cli.output import redact_url


@click.command()
def version() -> None:
    """Print the version."""
    click.echo(f"perdure {__version__}")


@click.command()
@database_option
def migrate(database_url: str | None) -> None:
    """Create the database if needed and apply pending schema migrations.

    Workers and servers do this when they start; run it yourself to migrate ahead of a deploy.
    A SQLite file is created in an existing folder (only the default folder, ./.perdure/, is
    created for you).

    \b
    Example:
      perdure migrate --database-url postgresql://db/perdure
    """
    app = client(database_url, must_exist=False)

    async def work(a: App) -> str:
        version = await a.query.schema_version()
        if version is None:
            return "migrations applied"
        current, latest = version
        state = "up to date" if current == latest else f"latest known: {latest}"
        return f"schema version {current} ({state})"

    state = with_app(app, work)
    click.echo(f"database {redact_url(app.database_url)}: {state}")
