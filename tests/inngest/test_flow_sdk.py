"""Flow control of functions on the real Inngest Python SDK, on SQLite and PostgreSQL: every
option the SDK declares (debounce, rateLimit, throttle, concurrency with a key, singleton in
both modes, batchEvents, priority, idempotency, timeouts) goes through perdure's flow-control
engine, and a user sees it in the runs: their statuses, outputs and reasons, which events
made them, and what the app's handlers were called with.

The app syncs after the worker started (as with ``perdure dev``). Events go through
``POST /e/{key}`` as the SDK's client sends them. To keep the test cheap, the scenarios run at
once against one app, one worker and one server per backend (each on its own function); a
failure names the scenario.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from flow_app import APP_ID, Seen, build
from life_app import DEADLINE, Host, hosted

from perdure.types import RunInfo

ENDED = {"completed", "failed", "cancelled", "skipped"}


class Flow:
    """The harness with the helpers the scenarios share."""

    def __init__(self, host: Host, seen: Seen) -> None:
        self.h = host
        self.seen = seen

    async def post(self, name: str, *datas: dict[str, Any]) -> list[str]:
        """Send events named ``name`` in one ``POST /e/{key}``; their ids."""
        res = await self.h.http.post("/e/test-key", json=[{"name": name, "data": d} for d in datas])
        assert res.status_code == 200, res.text
        ids: list[str] = res.json()["ids"]
        assert len(ids) == len(datas)
        return ids

    async def event_runs(self, event_id: str) -> list[dict[str, Any]]:
        """``GET /v1/events/{id}/runs``."""
        res = await self.h.http.get(f"/v1/events/{event_id}/runs")
        assert res.status_code == 200, res.text
        runs: list[dict[str, Any]] = res.json()["data"]
        return runs

    async def run_of(self, event_id: str) -> RunInfo:
        """The one run the event made (waits for it to exist)."""
        end = time.monotonic() + DEADLINE
        while True:
            runs = await self.event_runs(event_id)
            if runs:
                (run,) = runs
                return await self.h.app.get_run(run["run_id"])
            if time.monotonic() > end:
                pytest.fail(f"event {event_id} made no run")
            await asyncio.sleep(0.02)

    async def ended(self, run_id: str) -> RunInfo:
        return await self.h.until(run_id, lambda r: str(r.status) in ENDED)

    async def runs(self, fn: str, count: int) -> list[RunInfo]:
        """The ended runs of function ``fn``, oldest first, once there are ``count``."""
        end = time.monotonic() + DEADLINE
        while True:
            runs = await self.h.app.list_runs(function=f"{APP_ID}-{fn}", limit=50)
            done = [r for r in runs if str(r.status) in ENDED]
            if len(done) >= count:
                return sorted(done, key=lambda r: r.id)
            if time.monotonic() > end:
                pytest.fail(f"{fn}: {len(done)} of {count} runs ended: {runs}")
            await asyncio.sleep(0.05)

    async def flag(self, label: str) -> None:
        """Wait until the body labelled ``label`` started in the app."""
        end = time.monotonic() + DEADLINE
        while not self.seen.started(label):
            if time.monotonic() > end:
                pytest.fail(f"the body {label} never started")
            await asyncio.sleep(0.02)

    def calls(self, fn: str) -> list[list[dict[str, Any]]]:
        with self.seen.lock:
            return list(self.seen.calls.get(fn, []))


def _seconds(a: datetime | None, b: datetime | None) -> float:
    assert a is not None and b is not None
    return (b - a).total_seconds()


# ---------------------------------------------------------------------- scenarios


async def debounce(f: Flow) -> None:
    """Three events of one key within the period make one run, with the last event's data;
    another key gets its own run."""
    a1, a2, a3 = [(await f.post("flow/debounce", {"user": "a", "n": n}))[0] for n in (1, 2, 3)]
    (b1,) = await f.post("flow/debounce", {"user": "b", "n": 9})
    runs = await f.runs("debounced", 2)
    assert len(runs) == 2
    by_user = {r.output["user"]: r for r in runs}
    assert str(by_user["a"].status) == "completed", by_user["a"].error
    assert by_user["a"].output == {"user": "a", "n": 3}
    assert by_user["a"].event.id == a3
    assert by_user["b"].output == {"user": "b", "n": 9}
    assert by_user["b"].event.id == b1
    assert (by_user["a"].reason or {}).get("option") == "debounce", by_user["a"].reason
    assert sorted(c[0]["n"] for c in f.calls("debounced")) == [3, 9]
    assert [r["run_id"] for r in await f.event_runs(a3)] == [by_user["a"].id]
    assert await f.event_runs(a1) == [] and await f.event_runs(a2) == []


async def rate_limit(f: Flow) -> None:
    """limit 1 per period per key: the second event of a key makes a skipped run that never
    executes; another key runs."""
    a1, a2, b1 = await f.post(
        "flow/rate", {"user": "a", "n": 1}, {"user": "a", "n": 2}, {"user": "b", "n": 3}
    )
    first, second, other = [await f.ended((await f.run_of(e)).id) for e in (a1, a2, b1)]
    assert str(first.status) == "completed" and first.output == {"user": "a", "n": 1}
    assert str(other.status) == "completed" and other.output == {"user": "b", "n": 3}
    assert str(second.status) == "skipped", second
    assert second.reason is not None
    assert (second.reason["option"], second.reason["decision"]) == ("rate_limit", "skipped")
    assert second.started_at is None and second.output is None
    (shown,) = await f.event_runs(a2)
    assert shown["status"] == "Skipped"
    assert sorted(c[0]["n"] for c in f.calls("rated")) == [1, 3]


async def throttle(f: Flow) -> None:
    """limit 1 per 1 s (burst 1, the SDK's default: two may start at once): the third run of
    three sent together is delayed to the next slot, not dropped."""
    ids = await f.post("flow/throttle", *({"n": n} for n in (1, 2, 3)))
    runs = [await f.ended((await f.run_of(e)).id) for e in ids]
    assert [str(r.status) for r in runs] == ["completed"] * 3, [r.error for r in runs]
    assert [r.output["n"] for r in runs] == [1, 2, 3]
    first, _, third = runs
    assert third.reason is not None, third
    assert (third.reason["option"], third.reason["decision"]) == ("throttle", "delayed")
    assert _seconds(first.started_at, third.started_at) >= 0.95
    assert sorted(c[0]["n"] for c in f.calls("throttled")) == [1, 2, 3]


async def concurrency_key(f: Flow) -> None:
    """limit 1 keyed on event.data.user: the two runs of user a never overlap; the run of
    user b overlaps one of a's."""
    ids = await f.post(
        "flow/user",
        {"user": "a", "label": "a1"},
        {"user": "a", "label": "a2"},
        {"user": "b", "label": "b1"},
    )
    runs = [await f.ended((await f.run_of(e)).id) for e in ids]
    assert [str(r.status) for r in runs] == ["completed"] * 3, [r.error for r in runs]
    assert [r.output["label"] for r in runs] == ["a1", "a2", "b1"]
    assert runs[2].output["overlapped"] is True  # b saw a running, from inside its step
    with f.seen.lock:
        bodies = {label: (start, end) for label, start, end in f.seen.bodies["per-user"]}
    (a_first, a_second) = sorted([bodies["a1"], bodies["a2"]])
    assert a_second[0] >= a_first[1], "two runs of user a overlapped"
    b_start, b_end = bodies["b1"]
    assert any(s < b_end and b_start < e for s, e in (a_first, a_second)), bodies


async def singleton_skip(f: Flow) -> None:
    """mode skip: a run of a key while one is active is skipped; another key runs."""
    (a1,) = await f.post("flow/single-skip", {"user": "a", "n": 1, "hold": True})
    active = await f.run_of(a1)
    await f.flag("single-skip:1")
    a2, b1 = await f.post("flow/single-skip", {"user": "a", "n": 2}, {"user": "b", "n": 3})
    skipped = await f.ended((await f.run_of(a2)).id)
    assert str(skipped.status) == "skipped"
    assert skipped.reason is not None
    assert (skipped.reason["option"], skipped.reason["decision"]) == ("singleton", "skipped")
    assert skipped.reason.get("active_run_id") == active.id, skipped.reason
    other = await f.ended((await f.run_of(b1)).id)
    assert str(other.status) == "completed" and other.output == {"user": "b", "n": 3}
    f.seen.release("single-skip")
    done = await f.ended(active.id)
    assert str(done.status) == "completed", done.error
    assert done.output == {"user": "a", "n": 1, "hold": True}
    assert sorted(c[0]["n"] for c in f.calls("single-skip")) == [1, 3]


async def singleton_cancel(f: Flow) -> None:
    """mode cancel: a new run of a key cancels the active one, which records why, and runs."""
    (a1,) = await f.post("flow/single-cancel", {"user": "a", "n": 1, "hold": True})
    first = await f.run_of(a1)
    await f.flag("single-cancel:1")
    (a2,) = await f.post("flow/single-cancel", {"user": "a", "n": 2})
    second = await f.run_of(a2)
    cancelled = await f.ended(first.id)
    assert str(cancelled.status) == "cancelled"
    assert cancelled.reason is not None
    assert (cancelled.reason["option"], cancelled.reason["decision"]) == (
        "singleton",
        "cancelled",
    )
    assert cancelled.reason.get("replaced_by") == second.id, cancelled.reason
    replacement = await f.ended(second.id)
    assert str(replacement.status) == "completed", replacement.error
    assert replacement.output == {"user": "a", "n": 2}
    f.seen.release("single-cancel")
    assert (await f.h.app.get_run(first.id)).output is None


async def batch(f: Flow) -> None:
    """maxSize 3: three events make one run whose ctx.events holds the three; two more are
    flushed by the timeout (1 s after the first of them) into a run of their own."""
    full = await f.post("flow/batch", *({"n": n} for n in (1, 2, 3)))
    run = await f.ended((await f.run_of(full[0])).id)
    assert str(run.status) == "completed", run.error
    assert run.output == {"ns": [1, 2, 3], "first": 1}
    assert run.events is not None and [e.id for e in run.events] == full
    partial = await f.post("flow/batch", {"n": 4}, {"n": 5})
    flushed = await f.ended((await f.run_of(partial[0])).id)
    assert str(flushed.status) == "completed", flushed.error
    assert flushed.output == {"ns": [4, 5], "first": 4}
    assert _seconds(flushed.created_at, flushed.started_at) >= 0.95
    assert sorted(f.calls("batched"), key=len, reverse=True) == [
        [{"n": 1}, {"n": 2}, {"n": 3}],
        [{"n": 4}, {"n": 5}],
    ]
    assert len(await f.runs("batched", 2)) == 2


async def priority(f: Flow) -> None:
    """concurrency 1: while one run holds the slot, two runs of priority 0 then one of
    priority 60 queue; the later, higher one starts first."""
    (blocker,) = await f.post("flow/priority", {"label": "blocker", "hold": True})
    await f.flag("blocker")
    low1, low2, high = [
        (await f.post("flow/priority", {"label": label, "p": p}))[0]
        for label, p in (("low1", 0), ("low2", 0), ("high", 60))
    ]
    waiting = await f.run_of(low1)
    assert waiting.reason is not None and waiting.reason["option"] == "concurrency", waiting
    f.seen.release("prioritized")
    runs = [await f.ended((await f.run_of(e)).id) for e in (blocker, high, low1, low2)]
    assert [str(r.status) for r in runs] == ["completed"] * 4, [r.error for r in runs]
    with f.seen.lock:
        assert f.seen.order == ["blocker", "high", "low1", "low2"]
    started = [r.started_at for r in runs]
    assert started == sorted(started)  # type: ignore[type-var]


async def idempotency(f: Flow) -> None:
    """One run per event.data.order: a second event with a used order is skipped."""
    x1, x2, y1 = await f.post(
        "flow/idempotent", {"order": "x", "n": 1}, {"order": "x", "n": 2}, {"order": "y", "n": 3}
    )
    first, again, other = [await f.ended((await f.run_of(e)).id) for e in (x1, x2, y1)]
    assert str(first.status) == "completed" and first.output == {"order": "x", "n": 1}
    assert str(other.status) == "completed" and other.output == {"order": "y", "n": 3}
    assert str(again.status) == "skipped"
    assert again.reason is not None and again.reason["option"] == "idempotency", again.reason
    assert again.reason.get("run_id") == first.id
    assert sorted(c[0]["n"] for c in f.calls("idempotent")) == [1, 3]


async def timeouts(f: Flow) -> None:
    """finish 1 s: a run still in its step after 1 s is cancelled, with the reason."""
    (e,) = await f.post("flow/timed", {})
    run = await f.run_of(e)
    await f.flag("timed")
    cancelled = await f.ended(run.id)
    f.seen.release("timed")
    assert str(cancelled.status) == "cancelled"
    assert cancelled.reason is not None
    assert (cancelled.reason["option"], cancelled.reason["timeout"]) == ("timeouts", "finish")
    assert _seconds(cancelled.started_at, cancelled.ended_at) >= 0.95


SCENARIOS: dict[str, Callable[[Flow], Awaitable[None]]] = {
    "debounce": debounce,
    "rateLimit": rate_limit,
    "throttle": throttle,
    "concurrency with a key": concurrency_key,
    "singleton skip": singleton_skip,
    "singleton cancel": singleton_cancel,
    "batchEvents": batch,
    "priority": priority,
    "idempotency": idempotency,
    "timeouts": timeouts,
}


async def test_every_flow_control_option_of_the_python_sdk(db_url: str) -> None:
    seen = Seen()
    async with hosted(db_url, lambda origin: build(seen, origin), sync_after_start=True) as h:
        f = Flow(h, seen)
        names = list(SCENARIOS)
        try:
            results = await asyncio.gather(
                *(SCENARIOS[n](f) for n in names), return_exceptions=True
            )
        finally:
            for name in ("single-skip", "single-cancel", "prioritized", "timed"):
                seen.release(name)
    failed = {n: r for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)}
    if failed:
        report = "\n".join(f"{n}: {type(r).__name__}: {r}" for n, r in failed.items())
        raise AssertionError(f"{len(failed)} scenario(s) failed:\n{report}") from next(
            iter(failed.values())
        )
