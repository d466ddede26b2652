"""The remote client: the App's client operations over a perdure server's HTTP API.

``perdure.Client("http://host:8288", token="...")`` starts runs and awaits their results,
sends events, reads, lists, cancels, reruns and replays runs, and manages schedules, without
database credentials: a service that only starts and awaits runs talks to ``perdure server``
(or ``perdure dev``) over ``/api/v1``. It returns the same types as the embedded client
(:class:`~perdure.RunHandle`, :class:`~perdure.RunInfo`, :class:`~perdure.SentEvent`,
:class:`~perdure.ScheduleInfo`) and raises the same errors (the API's error codes are mapped
back by :data:`perdure.remote_views.ERRORS`); a refused token is an
:class:`~perdure.errors.UnauthorizedError`, an unreachable or misbehaving server a
:class:`~perdure.errors.RemoteError`.

Every method has a ``_sync`` twin for code outside asyncio (a private loop thread, as the
App's). ``handle.result(timeout)`` polls ``GET /api/v1/runs/{id}`` with a growing interval.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from perdure import serde
from perdure.client import ClientSyncTwins, RunHandle
from perdure.errors import (
    FunctionNotFoundError,
    InvalidInputError,
    PerdureError,
    RemoteError,
    RunNotFoundError,
)
from perdure.functions import function_id_of
from perdure.query import Page
from perdure.remote_schedules import RemoteSchedules
from perdure.remote_views import (
    error_from,
    parse_pause,
    parse_run,
    parse_runs_page,
    parse_sent,
)
from perdure.results import RunOutcome
from perdure.store.base import SentEvent
from perdure.sync import SyncBridge
from perdure.types import Event, FunctionPause, RunInfo, RunStatus

__all__ = ["API_PAGE_MAX", "Client"]

API_PAGE_MAX = 500
"""The largest page the API returns (a larger ``limit`` is lowered to it)."""

POLL_FIRST = 0.05
POLL_MAX = 1.0
"""``result()`` polls after 50 ms, then 1.5 times later each time, at most every second."""


def _segment(value: str, not_found: type[PerdureError], what: str) -> str:
    """``value`` as one URL path segment; ``not_found`` for a value that can name nothing
    (as the embedded client says: no route could carry it to the server unchanged)."""
    if (
        not isinstance(value, str)
        or not value
        or value in (".", "..")
        or any(c in value for c in "/\x00")
    ):
        raise not_found(f"no {what} with id {value!r}")
    return quote(value, safe="")


def _run(run_id: str) -> str:
    return f"/api/v1/runs/{_segment(run_id, RunNotFoundError, 'run')}"


class Client(ClientSyncTwins):
    """A perdure server's client operations over HTTP (see the module docstring).

    ``url`` is the server's base URL (``http://host:8288``); ``token`` its API token, sent
    as ``Authorization: Bearer <token>`` (``perdure dev`` needs none); ``timeout`` bounds
    each HTTP request, in seconds. Use it as ``async with perdure.Client(...) as client`` (or
    ``with`` for the sync twins), or call :meth:`close` / :meth:`close_sync`.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"the server URL must start with http:// or https://: {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Accept": "application/json", **(headers or {})}
        if token is not None:
            if not isinstance(token, str) or not token.strip():
                raise InvalidInputError("the API token must be a non-empty string")
            self._headers["Authorization"] = f"Bearer {token}"
        self._http: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self.bridge = SyncBridge()
        self.schedules = RemoteSchedules(self)
        """The server's schedules (the methods of :class:`~perdure.schedules.Schedules`)."""

    def __repr__(self) -> str:
        return f"perdure.Client({self.url!r})"

    # ------------------------------------------------------------------ transport

    def _client(self) -> httpx.AsyncClient:
        """The HTTP connection pool of the running loop (the caller's, or the sync twins')."""
        loop = asyncio.get_running_loop()
        for gone in [other for other in self._http if other.is_closed()]:
            del self._http[gone]  # a loop that ended took its connections with it
        http = self._http.get(loop)
        if http is None or http.is_closed:
            http = httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=self.timeout)
            self._http[loop] = http
        return http

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One API call: the decoded JSON answer (``None`` for 204), or the error the
        answer stands for (:func:`perdure.remote_views.error_from`)."""
        content = None if body is None else serde.dumps(body).encode()
        headers = None if content is None else {"Content-Type": "application/json"}
        query = None if params is None else {k: v for k, v in params.items() if v is not None}
        try:
            response = await self._client().request(
                method, path, content=content, headers=headers, params=query
            )
        except httpx.TimeoutException as exc:
            raise RemoteError(
                f"{method} {self.url}{path}: no answer within {self.timeout:g}s ({exc!r})"
            ) from None
        except httpx.TransportError as exc:
            raise RemoteError(
                f"{method} {self.url}{path}: cannot reach the server: {exc}"
            ) from None
        if response.status_code == 204:
            return None
        try:
            decoded = response.json()
        except ValueError:
            decoded = None
        if response.status_code >= 400:
            raise error_from(response.status_code, decoded)
        if decoded is None:
            raise RemoteError(
                f"{method} {self.url}{path}: the answer is not JSON "
                f"(HTTP {response.status_code}, {response.headers.get('content-type')})",
                status=response.status_code,
            )
        return decoded

    async def close(self) -> None:
        """Close the HTTP connections of the running loop."""
        http = self._http.pop(asyncio.get_running_loop(), None)
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def close_sync(self) -> None:
        """Close the sync twins' connections and stop their loop thread."""
        self.bridge.close_with(self.close)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_sync()

    # ------------------------------------------------------------------ runs

    async def start(
        self,
        function: Any,
        data: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> RunHandle:
        """Start a run of ``function`` (decorated function or id) with ``data`` (its
        ``ctx.event.data``). The same ``idempotency_key`` always gives the same run
        (``handle.created`` is then false)."""
        fid = function_id_of(function)
        if not fid or "\x00" in fid:
            raise FunctionNotFoundError(f"no function with id {fid!r} is registered")
        fid = quote(fid, safe="")
        body: dict[str, Any] = {"data": {} if data is None else data}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        answer = await self.request("POST", f"/api/v1/functions/{fid}/runs", body=body)
        return RunHandle(self, answer["run_id"], fresh=bool(answer["created"]))

    def handle(self, run_id: str) -> RunHandle:
        """A handle on an existing run."""
        return RunHandle(self, run_id)

    async def get_run(self, run_id: str, *, steps: bool = True) -> RunInfo:
        """A run with its status, input event, output or error, steps and timestamps
        (``steps=False``: with an empty list of steps)."""
        run = parse_run(await self.request("GET", _run(run_id)))
        return run if steps else _without_steps(run)

    async def runs_page(
        self,
        *,
        status: str | RunStatus | None = None,
        function: Any = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[RunInfo]:
        """One page of runs without their steps, newest first, and the cursor of the next
        (``next_cursor``, ``None`` on the last page): only those in ``status`` and of
        ``function`` when given; ``limit`` from 1 to :data:`API_PAGE_MAX`."""
        params = {
            "status": status.value if isinstance(status, RunStatus) else status,
            "function_id": None if function is None else function_id_of(function),
            "cursor": cursor,
            "limit": max(1, min(int(limit), API_PAGE_MAX)),
        }
        return parse_runs_page(await self.request("GET", "/api/v1/runs", params=params))

    async def list_runs(
        self,
        *,
        status: str | RunStatus | None = None,
        function: Any = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunInfo]:
        """Runs, newest first; ``before`` is the last id of the previous page (as
        :meth:`perdure.App.list_runs`; :meth:`runs_page` also gives the next cursor)."""
        page = await self.runs_page(status=status, function=function, cursor=before, limit=limit)
        return page.items

    async def cancel(self, run_id: str) -> RunInfo:
        """Cancel a queued, running, sleeping or waiting run (an ended run is returned
        unchanged); the run after the change."""
        return parse_run(await self.request("POST", _run(run_id) + "/cancel"))

    async def pause(self, function: Any) -> FunctionPause:
        """Pause a function (see :meth:`perdure.App.pause`): its runs queue, none starts."""
        return await self._set_paused(function, "pause")

    async def resume(self, function: Any) -> FunctionPause:
        """Resume a paused function: its queued runs start, in their queue order."""
        return await self._set_paused(function, "resume")

    async def _set_paused(self, function: Any, action: str) -> FunctionPause:
        fid = function_id_of(function)
        if not fid or "\x00" in fid:
            raise FunctionNotFoundError(f"no function with id {fid!r} is registered")
        fid = quote(fid, safe="")
        return parse_pause(await self.request("POST", f"/api/v1/functions/{fid}/{action}"))

    async def rerun(self, run_id: str) -> RunHandle:
        """Start a new run of the same function with the same input; it records
        ``rerun_of``. Raises :class:`~perdure.errors.RunNotFoundError` for an unknown run."""
        run = await self.request("POST", _run(run_id) + "/rerun")
        return RunHandle(self, run["id"], fresh=True)

    async def replay(self, run_id: str, *, from_step: str) -> RunHandle:
        """Start a new run from an ended run that keeps the recorded results of the steps
        before ``from_step`` and executes from it on (see :meth:`perdure.App.replay`; the same
        errors)."""
        if not isinstance(from_step, str) or not from_step:
            raise InvalidInputError("from_step must be a non-empty string (a step id)")
        run = await self.request(
            "POST",
            _run(run_id) + "/replay",
            body={"from_step": from_step},
        )
        return RunHandle(self, run["id"], fresh=True)

    async def wait_outcome(
        self, run_id: str, timeout: float | None, *, check_first: bool = True
    ) -> RunOutcome:
        """Poll the run until it ends (``TimeoutError`` after ``timeout`` seconds); used by
        :meth:`RunHandle.result`."""
        del check_first  # polling always looks first
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_FIRST
        while True:
            run = await self.request("GET", _run(run_id))
            if RunStatus(run["status"]).terminal:
                output = run.get("output")
                error = run.get("error")
                return RunOutcome(
                    run["status"],
                    serde.dumps(output),
                    None if error is None else serde.dumps(error),
                )
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"run {run_id} did not finish within {timeout}s")
                delay = min(delay, left)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX)

    # ------------------------------------------------------------------ events

    async def send_detailed(self, events: Event | Sequence[Event]) -> list[SentEvent]:
        """Send events (validated by the server, all before any is stored); for each, in
        order, its id, whether it was a duplicate, and the runs it started (``cancelled`` is
        empty: the API does not tell)."""
        items = [events] if isinstance(events, Event) else list(events)
        if not items:
            return []
        for e in items:
            if not isinstance(e, Event):
                raise InvalidInputError("send() takes perdure.Event objects")
        body = [{k: v for k, v in e.stamped().to_dict().items() if k != "schedule"} for e in items]
        return parse_sent(await self.request("POST", "/api/v1/events", body=body))

    async def send(self, events: Event | Sequence[Event]) -> list[str]:
        """Send events; return their ids. Each starts the runs of the functions it triggers
        and resumes the runs waiting for it."""
        return [s.id for s in await self.send_detailed(events)]

    # ------------------------------------------------------------------ sync twins

    def list_runs_sync(
        self,
        *,
        status: str | RunStatus | None = None,
        function: Any = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunInfo]:
        """:meth:`list_runs` for code outside asyncio."""
        return self.bridge.call(
            self.list_runs(status=status, function=function, before=before, limit=limit)
        )

    def runs_page_sync(
        self,
        *,
        status: str | RunStatus | None = None,
        function: Any = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[RunInfo]:
        """:meth:`runs_page` for code outside asyncio."""
        return self.bridge.call(
            self.runs_page(status=status, function=function, cursor=cursor, limit=limit)
        )

    def send_detailed_sync(self, events: Event | Sequence[Event]) -> list[SentEvent]:
        """:meth:`send_detailed` for code outside asyncio."""
        return self.bridge.call(self.send_detailed(events))


def _without_steps(run: RunInfo) -> RunInfo:
    return dataclasses.replace(run, steps=[])
