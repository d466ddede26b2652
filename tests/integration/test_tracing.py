"""OpenTelemetry traces of runs and steps, with the SDK's in-memory exporter on a real App
(SQLite and PostgreSQL): attempt and step spans, parent/child, links across a suspension, the
caller's context propagated from ``start``/``send``, error status, and tracing off."""

from __future__ import annotations

import asyncio
import builtins
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import perdure
import perdure.runtime
from perdure.errors import InvalidInputError
from perdure.runtime import tracing

NO_RETRY = perdure.RetryPolicy(retries=0)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


async def spans_until(
    exporter: InMemorySpanExporter, done: Callable[[Sequence[ReadableSpan]], bool]
) -> Sequence[ReadableSpan]:
    """The finished spans, once ``done`` says they are all there (generous deadline)."""
    deadline = time.monotonic() + 30
    while True:
        spans = exporter.get_finished_spans()
        if done(spans) or time.monotonic() > deadline:
            return spans
        await asyncio.sleep(0.01)


def attr(span: ReadableSpan, key: str) -> Any:
    """An attribute of a finished span."""
    assert span.attributes is not None
    return span.attributes[key]


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_two_steps_and_a_sleep_give_linked_attempt_spans_under_the_caller(
    db_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = perdure.App("t", db_url, tracing=provider)
    tracer = provider.get_tracer("test")
    inner: list[int] = []

    async def work(x: int) -> int:
        # A user span inside a step body is a child of the step span.
        with tracer.start_as_current_span("user work"):
            inner.append(x)
        return x * 2

    @app.function()
    async def flow(ctx: perdure.Context) -> int:
        a = await ctx.step.run("a", work, 1)
        await ctx.step.sleep("nap", timedelta(milliseconds=200))
        b = await ctx.step.run("b", work, 2)
        return a + b

    async with app, app.worker():
        with tracer.start_as_current_span("caller") as caller:
            handle = await app.start(flow)
        assert await handle.result(timeout=60) == 6
    caller_ctx = caller.get_span_context()
    spans = await spans_until(exporter, lambda s: len(named(s, "run flow")) >= 2)
    attempts = sorted(named(spans, "run flow"), key=lambda s: attr(s, "perdure.run.attempt"))
    assert len(attempts) == 2, [s.name for s in spans]
    first, second = attempts
    # Both attempts are children of the span around app.start, in its trace.
    for span in attempts:
        assert span.parent is not None and span.parent.span_id == caller_ctx.span_id
        assert span.context.trace_id == caller_ctx.trace_id
        assert span.kind is SpanKind.CONSUMER
        assert attr(span, "perdure.run.id") == handle.run_id
        assert attr(span, "perdure.function.id") == "flow"
    assert attr(first, "perdure.run.outcome") == "suspended"
    assert attr(second, "perdure.run.outcome") == "completed"
    assert first.status.status_code is not StatusCode.ERROR
    # The attempt after the sleep links to the first one, through the stored trace context.
    assert first.links == ()
    assert [
        (link.context.span_id, (link.attributes or {}).get("perdure.link")) for link in second.links
    ] == [(first.context.span_id, "first attempt")]
    # One span per executed step, each a child of the attempt that executed it; the memoized
    # "a" and the completed sleep are not executed again by the second attempt.
    steps = {s.name: s for s in spans if s.name.startswith("step ")}
    assert sorted(steps) == ["step a", "step b", "step nap"]
    assert steps["step a"].parent.span_id == first.context.span_id  # type: ignore[union-attr]
    assert steps["step nap"].parent.span_id == first.context.span_id  # type: ignore[union-attr]
    assert steps["step b"].parent.span_id == second.context.span_id  # type: ignore[union-attr]
    assert attr(steps["step a"], "perdure.step.kind") == "run"
    assert attr(steps["step nap"], "perdure.step.kind") == "sleep"
    assert attr(steps["step b"], "perdure.step.attempt") == 1
    users = named(spans, "user work")
    assert {u.parent.span_id for u in users} == {  # type: ignore[union-attr]
        steps["step a"].context.span_id,
        steps["step b"].context.span_id,
    }
    assert inner == [1, 2]


async def test_a_run_started_without_a_caller_is_its_own_trace(
    db_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = perdure.App("t", db_url, tracing=provider)

    @app.function()
    async def napper(ctx: perdure.Context) -> str:
        await ctx.step.sleep("nap", timedelta(milliseconds=100))
        return "ok"

    async with app, app.worker():
        handle = await app.start(napper)
        assert await handle.result(timeout=60) == "ok"
    spans = await spans_until(exporter, lambda s: len(named(s, "run napper")) >= 2)
    first, second = sorted(named(spans, "run napper"), key=lambda s: attr(s, "perdure.run.attempt"))
    assert first.parent is None  # a root span
    assert second.parent is not None and second.parent.span_id == first.context.span_id
    assert second.context.trace_id == first.context.trace_id
    assert [link.context.span_id for link in second.links] == [first.context.span_id]


async def test_send_propagates_the_callers_context_into_the_runs_it_starts(
    db_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = perdure.App("t", db_url, tracing=provider)

    @app.function(trigger=perdure.event("order.placed"))
    async def on_order(ctx: perdure.Context) -> int:
        return int(await ctx.step.run("count", lambda: 1))

    async with app, app.worker():
        with provider.get_tracer("test").start_as_current_span("sender") as sender:
            await app.send(perdure.Event(name="order.placed", data={"id": 1}))
        spans = await spans_until(exporter, lambda s: bool(named(s, "run on-order")))
    (run_span,) = named(spans, "run on-order")
    assert run_span.context.trace_id == sender.get_span_context().trace_id
    assert run_span.parent is not None
    assert run_span.parent.span_id == sender.get_span_context().span_id
    (step,) = named(spans, "step count")
    assert step.parent is not None and step.parent.span_id == run_span.context.span_id


async def test_a_failing_step_marks_its_span_and_the_run_as_errors(
    db_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = perdure.App("t", db_url, tracing=provider, retry_policy=NO_RETRY)

    def explode() -> None:
        raise ValueError("no stock")

    @app.function()
    async def doomed(ctx: perdure.Context) -> None:
        await ctx.step.run("reserve", explode)

    async with app, app.worker():
        handle = await app.start(doomed)
        with pytest.raises(perdure.RunFailedError):
            await handle.result(timeout=60)
    spans = await spans_until(exporter, lambda s: bool(named(s, "run doomed")))
    (step,) = named(spans, "step reserve")
    assert step.status.status_code is StatusCode.ERROR
    assert "ValueError: no stock" in (step.status.description or "")
    assert [e.name for e in step.events] == ["exception"]
    (run_span,) = named(spans, "run doomed")
    assert run_span.status.status_code is StatusCode.ERROR
    assert attr(run_span, "perdure.run.outcome") == "failed"


async def test_tracing_off_makes_no_spans_and_stores_no_context(
    db_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = perdure.App("t", db_url, tracing=False)
    assert app.runtime.tracer is None

    @app.function()
    async def plain(ctx: perdure.Context) -> int:
        await ctx.step.sleep("nap", timedelta(milliseconds=50))
        return int(await ctx.step.run("one", lambda: 1))

    async with app, app.worker():
        with provider.get_tracer("test").start_as_current_span("caller"):
            handle = await app.start(plain)
        assert await handle.result(timeout=60) == 1
        info = await app.get_run(handle.run_id)
        assert await app.runtime.store.run_traces([handle.run_id]) == {}
        row = await app.runtime.store.get_run(handle.run_id)
        assert row is not None and '"trace"' not in row.input
    assert info.status == perdure.RunStatus.COMPLETED
    assert [s.name for s in exporter.get_finished_spans()] == ["caller"]


def test_automatic_tracing_needs_a_configured_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    # No global provider configured in this process: automatic means off.
    assert tracing.resolve(None) is None
    assert tracing.resolve(False) is None
    # Without opentelemetry imported, automatic mode does not import it.
    monkeypatch.delitem(sys.modules, "opentelemetry.trace")
    assert tracing.resolve(None) is None


def block_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import opentelemetry...`` fail as if the package were not installed."""
    for name in list(sys.modules):
        if name.startswith("opentelemetry") or name == "perdure.runtime.otel":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(perdure.runtime, "otel", raising=False)
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("opentelemetry"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


async def test_without_the_package_apps_run_and_explicit_tracing_is_refused(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    block_opentelemetry(monkeypatch)
    with pytest.raises(InvalidInputError, match=r"perdure\[otel\]"):
        perdure.App("t", sqlite_url, tracing=True)
    app = perdure.App("t", sqlite_url)
    assert app.runtime.tracer is None

    @app.function()
    async def plain(ctx: perdure.Context) -> int:
        return int(await ctx.step.run("one", lambda: 1))

    async with app, app.worker():
        handle = await app.start(plain)
        assert await handle.result(timeout=60) == 1
    assert app.runtime.tracer is None
    assert not any(name.startswith("opentelemetry") for name in sys.modules)


async def test_a_traceparent_header_on_the_http_api_is_the_runs_parent(
    sqlite_url: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from perdure.server import create_app

    app = perdure.App("t", sqlite_url, tracing=provider)

    @app.function(trigger=perdure.event("order.placed"))
    async def on_order(ctx: perdure.Context) -> int:
        return 1

    @app.function()
    async def direct(ctx: perdure.Context) -> int:
        return 2

    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    header = {"traceparent": f"00-{trace_id}-{parent}-01"}
    asgi = create_app(app, dev=True)
    async with app, app.worker():
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            r = await c.post("/api/v1/events", json={"name": "order.placed"}, headers=header)
            assert r.status_code == 200, r.text
            r = await c.post("/api/v1/functions/direct/runs", json={}, headers=header)
            assert r.status_code == 201, r.text
            r = await c.post("/api/v1/functions/direct/runs", json={})  # no header: own trace
            assert r.status_code == 201, r.text
        spans = await spans_until(
            exporter, lambda s: len(named(s, "run direct")) == 2 and bool(named(s, "run on-order"))
        )
    traced = [s for s in spans if s.name.startswith("run ")]
    under = [s for s in traced if f"{s.context.trace_id:032x}" == trace_id]
    assert sorted(s.name for s in under) == ["run direct", "run on-order"]
    assert all(s.parent is not None and f"{s.parent.span_id:016x}" == parent for s in under)
    (alone,) = [s for s in traced if s not in under]
    assert alone.name == "run direct" and alone.parent is None
