"""``perdure schedules list|show|create|pause|resume|delete|trigger``: schedules created at run
time (``app.schedules``), in the database."""

from __future__ import annotations

import click

from perdure import views
from perdure.app import App
from perdure.cli.options import client, database_option, json_arg, json_option, option, with_app
from perdure.cli.output import dumps, table
from perdure.engine.cron import CronSchedule
from perdure.engine.durations import to_seconds
from perdure.engine.ticks import CATCHUPS, OVERLAPS
from perdure.errors import InvalidInputError
from perdure.query import Page
from perdure.schedules import check_schedule_id
from perdure.types import ScheduleInfo


@click.group()
def schedules() -> None:
    """Create, inspect, pause, resume, trigger and delete schedules: a run of a function at
    every tick of a cron expression, with its own data (workers hosting the function fire
    them).

    \b
    Examples:
      perdure schedules create daily-report send-report "0 9 * * *" --tz Europe/Paris \\
          --data '{"to": "ops@example.com"}'
      perdure schedules list
      perdure schedules trigger daily-report
      perdure schedules pause daily-report
    """


def _id(value: str, hint: str = "'ID'") -> str:
    try:
        return check_schedule_id(value)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message, param_hint=hint) from None


def _state(info: ScheduleInfo) -> str:
    return "paused" if info.paused else "active"


@schedules.command("list")
@option("--function", "function_id", default=None, metavar="ID", help="Only this function's.")
@option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="Schedules per page.",
)
@option("--cursor", default=None, help="The next-page cursor printed by the previous page.")
@json_option
@database_option
def schedules_list(
    function_id: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
    database_url: str | None,
) -> None:
    """List schedules, by id.

    \b
    Examples:
      perdure schedules list
      perdure schedules list --function send-report --json | jq '.schedules[].id'
    """
    if cursor is not None:
        _id(cursor, "'--cursor'")

    async def work(app: App) -> Page[ScheduleInfo]:
        return await app.schedules.page(function=function_id, after=cursor, limit=limit)

    page = with_app(client(database_url), work)
    if as_json:
        click.echo(dumps(views.schedules_page_json(page)))
        return
    if not page.items:
        click.echo("no schedules", err=True)
        return
    rows = [
        [
            s.id,
            s.function_id,
            f"{s.cron} ({s.tz})",
            _state(s),
            views.when_text(s.next_tick),
            str(s.runs),
        ]
        for s in page.items
    ]
    table(["SCHEDULE", "FUNCTION", "CRON", "STATE", "NEXT TICK (UTC)", "RUNS"], rows)
    if page.next_cursor:
        click.echo(f"more: perdure schedules list --cursor {page.next_cursor}", err=True)


def _print(info: ScheduleInfo) -> None:
    when = views.when_text
    fields = [
        ("schedule", info.id),
        ("function", info.function_id),
        ("cron", f"{info.cron} ({info.tz})"),
        ("state", _state(info)),
        ("data", dumps(info.data)),
        ("overlap", info.overlap),
        ("catchup", f"{info.catchup} within {info.catchup_window:g}s"),
        ("next", when(info.next_tick)),
        ("last", when(info.last_tick)),
        ("last run", info.last_run_id or "-"),
        (
            "counts",
            f"{info.runs} run(s), {info.skipped_overlap} skipped (overlap), {info.missed} missed",
        ),
        ("created", when(info.created_at)),
        ("updated", when(info.updated_at)),
    ]
    for label, value in fields:
        click.echo(f"{label:<10}{value}")


def _show(info: ScheduleInfo, as_json: bool) -> None:
    if as_json:
        click.echo(dumps(views.schedule_json(info), pretty=True))
    else:
        _print(info)


@schedules.command("show")
@click.argument("schedule_id", metavar="ID")
@json_option
@database_option
def schedules_show(schedule_id: str, as_json: bool, database_url: str | None) -> None:
    """Show a schedule: its definition, its next and last ticks, its counts.

    \b
    Example:
      perdure schedules show daily-report
    """
    _show(with_app(client(database_url), lambda a: a.schedules.get(schedule_id)), as_json)


@schedules.command("create")
@click.argument("schedule_id", metavar="ID")
@click.argument("function_id", metavar="FUNCTION")
@click.argument("cron")
@option("--tz", default="UTC", show_default=True, help="The IANA time zone of the cron fields.")
@option(
    "--data",
    default="{}",
    show_default=True,
    metavar="JSON",
    help="Each run's ctx.event.data, a JSON object ('-': read it from stdin).",
)
@option(
    "--overlap",
    type=click.Choice(OVERLAPS),
    default="skip",
    show_default=True,
    help="skip: no new run while the previous one of this schedule is active.",
)
@option(
    "--catchup",
    type=click.Choice(CATCHUPS),
    default="latest",
    show_default=True,
    help="Which ticks missed while no worker ran still run.",
)
@option(
    "--catchup-window",
    default="24h",
    show_default=True,
    metavar="DURATION",
    help="Missed ticks older than this never run (e.g. 30m, 2h, 7d).",
)
@option("--paused", is_flag=True, help="Create it paused.")
@json_option
@database_option
def schedules_create(
    schedule_id: str,
    function_id: str,
    cron: str,
    tz: str,
    data: str,
    overlap: str,
    catchup: str,
    catchup_window: str,
    paused: bool,
    as_json: bool,
    database_url: str | None,
) -> None:
    """Create the schedule ID: a run of FUNCTION at every tick of CRON (5 fields, or 6 with
    the seconds first, or a macro such as @daily). The first tick is the first after now.

    \b
    Examples:
      perdure schedules create daily-report send-report "0 9 * * 1-5" --tz Europe/Paris
      perdure schedules create sync-a sync "*/5 * * * *" --data '{"account": "a"}' \\
          --overlap allow --catchup none
    """
    _id(schedule_id)
    payload = json_arg(data, "'--data'")
    try:
        CronSchedule.parse(cron, tz)
    except InvalidInputError as exc:
        hint = "'--tz'" if "time zone" in exc.message else "'CRON'"
        raise click.BadParameter(exc.message, param_hint=hint) from None
    try:
        window = to_seconds(catchup_window)
    except InvalidInputError as exc:
        raise click.BadParameter(exc.message, param_hint="'--catchup-window'") from None

    async def work(app: App) -> ScheduleInfo:
        return await app.schedules.create(
            schedule_id,
            function_id,
            cron,
            tz=tz,
            data=payload,
            overlap=overlap,
            catchup=catchup,
            catchup_window=window,
            paused=paused,
        )

    info = with_app(client(database_url), work)
    if as_json:
        click.echo(dumps(views.schedule_json(info), pretty=True))
        return
    state = "paused" if info.paused else f"next tick {views.when_text(info.next_tick)}"
    click.echo(
        f"schedule {info.id} created: {info.function_id} at {info.cron} ({info.tz}), {state}"
    )


@schedules.command("pause")
@click.argument("schedule_id", metavar="ID")
@json_option
@database_option
def schedules_pause(schedule_id: str, as_json: bool, database_url: str | None) -> None:
    """Pause a schedule: no tick fires until it is resumed (it can still be triggered).

    \b
    Example:
      perdure schedules pause daily-report
    """
    info = with_app(client(database_url), lambda a: a.schedules.pause(schedule_id))
    if as_json:
        click.echo(dumps(views.schedule_json(info), pretty=True))
    else:
        click.echo(f"schedule {info.id}: paused")


@schedules.command("resume")
@click.argument("schedule_id", metavar="ID")
@json_option
@database_option
def schedules_resume(schedule_id: str, as_json: bool, database_url: str | None) -> None:
    """Resume a paused schedule: ticks after now fire (those of the pause never do).

    \b
    Example:
      perdure schedules resume daily-report
    """
    info = with_app(client(database_url), lambda a: a.schedules.resume(schedule_id))
    if as_json:
        click.echo(dumps(views.schedule_json(info), pretty=True))
    else:
        click.echo(f"schedule {info.id}: active, next tick {views.when_text(info.next_tick)}")


@schedules.command("delete")
@click.argument("schedule_id", metavar="ID")
@database_option
def schedules_delete(schedule_id: str, database_url: str | None) -> None:
    """Delete a schedule: it fires no more (its runs are left as they are).

    \b
    Example:
      perdure schedules delete daily-report
    """
    with_app(client(database_url), lambda a: a.schedules.delete(schedule_id))
    click.echo(f"schedule {schedule_id}: deleted")


@schedules.command("trigger")
@click.argument("schedule_id", metavar="ID")
@database_option
def schedules_trigger(schedule_id: str, database_url: str | None) -> None:
    """Start one run of a schedule now, even when it is paused; prints the run id.

    \b
    Example:
      perdure schedules trigger daily-report
    """

    async def work(app: App) -> str:
        return (await app.schedules.trigger(schedule_id)).run_id

    click.echo(with_app(client(database_url), work))
