"""Live run updates for the dashboard: ``GET /api/v1/runs/stream`` (server-sent events).

One :class:`RunWatcher` per server process serves every open stream. While at least one
stream is open it polls once per :data:`POLL_SECONDS`, with one read
(:meth:`perdure.query.Query.poll_runs`): the :data:`NEWEST` newest runs (the primary key's
order, an index range) and the runs that some stream watches and that have not ended. It
compares each run with what it saw last (status, attempt, start, end, reason) and pushes the
changes to the streams that care: a run a stream watches, or a new run that passes the
stream's filters (for streams that show the first page). So 100 open tabs cost the database
what one tab costs; with no tab open, nothing is polled.

A stream watches the runs its page shows (``watch``, run ids) and every run it was sent
later, until the run ends. Each message is ``event: run`` with ``{"run": <run summary>,
"matches": bool}`` (``matches``: the run still passes the stream's filters), or
``event: overflow`` when more than :data:`NEWEST` runs were created between two polls (the
page reloads its first page instead). A comment line every :data:`PING_SECONDS` keeps
proxies from closing an idle stream; the browser's EventSource reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from perdure import views
from perdure.query import PolledRun, Query, RunSearch
from perdure.server import models
from perdure.server.http import RETRY_AFTER_SECONDS, ApiError, query_params

log = logging.getLogger("perdure.server")

POLL_SECONDS = 1.0
"""How often the shared poller reads while a stream is open."""
NEWEST = 200
"""How many of the newest runs each poll reads (more new runs between two polls: overflow)."""
PING_SECONDS = 15.0
"""A keep-alive comment is sent on an idle stream this often."""
MAX_WATCHED = 500
"""The most runs one stream watches (the oldest watched are dropped beyond it)."""
MAX_STREAMS = 1000
"""The most streams one server holds open (HTTP 503 beyond it)."""
QUEUE_SIZE = 1000
"""Messages waiting for a slow stream (beyond it the stream gets an overflow)."""


@dataclass(eq=False)
class Subscriber:
    """One open stream: its filters, whether it shows new runs, the runs it watches."""

    search: RunSearch
    new: bool
    since: str | None = None
    """Runs newer than this id are sent at the first poll (those created while the page
    loaded)."""
    primed: bool = False
    """Whether the first poll has sent the watched runs' state."""
    watched: dict[str, None] = field(default_factory=dict)
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def watch(self, run_id: str) -> None:
        self.watched[run_id] = None
        while len(self.watched) > MAX_WATCHED:
            del self.watched[next(iter(self.watched))]

    def put(self, message: bytes) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:  # a stalled reader: it reloads when it catches up
            with contextlib.suppress(asyncio.QueueEmpty):
                while True:
                    self.queue.get_nowait()
            self.queue.put_nowait(_message("overflow", {"reason": "slow reader"}))


def _message(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _fingerprint(polled: PolledRun) -> tuple[Any, ...]:
    run = polled.info
    return (run.status, run.attempt, run.started_at, run.ended_at, orjson.dumps(run.reason))


class RunWatcher:
    """The shared poller of one server (see the module docstring)."""

    def __init__(self, query: Query, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.query = query
        self.poll_seconds = poll_seconds
        self.subscribers: set[Subscriber] = set()
        self.polls = 0
        """Polls made so far (the docs' cost claim is tested with it)."""
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def close(self) -> None:
        """End every open stream (the server is shutting down) and stop polling."""
        self._closed = True
        for sub in list(self.subscribers):
            sub.put(b"")  # the end marker
        if self._task is not None:
            self._task.cancel()

    async def stream(
        self, search: RunSearch, *, watch: Sequence[str], new: bool, since: str | None
    ) -> AsyncIterator[bytes]:
        """The messages of one stream, until the client goes away or the server closes:
        changes of the runs of ``watch``, and (``new``) new runs passing ``search``, from
        those newer than ``since`` on."""
        sub = Subscriber(search, new, since)
        for run_id in watch:
            sub.watch(run_id)
        self.subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll_loop())
        try:
            yield b"retry: 2000\n: connected\n\n"
            while not self._closed:
                try:
                    message = await asyncio.wait_for(sub.queue.get(), PING_SECONDS)
                except TimeoutError:
                    message = b": ping\n\n"
                if not message:
                    return
                yield message
        finally:
            self.subscribers.discard(sub)

    async def _poll_loop(self) -> None:
        try:
            while self.subscribers and not self._closed:
                try:
                    await self._poll()
                except Exception as exc:  # the database is away: try again at the next tick
                    log.warning("live runs poll failed: %s", exc)
                await asyncio.sleep(self.poll_seconds)
        finally:
            self._seen = {}  # stale once nobody watches: the next poll starts cold
            self._task = None

    async def _poll(self) -> None:
        subs = list(self.subscribers)
        watched = {i for sub in subs for i in sub.watched}
        polled = await self.query.poll_runs(sorted(watched), newest=NEWEST)
        self.polls += 1
        polled.reverse()  # oldest first: a page inserting them one by one keeps its order
        warm = bool(self._seen)
        newest = sorted((p.info.id for p in polled), reverse=True)[:NEWEST]
        if warm and len(newest) >= NEWEST and all(i not in self._seen for i in newest):
            for sub in subs:
                if sub.new:
                    sub.put(_message("overflow", {"reason": "many new runs"}))
        seen = {p.info.id: _fingerprint(p) for p in polled}
        changed = {i for i, fp in seen.items() if self._seen.get(i) != fp}
        created = {i for i in changed if warm and i not in self._seen}
        self._seen = seen
        summaries: dict[str, dict[str, Any]] = {}
        for sub in subs:
            primed, since = sub.primed, sub.since
            sub.primed, sub.since = True, None
            for p in polled:
                run_id = p.info.id
                fresh = since is not None and run_id > since
                if run_id in sub.watched:
                    send = not primed or run_id in changed
                else:
                    send = sub.new and (fresh or run_id in created) and p.matches(sub.search)
                if not send:
                    continue
                summary = summaries.get(run_id)
                if summary is None:
                    summary = summaries[run_id] = views.run_json(p.info, steps=False)
                sub.put(_message("run", {"run": summary, "matches": p.matches(sub.search)}))
                if p.info.status.terminal:
                    sub.watched.pop(run_id, None)
                else:
                    sub.watch(run_id)


def stream_endpoint(watcher: RunWatcher) -> Any:
    """The handler of ``GET /api/v1/runs/stream``: the query of
    :class:`~perdure.server.models.RunsStreamQuery`, answered ``text/event-stream``."""

    async def runs_stream(request: Request) -> Response:
        query = models.validate(
            models.RunsStreamQuery,
            query_params(request, tuple(models.RunsStreamQuery.model_fields)),
        )
        watch = query.watched()
        search = query.search()
        search.run_filter()  # refuses a bad filter now, not in the poller
        if len(watcher.subscribers) >= MAX_STREAMS:
            raise ApiError(
                503,
                "unavailable",
                f"this server already holds {MAX_STREAMS} live streams; retry later",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        messages = watcher.stream(search, watch=watch, new=query.new == "1", since=query.since)
        return StreamingResponse(
            messages,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return runs_stream


class LiveRuns:
    """The live view of one environment's runs: its watcher and its stream handler."""

    def __init__(self, query: Query) -> None:
        self.watcher = RunWatcher(query)
        self.stream = stream_endpoint(self.watcher)
