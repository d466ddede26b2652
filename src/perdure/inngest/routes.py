"""The Inngest-compatible HTTP routes of the perdure server (dev mode).

What the official SDKs and their test harnesses call (``shared/protocols/inngest.md``):

- ``POST /fn/register``: an app syncs (§4). ``200 {"ok": true, "modified", "app_id",
  "sync_id"}``; errors ``{"error": "<text>", "status": <code>, "data": null}`` with that status
  (the TS SDK reads the JSON ``status``, Python reads ``error``). A request whose
  ``X-Inngest-Expected-Server-Kind`` is not this server's kind is refused (400).
- ``DELETE /fn/remove?url=<app url>`` (or ``?app=<app id>``): the app and its functions go.
- ``POST /e/{key}``: one event or an array (§5). Events are processed in order; at the first
  invalid one the events before it are kept and the answer is ``400 {"ids": [...], "status":
  400, "error": ...}``; otherwise ``200 {"ids": [...], "status": 200}``. Dev mode accepts any
  key. An event without an ``id`` gets a ULID derived from ``X-Inngest-Event-Id-Seed`` and its
  position (1-based), so a retried request gives the same ids and is deduplicated; an event
  with an ``id`` keeps it (it is the event's idempotency id, as in Inngest) and that id is
  returned.
- ``GET /v1/events?name=&limit=&cursor=``: ``{"data": [...], "metadata": {...}}``.
- ``GET /v1/runs/{id}``: ``{"data": {"run_id", "status": "Running|Completed|...", "output",
  ...}, "metadata": {...}}``.
- ``GET /dev``: the dev-server description the TS harness reads (functions with their slugs).
- ``GET /v0/runs/{id}/batch`` and ``GET /v0/runs/{id}/actions``: the run's events and memoized
  steps, fetched by an SDK sent a call with ``use_api`` (:mod:`perdure.inngest.run_state`).
- ``POST /v0/connect/start``: 200 for the harnesses' bodiless readiness probe; a Connect
  worker (a protobuf body) is refused: perdure has no Connect gateway.

Every response carries ``X-Inngest-Server-Kind`` (see :func:`server_kind_headers`).

Self-hosted mode (``keys``, server kind ``cloud``): ``/e/{key}`` takes only the event keys, every
other route here the signing key as bearer (:func:`perdure.inngest.auth.guard_routes`); with
``keys_required`` and no keys, the routes answer 503.
"""

from __future__ import annotations

import base64
import binascii
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from perdure import serde
from perdure._version import __version__
from perdure.app import App
from perdure.errors import InvalidInputError, PayloadTooLargeError, RunNotFoundError
from perdure.inngest.auth import InngestKeys, guard_routes
from perdure.inngest.checkpoint import CheckpointRoutes
from perdure.inngest.driver import InngestDriver
from perdure.inngest.functions import InngestFunction
from perdure.inngest.gql import GraphQL
from perdure.inngest.run_state import RunStateRoutes
from perdure.inngest.sync import AppRegistry, ConflictError, app_uuid
from perdure.server.http import ApiError, JSONResponse, error_response, parse_json, read_body
from perdure.types import Event, RunStatus, iso_utc

__all__ = ["MAX_EVENTS", "InngestRoutes", "seeded_ids"]

MAX_EVENTS = 5000
"""The most events one ``/e/{key}`` request may carry (Inngest's limit)."""
_TS_MIN, _TS_MAX = 315532800000, 4102444800000  # 1980 .. 2100, in ms (Inngest's bounds)
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_STATUS = {
    RunStatus.QUEUED: "Queued",
    RunStatus.RUNNING: "Running",
    RunStatus.SLEEPING: "Running",
    RunStatus.WAITING: "Running",
    RunStatus.COMPLETED: "Completed",
    RunStatus.FAILED: "Failed",
    RunStatus.CANCELLED: "Cancelled",
}


def _ulid(ms: int, entropy: int) -> str:
    value = (ms & ((1 << 48) - 1)) << 80 | entropy & ((1 << 80) - 1)
    return "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


def seeded_ids(seed: str | None, count: int) -> list[str] | None:
    """The ids of ``count`` events sent with ``X-Inngest-Event-Id-Seed: <ms>,<base64 of 10
    bytes>``: the i-th (from 1) adds ``i`` to the big-endian uint32 of the last 4 bytes
    (Inngest's rule). ``None`` if the header is absent or malformed."""
    if not seed:
        return None
    ms_text, sep, b64 = seed.partition(",")
    try:
        ms = int(ms_text)
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error):
        return None
    if not sep or len(raw) != 10 or not 0 <= ms < 1 << 48:
        return None
    head, tail = int.from_bytes(raw[:6], "big"), int.from_bytes(raw[6:], "big")
    return [_ulid(ms, head << 32 | (tail + i) & 0xFFFFFFFF) for i in range(1, count + 1)]


def _error(status: int, text: str, **extra: Any) -> JSONResponse:
    return JSONResponse({**extra, "error": text, "status": status}, status_code=status)


def _event(item: Any, index: int, default_id: str | None) -> Event:
    where = f"event {index}"
    if not isinstance(item, dict):
        raise InvalidInputError(f"{where} must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("event name is empty")
    if name.startswith("inngest/"):
        raise InvalidInputError(f"event name {name!r} is reserved for internal events")
    data = item.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInputError(f"{where}: data must be an object")
    data = {k: v for k, v in data.items() if k != "_inngest"}
    user = item.get("user")
    if user is None:
        user = {}
    if not isinstance(user, dict):
        raise InvalidInputError(f"{where}: user must be an object")
    eid = item.get("id")
    if eid is not None and not isinstance(eid, str):
        raise InvalidInputError(f"{where}: id must be a string")
    ts = item.get("ts")
    if isinstance(ts, float) and ts.is_integer():
        ts = int(ts)
    if ts not in (None, 0) and (
        isinstance(ts, bool) or not isinstance(ts, int) or not _TS_MIN <= ts <= _TS_MAX
    ):
        raise InvalidInputError(f"{where}: ts must be ms since the epoch (1980..2100)")
    return Event(
        name=name, data=data, id=eid or default_id or "", ts=ts or int(time.time() * 1000),
        user=user,
    ).stamped()  # fmt: skip


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso_utc(value)


def _metadata() -> dict[str, Any]:
    return {"fetched_at": iso_utc(datetime.now(UTC)), "cached_until": None}


def dev_function(fn: InngestFunction) -> dict[str, Any]:
    """A function as ``GET /dev`` lists it (the Go server's shape, the fields harnesses read)."""
    retries = fn.raw.get("steps", {}).get("step", {}).get("retries")
    step: dict[str, Any] = {"id": "step", "name": fn.name, "uri": fn.url}
    if retries is not None:
        step["retries"] = retries
    return {
        "id": app_uuid(fn.id),
        "name": fn.name,
        "slug": fn.id,
        "app": fn.app_id,
        "triggers": fn.raw.get("triggers") or [],
        "steps": [step],
    }


def http_function_payload(body: Any) -> dict[str, Any]:
    """The ``/fn/register`` payload for ``POST /api/v1/functions``: one function, in an app of
    its own (``app``, else the function's id)."""
    if not isinstance(body, dict):
        raise InvalidInputError("the body must be a JSON object")
    for field, kind in (("id", str), ("name", str), ("app", str), ("url", str)):
        if field in body and not isinstance(body[field], kind):
            raise InvalidInputError(f"{field} must be a string")
    if "id" in body and (not body["id"] or any(c.isspace() for c in body["id"])):
        raise InvalidInputError("id must be a non-empty string without whitespace")
    if "name" in body and not body["name"]:
        raise InvalidInputError("name must not be empty")
    if "url" in body and not body["url"].startswith(("http://", "https://")):
        raise InvalidInputError("url must be an http:// or https:// address")
    if "retries" in body and (
        not isinstance(body["retries"], int) or isinstance(body["retries"], bool)
    ):
        raise InvalidInputError("retries must be an integer")
    triggers = body.get("triggers", [])
    if not isinstance(triggers, list) or not all(isinstance(t, dict) for t in triggers):
        raise InvalidInputError("triggers must be an array of objects")
    url = body.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidInputError("url is required: the address perdure calls the function at")
    name = body.get("name")
    fid = body.get("id") or name
    if not isinstance(fid, str) or not fid:
        raise InvalidInputError("id or name is required")
    app_id = body.get("app") or fid
    if not isinstance(app_id, str):
        raise InvalidInputError("app must be a string")
    sep = "&" if "?" in url else "?"
    step: dict[str, Any] = {
        "id": "step",
        "name": name or fid,
        "runtime": {"type": "http", "url": f"{url}{sep}fnId={fid}&stepId=step"},
    }
    retries = body.get("retries")
    if retries is not None:
        step["retries"] = {"attempts": retries}
    fn = {k: v for k, v in body.items() if k not in ("url", "app", "retries")}
    fn.update(id=fid, name=name or fid, steps=body.get("steps") or {"step": step})
    fn.setdefault("triggers", [])
    return {"appName": app_id, "url": url, "framework": "http", "functions": [fn]}


class InngestRoutes:
    """The Inngest routes of one server, over its app (store and client), its Inngest driver
    and its app registry."""

    def __init__(
        self,
        app: App,
        driver: InngestDriver,
        *,
        server_kind: str = "dev",
        registry: AppRegistry | None = None,
        keys: InngestKeys | None = None,
        keys_required: bool = False,
    ) -> None:
        self.app = app
        self.driver = driver
        self.server_kind = server_kind
        self.registry = registry or AppRegistry(app, driver)
        self.keys = keys
        self.keys_required = keys_required
        self.gql = GraphQL(app, lambda key: driver.step_names.get(key, key))

    @property
    def headers(self) -> dict[str, str]:
        """The headers every response of the server carries."""
        return {"X-Inngest-Server-Kind": self.server_kind}

    def routes(self) -> list[BaseRoute]:
        """The Starlette routes, behind the keys in self-hosted mode (see :meth:`guard`)."""
        return self.guard(self.unguarded_routes())

    def unguarded_routes(self) -> list[BaseRoute]:
        """The Starlette routes."""
        return [
            Route("/fn/register", self.register, methods=["POST"]),
            Route("/fn/remove", self.remove, methods=["DELETE"]),
            Route("/e/{key}", self.send, methods=["POST"]),
            Route("/e", self.send_without_key, methods=["POST"]),
            Route("/e/", self.send_without_key, methods=["POST"]),
            Route("/v1/events", self.list_events, methods=["GET"]),
            Route("/v1/events/{event_id}", self.get_event, methods=["GET"]),
            Route("/v1/events/{event_id}/runs", self.event_runs, methods=["GET"]),
            Route("/v0/gql", self.graphql, methods=["POST"]),
            Route("/api/v1/functions", self.register_http_function, methods=["POST"]),
            Route("/v1/runs/{run_id}", self.get_run, methods=["GET"]),
            Route("/v1/runs/{run_id}", self.cancel_run, methods=["DELETE"]),
            Route("/v0/runs/{run_id}", self.cancel_run, methods=["DELETE"]),
            *RunStateRoutes(self.app).routes(),
            Route("/dev", self.dev, methods=["GET"]),
            Route("/v0/connect/start", self.connect_start, methods=["POST"]),
            *CheckpointRoutes(self.driver, self._run_status).routes(),
        ]

    async def _run_status(self, run_id: str) -> RunStatus | None:
        try:
            return (await self.app.query.get_run(run_id, steps=False)).status
        except RunNotFoundError:
            return None

    def guard(self, routes: list[BaseRoute]) -> list[BaseRoute]:
        """``routes`` behind this server's keys (as they are in dev mode)."""
        return guard_routes(routes, self.keys, required=self.keys_required)

    # ------------------------------------------------------------------ sync

    async def register(self, request: Request) -> Response:
        """``POST /fn/register``."""
        expected = request.headers.get("x-inngest-expected-server-kind")
        if expected and expected != self.server_kind:
            return _error(400, f"Expected server kind {self.server_kind}, got {expected}")
        try:
            body = await read_body(request)
            payload = parse_json(body)
            result = await self.registry.register(payload, body)
        except ApiError as exc:
            return _error(exc.status, exc.message, data=None)
        except ConflictError as exc:
            return _error(409, exc.message, data=None)
        except InvalidInputError as exc:
            return _error(400, exc.message, data=None)
        return JSONResponse(
            {
                "ok": True,
                "modified": result.modified,
                "app_id": result.app_id,
                "sync_id": result.sync_id,
            }
        )

    async def remove(self, request: Request) -> Response:
        """``DELETE /fn/remove?url=...`` (or ``?app=...``)."""
        url = request.query_params.get("url")
        app_id = request.query_params.get("app")
        try:
            removed = await self.registry.remove(url=url, app_id=app_id)
        except InvalidInputError as exc:
            return _error(400, exc.message)
        return JSONResponse({"ok": True, "removed": removed})

    # ------------------------------------------------------------------ events

    async def send_without_key(self, request: Request) -> Response:
        """``POST /e`` without a key."""
        return _error(401, "Event key is required", message="")

    async def send(self, request: Request) -> Response:
        """``POST /e/{key}``: store the events in order, up to the first invalid one."""
        try:
            body = await read_body(request)
            payload = parse_json(body)
        except ApiError as exc:
            return _error(exc.status, exc.message, ids=[])
        items = payload if isinstance(payload, list) else [payload]
        if len(items) > MAX_EVENTS:
            return _error(
                413, f"too many events: {len(items)} (at most {MAX_EVENTS} per request)", ids=[]
            )
        seeds = seeded_ids(request.headers.get("x-inngest-event-id-seed"), len(items))
        events: list[Event] = []
        problem: str | None = None
        status = 400
        for i, item in enumerate(items):
            try:
                event = _event(item, i, None if seeds is None else seeds[i])
                serde.dumps_limited(event.to_dict(), f"event {i}", self.app.limits.event)
            except PayloadTooLargeError as exc:
                problem, status = exc.message, 413
                break
            except InvalidInputError as exc:
                problem = exc.message
                break
            events.append(event)
        ids_ = await self.app.send(events) if events else []
        if problem is not None:
            return _error(status, problem, ids=ids_)
        return JSONResponse({"ids": ids_, "status": 200})

    async def list_events(self, request: Request) -> Response:
        """``GET /v1/events``."""
        params = request.query_params
        try:
            limit = int(params.get("limit", "20"))
            cursor = params.get("cursor")
            before = int(cursor) if cursor else None
        except ValueError:
            return _error(400, "limit and cursor must be integers")
        if not 1 <= limit <= 100:
            return _error(400, f"limit must be between 1 and 100, got {limit}")
        page = await self.app.query.list_events(name=params.get("name"), before=before, limit=limit)
        data = []
        for info in page.items:
            event = info.event
            data.append(
                {
                    "internal_id": event.get("id"),
                    "id": event.get("id"),
                    "name": event.get("name"),
                    "data": event.get("data", {}),
                    "user": event.get("user", {}),
                    "ts": event.get("ts"),
                    "v": event.get("v"),
                    "received_at": iso_utc(info.received_at),
                    "run_ids": info.run_ids,
                }
            )
        meta = _metadata()
        meta["next_cursor"] = page.next_cursor
        return JSONResponse({"data": data, "metadata": meta})

    def _event_json(self, info: Any) -> dict[str, Any]:
        event = info.event
        return {
            "internal_id": event.get("id"),
            "id": event.get("id"),
            "name": event.get("name"),
            "data": event.get("data", {}),
            "user": event.get("user", {}),
            "ts": event.get("ts"),
            "v": event.get("v"),
            "received_at": iso_utc(info.received_at),
            "run_ids": info.run_ids,
        }

    async def get_event(self, request: Request) -> Response:
        """``GET /v1/events/{event_id}``."""
        info = await self.app.query.get_event(request.path_params["event_id"])
        if info is None:
            return _error(404, "event not found")
        return JSONResponse({"data": self._event_json(info), "metadata": _metadata()})

    async def event_runs(self, request: Request) -> Response:
        """``GET /v1/events/{event_id}/runs``: the runs the event started, oldest first."""
        event_id = request.path_params["event_id"]
        info = await self.app.query.get_event(event_id)
        if info is None:
            return _error(404, "event not found")
        data = []
        for run_id in info.run_ids:
            try:
                run = await self.app.query.get_run(run_id, steps=False)
            except RunNotFoundError:
                continue  # pruned meanwhile
            data.append(self._run_json(run))
        return JSONResponse({"data": data, "metadata": _metadata()})

    async def graphql(self, request: Request) -> Response:
        """``POST /v0/gql``: the GraphQL subset of :mod:`perdure.inngest.gql`."""
        try:
            payload = parse_json(await read_body(request))
        except ApiError as exc:
            return JSONResponse({"errors": [{"message": exc.message}]}, status_code=exc.status)
        if not isinstance(payload, dict):
            return JSONResponse({"errors": [{"message": "the body must be an object"}]}, 400)
        result = await self.gql.execute(
            payload.get("query"), payload.get("variables"), payload.get("operationName")
        )
        return JSONResponse(result, status_code=200 if "data" in result else 422)

    async def register_http_function(self, request: Request) -> Response:
        """``POST /api/v1/functions``: register one HTTP function (an app of one function,
        called at ``url`` with the Inngest protocol): ``{"id"?, "name", "url", "triggers",
        "retries"?, "app"?}``, or a whole function config as ``/fn/register`` takes it."""
        try:
            body = parse_json(await read_body(request))
            payload = http_function_payload(body)
            result = await self.registry.register(payload)
        except ApiError as exc:  # the REST API's error shape: this is an /api/v1 route
            return error_response(exc.status, exc.code, exc.message)
        except ConflictError as exc:
            return error_response(409, "function_exists", exc.message)
        except InvalidInputError as exc:
            return error_response(400, exc.code, exc.message)
        ids = {f["id"] for f in payload["functions"]}
        functions = [f for f in self.driver.functions.values() if f.id in ids]
        return JSONResponse(
            {"app_id": result.app_id, "functions": [dev_function(f) for f in functions]},
            status_code=201,
        )

    # ------------------------------------------------------------------ runs

    async def get_run(self, request: Request) -> Response:
        """``GET /v1/runs/{run_id}``."""
        run_id = request.path_params["run_id"]
        try:
            run = await self.app.query.get_run(run_id, steps=False)
        except RunNotFoundError as exc:
            return _error(404, exc.message)
        return JSONResponse({"data": self._run_json(run), "metadata": _metadata()})

    def _run_json(self, run: Any) -> dict[str, Any]:
        output = run.output if run.status is RunStatus.COMPLETED else run.error
        return {
            "run_id": run.id,
            "run_started_at": _iso(run.started_at or run.created_at),
            "function_id": app_uuid(run.function_id),
            "function_slug": run.function_id,
            "function_version": 1,
            "environment_id": app_uuid("dev"),
            "event_id": run.event.id,
            "status": _STATUS.get(run.status, run.status.value.capitalize()),
            "ended_at": _iso(run.ended_at),
            "output": output,
        }

    async def cancel_run(self, request: Request) -> Response:
        """``DELETE /v1/runs/{run_id}`` (and ``/v0/...``): cancel the run (an ended run is left
        as it is); the run as ``GET`` shows it."""
        try:
            await self.app.cancel(request.path_params["run_id"])
        except RunNotFoundError as exc:
            return _error(404, exc.message)
        return await self.get_run(request)

    # ------------------------------------------------------------------ dev server

    async def dev(self, request: Request) -> Response:
        """``GET /dev``."""
        functions = sorted(self.driver.functions.values(), key=lambda f: f.id)
        return JSONResponse(
            {
                "version": f"perdure-{__version__}",
                "authed": self.keys is not None,
                "startOpts": {"dir": None, "autodiscover": False, "urls": []},
                "functions": [dev_function(f) for f in functions],
                "handlers": [],
                "isSingleNodeService": False,
                "isMissingSigningKey": self.keys is None,
                "isMissingEventKeys": self.keys is None or not self.keys.event_keys,
                "features": {},
            }
        )

    async def connect_start(self, request: Request) -> Response:
        """``POST /v0/connect/start``."""
        body = await read_body(request, 64 * 1024)
        if body.strip():
            return _error(501, "perdure has no Connect gateway: serve the app over HTTP instead")
        return JSONResponse({"status": 200, "connect": False})
