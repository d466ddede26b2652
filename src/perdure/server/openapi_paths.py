"""The OpenAPI paths of schedules, operations (pause, workers), keys, audit and sessions
(the rest is in :mod:`perdure.server.openapi`)."""

from __future__ import annotations

from typing import Any

from perdure.server import access_models, models, responses
from perdure.server.openapi_common import (
    WRITE,
    body,
    op,
    parameters,
    path_param,
    ref,
    resp,
)


def schedule_paths(auth: bool) -> dict[str, Any]:
    r = responses
    one = {"200": resp(r.Schedule, "The schedule.")}
    after = {"200": resp(r.Schedule, "The schedule after the change.")}
    sid = [path_param("schedule_id")]
    return {
        "/api/v1/schedules": {
            "get": op(
                "Schedules, by id.",
                {"200": resp(r.SchedulePage, "A page of schedules.")},
                auth=auth,
                parameters=parameters(models.SchedulesQuery),
            ),
            "post": op(
                "Create a schedule: a run of a function at every tick of a cron expression.",
                {"201": resp(r.Schedule, "Created.")},
                auth=auth,
                errors=("NotFound", "Conflict", "TooLarge", *WRITE),
                description=(
                    "The first tick is the first after now. A bad cron expression is 400 "
                    "invalid_cron; an unknown function 404; a taken id 409."
                ),
                requestBody=body(ref("ScheduleIn"), required=True),
            ),
        },
        "/api/v1/schedules/{schedule_id}": {
            "get": op("A schedule.", one, auth=auth, errors=("NotFound",), parameters=sid),
            "delete": op(
                "Delete a schedule (its runs are left as they are).",
                {"204": {"description": "Deleted."}},
                auth=auth,
                errors=("NotFound", *WRITE),
                parameters=sid,
            ),
        },
        "/api/v1/schedules/{schedule_id}/pause": {
            "post": op(
                "Pause a schedule: no tick fires until it is resumed.",
                after,
                auth=auth,
                errors=("NotFound", *WRITE),
                parameters=sid,
            ),
        },
        "/api/v1/schedules/{schedule_id}/resume": {
            "post": op(
                "Resume a schedule: ticks after now fire (the ticks of the pause never do).",
                after,
                auth=auth,
                errors=("NotFound", *WRITE),
                parameters=sid,
            ),
        },
        "/api/v1/schedules/{schedule_id}/trigger": {
            "post": op(
                "Start one run of a schedule now, even when it is paused.",
                {"201": resp(r.StartedRun, "Started.")},
                auth=auth,
                errors=("NotFound", *WRITE),
                parameters=sid,
            ),
        },
    }


def operations_paths(auth: bool) -> dict[str, Any]:
    """Pausing and resuming functions; the workers registry (docs/operations.md)."""
    r = responses
    after = {"200": resp(r.Function, "The function after the change.")}
    no_body = body(
        {"anyOf": [{"type": "object", "maxProperties": 0}, {"type": "null"}]}, required=False
    )
    fid = [path_param("function_id")]
    return {
        "/api/v1/functions/{function_id}/pause": {
            "post": op(
                "Pause a function: its runs are created and queue, none starts until it is "
                "resumed; its cron triggers and schedules skip their ticks.",
                after,
                auth=auth,
                errors=("NotFound", *WRITE),
                parameters=fid,
                requestBody=no_body,
            ),
        },
        "/api/v1/functions/{function_id}/resume": {
            "post": op(
                "Resume a function: its queued runs start, in their queue order.",
                after,
                auth=auth,
                errors=("NotFound", *WRITE),
                parameters=fid,
                requestBody=no_body,
            ),
        },
        "/api/v1/workers": {
            "get": op(
                "The live workers (all=true: also those that stopped or died in the last hour).",
                {"200": resp(r.WorkerList, "The workers, oldest start first.")},
                auth=auth,
                parameters=parameters(models.WorkersQuery),
            ),
        },
    }


def access_paths(auth: bool) -> dict[str, Any]:
    """Keys, the audit trail and the dashboard's session routes (docs/security.md)."""
    a = access_models
    kid = [path_param("key_id")]
    admin = "Needs an admin key."
    return {
        "/api/v1/keys": {
            "get": op(
                "The keys of the caller's environment (revoked ones too), never their tokens.",
                {"200": resp(a.KeyList, "The keys, newest first.")},
                auth=auth,
                errors=("Forbidden",),
                description=admin,
            ),
            "post": op(
                "Create a key in the caller's environment; its token is in this answer only.",
                {"201": resp(a.CreatedKey, "Created.")},
                auth=auth,
                errors=WRITE,
                description=admin,
                requestBody=body(ref("KeyIn"), required=True),
            ),
        },
        "/api/v1/keys/{key_id}": {
            "delete": op(
                "Revoke a key at once (its dashboard sessions end too); idempotent.",
                {"200": resp(a.Key, "The key after revoking.")},
                auth=auth,
                errors=("NotFound", *WRITE),
                description=admin,
                parameters=kid,
            ),
        },
        "/api/v1/audit": {
            "get": op(
                "The audit trail: who cancelled, reran, replayed, paused or resumed what, and "
                "who created or revoked keys.",
                {"200": resp(a.AuditPage, "A page of entries, newest first.")},
                auth=auth,
                parameters=parameters(a.AuditQuery),
            ),
        },
        "/auth/login": {
            "post": {
                **op(
                    "Open a dashboard session with a key: an HTTP-only perdure_session cookie.",
                    {"200": resp(a.Session, "The session (its csrf token included).")},
                    auth=auth,
                    errors=WRITE,
                    requestBody=body(ref("Login"), required=True),
                ),
                "security": [],
            },
        },
        "/auth/logout": {
            "post": op(
                "End the session of the cookie (send its X-CSRF-Token).",
                {"204": {"description": "Ended; the cookie is cleared."}},
                auth=auth,
                errors=WRITE,
            ),
        },
        "/auth/session": {
            "get": op(
                "Who the request is: environment, key, scopes and the CSRF token.",
                {"200": resp(a.Session, "The session.")},
                auth=auth,
            ),
        },
    }
