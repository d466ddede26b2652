"""The parts the OpenAPI document is built from: the models' schemas, the shared error
responses, and the helpers that shape an operation (:mod:`perdure.server.openapi`)."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from perdure.server import access_models, models, responses
from perdure.server.http import BODY_LIMIT

JSON = "application/json"
_REF = "#/components/schemas/{model}"


def ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def resp(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref(model.__name__)}}}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out = resp(responses.Error, description)
    if headers:
        out["headers"] = headers
    return out


@functools.cache
def schemas() -> dict[str, Any]:
    """Every model's JSON schema, by name, with references between them."""
    request_models: list[type[BaseModel]] = [
        models.EventIn,
        models.StartRun,
        models.ReplayRun,
        models.BulkRuns,
        models.ScheduleIn,
        access_models.KeyIn,
        access_models.Login,
    ]
    out_models = (*responses.RESPONSE_MODELS, *access_models.RESPONSE_MODELS)
    pairs = [(m, "validation") for m in (*request_models, *out_models)]
    _, top = models_json_schema(pairs, ref_template=_REF)  # type: ignore[arg-type]
    defs: dict[str, Any] = top["$defs"]
    return defs


def parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
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


def path_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": models.ANY_ID},
    }


RESPONSES: dict[str, Any] = {
    "BadRequest": _error(
        "Malformed JSON or invalid input (code malformed_json or invalid_input), or a Host "
        "that is not allowed (host_not_allowed); nothing was changed."
    ),
    "Unauthorized": _error(
        "No key, or one that is unknown, revoked or expired (a bearer token or the "
        "dashboard's session).",
        {"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    "Forbidden": _error(
        "The key's scopes do not allow this (forbidden), a session request without its "
        "X-CSRF-Token (csrf_failed), or a browser request from a page of another site "
        "(origin_not_allowed)."
    ),
    "NotFound": _error(
        "Unknown app, event, function, key, run or schedule (app_not_found, "
        "event_not_found, function_not_found, key_not_found, run_not_found, "
        "schedule_not_found); another environment's are unknown too."
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


def op(
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


def body(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


WRITE = ("Forbidden", "UnsupportedMediaType")  # the checks on state-changing requests
