"""Lifecycle events, on-failure handlers and cancellation with the real Inngest Python SDK, on
SQLite and PostgreSQL: what an SDK user sees (runs, their outputs, the events perdure emits)."""

from __future__ import annotations

import asyncio
from typing import Any

from life_app import APP_ID, Life, life

import perdure
from perdure import App

FAILED_ERROR = {
    "error": "invalid status code: 500",
    "message": "intentional failure",
    "name": "MyError",
}


async def test_an_on_failure_handler_runs_with_the_failed_run_s_event_and_error(
    db_url: str,
) -> None:
    async with life(db_url) as h:
        run_id = await h.trigger("life/fail", {"order": 7})
        info = await h.ended(run_id)
        assert str(info.status) == "failed"
        (handler_run,) = await h.runs_of_event("inngest/function.failed")
        handled = await h.ended(handler_run)
        assert str(handled.status) == "completed", handled.error
        assert handled.function_id == f"{APP_ID}-failing-failure"
        assert handled.output == {"handled": run_id, "attempt": 0}
        (seen,) = h.seen.failure_events
        assert seen["name"] == "inngest/function.failed"
        data = seen["data"]
        assert data["function_id"] == f"{APP_ID}-failing"
        assert data["run_id"] == run_id
        assert data["event"]["name"] == "life/fail"
        assert data["event"]["data"] == {"order": 7}
        assert data["event"]["id"] == info.event.id
        error = data["error"]
        assert {k: error[k] for k in FAILED_ERROR} == FAILED_ERROR
        assert "code" not in error and "stack" in error
        # Its own end emits no lifecycle events (a handler never triggers itself).
        page = await h.app.query.list_events(
            name="inngest/function.finished", before=None, limit=50
        )
        assert handler_run not in {e.event["data"]["run_id"] for e in page.items}


async def test_function_finished_triggers_sdk_and_native_functions(db_url: str) -> None:
    seen: list[dict[str, Any]] = []

    def native(app: App) -> None:
        @app.function(
            id="native-watch",
            trigger=perdure.event(
                "inngest/function.finished", "event.data.function_id == 'ilife-fine'"
            ),
        )
        async def watch(ctx: perdure.Context) -> Any:
            seen.append(ctx.event.data)
            return ctx.event.data["result"]

        @app.function(id="native-fails", retries=0)
        async def fails(ctx: perdure.Context) -> Any:
            raise ValueError("native broke")

        @app.function(
            id="native-on-failed",
            trigger=perdure.event(
                "inngest/function.failed", "event.data.function_id == 'native-fails'"
            ),
        )
        async def on_failed(ctx: perdure.Context) -> Any:
            return ctx.event.data["error"]

    async with life(db_url, extra=native) as h:
        run_id = await h.trigger("life/fine", {"n": 3})
        assert str((await h.ended(run_id)).status) == "completed"
        runs = await h.runs_of_event("inngest/function.finished", 2)
        infos = [await h.ended(r) for r in runs]
        by_fn = {i.function_id: i for i in infos}
        assert set(by_fn) == {f"{APP_ID}-watch-finished", "native-watch"}
        assert by_fn[f"{APP_ID}-watch-finished"].output == {
            "saw": {"n": 3, "ok": True},
            "run": run_id,
        }
        assert by_fn["native-watch"].output == {"n": 3, "ok": True}, by_fn["native-watch"].error
        (data,) = seen
        assert data["_inngest"] == {"status": "Completed"}
        assert data["run_id"] == run_id and data["event"]["data"] == {"n": 3}

        # A native function's failure is a lifecycle event too (native handler of it).
        failed = await h.app.start("native-fails", {"x": 1})
        await h.until(failed.run_id, lambda r: str(r.status) == "failed")
        (handler,) = await h.runs_of_event("inngest/function.failed")
        out = await h.ended(handler)
        assert out.function_id == "native-on-failed"
        assert out.output["name"] == "ValueError"
        assert out.output["message"] == "native broke"
        assert out.output["error"] == "ValueError: native broke"


async def _cancelled_without_next_call(h: Life, run_id: str) -> None:
    info = await h.ended(run_id)
    assert str(info.status) == "cancelled"
    # The step in flight finishes in the app; its answer is discarded and no call follows.
    await asyncio.to_thread(h.seen.slow_done.wait, 30)
    await h.until(run_id, lambda r: not h.worker.holds(run_id))
    assert "after" not in h.seen.bodies
    assert h.seen.calls["cancellable"] == 1
    page = await h.app.query.list_events(name="inngest/function.cancelled", before=None, limit=9)
    (cancel_run,) = page.items
    assert cancel_run.event["id"] == run_id
    assert cancel_run.event["data"]["_inngest"] == {"status": "Cancelled"}


async def test_a_cancel_event_stops_an_sdk_run(db_url: str) -> None:
    async with life(db_url) as h:
        run_id = await h.trigger("life/slow", {"id": "a"})
        await asyncio.to_thread(h.seen.slow_started.wait, 30)
        assert await h.send("life/stop", {"id": "other"}) == []
        await h.send("life/stop", {"id": "a"})
        await _cancelled_without_next_call(h, run_id)


async def test_cancelling_by_api_stops_an_sdk_run(db_url: str) -> None:
    async with life(db_url) as h:
        run_id = await h.trigger("life/slow", {"id": "b"})
        await asyncio.to_thread(h.seen.slow_started.wait, 30)
        res = await h.http.delete(f"/v1/runs/{run_id}")
        assert res.status_code == 200, res.text
        await _cancelled_without_next_call(h, run_id)
        missing = await h.http.delete("/v1/runs/01HNOSUCHRUN0000000000000")
        assert missing.status_code == 404
