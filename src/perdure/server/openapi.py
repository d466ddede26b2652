"""The OpenAPI 3.1 document served at ``/openapi.json`` (hand-written: it is the contract)."""

from __future__ import annotations

from typing import Any

from perdure._version import __version__
from perdure.server.api import MAX_EVENTS_PER_REQUEST, PAGE_DEFAULT, PAGE_MAX
from perdure.server.http import BODY_LIMIT
from perdure.types import RunStatus

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _resp(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(name)}}}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


_TS = {"type": ["string", "null"], "format": "date-time"}
_OBJECT = {"type": "object", "additionalProperties": True}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "additionalProperties": False,
                "properties": {
                    "code": {
                        "type": "string",
                        "description": "Stable, for programs: malformed_json, invalid_input, "
                        "unauthorized, not_found, function_not_found, run_not_found, "
                        "method_not_allowed, conflict, payload_too_large, unavailable, "
                        "internal_error.",
                    },
                    "message": {"type": "string", "description": "Precise, for humans."},
                },
            }
        },
    },
    "EventIn": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": 256,
                "pattern": "^[^\\s*]+$",
                "examples": ["order.placed"],
            },
            "data": {"type": ["object", "null"], "additionalProperties": True},
            "id": {
                "type": ["string", "null"],
                "maxLength": 256,
                "description": "Deduplicates within 24 h; a ULID is given when omitted.",
            },
            "ts": {
                "type": ["integer", "null"],
                "minimum": 0,
                "description": "Milliseconds since the epoch; now when omitted.",
            },
            "user": {"type": ["object", "null"], "additionalProperties": True},
            "v": {"description": "Accepted and ignored (Inngest SDK compatibility)."},
        },
    },
    "Event": {
        "type": "object",
        "required": ["id", "name", "data", "user", "ts"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "data": _OBJECT,
            "user": _OBJECT,
            "ts": {"type": "integer"},
        },
    },
    "StoredEvent": {
        "allOf": [
            _ref("Event"),
            {
                "type": "object",
                "required": ["received_at", "run_ids"],
                "properties": {
                    "received_at": {"type": "string", "format": "date-time"},
                    "run_ids": {"type": "array", "items": {"type": "string"}},
                },
            },
        ]
    },
    "SendResult": {
        "type": "object",
        "required": ["ids", "events"],
        "properties": {
            "ids": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The events' ids, in the order sent.",
            },
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "duplicate", "run_ids"],
                    "properties": {
                        "id": {"type": "string"},
                        "duplicate": {
                            "type": "boolean",
                            "description": "Already received within the dedupe window: ignored.",
                        },
                        "run_ids": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "The runs this event started.",
                        },
                    },
                },
            },
        },
    },
    "EventPage": {
        "type": "object",
        "required": ["events", "next_cursor"],
        "properties": {
            "events": {"type": "array", "items": _ref("StoredEvent")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "Trigger": {
        "oneOf": [
            {
                "type": "object",
                "required": ["event"],
                "properties": {"event": {"type": "string"}, "if": {"type": "string"}},
            },
            {
                "type": "object",
                "required": ["cron", "tz"],
                "properties": {
                    "cron": {"type": "string"},
                    "tz": {"type": "string"},
                    "catchup": {"type": "number"},
                },
            },
        ]
    },
    "Function": {
        "type": "object",
        "required": ["id", "app", "triggers", "config"],
        "properties": {
            "id": {"type": "string"},
            "app": {"type": "string"},
            "triggers": {"type": "array", "items": _ref("Trigger")},
            "config": _OBJECT,
        },
    },
    "FunctionList": {
        "type": "object",
        "required": ["functions"],
        "properties": {"functions": {"type": "array", "items": _ref("Function")}},
    },
    "StartRun": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "data": {
                "type": ["object", "null"],
                "additionalProperties": True,
                "description": "The run's ctx.event.data.",
            },
            "idempotency_key": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": 256,
                "description": "The same key always gives the same run.",
            },
        },
    },
    "StartedRun": {
        "type": "object",
        "required": ["run_id", "created"],
        "properties": {"run_id": {"type": "string"}, "created": {"type": "boolean"}},
    },
    "ErrorInfo": _nullable(
        {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            "additionalProperties": True,
        }
    ),
    "Step": {
        "type": "object",
        "required": [
            "id",
            "kind",
            "status",
            "output",
            "error",
            "attempts",
            "position",
            "started_at",
            "ended_at",
            "wake_at",
        ],
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string", "enum": ["run", "sleep", "wait", "invoke", "send"]},
            "status": {"type": "string"},
            "output": {},
            "error": _ref("ErrorInfo"),
            "attempts": {"type": "integer"},
            "position": {"type": "integer"},
            "started_at": _TS,
            "ended_at": _TS,
            "wake_at": _TS,
        },
    },
    "RunSummary": {
        "type": "object",
        "required": [
            "id",
            "function_id",
            "status",
            "event",
            "output",
            "error",
            "attempt",
            "created_at",
            "started_at",
            "ended_at",
            "parent_run_id",
            "idempotency_key",
        ],
        "properties": {
            "id": {"type": "string"},
            "function_id": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in RunStatus]},
            "event": _ref("Event"),
            "output": {},
            "error": _ref("ErrorInfo"),
            "attempt": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": _TS,
            "ended_at": _TS,
            "parent_run_id": {"type": ["string", "null"]},
            "idempotency_key": {"type": ["string", "null"]},
        },
    },
    "Run": {
        "allOf": [
            _ref("RunSummary"),
            {
                "type": "object",
                "required": ["steps"],
                "properties": {"steps": {"type": "array", "items": _ref("Step")}},
            },
        ]
    },
    "RunPage": {
        "type": "object",
        "required": ["runs", "next_cursor"],
        "properties": {
            "runs": {"type": "array", "items": _ref("RunSummary")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status", "database", "version"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "database": {
                "type": "string",
                "description": '"ok", or why the database is unreachable.',
            },
            "version": {"type": "string"},
        },
    },
}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {_JSON: {"schema": _ref("Error")}},
    }
    if headers:
        out["headers"] = headers
    return out


_RESPONSES: dict[str, Any] = {
    "BadRequest": _error(
        "Malformed JSON or invalid input (code malformed_json or "
        "invalid_input); nothing was changed."
    ),
    "Unauthorized": _error(
        "Missing or wrong bearer token.", {"WWW-Authenticate": {"schema": {"type": "string"}}}
    ),
    "NotFound": _error("Unknown function or run (function_not_found, run_not_found)."),
    "TooLarge": _error("Over a payload limit; nothing was changed."),
    "Unavailable": _error(
        "The database is unreachable; retry later.",
        {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
    ),
}

_CURSOR = {
    "name": "cursor",
    "in": "query",
    "required": False,
    "description": "The next_cursor of the previous page.",
    "schema": {"type": "string"},
}
_LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT},
}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    auth: bool,
    errors: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, **extra}
    all_responses = dict(responses)
    for name in errors:
        code = {"BadRequest": "400", "NotFound": "404", "TooLarge": "413"}[name]
        all_responses[code] = {"$ref": f"#/components/responses/{name}"}
    if auth:
        all_responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
    all_responses["503"] = {"$ref": "#/components/responses/Unavailable"}
    out["responses"] = all_responses
    if not auth:
        out["security"] = []
    return out


def document(*, auth: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document. ``auth``: the ``/api/v1`` routes need a bearer token."""
    run_id = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "summary": "Whether the server and its database are up.",
                "security": [],
                "responses": {
                    "200": _resp("Health", "Up."),
                    "503": _resp("Health", "The database is unreachable."),
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
                    }
                },
            }
        },
        "/api/v1/events": {
            "post": _op(
                "Send one event or an array of events.",
                {
                    "200": _resp(
                        "SendResult", "Stored (or recognised as duplicates); the runs they started."
                    )
                },
                auth=auth,
                errors=("BadRequest", "TooLarge"),
                description=(
                    "All events are validated before any is stored; on any error nothing is "
                    f"stored. Limits: the body {BODY_LIMIT} bytes, {MAX_EVENTS_PER_REQUEST} "
                    "events, each event the server's event limit (512 KiB by default)."
                ),
                requestBody={
                    "required": True,
                    "content": {
                        _JSON: {
                            "schema": {
                                "oneOf": [
                                    _ref("EventIn"),
                                    {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": MAX_EVENTS_PER_REQUEST,
                                        "items": _ref("EventIn"),
                                    },
                                ]
                            }
                        }
                    },
                },
            ),
            "get": _op(
                "Events, newest first.",
                {"200": _resp("EventPage", "A page of events.")},
                auth=auth,
                errors=("BadRequest",),
                parameters=[
                    {
                        "name": "name",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "Exact event name.",
                    },
                    _CURSOR,
                    _LIMIT,
                ],
            ),
        },
        "/api/v1/functions": {
            "get": _op(
                "Registered functions.",
                {"200": _resp("FunctionList", "Every registered function.")},
                auth=auth,
            ),
        },
        "/api/v1/functions/{function_id}/runs": {
            "post": _op(
                "Start a run of a function.",
                {
                    "201": _resp("StartedRun", "Started."),
                    "200": _resp("StartedRun", "The idempotency key named an existing run."),
                },
                auth=auth,
                errors=("BadRequest", "NotFound", "TooLarge"),
                parameters=[
                    {
                        "name": "function_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                requestBody={"required": False, "content": {_JSON: {"schema": _ref("StartRun")}}},
            ),
        },
        "/api/v1/runs": {
            "get": _op(
                "Runs, newest first.",
                {"200": _resp("RunPage", "A page of runs (without steps).")},
                auth=auth,
                errors=("BadRequest",),
                parameters=[
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": [s.value for s in RunStatus]},
                    },
                    {
                        "name": "function_id",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1},
                    },
                    _CURSOR,
                    _LIMIT,
                ],
            ),
        },
        "/api/v1/runs/{run_id}": {
            "get": _op(
                "A run with its steps.",
                {"200": _resp("Run", "The run.")},
                auth=auth,
                errors=("NotFound",),
                parameters=[run_id],
            ),
        },
        "/api/v1/runs/{run_id}/cancel": {
            "post": _op(
                "Cancel a run: it becomes cancelled and never resumes. An ended run is "
                "returned unchanged.",
                {"200": _resp("Run", "The run after cancelling.")},
                auth=auth,
                errors=("NotFound",),
                parameters=[run_id],
            ),
        },
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
            "schemas": _SCHEMAS,
            "responses": _RESPONSES,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if auth:
        doc["security"] = [{"bearer": []}]
    return doc
