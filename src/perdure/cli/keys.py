"""``perdure keys create|list|revoke``: the API keys of an environment (see
:mod:`perdure.keys`). Anyone with the database URL may manage keys: this is how the first
key of a server is made."""

from __future__ import annotations

import click

from perdure import views
from perdure.app import App
from perdure.cli.options import cli_actor, client, database_option, json_option, option, with_app
from perdure.cli.output import dumps, table
from perdure.engine.durations import to_timedelta
from perdure.errors import InvalidInputError
from perdure.keys import SCOPES, CreatedKey
from perdure.store.access import KeyRow


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (of the environment `perdure --env` selects).

    \b
    Scopes: admin (everything), read (the API and dashboard, read-only), ingest (send
    events only), worker (read, send events, start runs, register functions).

    \b
    Examples:
      perdure keys create ops --scope admin
      perdure --env staging keys create ci --scope worker --expires 30d
      perdure keys list
      perdure keys revoke key_3f2a9c0d1e4b5a6f
    """


@keys.command("create")
@click.argument("name")
@option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(SCOPES),
    help="A scope of the key (repeat for several).",
)
@option("--expires", default=None, metavar="DURATION", help="Stop working after: 30d, 12h...")
@json_option
@database_option
def keys_create(
    name: str, scopes: tuple[str, ...], expires: str | None, as_json: bool, database_url: str | None
) -> None:
    """Create a key and print its token (shown this once: only its hash is stored)."""
    expires_in = None
    if expires is not None:
        try:
            expires_in = to_timedelta(expires)
        except InvalidInputError as exc:
            raise click.BadParameter(exc.message, param_hint="'--expires'") from None

    async def work(app: App) -> CreatedKey:
        return await app.keys.create(name, scopes, expires_in=expires_in, actor=cli_actor())

    created = with_app(client(database_url, must_exist=False), work)
    if as_json:
        click.echo(dumps({"key": views.key_json(created.key), "token": created.token}))
        return
    click.echo(created.token)
    click.echo(
        f"key {created.key.id} ({', '.join(created.key.scopes)}) created: the token above is "
        "shown only now, store it (e.g. PERDURE_API_KEY)",
        err=True,
    )


@keys.command("list")
@json_option
@database_option
def keys_list(as_json: bool, database_url: str | None) -> None:
    """List the keys (revoked ones too), newest first; never their tokens."""

    async def work(app: App) -> list[KeyRow]:
        return await app.keys.list()

    rows = with_app(client(database_url), work)
    if as_json:
        click.echo(dumps({"keys": [views.key_json(k) for k in rows]}))
        return
    if not rows:
        click.echo("no keys (create one: perdure keys create NAME --scope admin)", err=True)
        return
    table(
        ["ID", "NAME", "SCOPES", "PREFIX", "CREATED", "LAST USED", "STATE"],
        [
            [
                k.id,
                k.name,
                ",".join(k.scopes),
                k.prefix + "…",
                views.iso(k.created_at) or "-",
                views.iso(k.last_used_at) or "-",
                "revoked" if k.revoked_at is not None else "active",
            ]
            for k in rows
        ],
    )


@keys.command("revoke")
@click.argument("key_id")
@json_option
@database_option
def keys_revoke(key_id: str, as_json: bool, database_url: str | None) -> None:
    """Revoke a key at once (its dashboard sessions end too)."""

    async def work(app: App) -> KeyRow:
        return await app.keys.revoke(key_id, actor=cli_actor())

    row = with_app(client(database_url), work)
    if as_json:
        click.echo(dumps(views.key_json(row)))
        return
    click.echo(f"key {row.id} ({row.name}) revoked")
