"""The OpenAPI 3.1 document served at ``/openapi.json``, generated from the pydantic models
that validate the requests (:mod:`perdure.server.models`) and describe the responses
(:mod:`perdure.server.responses`), so the document and the server cannot disagree."""

from __future__ import annotations

import copy
from typing import Any

from perdure._version import __version__
from perdure.server import models, responses
from perdure.server.http import BODY_LIMIT
from perdure.server.openapi_common import (
    JSON,
    RESPONSES,
    WRITE,
    body,
    op,
    parameters,
    path_param,
    ref,
    resp,
    schemas,
)
from perdure.server.openapi_paths import access_paths, operations_paths, schedule_paths


def document(*, auth: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document. ``auth``: the ``/api/v1`` routes need a bearer token."""
    r = responses
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "summary": "Whether the server and its database are up.",
                "security": [],
                "responses": {
                    "200": resp(r.Health, "Up."),
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "503": resp(r.Health, "The database is unreachable."),
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
                        "content": {JSON: {"schema": {"type": "object"}}},
                    },
                    "400": {"$ref": "#/components/responses/BadRequest"},
                },
            }
        },
        "/metrics": {
            "get": op(
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
            "post": op(
                "Send one event or an array of events.",
                {"200": resp(r.SendResult, "Stored (or recognised as duplicates).")},
                auth=auth,
                errors=("TooLarge", *WRITE),
                description=(
                    "All events are validated before any is stored; on any error nothing is "
                    f"stored. Limits: the body {BODY_LIMIT} bytes, "
                    f"{models.MAX_EVENTS_PER_REQUEST} events (413 above), each event the "
                    "server's event limit (512 KiB by default)."
                ),
                requestBody=body(
                    {
                        "oneOf": [
                            ref("EventIn"),
                            # the count limit is a payload limit (413, like the size
                            # limits), not a rule of the schema
                            {"type": "array", "minItems": 1, "items": ref("EventIn")},
                        ]
                    },
                    required=True,
                ),
            ),
            "get": op(
                "Events, newest first.",
                {"200": resp(r.EventPage, "A page of events.")},
                auth=auth,
                parameters=parameters(models.EventsQuery),
            ),
        },
        "/api/v1/events/{event_id}": {
            "get": op(
                "An event with the runs it started and the runs it resumed (the wait steps "
                "it satisfied).",
                {"200": resp(r.EventDetail, "The event (the newest, if its id was reused).")},
                auth=auth,
                errors=("NotFound",),
                parameters=[path_param("event_id")],
            ),
        },
        "/api/v1/functions": {
            "get": op(
                "Registered functions.",
                {"200": resp(r.FunctionList, "Every registered function.")},
                auth=auth,
            ),
            "post": op(
                "Register an HTTP function (an app of one function on the Inngest protocol).",
                {
                    "201": {
                        "description": "Registered: the app id and the function.",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
                auth=auth,
                errors=("Conflict", *WRITE),
                description=(
                    "Served by `perdure dev` (the Inngest-compatible routes). `url` is where "
                    "perdure calls the function; `triggers` as in `/fn/register`."
                ),
                requestBody=body(
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
            "get": op(
                "A registered function with its triggers and flow-control options.",
                {"200": resp(r.Function, "The function.")},
                auth=auth,
                errors=("NotFound",),
                parameters=[path_param("function_id")],
            ),
        },
        "/api/v1/functions/{function_id}/stats": {
            "get": op(
                "A function's recent success rate and duration percentiles.",
                {"200": resp(r.FunctionStats, "Over its 1000 most recently created runs.")},
                auth=auth,
                errors=("NotFound",),
                parameters=[path_param("function_id")],
            ),
        },
        "/api/v1/functions/{function_id}/runs": {
            "post": op(
                "Start a run of a function.",
                {
                    "201": resp(r.StartedRun, "Started."),
                    "200": resp(r.StartedRun, "The idempotency key named an existing run."),
                },
                auth=auth,
                errors=("NotFound", "TooLarge", *WRITE),
                description="The body is optional: none, or null, is {}.",
                parameters=[path_param("function_id")],
                requestBody=body({"anyOf": [ref("StartRun"), {"type": "null"}]}, required=False),
            ),
        },
        "/api/v1/runs": {
            "get": op(
                "Runs, newest first.",
                {"200": resp(r.RunPage, "A page of runs (without steps).")},
                auth=auth,
                parameters=parameters(models.RunsQuery),
            ),
        },
        "/api/v1/runs/stream": {
            "get": op(
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
                parameters=parameters(models.RunsStreamQuery),
            ),
        },
        "/api/v1/runs/bulk/cancel": {
            "post": op(
                f"Cancel the runs that pass the filters and have not ended, at most "
                f"{models.BULK_MAX} per call, newest first (dry_run: only count them).",
                {"200": resp(r.BulkResult, "What was (or would be) cancelled.")},
                auth=auth,
                errors=WRITE,
                requestBody=body({"anyOf": [ref("BulkRuns"), {"type": "null"}]}, required=False),
            ),
        },
        "/api/v1/runs/bulk/rerun": {
            "post": op(
                f"Rerun the runs that pass the filters, at most {models.BULK_MAX} per call, "
                "newest first (dry_run: only count them); next_cursor continues.",
                {"200": resp(r.BulkResult, "What was (or would be) rerun.")},
                auth=auth,
                errors=WRITE,
                requestBody=body({"anyOf": [ref("BulkRuns"), {"type": "null"}]}, required=False),
            ),
        },
        "/api/v1/runs/{run_id}": {
            "get": op(
                "A run with its steps.",
                {"200": resp(r.Run, "The run.")},
                auth=auth,
                errors=("NotFound",),
                parameters=[path_param("run_id")],
            ),
        },
        "/api/v1/runs/{run_id}/cancel": {
            "post": op(
                "Cancel a run: it becomes cancelled and never resumes. An ended run is "
                "returned unchanged.",
                {"200": resp(r.Run, "The run after cancelling.")},
                auth=auth,
                errors=("NotFound", *WRITE),
                parameters=[path_param("run_id")],
            ),
        },
        "/api/v1/runs/{run_id}/rerun": {
            "post": op(
                "Rerun a run: a new run of the same function with the same input, linked to it "
                "(rerun_of). Any run, ended or not.",
                {"201": resp(r.Run, "The new run.")},
                auth=auth,
                errors=("NotFound", *WRITE),
                description="No body (or {}, or null). Location is the new run's URL.",
                parameters=[path_param("run_id")],
                requestBody=body(
                    {"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]},
                    required=False,
                ),
            ),
        },
        "/api/v1/runs/{run_id}/replay": {
            "post": op(
                "Replay an ended run from a step: a new run that keeps the recorded results of "
                "the completed steps before from_step and executes from it on (replay_of, "
                "replay_from_step).",
                {"201": resp(r.Run, "The new run, with the steps it kept.")},
                auth=auth,
                errors=("NotFound", "Conflict", *WRITE),
                description="An unknown step is 400 invalid_input; a run that has not ended is "
                "409 run_not_ended. Location is the new run's URL.",
                parameters=[path_param("run_id")],
                requestBody=body(ref("ReplayRun"), required=True),
            ),
        },
        **schedule_paths(auth),
        "/api/v1/apps": {
            "get": op(
                "The apps on the official Inngest SDKs: URL, functions, last sync and error.",
                {"200": resp(r.AppList, "The apps.")},
                auth=auth,
            ),
        },
        "/api/v1/apps/{app_id}/resync": {
            "post": op(
                "Resync an app: the server sends its URL the sync PUT, as the Inngest dev "
                "server does, and records the outcome.",
                {"200": resp(r.Resync, "Attempted (sync.ok says whether it worked).")},
                auth=auth,
                errors=("NotFound", *WRITE),
                description="No body (or {}, or null).",
                parameters=[path_param("app_id")],
                requestBody=body(
                    {"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]},
                    required=False,
                ),
            ),
        },
        **operations_paths(auth),
        **access_paths(auth),
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
            "schemas": copy.deepcopy(schemas()),
            "responses": RESPONSES,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if auth:
        doc["security"] = [{"bearer": []}]
    return doc
