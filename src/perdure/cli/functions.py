"""``perdure functions [list|show ID|pause ID|resume ID]``: the functions registered in the
database, and pausing them."""

from __future__ import annotations

from typing import Any

import click

from perdure import views
from perdure.app import App
from perdure.cli.options import cli_actor, client, database_option, json_option, with_app
from perdure.cli.output import dumps, table
from perdure.engine.durations import format_duration
from perdure.functions import FunctionRecord
from perdure.types import FunctionPause


@click.group(invoke_without_command=True)
@json_option
@database_option
@click.pass_context
def functions(ctx: click.Context, as_json: bool, database_url: str | None) -> None:
    """List the functions registered in the database (workers and servers register them),
    or show one with its options.

    \b
    Examples:
      perdure functions --database-url sqlite:///.perdure/perdure.db
      perdure functions show fulfil-order
    """
    if ctx.invoked_subcommand is None:
        _list(as_json, database_url)


@functions.command("list")
@json_option
@database_option
def functions_list(as_json: bool, database_url: str | None) -> None:
    """List the registered functions (the same as ``perdure functions``).

    \b
    Example:
      perdure functions list --json
    """
    _list(as_json, database_url)


def _list(as_json: bool, database_url: str | None) -> None:
    records = with_app(client(database_url), lambda a: a.query.list_functions())
    if as_json:
        click.echo(dumps(views.functions_json(records)))
        return
    if not records:
        click.echo("no functions registered (start a worker or `perdure dev`)", err=True)
        return
    rows = [
        [
            r.id,
            r.app,
            ", ".join(views.trigger_text(t) for t in r.triggers) or "direct/invoke",
            "paused" if r.paused_at is not None else "active",
        ]
        for r in records
    ]
    table(["FUNCTION", "APP", "TRIGGERS", "STATE"], rows)


@functions.command("show")
@click.argument("function_id")
@json_option
@database_option
def functions_show(function_id: str, as_json: bool, database_url: str | None) -> None:
    """Show a function: its app, triggers and every flow-control option.

    \b
    Example:
      perdure functions show fulfil-order
    """

    async def work(app: App) -> FunctionRecord | None:
        records = await app.query.list_functions()
        return next((r for r in records if r.id == function_id), None)

    record = with_app(client(database_url), work)
    if record is None:
        raise click.ClickException(f"no function with id {function_id!r} is registered")
    if as_json:
        click.echo(dumps(views.function_json(record), pretty=True))
        return
    triggers = ", ".join(views.trigger_text(t) for t in record.triggers) or "direct/invoke"
    click.echo(f"{'function':<13}{record.id}")
    click.echo(f"{'app':<13}{record.app}")
    click.echo(f"{'triggers':<13}{triggers}")
    paused = views.iso(record.paused_at)
    click.echo(f"{'state':<13}{'active' if paused is None else 'paused since ' + paused}")
    lines = flow_lines(record.flow.to_dict())
    if not lines:
        click.echo(f"{'flow':<13}none")
        return
    click.echo("flow control")
    for name, text in lines:
        click.echo(f"  {name:<13}{text}")


@functions.command("pause")
@click.argument("function_id")
@json_option
@database_option
def functions_pause(function_id: str, as_json: bool, database_url: str | None) -> None:
    """Pause a function: its runs are still created and queue, none starts until it is
    resumed; its cron triggers and schedules skip their ticks meanwhile.

    \b
    Example:
      perdure functions pause fulfil-order
    """
    _set_paused(function_id, True, as_json, database_url)


@functions.command("resume")
@click.argument("function_id")
@json_option
@database_option
def functions_resume(function_id: str, as_json: bool, database_url: str | None) -> None:
    """Resume a paused function: its queued runs start, in their queue order.

    \b
    Example:
      perdure functions resume fulfil-order
    """
    _set_paused(function_id, False, as_json, database_url)


def _set_paused(function_id: str, paused: bool, as_json: bool, database_url: str | None) -> None:
    async def work(app: App) -> FunctionPause:
        actor = cli_actor()
        return await (
            app.pause(function_id, actor=actor) if paused else app.resume(function_id, actor=actor)
        )

    state = with_app(client(database_url), work)
    if as_json:
        out = {"id": state.function_id, "paused": state.paused}
        click.echo(dumps({**out, "paused_at": views.iso(state.paused_at)}))
    elif state.paused:
        click.echo(f"{function_id} paused since {views.iso(state.paused_at)}")
    else:
        click.echo(f"{function_id} resumed")


# ---------------------------------------------------------------------- option texts


def _d(seconds: Any) -> str:
    return format_duration(float(seconds)) if isinstance(seconds, int | float) else str(seconds)


def _per(key: Any) -> str:
    return "" if key is None else f" per {key}"


def _concurrency(c: dict[str, Any]) -> str:
    shared = " (shared across functions)" if c.get("scope") == "env" else ""
    return f"at most {c['limit']} running at once{_per(c.get('key'))}{shared}"


def _cancel_on(c: dict[str, Any]) -> str:
    text = f"on event {c['event']}"
    if c.get("match") is not None:
        text += f" with the same {c['match']}"
    if c.get("if") is not None:
        text += f" if {c['if']}"
    if c.get("timeout") is not None:
        text += f", within {_d(c['timeout'])} of the run's creation"
    return text


def _option_text(name: str, v: Any) -> str:
    if name == "throttle":
        return f"{v['limit']} starts per {_d(v['period'])}{_per(v.get('key'))} (burst {v['burst']})"
    if name == "rate_limit":
        return f"{v['limit']} runs per {_d(v['period'])}{_per(v.get('key'))}; the rest skipped"
    if name == "debounce":
        cap = "" if v.get("timeout") is None else f", at most {_d(v['timeout'])} after the first"
        return f"one run {_d(v['period'])} after the last event{_per(v.get('key'))}{cap}"
    if name == "batch":
        return (
            f"up to {v['max_size']} events per run{_per(v.get('key'))}, "
            f"or {_d(v['timeout'])} after the first"
        )
    if name == "priority":
        return f"head start (seconds) = {v['run']}"
    if name == "singleton":
        mode = "new runs are skipped" if v.get("mode") == "skip" else "a new run cancels it"
        return f"one active run{_per(v.get('key'))}; {mode}"
    if name == "idempotency":
        return f"one run per {v} within 24h"
    if name == "timeouts":
        parts = []
        if v.get("start") is not None:
            parts.append(f"start within {_d(v['start'])} of creation")
        if v.get("finish") is not None:
            parts.append(f"finish within {_d(v['finish'])} of the start")
        return "; ".join(parts) or "none"
    return dumps(v)


def flow_lines(flow: dict[str, Any]) -> list[tuple[str, str]]:
    """Every flow-control option of a function (its JSON form) as ``(name, text)`` lines for
    people; an option this CLI does not know is printed as JSON."""
    out: list[tuple[str, str]] = []
    for name, value in flow.items():
        try:
            if name == "concurrency":
                out += [(name, _concurrency(c)) for c in value]
            elif name == "cancel_on":
                out += [(name, _cancel_on(c)) for c in value]
            else:
                out.append((name, _option_text(name, value)))
        except (KeyError, TypeError):
            out.append((name, dumps(value)))
    return out
