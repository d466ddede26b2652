"""``perdure functions``: the functions registered in the database."""

from __future__ import annotations

import click

from perdure import views
from perdure.cli.options import client, database_option, json_option, with_app
from perdure.cli.output import dumps, table


@click.command()
@json_option
@database_option
def functions(as_json: bool, database_url: str | None) -> None:
    """List the functions registered in the database (workers and servers register them).

    \b
    Example:
      perdure functions --database-url sqlite:///.perdure/perdure.db
    """
    records = with_app(client(database_url), lambda a: a.query.list_functions())
    if as_json:
        click.echo(dumps(views.functions_json(records)))
        return
    if not records:
        click.echo("no functions registered (start a worker or `perdure dev`)", err=True)
        return
    rows = [
        [r.id, r.app, ", ".join(views.trigger_text(t) for t in r.triggers) or "direct/invoke"]
        for r in records
    ]
    table(["FUNCTION", "APP", "TRIGGERS"], rows)
