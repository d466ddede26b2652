"""OpenTelemetry spans of runs and steps (imported only when tracing is on:
:mod:`perdure.runtime.tracing`).

Spans:

- ``run <function id>``, one per execution attempt (kind ``CONSUMER``), with ``perdure.run.id``,
  ``perdure.function.id``, ``perdure.run.attempt`` and, when it ends, ``perdure.run.outcome``
  (``completed``, ``failed``, ``retrying``, ``suspended``, ``released``, ``lost``). A failed
  run or attempt has an error status.
- ``step <step key>``, one per step executed in the attempt (replayed steps answered from their
  checkpoint get none), a child of its attempt span, with ``perdure.step.kind`` and
  ``perdure.step.attempt``; a failed step body has an error status and its exception recorded.
  User spans inside a step body are children of the step span.

Context across suspensions: the caller's context (captured by ``start``/``send`` into the run's
input event, :data:`~perdure.store.traces.TRACE_KEY`) is the parent of every attempt span of
the run. Each attempt records its own ``traceparent`` in ``runs.trace`` (with the run's first
one), so the next attempt, on any worker, links to the run's first attempt span and to the
previous one. A run started without a caller context is a trace of its own: its first attempt
is a root span and the later attempts are its children.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from perdure import serde
from perdure._version import __version__
from perdure.store.base import Outcome, Store
from perdure.store.traces import TRACE_KEY

log = logging.getLogger("perdure.tracing")

_W3C = TraceContextTextMapPropagator()
_OUTCOMES = {
    "complete": "completed",
    "fail": "failed",
    "retry": "retrying",
    "suspend": "suspended",
    "release": "released",
}
_MAX_LINKS = 32  # a batch run links to the contexts of its events, up to this many


def configured_provider() -> trace.TracerProvider | None:
    """The globally configured tracer provider, or ``None`` while there is none."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider


def _context_of(carrier: Any) -> SpanContext | None:
    if not isinstance(carrier, dict):
        return None
    ctx = trace.get_current_span(_W3C.extract(carrier)).get_span_context()
    return ctx if ctx.is_valid else None


def _carrier_of(span: Span) -> dict[str, str]:
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, trace.set_span_in_context(span))
    return carrier


class RunTracer:
    """Makes the spans of runs and steps with the tracer of ``provider`` (``None``: the
    global one, looked up when spans are made)."""

    def __init__(self, provider: trace.TracerProvider | None) -> None:
        if provider is None:
            self._tracer = trace.get_tracer("perdure", __version__)
        else:
            self._tracer = provider.get_tracer("perdure", __version__)

    def carrier(self) -> dict[str, str] | None:
        """The current context as a W3C carrier, or ``None`` without a valid current span."""
        if not trace.get_current_span().get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        return carrier or None

    @contextlib.contextmanager
    def incoming(self, headers: Mapping[str, str]) -> Iterator[None]:
        """While inside, the current context is the one of the W3C ``traceparent`` (and
        ``tracestate``) headers of an incoming request: runs started and events sent then
        carry the caller's trace, as from ``app.start`` under a span."""
        token = otel_context.attach(_W3C.extract(headers))
        try:
            yield
        finally:
            otel_context.detach(token)

    def attempt(
        self,
        store: Store,
        run_id: str,
        function_id: str,
        attempt: int,
        token: int,
        run_input: str,
        recorded: str | None,
    ) -> AttemptSpan:
        """Start the span of an attempt of a run whose input event is ``run_input`` and whose
        previous attempts recorded ``recorded`` (``runs.trace``); it is the current span until
        :meth:`AttemptSpan.end`."""
        events = serde.loads(run_input)
        carriers = [e.get(TRACE_KEY) for e in (events if isinstance(events, list) else [events])]
        callers = [c for c in map(_context_of, carriers) if c is not None]
        links = [Link(c, {"perdure.link": "event"}) for c in callers[1:_MAX_LINKS]]
        prior = serde.loads(recorded) if recorded else {}
        first = _context_of(prior.get("first")) if isinstance(prior, dict) else None
        last = _context_of(prior.get("last")) if isinstance(prior, dict) else None
        if first is not None:
            links.append(Link(first, {"perdure.link": "first attempt"}))
        if last is not None and last != first:
            links.append(Link(last, {"perdure.link": "previous attempt"}))
        parent = callers[0] if callers else first
        ctx = None if parent is None else trace.set_span_in_context(NonRecordingSpan(parent))
        span = self._tracer.start_span(
            f"run {function_id}",
            context=ctx,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "perdure.run.id": run_id,
                "perdure.function.id": function_id,
                "perdure.run.attempt": attempt,
            },
        )
        mine = _carrier_of(span)
        text = serde.dumps({"first": prior.get("first") or mine, "last": mine})
        return AttemptSpan(span, store.set_run_trace(run_id, token, text))

    def step(self, key: str, kind: str, attempt: int) -> StepSpan:
        """The span of a step executed now (``with tracer.step(...) as span:``)."""
        span = self._tracer.start_span(
            f"step {key}",
            attributes={"perdure.step.kind": kind, "perdure.step.attempt": attempt},
        )
        return StepSpan(span)


class AttemptSpan:
    """The span of one attempt; records its context for the run's next attempts."""

    __slots__ = ("_recording", "_token", "span")

    def __init__(self, span: Span, record: Any) -> None:
        self.span = span
        self._token = otel_context.attach(trace.set_span_in_context(span))
        # Written next to the function, not before it; awaited before a suspension commits
        # (a write after it would be refused: the run is no longer running).
        self._recording: asyncio.Task[bool] = asyncio.get_running_loop().create_task(record)
        self._recording.add_done_callback(_quiet)

    async def before(self, outcome: Outcome) -> None:
        """Before ``outcome`` commits: a run that goes on later has its context recorded."""
        if outcome.kind in ("complete", "fail"):
            return
        try:
            await self._recording
        except Exception as exc:  # the link is lost, nothing else
            log.warning("cannot record the trace context of a run (%s)", exc)

    def end(self, outcome: Outcome | None) -> None:
        """End the span (``outcome`` ``None``: the attempt stopped without one, lost)."""
        with contextlib.suppress(ValueError):  # detached in another context already
            otel_context.detach(self._token)
        span = self.span
        kind = "lost" if outcome is None else _OUTCOMES.get(outcome.kind, outcome.kind)
        span.set_attribute("perdure.run.outcome", kind)
        if outcome is not None and outcome.kind in ("fail", "retry"):
            span.set_status(StatusCode.ERROR, _message(outcome.error))
        span.end()


class StepSpan:
    """The span of one step, current while the step body runs."""

    __slots__ = ("_token", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self._token: object | None = None

    def __enter__(self) -> StepSpan:
        self._token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def failed(self, exc: BaseException) -> None:
        """The step body raised ``exc`` (the step is retried or fails)."""
        self.span.record_exception(exc)
        self.span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")

    def __exit__(
        self,
        tp: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            with contextlib.suppress(ValueError):
                otel_context.detach(self._token)  # type: ignore[arg-type]
        if exc is not None and isinstance(exc, Exception):
            self.span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
        self.span.end()


def _message(error: str | None) -> str:
    value = serde.loads(error) if error else None
    if isinstance(value, dict):
        return f"{value.get('type', 'Error')}: {value.get('message', '')}"
    return "failed"


def _quiet(task: asyncio.Task[bool]) -> None:
    if not task.cancelled():
        task.exception()
