"""Bulk actions on a filtered set of runs: ``POST /api/v1/runs/bulk/cancel`` and
``POST /api/v1/runs/bulk/rerun``.

The body is :class:`~perdure.server.models.BulkRuns`: the filters of ``GET /api/v1/runs``
(times as integers, ms), a ``cursor`` and ``dry_run``. One call selects at most
:data:`~perdure.server.models.BULK_MAX` runs, newest first (a cancel selects only the runs that
have not ended) and changes each with one client operation (``app.cancel`` / ``app.rerun``),
so that each change is audited as its own. The answer::

    {"dry_run": bool, "matched": n, "more": bool, "next_cursor": str | null,
     "run_ids": [...], "new_run_ids": [...], "failed": [{"run_id", "code", "message"}]}

``matched`` counts the selected runs (``more``: more runs match past them; pass
``next_cursor`` as ``cursor`` to go on); ``run_ids`` are the runs changed (or, with
``dry_run``, that would be); ``new_run_ids`` the reruns, in the same order. A run that cannot
be changed (its function is gone, say) is listed in ``failed`` and the others go on.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from perdure.app import App
from perdure.errors import PerdureError, StoreUnavailableError
from perdure.server import models
from perdure.server.auth import actor_of
from perdure.server.http import ApiError, JSONResponse, json_type, query_params, read_json


class BulkApi:
    """The bulk route handlers, bound to one app."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def _select(self, request: Request, *, active: bool) -> tuple[models.BulkRuns, Any]:
        query_params(request, ())
        body = await read_json(request, optional=True)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ApiError(
                400, "invalid_input", f"the body must be a JSON object, not {json_type(body)}"
            )
        bulk = models.validate(models.BulkRuns, body, unknown="unknown field(s)")
        page = await self.app.query.list_runs(
            search=bulk.search(),
            ended=False if active else None,
            before=None if bulk.cursor is None else bulk.cursor.upper(),
            limit=models.BULK_MAX,
        )
        return bulk, page

    async def cancel(self, request: Request) -> Response:
        """``POST /api/v1/runs/bulk/cancel``: cancel the selected runs that have not ended."""
        bulk, page = await self._select(request, active=True)
        done: list[str] = []
        failed: list[dict[str, str]] = []
        for run in page.items:
            if bulk.dry_run:
                done.append(run.id)
                continue
            try:
                await self.app.cancel(run.id, actor=actor_of(request))
            except StoreUnavailableError:
                raise
            except PerdureError as exc:
                failed.append({"run_id": run.id, "code": exc.code, "message": exc.message})
            else:
                done.append(run.id)
        return JSONResponse(_answer(bulk, page, done, [], failed))

    async def rerun(self, request: Request) -> Response:
        """``POST /api/v1/runs/bulk/rerun``: rerun each selected run."""
        bulk, page = await self._select(request, active=False)
        done: list[str] = []
        new: list[str] = []
        failed: list[dict[str, str]] = []
        for run in page.items:
            if bulk.dry_run:
                done.append(run.id)
                continue
            try:
                handle = await self.app.rerun(run.id, actor=actor_of(request))
            except StoreUnavailableError:
                raise
            except PerdureError as exc:
                failed.append({"run_id": run.id, "code": exc.code, "message": exc.message})
            else:
                done.append(run.id)
                new.append(handle.run_id)
        return JSONResponse(_answer(bulk, page, done, new, failed))


def _answer(
    bulk: models.BulkRuns,
    page: Any,
    done: list[str],
    new: list[str],
    failed: list[dict[str, str]],
) -> dict[str, Any]:
    return {
        "dry_run": bulk.dry_run,
        "matched": len(page.items),
        "more": page.next_cursor is not None,
        "next_cursor": page.next_cursor,
        "limit": models.BULK_MAX,
        "run_ids": done,
        "new_run_ids": new,
        "failed": failed,
    }
