"""``GET /metrics``: the Prometheus metrics of one served app (see docs/observability.md).

Each server app has its own registry (never the library's global one), so that several apps,
or several tests, in one process do not mix their counts. Counters are per process: they count
what this process did (its workers' runs, its cancels, its HTTP requests) since it started.

- Counters, attached to the runtime as its :class:`~perdure.runtime.metrics.RunMetrics` sink:
  runs started and ended (by function, and status for the ended ones), lease takeovers, the
  duration of step attempts (a histogram by function and step kind), HTTP requests (by route
  template, method and status, counted by an ASGI middleware).
- Gauges computed at scrape time: the runs due and not yet claimed and the age of the oldest
  (one read of the store's due index), and the workers alive in this process.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from perdure.app import App
from perdure.store.base import DueBacklog

log = logging.getLogger("perdure.server")

STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
"""The step duration histogram's buckets, in seconds."""

READ_TIMEOUT = 5.0
"""Seconds a scrape waits for the store's backlog read before answering without it."""

UNMATCHED = "unmatched"
"""The ``route`` label of requests for a path no route serves."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The ``method`` label's values (any other method counts as ``other``: a client cannot make
the label set grow without bound; nor can it with paths, counted by route template)."""


class Metrics:
    """The metrics of one app served over HTTP, in their own registry."""

    enabled = True

    def __init__(self, app: App) -> None:
        self.app = app
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs_started = Counter(
            "perdure_runs_started",
            "Runs a worker of this process started (their first claim), by function.",
            ["function"],
            registry=r,
        )
        self.runs_ended = Counter(
            "perdure_runs_ended",
            "Runs that ended in this process (completed or failed by its workers, cancelled "
            "by it, skipped by flow control when it created them), by function and status.",
            ["function", "status"],
            registry=r,
        )
        self.takeovers = Counter(
            "perdure_lease_takeovers",
            "Claims by this process's workers of a run whose previous lease had expired.",
            ["function"],
            registry=r,
        )
        self.steps = Histogram(
            "perdure_step_duration_seconds",
            "Duration of the step attempts executed by this process's workers (to completed, "
            "failed or retrying), by function and step kind.",
            ["function", "kind"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.http = Counter(
            "perdure_http_requests",
            "HTTP requests this server answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.live = _LiveGauges(app)
        r.register(self.live)
        # Children by label values: the hot path skips the client library's label lookup.
        self._started: dict[str, Counter] = {}
        self._ended: dict[tuple[str, str], Counter] = {}
        self._steps: dict[tuple[str, str], Histogram] = {}

    # ------------------------------------------------------------------ the runtime's sink

    def run_started(self, function_id: str) -> None:
        """A worker of this process started a run."""
        child = self._started.get(function_id)
        if child is None:
            child = self._started[function_id] = self.runs_started.labels(function_id)
        child.inc()

    def run_ended(self, function_id: str, status: str) -> None:
        """A run ended in this process with ``status``."""
        key = (function_id, status)
        child = self._ended.get(key)
        if child is None:
            child = self._ended[key] = self.runs_ended.labels(function_id, status)
        child.inc()

    def lease_taken_over(self, function_id: str) -> None:
        """A claim took over an expired lease."""
        self.takeovers.labels(function_id).inc()

    def step_ended(self, function_id: str, kind: str, seconds: float) -> None:
        """A step attempt ended after ``seconds``."""
        key = (function_id, kind)
        child = self._steps.get(key)
        if child is None:
            child = self._steps[key] = self.steps.labels(function_id, kind)
        child.observe(seconds)

    # ------------------------------------------------------------------ scraping

    async def scrape(self) -> bytes:
        """The exposition text, with the gauges read now."""
        await self.live.refresh()
        return generate_latest(self.registry)

    async def endpoint(self, request: Request) -> Response:
        """``GET /metrics``."""
        return Response(await self.scrape(), media_type=CONTENT_TYPE_LATEST)


class _LiveGauges(Collector):
    """The gauges computed at scrape time: the due backlog by function, the workers alive."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.backlog: DueBacklog | None = None
        self.known: set[str] = set()
        """Functions reported once: they keep a series (at 0) when nothing of theirs is due."""

    async def refresh(self) -> None:
        runtime = self.app.runtime
        self.backlog = None
        if not runtime.is_open:
            return
        try:
            self.backlog = await asyncio.wait_for(runtime.store.due_backlog(), READ_TIMEOUT)
        except Exception as exc:  # the store is away: the scrape answers without the gauges
            log.warning("metrics: cannot read the queue backlog: %s", exc)

    def collect(self) -> Iterable[Metric]:
        workers = GaugeMetricFamily(
            "perdure_workers_alive", "Workers running in this process (started, not stopped)."
        )
        workers.add_metric([], len(self.app.runtime.hub.workers))
        yield workers
        backlog = self.backlog
        if backlog is None:
            return
        depth = GaugeMetricFamily(
            "perdure_queue_depth",
            "Runs due and not claimed by any worker (all processes), by function.",
            labels=["function"],
        )
        lag = GaugeMetricFamily(
            "perdure_queue_lag_seconds",
            "How long the oldest run due and not claimed has been due, by function.",
            labels=["function"],
        )
        self.known.update(backlog.functions)
        self.known.update(self.app.functions)
        for fid in sorted(self.known):
            count, oldest = backlog.functions.get(fid, (0, backlog.now))
            depth.add_metric([fid], count)
            lag.add_metric([fid], max(0.0, backlog.now - oldest))
        yield depth
        yield lag


class HttpMetrics:
    """ASGI middleware: counts every HTTP request by route template (``/api/v1/runs/{run_id}``,
    never the raw path), method and status (500 when the app raised)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.counter = metrics.http
        self.routes = list(routes)
        self._labels: dict[str, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.counter.labels(self._route(scope), method, str(status)).inc()

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:  # refused before routing (Host, authentication)
            route = next(_matching(self.routes, scope), None)
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            return UNMATCHED
        label = self._labels.get(path)
        if label is None:  # "/api/v1/functions/{function_id:path}": without the convertor
            label = self._labels[path] = re.sub(r":\w+}", "}", path)
        return label


def _matching(routes: Sequence[BaseRoute], scope: Scope) -> Iterator[BaseRoute]:
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            yield route
