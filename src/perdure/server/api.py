"""The REST API under ``/api/v1``: events, functions, runs.

Shapes (the OpenAPI document at ``/openapi.json`` is the reference):

- ``POST /api/v1/events``: one event object or a non-empty array of them (``name``, ``data``,
  optional ``id``, ``ts`` in ms, ``user``). All events are validated before any is stored; on an
  error nothing is stored. ``200 {"ids": [...], "events": [{"id", "duplicate", "run_ids",
  "skipped"}]}``, in the order sent; ``duplicate`` events (same id within the dedupe window)
  start nothing; ``skipped`` lists the runs flow control recorded as skipped.
- ``GET /api/v1/events?name=&cursor=&limit=``: ``{"events": [...], "next_cursor"}``, newest
  first; each event has ``received_at`` and the ``run_ids`` it started.
- ``GET /api/v1/events/{id}``: the event with ``started`` (the runs it started) and
  ``resumed`` (the runs whose ``wait_for_event`` step it satisfied); 404 ``event_not_found``.
- ``GET /api/v1/functions``: ``{"functions": [{"id", "app", "triggers", "config", "flow"}]}``;
  ``GET /api/v1/functions/{id}``: one of them (404 for an unknown id);
  ``GET /api/v1/functions/{id}/stats``: the success rate and duration percentiles of its
  last 1000 runs.
- ``POST /api/v1/functions/{id}/runs`` with ``{"data": {...}, "idempotency_key": "..."}``
  (both optional): ``201 {"run_id", "created": true}``, or ``200`` with ``"created": false``
  when the idempotency key names an existing run; ``Location`` is the run's URL.
- ``GET /api/v1/runs?status=&function_id=&created_after=&created_before=&run_id=&event_id=&text=
  &cursor=&limit=``: ``{"runs": [...], "next_cursor"}``, newest first, runs without their
  steps (times in ms since the epoch; ``run_id`` matches a prefix, ``text`` the input's JSON).
- ``GET /api/v1/runs/stream``: live changes (:mod:`perdure.server.live`);
  ``POST /api/v1/runs/bulk/cancel`` and ``/bulk/rerun``: bulk actions (:mod:`perdure.server.bulk`).
- ``GET /api/v1/runs/{id}``: the run with its steps. ``POST /api/v1/runs/{id}/cancel``: the run
  after cancelling (an ended run is returned unchanged).
- ``POST /api/v1/runs/{id}/rerun`` (no body): ``201`` and the new run (``rerun_of``);
  ``POST /api/v1/runs/{id}/replay`` with ``{"from_step": "..."}``: ``201`` and the new run
  (``replay_of``, ``replay_from_step``, the steps it kept); 400 for an unknown step, 409
  ``run_not_ended`` for a run that has not ended. ``Location`` is the new run's URL.

Cursors are opaque strings: pass ``next_cursor`` back as ``cursor`` for the next page;
``next_cursor`` is ``null`` on the last page.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from perdure import serde, views
from perdure.app import App
from perdure.errors import FunctionNotFoundError, InvalidInputError, PayloadTooLargeError
from perdure.server import models
from perdure.server.auth import actor_of
from perdure.server.http import (
    ApiError,
    JSONResponse,
    json_type,
    query_params,
    read_json,
    too_large,
)
from perdure.server.models import MAX_EVENTS_PER_REQUEST, PAGE_DEFAULT, PAGE_MAX
from perdure.types import Event

__all__ = ["MAX_EVENTS_PER_REQUEST", "PAGE_DEFAULT", "PAGE_MAX", "Api"]


class Api:
    """The route handlers, bound to one app."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.query = app.query

    # ------------------------------------------------------------------ events

    def _event(self, item: Any, where: str) -> Event:
        prefix = f"{where}: " if where else ""
        if not isinstance(item, dict):
            raise ApiError(
                400,
                "invalid_input",
                f"{where or 'an event'} must be a JSON object, not {json_type(item)}",
            )
        try:
            valid = models.validate(models.EventIn, item, unknown="unknown event field(s)")
            event = Event(
                name=valid.name,
                data=valid.data or {},
                id=valid.id or "",
                ts=valid.ts or 0,
                user=valid.user or {},
            ).stamped()
            serde.dumps_limited(
                event.to_dict(), f"{prefix}event {event.name!r}", self.app.limits.event
            )
        except PayloadTooLargeError as exc:
            raise ApiError(413, exc.code, exc.message) from None
        except InvalidInputError as exc:
            raise ApiError(400, exc.code, prefix + exc.message) from None
        return event

    async def send_events(self, request: Request) -> Response:
        """``POST /api/v1/events``."""
        query_params(request, ())
        payload = await read_json(request)
        if isinstance(payload, dict):
            events = [self._event(payload, "")]
        elif isinstance(payload, list):
            if not payload:
                raise ApiError(
                    400, "invalid_input", "the array of events is empty; send at least one event"
                )
            if len(payload) > MAX_EVENTS_PER_REQUEST:
                raise too_large(
                    f"the request has {len(payload)} events, over the limit of "
                    f"{MAX_EVENTS_PER_REQUEST} per request"
                )
            events = [self._event(item, f"events[{i}]") for i, item in enumerate(payload)]
        else:
            raise ApiError(
                400,
                "invalid_input",
                "the body must be an event object or an array of event objects, "
                f"not {json_type(payload)}",
            )
        sent = await self.app.send_detailed(events)
        return JSONResponse(views.sent_json(sent))

    async def list_events(self, request: Request) -> Response:
        """``GET /api/v1/events``."""
        query = models.validate(
            models.EventsQuery, query_params(request, ("name", "cursor", "limit"))
        )
        before = None if query.cursor is None else int(query.cursor)
        page = await self.query.list_events(name=query.name, before=before, limit=query.limit)
        return JSONResponse(views.events_page_json(page))

    async def get_event(self, request: Request) -> Response:
        """``GET /api/v1/events/{event_id}``: the event, the runs it started and resumed."""
        query_params(request, ())
        event_id: str = request.path_params["event_id"]
        detail = await self.query.event_detail(event_id)
        if detail is None:
            raise ApiError(404, "event_not_found", f"no event with id {event_id!r}")
        return JSONResponse(views.event_detail_json(detail))

    # ------------------------------------------------------------------ functions

    async def list_functions(self, request: Request) -> Response:
        """``GET /api/v1/functions``."""
        query_params(request, ())
        return JSONResponse(views.functions_json(await self.query.list_functions()))

    async def get_function(self, request: Request) -> Response:
        """``GET /api/v1/functions/{function_id}``: one function with its options."""
        query_params(request, ())
        function_id: str = request.path_params["function_id"]
        records = await self.query.list_functions()
        record = next((r for r in records if r.id == function_id), None)
        if record is None:
            raise FunctionNotFoundError(f"no function with id {function_id!r} is registered")
        return JSONResponse(views.function_json(record))

    async def function_stats(self, request: Request) -> Response:
        """``GET /api/v1/functions/{function_id}/stats``: its recent success rate and
        duration percentiles."""
        query_params(request, ())
        function_id: str = request.path_params["function_id"]
        stats = await self.query.function_stats(function_id)
        return JSONResponse(views.function_stats_json(function_id, stats))

    async def pause_function(self, request: Request) -> Response:
        """``POST /api/v1/functions/{function_id}/pause``: the function after pausing."""
        return await self._set_paused(request, True)

    async def resume_function(self, request: Request) -> Response:
        """``POST /api/v1/functions/{function_id}/resume``: the function after resuming."""
        return await self._set_paused(request, False)

    async def _set_paused(self, request: Request, paused: bool) -> Response:
        query_params(request, ())
        body = await read_json(request, optional=True)
        if body not in (None, {}):
            raise ApiError(400, "invalid_input", "pause and resume take no body (or {})")
        function_id: str = request.path_params["function_id"]
        if paused:
            await self.app.pause(function_id, actor=actor_of(request))
        else:
            await self.app.resume(function_id, actor=actor_of(request))
        return await self.get_function(request)

    async def list_workers(self, request: Request) -> Response:
        """``GET /api/v1/workers``: the live workers (``?all=true``: also those that stopped
        or died within the last hour)."""
        query = models.validate(models.WorkersQuery, query_params(request, ("all",)))
        workers = await self.query.list_workers(include_dead=query.all == "true")
        return JSONResponse(views.workers_json(workers))

    async def start_run(self, request: Request) -> Response:
        """``POST /api/v1/functions/{function_id}/runs``."""
        query_params(request, ())
        function_id: str = request.path_params["function_id"]
        body = await read_json(request, optional=True)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ApiError(
                400, "invalid_input", f"the body must be a JSON object, not {json_type(body)}"
            )
        start = models.validate(
            models.StartRun, body, unknown="unknown field(s) (expected: data, idempotency_key)"
        )
        data, key = start.data, start.idempotency_key
        handle = await self.app.start(function_id, data, idempotency_key=key)
        return JSONResponse(
            {"run_id": handle.run_id, "created": handle.created},
            status_code=201 if handle.created else 200,
            headers={"Location": f"/api/v1/runs/{handle.run_id}"},
        )

    # ------------------------------------------------------------------ runs

    async def list_runs(self, request: Request) -> Response:
        """``GET /api/v1/runs``."""
        names = ("cursor", "limit", *models.RunsQuery.model_fields)
        query = models.validate(
            models.RunsQuery, query_params(request, tuple(dict.fromkeys(names)))
        )
        page = await self.query.list_runs(
            search=query.search(),
            before=None if query.cursor is None else query.cursor.upper(),
            limit=query.limit,
        )
        return JSONResponse(views.runs_page_json(page))

    async def get_run(self, request: Request) -> Response:
        """``GET /api/v1/runs/{run_id}``."""
        query_params(request, ())
        run = await self.query.get_run(request.path_params["run_id"])
        audit = await self.app.keys.audit(run.id, limit=100)
        return JSONResponse({**views.run_json(run), "audit": [views.audit_json(a) for a in audit]})

    async def cancel_run(self, request: Request) -> Response:
        """``POST /api/v1/runs/{run_id}/cancel``."""
        query_params(request, ())
        run = await self.app.cancel(request.path_params["run_id"], actor=actor_of(request))
        return JSONResponse(views.run_json(run))

    async def rerun_run(self, request: Request) -> Response:
        """``POST /api/v1/runs/{run_id}/rerun``."""
        query_params(request, ())
        body = await read_json(request, optional=True)
        if body not in (None, {}):
            raise ApiError(
                400, "invalid_input", "a rerun takes no body (or {}): it reruns the run as it was"
            )
        handle = await self.app.rerun(request.path_params["run_id"], actor=actor_of(request))
        return await self._created(handle.run_id)

    async def replay_run(self, request: Request) -> Response:
        """``POST /api/v1/runs/{run_id}/replay``."""
        query_params(request, ())
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(
                400, "invalid_input", f"the body must be a JSON object, not {json_type(body)}"
            )
        replay = models.validate(
            models.ReplayRun, body, unknown="unknown field(s) (expected: from_step)"
        )
        handle = await self.app.replay(
            request.path_params["run_id"], from_step=replay.from_step, actor=actor_of(request)
        )
        return await self._created(handle.run_id)

    async def _created(self, run_id: str) -> Response:
        run = await self.query.get_run(run_id)
        return JSONResponse(
            views.run_json(run), status_code=201, headers={"Location": f"/api/v1/runs/{run_id}"}
        )
