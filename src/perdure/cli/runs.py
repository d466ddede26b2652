"""``perdure runs list|show|cancel|rerun|replay``: runs in the database."""

from __future__ import annotations

from typing import Any

import click

from perdure import ids, views
from perdure.app import App
from perdure.cli.options import (
    cli_actor,
    client,
    database_option,
    json_option,
    option,
    with_app,
)
from perdure.cli.output import dumps, duration, error_text, short, status, table
from perdure.query import Page
from perdure.types import RunInfo, RunStatus


@click.group()
def runs() -> None:
    """List, inspect, cancel, rerun and replay runs.

    \b
    Examples:
      perdure runs list --status failed
      perdure runs show 01J0Z3Q8X2V4K6M8N0P2R4T6W8
      perdure runs cancel 01J0Z3Q8X2V4K6M8N0P2R4T6W8
      perdure runs rerun 01J0Z3Q8X2V4K6M8N0P2R4T6W8
      perdure runs replay 01J0Z3Q8X2V4K6M8N0P2R4T6W8 --from-step charge
    """


@runs.command("list")
@option(
    "--status",
    type=click.Choice([s.value for s in RunStatus], case_sensitive=False),
    default=None,
    help="Only runs in this state.",
)
@option("--function", "function_id", default=None, metavar="ID", help="Only this function.")
@option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="Runs per page.",
)
@option("--cursor", default=None, help="The next-page cursor printed by the previous page.")
@json_option
@database_option
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
    if cursor is not None and not ids.is_valid(cursor):
        raise click.BadParameter(f"{cursor!r} is not a run id", param_hint="'--cursor'")

    async def work(app: App) -> Page[RunInfo]:
        return await app.query.list_runs(
            status=status,
            function_id=function_id,
            before=None if cursor is None else cursor.upper(),
            limit=limit,
        )

    page = with_app(client(database_url), work)
    if as_json:
        click.echo(dumps(views.runs_page_json(page)))
        return
    if not page.items:
        click.echo("no runs", err=True)
        return
    rows = [
        [r.id, r.function_id, r.status.value, views.when_text(r.created_at), duration(r)]
        for r in page.items
    ]
    table(["RUN", "FUNCTION", "STATUS", "CREATED (UTC)", "TOOK"], rows, status_column=2)
    if page.next_cursor:
        click.echo(f"more: perdure runs list --cursor {page.next_cursor}", err=True)


@runs.command("show")
@click.argument("run_id")
@json_option
@database_option
def runs_show(run_id: str, as_json: bool, database_url: str | None) -> None:
    """Show a run: status, timestamps, input, output or error, and its steps.

    \b
    Example:
      perdure runs show 01J0Z3Q8X2V4K6M8N0P2R4T6W8
    """
    run = with_app(client(database_url), lambda a: a.query.get_run(run_id))
    if as_json:
        click.echo(dumps(views.run_json(run), pretty=True))
        return
    _print_run(run)


def reason_text(reason: dict[str, Any]) -> str:
    """Why flow control delayed, skipped or cancelled a run, for people:
    ``cancel_on cancelled: cancelled by event order.cancelled (01J...)``."""
    head = " ".join(str(reason[k]) for k in ("option", "decision") if reason.get(k) is not None)
    message = reason.get("message")
    if message is None:
        return f"{head} {dumps(reason)}".strip()
    return f"{head}: {message}" if head else str(message)


def _print_run(run: RunInfo) -> None:
    when = views.when_text
    fields = [
        ("run", run.id),
        ("function", run.function_id),
        ("status", status(run.status.value)),
        ("attempt", str(run.attempt)),
        ("created", when(run.created_at)),
        ("started", when(run.started_at)),
        ("ended", when(run.ended_at)),
        ("event", f"{run.event.name} {short(run.event.data, 200)}"),
    ]
    if run.parent_run_id:
        fields.append(("parent", run.parent_run_id))
    if run.idempotency_key:
        fields.append(("key", run.idempotency_key))
    if run.rerun_of:
        fields.append(("rerun of", run.rerun_of))
    if run.replay_of:
        fields.append(("replay of", f"{run.replay_of} from step {run.replay_from_step}"))
    if run.status is RunStatus.COMPLETED:
        fields.append(("output", dumps(run.output)))
    if run.error is not None:
        fields.append(("error", error_text(run.error)))
    if run.reason is not None:
        fields.append(("reason", reason_text(run.reason)))
    for label, value in fields:
        click.echo(f"{label:<9}{value}" if len(label) < 9 else f"{label} {value}")
    if not run.steps:
        click.echo("steps    none")
        return
    click.echo("steps")
    rows = []
    for s in run.steps:
        if s.error is not None:
            detail = error_text(s.error)
        elif s.wake_at is not None and s.status in ("sleeping", "waiting"):
            detail = f"until {when(s.wake_at)}"
        else:
            detail = short(s.output)
        rows.append([str(s.position), s.id, s.kind, s.status, str(s.attempts), detail])
    table(["#", "STEP", "KIND", "STATUS", "ATTEMPTS", "OUTPUT / ERROR"], rows, status_column=3)


@runs.command("cancel")
@click.argument("run_id")
@database_option
def runs_cancel(run_id: str, database_url: str | None) -> None:
    """Cancel a queued, running, sleeping or waiting run: it becomes cancelled and never
    resumes. An ended run is left as it is.

    \b
    Example:
      perdure runs cancel 01J0Z3Q8X2V4K6M8N0P2R4T6W8
    """

    async def work(app: App) -> tuple[RunStatus, RunInfo]:
        before = await app.query.get_run(run_id, steps=False)
        return before.status, await app.cancel(run_id, actor=cli_actor())

    before, after = with_app(client(database_url), work)
    if before.terminal:
        click.echo(f"run {run_id} had already ended ({before.value}); nothing changed")
    else:
        click.echo(f"run {run_id}: {after.status.value}")


@runs.command("rerun")
@click.argument("run_id")
@json_option
@database_option
def runs_rerun(run_id: str, as_json: bool, database_url: str | None) -> None:
    """Start a new run of the same function with the same input (the triggering event or
    events); it records which run it reruns. Any run may be rerun, ended or not.

    \b
    Example:
      perdure runs rerun 01J0Z3Q8X2V4K6M8N0P2R4T6W8
    """

    async def work(app: App) -> RunInfo:
        return await app.get_run((await app.rerun(run_id, actor=cli_actor())).run_id)

    _print_new(with_app(client(database_url), work), as_json)


@runs.command("replay")
@click.argument("run_id")
@option(
    "--from-step",
    "from_step",
    required=True,
    metavar="STEP",
    help="The step to execute from (its id, or its name as written).",
)
@json_option
@database_option
def runs_replay(run_id: str, from_step: str, as_json: bool, database_url: str | None) -> None:
    """Start a new run from an ended run that keeps the recorded results of the completed
    steps before STEP and executes from STEP on.

    \b
    Example:
      perdure runs replay 01J0Z3Q8X2V4K6M8N0P2R4T6W8 --from-step charge
    """

    async def work(app: App) -> RunInfo:
        return await app.get_run(
            (await app.replay(run_id, from_step=from_step, actor=cli_actor())).run_id
        )

    _print_new(with_app(client(database_url), work), as_json)


def _print_new(run: RunInfo, as_json: bool) -> None:
    if as_json:
        click.echo(dumps(views.run_json(run), pretty=True))
    elif run.replay_of:
        kept = len(run.steps)
        click.echo(
            f"run {run.id}: replay of {run.replay_of} from step {run.replay_from_step} "
            f"({kept} step{'s' if kept != 1 else ''} kept)"
        )
    else:
        click.echo(f"run {run.id}: rerun of {run.rerun_of}")
