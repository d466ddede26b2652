"""The run state an SDK fetches when a call request leaves it out (protocol §6.3, ``use_api``).

A call whose body would be over 4 MiB carries ``use_api: true`` and no ``steps`` (and maybe no
``events``; see :mod:`perdure.inngest.call`). The SDK then asks the server, with the same
bearer as every SDK-facing route (the hashed signing key, in self-hosted mode):

- ``GET /v0/runs/{run_id}/batch``: ``200`` and the JSON array of the run's events, each as the
  call request carries it (:func:`perdure.inngest.call.sdk_event`); one for a run that is not
  a batch.
- ``GET /v0/runs/{run_id}/actions``: ``200`` and the JSON object of the run's memoized steps,
  hashed step id -> memoized value, exactly the ``steps`` of a call (:mod:`perdure.inngest.
  state`).

An unknown run is ``404 {"error": "...", "status": 404}`` (the error shape the TS SDK parses;
the Python SDK fails the call on any status over 399). Both are read from the store, so any
server on the database answers them, not only the process whose worker made the call. The
steps are those durable when the SDK asks: the executor makes every earlier result durable
before it sends a call, so they hold at least what the call would have carried.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from perdure import serde
from perdure.app import App
from perdure.engine.flow.gates import input_events
from perdure.inngest.call import sdk_event
from perdure.inngest.state import is_resolved, memo
from perdure.server.http import JSONResponse

__all__ = ["RunStateRoutes", "run_actions", "run_batch"]


def _not_found(run_id: str) -> JSONResponse:
    return JSONResponse({"error": f"no run with id {run_id!r}", "status": 404}, status_code=404)


async def run_batch(app: App, run_id: str) -> list[dict[str, Any]] | None:
    """The events of run ``run_id`` as a call carries them, ``None`` if it is unknown."""
    await app.open()
    row = await app.store.get_run(run_id)
    if row is None:
        return None
    return [sdk_event(e) for e in input_events(serde.loads(row.input))]


async def run_actions(app: App, run_id: str) -> dict[str, Any] | None:
    """The memoized steps of run ``run_id`` (``steps`` of a call), ``None`` if it is unknown."""
    await app.open()
    store = app.store
    if await store.get_run(run_id) is None:
        return None
    return {s.key: memo(s) for s in await store.get_steps(run_id) if is_resolved(s)}


class RunStateRoutes:
    """``/v0/runs/{run_id}/batch`` and ``/v0/runs/{run_id}/actions`` over ``app``'s store."""

    def __init__(self, app: App) -> None:
        self.app = app

    def routes(self) -> list[BaseRoute]:
        """The Starlette routes."""
        return [
            Route("/v0/runs/{run_id}/batch", self.batch, methods=["GET"]),
            Route("/v0/runs/{run_id}/actions", self.actions, methods=["GET"]),
        ]

    async def batch(self, request: Request) -> Response:
        """``GET /v0/runs/{run_id}/batch``: the run's events."""
        run_id = request.path_params["run_id"]
        events = await run_batch(self.app, run_id)
        if events is None:
            return _not_found(run_id)
        return JSONResponse(events)

    async def actions(self, request: Request) -> Response:
        """``GET /v0/runs/{run_id}/actions``: the run's memoized steps."""
        run_id = request.path_params["run_id"]
        actions = await run_actions(self.app, run_id)
        if actions is None:
            return _not_found(run_id)
        return JSONResponse(actions)
