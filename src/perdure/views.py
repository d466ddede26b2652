"""How runs, steps, functions and events look as JSON, for the HTTP API and the CLI alike.

This is the one place that shapes them (the OpenAPI document at ``/openapi.json`` describes
the same shapes). Times are ISO 8601 UTC strings ending in ``Z`` (:func:`iso`), or ``null``.
The few human-readable renderings both the CLI and the dashboard show (a trigger, a
timestamp) are here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from perdure.functions import CronTrigger, EventTrigger, FunctionRecord, Trigger
from perdure.query import EventDetail, EventInfo, FunctionStats, Page
from perdure.store.access import AuditRow, KeyRow
from perdure.store.base import SentEvent
from perdure.types import RunInfo, ScheduleInfo, StepInfo, WorkerInfo, iso_utc

# ---------------------------------------------------------------------- time


def iso(value: datetime | float | None) -> str | None:
    """An aware datetime, or epoch seconds, as an ISO 8601 UTC timestamp
    (``2024-06-01T09:00:00.123456Z``, by :func:`perdure.types.iso_utc`); ``None`` stays
    ``None``."""
    if value is None:
        return None
    return iso_utc(value.astimezone(UTC) if isinstance(value, datetime) else value)


def when_text(value: datetime | None) -> str:
    """A timestamp for people, to the second, in UTC (``2024-06-01 09:00:00Z``; ``-`` for
    none)."""
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


# ---------------------------------------------------------------------- runs and steps


def step_json(step: StepInfo) -> dict[str, Any]:
    """A recorded step: ``id``, ``kind``, ``status``, ``output``, ``error``, ``attempts``,
    ``position``, its times and, when ``id`` is derived from it, its ``name``."""
    out: dict[str, Any] = {
        "id": step.id,
        "kind": step.kind,
        "status": step.status,
        "output": step.output,
        "error": step.error,
        "attempts": step.attempts,
        "position": step.position,
        "started_at": iso(step.started_at),
        "ended_at": iso(step.ended_at),
        "wake_at": iso(step.wake_at),
    }
    if step.name is not None:
        out["name"] = step.name
    if step.input is not None:
        out["input"] = step.input
    return out


def run_json(run: RunInfo, *, steps: bool = True) -> dict[str, Any]:
    """A run, with its ``steps`` (``steps=False``: the listed form, with no ``steps`` key)."""
    out: dict[str, Any] = {
        "id": run.id,
        "function_id": run.function_id,
        "status": run.status.value,
        "event": run.event.to_dict(),
        "output": run.output,
        "error": run.error,
        "attempt": run.attempt,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
        "parent_run_id": run.parent_run_id,
        "idempotency_key": run.idempotency_key,
        "reason": run.reason,
        "rerun_of": run.rerun_of,
        "replay_of": run.replay_of,
        "replay_from_step": run.replay_from_step,
    }
    if run.events is not None:
        out["events"] = [e.to_dict() for e in run.events]
    if steps:
        out["steps"] = [step_json(s) for s in run.steps]
    return out


def runs_page_json(page: Page[RunInfo]) -> dict[str, Any]:
    """A page of runs (without their steps): ``{"runs": [...], "next_cursor"}``."""
    return {"runs": [run_json(r, steps=False) for r in page.items], "next_cursor": page.next_cursor}


# ---------------------------------------------------------------------- functions


def trigger_json(trigger: Trigger) -> dict[str, Any]:
    """A trigger: ``{"event", "if"?}`` or ``{"cron", "tz", "catchup", "catchup_policy",
    "overlap"}`` (``catchup``: the catch-up window, in seconds)."""
    if isinstance(trigger, CronTrigger):
        return {
            "cron": trigger.expr,
            "tz": trigger.tz,
            "catchup": trigger.catchup_seconds,
            "catchup_policy": trigger.catchup,
            "overlap": trigger.overlap,
        }
    out: dict[str, Any] = {"event": trigger.name}
    if trigger.if_ is not None:
        out["if"] = trigger.if_
    return out


def trigger_text(trigger: Trigger) -> str:
    """A trigger for people: ``event order.placed if ...`` or ``cron 0 9 * * * (UTC)``."""
    if isinstance(trigger, EventTrigger):
        text = f"event {trigger.name}"
        return f"{text} if {trigger.if_}" if trigger.if_ is not None else text
    return f"cron {trigger.expr} ({trigger.tz})"


def function_json(record: FunctionRecord) -> dict[str, Any]:
    """A registered function: ``id``, ``app``, ``triggers`` and ``config``."""
    return {
        "id": record.id,
        "app": record.app,
        "triggers": [trigger_json(t) for t in record.triggers],
        "config": record.config,
        "flow": record.flow.to_dict(),
        "paused": record.paused_at is not None,
        "paused_at": iso(record.paused_at),
    }


def functions_json(records: Sequence[FunctionRecord]) -> dict[str, Any]:
    """The registered functions: ``{"functions": [...]}``."""
    return {"functions": [function_json(r) for r in records]}


def worker_json(info: WorkerInfo) -> dict[str, Any]:
    """A registered worker (``status``: live, stopped or dead)."""
    return {
        "id": info.id,
        "host": info.host,
        "pid": info.pid,
        "app": info.app,
        "functions": list(info.functions),
        "slots": info.slots,
        "slots_used": info.slots_used,
        "started_at": iso(info.started_at),
        "last_heartbeat": iso(info.last_heartbeat),
        "stopped_at": iso(info.stopped_at),
        "stale_after": info.stale_after,
        "status": info.status,
        "live": info.live,
    }


def workers_json(infos: Sequence[WorkerInfo]) -> dict[str, Any]:
    """The registered workers: ``{"workers": [...]}``."""
    return {"workers": [worker_json(w) for w in infos]}


# ---------------------------------------------------------------------- events


def event_json(info: EventInfo) -> dict[str, Any]:
    """A received event: the event object, ``received_at`` and the ``run_ids`` it started."""
    out = dict(info.event)
    out["received_at"] = iso(info.received_at)
    out["run_ids"] = list(info.run_ids)
    return out


def run_brief_json(run: RunInfo) -> dict[str, Any]:
    """A run in a list of links: ``id``, ``function_id``, ``status`` and its times."""
    return {
        "id": run.id,
        "function_id": run.function_id,
        "status": run.status.value,
        "created_at": iso(run.created_at),
        "ended_at": iso(run.ended_at),
    }


def event_detail_json(detail: EventDetail) -> dict[str, Any]:
    """A received event (:func:`event_json`) with ``started``, the runs it started, and
    ``resumed``, the runs whose wait step it satisfied (``step_id``; ``run`` is ``null``
    for a run pruned since)."""
    out = event_json(detail.info)
    out["started"] = [run_brief_json(r) for r in detail.started]
    out["resumed"] = [
        {
            "run_id": r.run_id,
            "step_id": r.step_id,
            "run": None if r.run is None else run_brief_json(r.run),
        }
        for r in detail.resumed
    ]
    return out


def function_stats_json(function_id: str, stats: FunctionStats) -> dict[str, Any]:
    """A function's recent statistics (:class:`~perdure.query.FunctionStats`); durations
    in seconds."""
    return {
        "function_id": function_id,
        "window": stats.window,
        "runs": stats.runs,
        "statuses": dict(stats.statuses),
        "success_rate": stats.success_rate,
        "duration": {"p50": stats.p50, "p95": stats.p95, "p99": stats.p99},
    }


def events_page_json(page: Page[EventInfo]) -> dict[str, Any]:
    """A page of received events: ``{"events": [...], "next_cursor"}``."""
    return {"events": [event_json(e) for e in page.items], "next_cursor": page.next_cursor}


def sent_json(sent: Sequence[SentEvent]) -> dict[str, Any]:
    """The result of sending events, in the order sent: ``{"ids": [...], "events": [{"id",
    "duplicate", "run_ids"}]}`` (a duplicate started nothing)."""
    return {
        "ids": [s.id for s in sent],
        "events": [
            {
                "id": s.id,
                "duplicate": s.duplicate,
                "run_ids": list(s.run_ids),
                "skipped": list(s.skipped),
            }
            for s in sent
        ],
    }


# ---------------------------------------------------------------------- schedules


def schedule_json(info: ScheduleInfo) -> dict[str, Any]:
    """A schedule: its definition (``id``, ``function_id``, ``cron``, ``tz``, ``data``,
    ``overlap``, ``catchup``, ``catchup_window`` in seconds, ``paused``), where it is
    (``last_tick``, ``next_tick``, ``last_run_id``), its counts (``runs``,
    ``skipped_overlap``, ``missed``) and its times."""
    return {
        "id": info.id,
        "function_id": info.function_id,
        "cron": info.cron,
        "tz": info.tz,
        "data": info.data,
        "overlap": info.overlap,
        "catchup": info.catchup,
        "catchup_window": info.catchup_window,
        "paused": info.paused,
        "last_tick": iso(info.last_tick),
        "next_tick": iso(info.next_tick),
        "last_run_id": info.last_run_id,
        "runs": info.runs,
        "skipped_overlap": info.skipped_overlap,
        "missed": info.missed,
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
    }


def schedules_page_json(page: Page[ScheduleInfo]) -> dict[str, Any]:
    """A page of schedules, by id: ``{"schedules": [...], "next_cursor"}``."""
    return {
        "schedules": [schedule_json(s) for s in page.items],
        "next_cursor": page.next_cursor,
    }


# ---------------------------------------------------------------------- keys and audit


def key_json(key: KeyRow) -> dict[str, Any]:
    """An API key as the API shows it (never its token or hash)."""
    return {
        "id": key.id,
        "name": key.name,
        "scopes": list(key.scopes),
        "prefix": key.prefix,
        "created_by": key.created_by,
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
    }


def audit_json(entry: AuditRow) -> dict[str, Any]:
    """An entry of the audit trail."""
    return {
        "seq": entry.seq,
        "at": iso(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "run_id": entry.run_id,
        "target": entry.target,
        "detail": entry.detail,
    }
