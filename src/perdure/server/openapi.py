"""The OpenAPI 3.1 document served at ``/openapi.json``, generated from the pydantic models
that validate the requests (:mod:`perdure.server.models`) and describe the responses
(:mod:`perdure.server.responses`), so the document and the server cannot disagree."""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from perdure._version import __version__
from perdure.server import models, responses
from perdure.server.http import BODY_LIMIT

_JSON = "application/json"
_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _resp(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(model.__name__)}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out = _resp(responses.Error, description)
    if headers:
        out["headers"] = headers
    return out


@functools.cache
def _schemas() -> dict[str, Any]:
    """Every model's JSON schema, by name, with references between them."""
    request_models: list[type[BaseModel]] = [
        models.EventIn,
        models.StartRun,
        models.ReplayRun,
        models.BulkRuns,
        models.ScheduleIn,
    ]
    pairs = [(m, "validation") for m in (*request_models, *responses.RESPONSE_MODELS)]
    _, top = models_json_schema(pairs, ref_template=_REF)  # type: ignore[arg-type]
    defs: dict[str, Any] = top["$defs"]
    return defs


def _parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query parameters of a query model: its fields, each optional."""
    schema = model.model_json_schema(ref_template=_REF)
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        if "anyOf" in prop:  # "X or null": a query parameter is absent rather than null
            [prop] = [
                {**p, **({"default": prop["default"]} if prop.get("default") is not None else {})}
                for p in prop["anyOf"]
                if p.get("type") != "null"
            ]
        param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": prop}
        if description:
            param["description"] = description
        out.append(param)
    return out


def _path(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": models.ANY_ID},
    }


_RESPONSES: dict[str, Any] = {
    "BadRequest": _error(
        "Malformed JSON or invalid input (code malformed_json or invalid_input), or a Host "
        "that is not allowed (host_not_allowed); nothing was changed."
    ),
    "Unauthorized": _error(
        "Missing or wrong bearer token.", {"WWW-Authenticate": {"schema": {"type": "string"}}}
    ),
    "Forbidden": _error("A browser request from a page of another site (origin_not_allowed)."),
    "NotFound": _error(
        "Unknown app, event, function, run or schedule (app_not_found, event_not_found, "
        "function_not_found, run_not_found, schedule_not_found)."
    ),
    "Conflict": _error(
        "A schedule with that id already exists (schedule_exists), or a replay of a run that "
        "has not ended (run_not_ended)."
    ),
    "TooLarge": _error(
        f"Over a payload limit (the body {BODY_LIMIT} bytes, {models.MAX_EVENTS_PER_REQUEST} "
        "events, an event, a run's input); nothing was changed."
    ),
    "UnsupportedMediaType": _error(
        "A request body that is not 'Content-Type: application/json'; nothing was changed."
    ),
    "Unavailable": _error(
        "The database is unreachable; retry later.",
        {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
    ),
}

_STATUS = {
    "BadRequest": "400",
    "Forbidden": "403",
    "NotFound": "404",
    "Conflict": "409",
    "TooLarge": "413",
    "UnsupportedMediaType": "415",
}


def _op(
    summary: str,
    ok: dict[str, Any],
    *,
    auth: bool,
    errors: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, **extra}
    all_responses = dict(ok)
    for name in ("BadRequest", *errors):  # any request may be refused for its Host
        all_responses[_STATUS[name]] = {"$ref": f"#/components/responses/{name}"}
    if auth:
        all_responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
    all_responses["503"] = {"$ref": "#/components/responses/Unavailable"}
    out["responses"] = all_responses
    if not auth:
        out["security"] = []
    return out


def _body(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {_JSON: {"schema": schema}}}


_WRITE = ("Forbidden", "UnsupportedMediaType")  # the checks on state-changing requests


def document(*, auth: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document. ``auth``: the ``/api/v1`` routes need a bearer token."""
    r = responses
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "summary": "Whether the server and its database are up.",
                "security": [],
                "responses": {
                    "200": _resp(r.Health, "Up."),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "503": _resp(r.Health, "The database is unreachable."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {_JSON: {"schema": {"type": "object"}}},
                    },
                    "400": {"$ref": "#/components/responses/BadRequest"},
                },
            }
        },
        "/metrics": {
            "get": _op(
                "The Prometheus metrics of this server process.",
                {
                    "200": {
                        "description": "The metrics in Prometheus text format (version 0.0.4).",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                auth=auth,
                description=(
                    "Counters are per process (since it started): runs started and ended, "
                    "lease takeovers, step durations, HTTP requests. Gauges are read at "
                    "scrape time: runs due and not claimed, the oldest one's age, workers "
                    "alive. See docs/observability.md."
                ),
            )
        },
        "/api/v1/events": {
            "post": _op(
                "Send one event or an array of events.",
                {"200": _resp(r.SendResult, "Stored (or recognised as duplicates).")},
                auth=auth,
                errors=("TooLarge", *_WRITE),
                description=(
                    "All events are validated before any is stored; on any error nothing is "
                    f"stored. Limits: the body {BODY_LIMIT} bytes, "
                    f"{models.MAX_EVENTS_PER_REQUEST} events (413 above), each event the "
                    "server's event limit (512 KiB by default)."
                ),
                requestBody=_body(
                    {
                        "oneOf": [
                            _ref("EventIn"),
                            # the count limit is a payload limit (413, like the size
                            # limits), not a rule of the schema
                            {"type": "array", "minItems": 1, "items": _ref("EventIn")},
                        ]
                    },
                    required=True,
                ),
            ),
            "get": _op(
                "Events, newest first.",
                {"200": _resp(r.EventPage, "A page of events.")},
                auth=auth,
                parameters=_parameters(models.EventsQuery),
            ),
        },
        "/api/v1/events/{event_id}": {
            "get": _op(
                "An event with the runs it started and the runs it resumed (the wait steps "
                "it satisfied).",
                {"200": _resp(r.EventDetail, "The event (the newest, if its id was reused).")},
                auth=auth,
                errors=("NotFound",),
                parameters=[_path("event_id")],
            ),
        },
        "/api/v1/functions": {
            "get": _op(
                "Registered functions.",
                {"200": _resp(r.FunctionList, "Every registered function.")},
                auth=auth,
            ),
            "post": _op(
                "Register an HTTP function (an app of one function on the Inngest protocol).",
                {
                    "201": {
                        "description": "Registered: the app id and the function.",
                        "content": {_JSON: {"schema": {"type": "object"}}},
                    }
                },
                auth=auth,
                errors=("Conflict", *_WRITE),
                description=(
                    "Served by `perdure dev` (the Inngest-compatible routes). `url` is where "
                    "perdure calls the function; `triggers` as in `/fn/register`."
                ),
                requestBody=_body(
                    {
                        "type": "object",
                        "required": ["url"],
                        "properties": {
                            "id": {"type": "string", "minLength": 1, "pattern": "^\\S+$"},
                            "name": {"type": "string", "minLength": 1},
                            "url": {"type": "string", "pattern": "^https?://"},
                            "app": {"type": "string"},
                            "retries": {"type": "integer"},
                            "triggers": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                    required=True,
                ),
            ),
        },
        "/api/v1/functions/{function_id}": {
            "get": _op(
                "A registered function with its triggers and flow-control options.",
                {"200": _resp(r.Function, "The function.")},
                auth=auth,
                errors=("NotFound",),
                parameters=[_path("function_id")],
            ),
        },
        "/api/v1/functions/{function_id}/stats": {
            "get": _op(
                "A function's recent success rate and duration percentiles.",
                {"200": _resp(r.FunctionStats, "Over its 1000 most recently created runs.")},
                auth=auth,
                errors=("NotFound",),
                parameters=[_path("function_id")],
            ),
        },
        "/api/v1/functions/{function_id}/runs": {
            "post": _op(
                "Start a run of a function.",
                {
                    "201": _resp(r.StartedRun, "Started."),
                    "200": _resp(r.StartedRun, "The idempotency key named an existing run."),
                },
                auth=auth,
                errors=("NotFound", "TooLarge", *_WRITE),
                description="The body is optional: none, or null, is {}.",
                parameters=[_path("function_id")],
                requestBody=_body({"anyOf": [_ref("StartRun"), {"type": "null"}]}, required=False),
            ),
        },
        "/api/v1/runs": {
            "get": _op(
                "Runs, newest first.",
                {"200": _resp(r.RunPage, "A page of runs (without steps).")},
                auth=auth,
                parameters=_parameters(models.RunsQuery),
            ),
        },
        "/api/v1/runs/stream": {
            "get": _op(
                "Live run changes for the dashboard (server-sent events): changes of the "
                "watched runs and, with new=1, new runs that pass the filters.",
                {
                    "200": {
                        "description": "An endless text/event-stream: 'event: run' with "
                        '{"run", "matches"}, \'event: overflow\' (reload), comment pings.',
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    }
                },
                auth=auth,
                parameters=_parameters(models.RunsStreamQuery),
            ),
        },
        "/api/v1/runs/bulk/cancel": {
            "post": _op(
                f"Cancel the runs that pass the filters and have not ended, at most "
                f"{models.BULK_MAX} per call, newest first (dry_run: only count them).",
                {"200": _resp(r.BulkResult, "What was (or would be) cancelled.")},
                auth=auth,
                errors=_WRITE,
                requestBody=_body({"anyOf": [_ref("BulkRuns"), {"type": "null"}]}, required=False),
            ),
        },
        "/api/v1/runs/bulk/rerun": {
            "post": _op(
                f"Rerun the runs that pass the filters, at most {models.BULK_MAX} per call, "
                "newest first (dry_run: only count them); next_cursor continues.",
                {"200": _resp(r.BulkResult, "What was (or would be) rerun.")},
                auth=auth,
                errors=_WRITE,
                requestBody=_body({"anyOf": [_ref("BulkRuns"), {"type": "null"}]}, required=False),
            ),
        },
        "/api/v1/runs/{run_id}": {
            "get": _op(
                "A run with its steps.",
                {"200": _resp(r.Run, "The run.")},
                auth=auth,
                errors=("NotFound",),
                parameters=[_path("run_id")],
            ),
        },
        "/api/v1/runs/{run_id}/cancel": {
            "post": _op(
                "Cancel a run: it becomes cancelled and never resumes. An ended run is "
                "returned unchanged.",
                {"200": _resp(r.Run, "The run after cancelling.")},
                auth=auth,
                errors=("NotFound", *_WRITE),
                parameters=[_path("run_id")],
            ),
        },
        "/api/v1/runs/{run_id}/rerun": {
            "post": _op(
                "Rerun a run: a new run of the same function with the same input, linked to it "
                "(rerun_of). Any run, ended or not.",
                {"201": _resp(r.Run, "The new run.")},
                auth=auth,
                errors=("NotFound", *_WRITE),
                description="No body (or {}, or null). Location is the new run's URL.",
                parameters=[_path("run_id")],
                requestBody=_body(
                    {"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]},
                    required=False,
                ),
            ),
        },
        "/api/v1/runs/{run_id}/replay": {
            "post": _op(
                "Replay an ended run from a step: a new run that keeps the recorded results of "
                "the completed steps before from_step and executes from it on (replay_of, "
                "replay_from_step).",
                {"201": _resp(r.Run, "The new run, with the steps it kept.")},
                auth=auth,
                errors=("NotFound", "Conflict", *_WRITE),
                description="An unknown step is 400 invalid_input; a run that has not ended is "
                "409 run_not_ended. Location is the new run's URL.",
                parameters=[_path("run_id")],
                requestBody=_body(_ref("ReplayRun"), required=True),
            ),
        },
        **_schedule_paths(auth),
        "/api/v1/apps": {
            "get": _op(
                "The apps on the official Inngest SDKs: URL, functions, last sync and error.",
                {"200": _resp(r.AppList, "The apps.")},
                auth=auth,
            ),
        },
        "/api/v1/apps/{app_id}/resync": {
            "post": _op(
                "Resync an app: the server sends its URL the sync PUT, as the Inngest dev "
                "server does, and records the outcome.",
                {"200": _resp(r.Resync, "Attempted (sync.ok says whether it worked).")},
                auth=auth,
                errors=("NotFound", *_WRITE),
                description="No body (or {}, or null).",
                parameters=[_path("app_id")],
                requestBody=_body(
                    {"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]},
                    required=False,
                ),
            ),
        },
        **_operations_paths(auth),
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "perdure",
            "version": __version__,
            "description": "Durable execution engine: events, functions and runs. Errors are "
            'always {"error": {"code", "message"}}.',
        },
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(_schemas()),
            "responses": _RESPONSES,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if auth:
        doc["security"] = [{"bearer": []}]
    return doc


def _schedule_paths(auth: bool) -> dict[str, Any]:
    r = responses
    one = {"200": _resp(r.Schedule, "The schedule.")}
    after = {"200": _resp(r.Schedule, "The schedule after the change.")}
    sid = [_path("schedule_id")]
    return {
        "/api/v1/schedules": {
            "get": _op(
                "Schedules, by id.",
                {"200": _resp(r.SchedulePage, "A page of schedules.")},
                auth=auth,
                parameters=_parameters(models.SchedulesQuery),
            ),
            "post": _op(
                "Create a schedule: a run of a function at every tick of a cron expression.",
                {"201": _resp(r.Schedule, "Created.")},
                auth=auth,
                errors=("NotFound", "Conflict", "TooLarge", *_WRITE),
                description=(
                    "The first tick is the first after now. A bad cron expression is 400 "
                    "invalid_cron; an unknown function 404; a taken id 409."
                ),
                requestBody=_body(_ref("ScheduleIn"), required=True),
            ),
        },
        "/api/v1/schedules/{schedule_id}": {
            "get": _op("A schedule.", one, auth=auth, errors=("NotFound",), parameters=sid),
            "delete": _op(
                "Delete a schedule (its runs are left as they are).",
                {"204": {"description": "Deleted."}},
                auth=auth,
                errors=("NotFound", *_WRITE),
                parameters=sid,
            ),
        },
        "/api/v1/schedules/{schedule_id}/pause": {
            "post": _op(
                "Pause a schedule: no tick fires until it is resumed.",
                after,
                auth=auth,
                errors=("NotFound", *_WRITE),
                parameters=sid,
            ),
        },
        "/api/v1/schedules/{schedule_id}/resume": {
            "post": _op(
                "Resume a schedule: ticks after now fire (the ticks of the pause never do).",
                after,
                auth=auth,
                errors=("NotFound", *_WRITE),
                parameters=sid,
            ),
        },
        "/api/v1/schedules/{schedule_id}/trigger": {
            "post": _op(
                "Start one run of a schedule now, even when it is paused.",
                {"201": _resp(r.StartedRun, "Started.")},
                auth=auth,
                errors=("NotFound", *_WRITE),
                parameters=sid,
            ),
        },
    }


def _operations_paths(auth: bool) -> dict[str, Any]:
    """Pausing and resuming functions; the workers registry (docs/operations.md)."""
    r = responses
    after = {"200": _resp(r.Function, "The function after the change.")}
    no_body = _body(
        {"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]}, required=False
    )
    fid = [_path("function_id")]
    return {
        "/api/v1/functions/{function_id}/pause": {
            "post": _op(
                "Pause a function: its runs are created and queue, none starts until it is "
                "resumed; its cron triggers and schedules skip their ticks.",
                after,
                auth=auth,
                errors=("NotFound", *_WRITE),
                parameters=fid,
                requestBody=no_body,
            ),
        },
        "/api/v1/functions/{function_id}/resume": {
            "post": _op(
                "Resume a function: its queued runs start, in their queue order.",
                after,
                auth=auth,
                errors=("NotFound", *_WRITE),
                parameters=fid,
                requestBody=no_body,
            ),
        },
        "/api/v1/workers": {
            "get": _op(
                "The live workers (all=true: also those that stopped or died in the last hour).",
                {"200": _resp(r.WorkerList, "The workers, oldest start first.")},
                auth=auth,
                parameters=_parameters(models.WorkersQuery),
            ),
        },
    }
