"""The REST API of schedules (``/api/v1/schedules``), over ``app.schedules``:

- ``GET /api/v1/schedules?function_id=&cursor=&limit=``: ``{"schedules": [...],
  "next_cursor"}``, by id.
- ``POST /api/v1/schedules`` with ``{"id", "function_id", "cron", "tz"?, "data"?,
  "overlap"?, "catchup"?, "catchup_window"? (seconds), "paused"?}``: ``201`` with the
  schedule and ``Location``; ``409 schedule_exists`` for a taken id, ``404
  function_not_found``, ``400`` for a bad cron (``invalid_cron``), zone or policy.
- ``GET /api/v1/schedules/{id}``: the schedule; ``DELETE``: ``204``.
- ``POST /api/v1/schedules/{id}/pause`` and ``/resume``: the schedule after the change;
  ``POST /api/v1/schedules/{id}/trigger``: ``201 {"run_id", "created": true}`` and
  ``Location`` (one run now, even when paused).

An unknown id is ``404 schedule_not_found``. The shapes are :mod:`perdure.views`'.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from perdure import views
from perdure.app import App
from perdure.server import models
from perdure.server.http import ApiError, JSONResponse, json_type, query_params, read_json


class ScheduleApi:
    """The schedule route handlers, bound to one app."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def list(self, request: Request) -> Response:
        """``GET /api/v1/schedules``."""
        query = models.validate(
            models.SchedulesQuery, query_params(request, ("function_id", "cursor", "limit"))
        )
        page = await self.app.schedules.page(
            function=query.function_id, after=query.cursor, limit=query.limit
        )
        return JSONResponse(views.schedules_page_json(page))

    async def create(self, request: Request) -> Response:
        """``POST /api/v1/schedules``."""
        query_params(request, ())
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ApiError(
                400, "invalid_input", f"the body must be a JSON object, not {json_type(body)}"
            )
        spec = models.validate(models.ScheduleIn, body)
        info = await self.app.schedules.create(
            spec.id,
            spec.function_id,
            spec.cron,
            tz=spec.tz,
            data=spec.data,
            overlap=spec.overlap,
            catchup=spec.catchup,
            catchup_window=spec.catchup_window,
            paused=spec.paused,
        )
        return JSONResponse(
            views.schedule_json(info),
            status_code=201,
            headers={"Location": f"/api/v1/schedules/{info.id}"},
        )

    async def get(self, request: Request) -> Response:
        """``GET /api/v1/schedules/{schedule_id}``."""
        query_params(request, ())
        info = await self.app.schedules.get(request.path_params["schedule_id"])
        return JSONResponse(views.schedule_json(info))

    async def delete(self, request: Request) -> Response:
        """``DELETE /api/v1/schedules/{schedule_id}``."""
        query_params(request, ())
        await self.app.schedules.delete(request.path_params["schedule_id"])
        return Response(status_code=204)

    async def pause(self, request: Request) -> Response:
        """``POST /api/v1/schedules/{schedule_id}/pause``."""
        query_params(request, ())
        info = await self.app.schedules.pause(request.path_params["schedule_id"])
        return JSONResponse(views.schedule_json(info))

    async def resume(self, request: Request) -> Response:
        """``POST /api/v1/schedules/{schedule_id}/resume``."""
        query_params(request, ())
        info = await self.app.schedules.resume(request.path_params["schedule_id"])
        return JSONResponse(views.schedule_json(info))

    async def trigger(self, request: Request) -> Response:
        """``POST /api/v1/schedules/{schedule_id}/trigger``."""
        query_params(request, ())
        handle = await self.app.schedules.trigger(request.path_params["schedule_id"])
        return JSONResponse(
            {"run_id": handle.run_id, "created": handle.created},
            status_code=201,
            headers={"Location": f"/api/v1/runs/{handle.run_id}"},
        )
