"""The TypeScript SDK's async checkpointing (protocol §10): ``POST /v1/checkpoint/{runId}/async``.

The TS SDK 4.x checkpoints when a *discovery* call carries ``ctx.fn_id`` and ``ctx.qi_id`` and
``disable_immediate_execution`` is false: it then runs step after step inside that one request
and, after each step (its buffer holds one by default), posts the steps it ran here::

    {"run_id", "fn_id", "qi_id", "request_id", "generation_id", "request_started_at", "ts",
     "steps": [{"op": "StepRun", "id": "<hashed id>", "data": <output>, ...}]}

and finally answers the call with 206 ``[..., {"op": "RunComplete", "data": <output>}]`` (or the
next asynchronous op: a sleep, a wait, planned steps).

Each checkpointed step becomes a perdure step record exactly as a ``StepRun`` in a 206 answer
would, but without scheduling a discovery call (the request that ran it goes on). The record is
written through the lease of the attempt that made the call, and durable before the answer
(the SDK runs the next step body after it):

- the attempt is found among the driver's live executions by run id; ``qi_id`` is that
  attempt's lease token (perdure's queue item), ``fn_id`` the function's id;
- ``qi_id`` naming another claim of the run (an older one), or the lease lost meanwhile:
  ``409`` (the SDK's *stale dispatch*: it halts, its answer is ignored);
- the run ended meanwhile (cancelled by a ``timeouts.finish``, a singleton of mode ``cancel``,
  a ``cancel`` event or the API, while its call was in flight): ``409``, so that the SDK halts
  at once (the call's answer is not wanted) instead of retrying for ~1.7 s and answering with
  the steps anyway; an unknown run: ``404``;
- the run not executing in this process otherwise: ``503``; the SDK retries a few times and
  then falls back to reporting the buffered steps in its 206 answer, which the executor
  records as usual;
- anything but run steps (``StepRun``, legacy ``Step``) in ``steps``: ``400`` (the same
  fallback). ``DeferAdd``/``DeferAbort`` (lazy ops of the TS ``defer`` feature) are ignored.

Re-posted steps (a retried checkpoint whose answer was lost) are recorded once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from perdure._signals import LeaseLost
from perdure.inngest import opcodes as oc
from perdure.server.http import ApiError, JSONResponse, parse_json, read_body
from perdure.types import RunStatus

if TYPE_CHECKING:
    from perdure.inngest.driver import InngestDriver
    from perdure.inngest.executor import Execution

__all__ = ["CheckpointError", "CheckpointRoutes", "apply_checkpoint"]

log = logging.getLogger("perdure.inngest")

#: Ops of the TS SDK's ``defer`` feature that may ride along a checkpoint; not supported yet.
LAZY_OPS = frozenset({"DeferAdd", "DeferAbort"})
#: The largest checkpoint body accepted: what a 206 answer may carry (Inngest's
#: ``MaxSDKResponseBodySize``, a step's output and input of 4 MiB each). Over it: 413, and the
#: SDK reports the step in its answer instead.
MAX_BODY = 8 * 1024 * 1024


class CheckpointError(Exception):
    """A checkpoint refused with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _ops(raw: Any) -> list[oc.Op]:
    if not isinstance(raw, list):
        raise CheckpointError(400, "steps must be an array")
    ops: list[oc.Op] = []
    for item in raw:
        if isinstance(item, dict) and item.get("op") in LAZY_OPS:
            log.info("checkpoint: %s ops are not supported; ignored", item.get("op"))
            continue
        try:
            op = oc.parse_op(item)
        except ValueError as exc:
            raise CheckpointError(400, f"a checkpointed step is not valid: {exc}") from exc
        if op.op not in (oc.STEP_RUN, oc.STEP):
            raise CheckpointError(400, f"only run steps can be checkpointed, not {op.op}")
        ops.append(op)
    return ops


async def apply_checkpoint(execution: Execution, payload: Any) -> int:
    """Record the steps of a checkpoint body for ``execution``; how many were new.

    Raises :class:`CheckpointError` for a body that does not belong to this attempt or that
    holds anything but run steps."""
    if not isinstance(payload, dict):
        raise CheckpointError(400, "a checkpoint must be a JSON object")
    if not execution.checkpointing or str(payload.get("qi_id") or "") != execution.queue_item_id:
        raise CheckpointError(409, "stale dispatch: the run was claimed again since this call")
    fn_id = payload.get("fn_id")
    if fn_id is not None and fn_id != execution.internal_fn_id:
        raise CheckpointError(400, f"fn_id {fn_id!r} is not the run's function")
    ops = _ops(payload.get("steps"))
    if not execution.discovering:
        raise CheckpointError(409, "stale dispatch: no call of this run is in flight")
    new = 0
    for op in ops:
        if op.id in execution.memos:
            continue
        execution.record_checkpointed(op)
        new += 1
    try:
        await execution.attempt.flush()  # durable before the SDK runs the next step body
    except LeaseLost as exc:
        raise CheckpointError(409, "stale dispatch: the run's lease was lost") from exc
    return new


StatusOf = Callable[[str], Awaitable[RunStatus | None]]
"""The status of a run by id (``None``: no such run)."""


class CheckpointRoutes:
    """The checkpoint routes of a server whose worker runs ``driver`` in the same process;
    ``status_of`` tells a run that ended from one executing elsewhere (without it, every run
    not executing here gets the ``503``)."""

    def __init__(self, driver: InngestDriver, status_of: StatusOf | None = None) -> None:
        self.driver = driver
        self.status_of = status_of

    def routes(self) -> list[BaseRoute]:
        """The Starlette routes."""
        return [Route("/v1/checkpoint/{run_id}/async", self.checkpoint_async, methods=["POST"])]

    async def checkpoint_async(self, request: Request) -> Response:
        """``POST /v1/checkpoint/{run_id}/async``."""
        run_id = request.path_params["run_id"]
        try:
            payload = parse_json(await read_body(request, MAX_BODY))
        except ApiError as exc:
            return _error(exc.status, exc.message)
        if isinstance(payload, dict) and payload.get("run_id") not in (None, run_id):
            return _error(400, "run_id in the body is not the run of the URL")
        execution = self.driver.live.get(run_id)
        if execution is None:
            return await self._not_live(run_id)
        try:
            new = await apply_checkpoint(execution, payload)
        except CheckpointError as exc:
            return _error(exc.status, exc.message)
        return JSONResponse({"ok": True, "recorded": new})

    async def _not_live(self, run_id: str) -> JSONResponse:
        status = None if self.status_of is None else await self.status_of(run_id)
        if status is not None and status.terminal:
            return _error(409, f"stale dispatch: run {run_id} has ended ({status.value})")
        if status is None and self.status_of is not None:
            return _error(404, f"no run with id {run_id!r}")
        return _error(503, f"run {run_id} is not executing on this server")


def _error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text, "status": status}, status_code=status)
