"""``perdure workers`` (the workers registry) and ``perdure prune`` (retention on demand)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from perdure import views
from perdure.app import App
from perdure.cli.options import client, database_option, json_option, option, with_app
from perdure.cli.output import dumps, table
from perdure.engine.durations import format_duration, to_timedelta
from perdure.errors import InvalidInputError
from perdure.runtime import retention
from perdure.types import WorkerInfo


@click.command()
@option("--all", "show_all", is_flag=True, help="Also workers that stopped or died lately.")
@json_option
@database_option
def workers(show_all: bool, as_json: bool, database_url: str | None) -> None:
    """List the live workers: host, pid, app, hosted functions, slots in use, last heartbeat.

    A worker that has not beaten for longer than its stale_after (three heartbeat intervals)
    is dead: it was killed or lost the database. --all lists the workers that stopped or died
    within the last hour too.

    \b
    Examples:
      perdure workers
      perdure workers --all --json
    """
    found: list[WorkerInfo] = with_app(
        client(database_url), lambda a: a.query.list_workers(include_dead=show_all)
    )
    if as_json:
        click.echo(dumps(views.workers_json(found)))
        return
    if not found:
        click.echo("no live workers" if not show_all else "no workers seen lately", err=True)
        return
    rows = [
        [
            w.id,
            w.status,
            w.host,
            str(w.pid),
            w.app,
            f"{w.slots_used}/{w.slots}",
            views.iso(w.last_heartbeat) or "",
            ", ".join(w.functions),
        ]
        for w in found
    ]
    headers = ["WORKER", "STATUS", "HOST", "PID", "APP", "SLOTS", "LAST HEARTBEAT", "FUNCTIONS"]
    table(headers, rows, status_column=1)


def _duration(_ctx: Any, _param: Any, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        out = to_timedelta(value)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message) from None
    if out.total_seconds() <= 0:
        raise click.BadParameter("must be a positive duration, e.g. 7d or 12h")
    return out


@click.command()
@option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@option(
    "--older-than",
    callback=_duration,
    metavar="DURATION",
    help="Prune every ended run older than this (e.g. 7d), whatever its function's retention.",
)
@option(
    "--retention",
    "default",
    callback=_duration,
    default="30d",
    show_default=True,
    metavar="DURATION",
    help="The retention of the functions without their own (the App's retention).",
)
@json_option
@database_option
def prune(
    dry_run: bool,
    older_than: timedelta | None,
    default: timedelta | None,
    as_json: bool,
    database_url: str | None,
) -> None:
    """Prune ended runs (completed, failed, cancelled, skipped) past their retention: each
    function's own (@app.function(retention=...)), else --retention. Runs that have not ended
    are never pruned. Deletes in transactions of 500 runs; --dry-run only counts.

    \b
    Examples:
      perdure prune --dry-run
      perdure prune --older-than 7d
    """

    async def work(app: App) -> tuple[dict[str, int], int]:
        store = app.store
        plan = retention.cutoffs(
            await store.list_functions(), store.now(), default, older_than=older_than
        )
        counts = await retention.count(store, plan)
        return counts, 0 if dry_run else await retention.prune(store, plan)

    counts, deleted = with_app(client(database_url), work)
    would = sum(counts.values())
    if as_json:
        items = [{"function_id": f, "runs": n} for f, n in counts.items()]
        out = {"dry_run": dry_run, "functions": items, "total": would}
        click.echo(dumps(out if dry_run else {**out, "deleted": deleted}))
        return
    scope = f"older than {format_duration(older_than.total_seconds())}" if older_than else None
    if not counts:
        click.echo(f"nothing to prune{f' ({scope})' if scope else ''}")
        return
    table(["FUNCTION", "RUNS"], [[f, str(n)] for f, n in counts.items()])
    if dry_run:
        click.echo(f"dry run: {would} ended run(s) would be pruned; nothing was deleted")
    else:
        click.echo(f"pruned {deleted} ended run(s)")
