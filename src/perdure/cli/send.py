"""``perdure send``: send an event into the database."""

from __future__ import annotations

import click

from perdure import views
from perdure.cli.options import client, database_option, json_arg, option, with_app
from perdure.cli.output import dumps
from perdure.engine.triggers import validate_event_name
from perdure.errors import InvalidInputError
from perdure.types import Event


@click.command()
@click.argument("name")
@option(
    "--data",
    default="{}",
    show_default=True,
    metavar="JSON",
    help="The event's data, a JSON object ('-': read it from stdin).",
)
@option("--id", "event_id", default=None, help="Event id (deduplicates for 24 h).")
@option("--user", default=None, metavar="JSON", help="The event's user object.")
@option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@database_option
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
    payload = json_arg(data, "'--data'")
    user_obj = json_arg(user, "'--user'") if user is not None else {}
    try:
        validate_event_name(name)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message, param_hint="'NAME'") from None
    try:
        event = Event(name=name, data=payload, id=event_id or "", user=user_obj)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message, param_hint="'--id'") from None
    app = client(database_url)
    sent = with_app(app, lambda a: a.send_detailed([event]))
    if as_json:
        click.echo(dumps(views.sent_json(sent)))
        return
    for s in sent:
        click.echo(s.id)
        if s.duplicate:
            click.echo(f"duplicate: event {s.id} was already received; nothing started", err=True)
        elif s.run_ids:
            click.echo(f"started {len(s.run_ids)} run(s): {', '.join(s.run_ids)}", err=True)
            if s.skipped:
                click.echo(f"skipped by flow control: {', '.join(s.skipped)}", err=True)
        else:
            click.echo("started no runs (no function is triggered by this event)", err=True)
