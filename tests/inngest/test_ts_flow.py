"""Flow control of functions on the official Inngest TypeScript SDK (``inngest`` 4.x), on SQLite
and PostgreSQL: every option the SDK declares (debounce, rateLimit, throttle, concurrency with
a key, singleton in both modes, batchEvents, priority, idempotency, timeouts) goes through
perdure's flow-control engine, and a user sees it in the runs (their statuses, outputs and
reasons, which events made them) and in what the app's handlers were called with.

The Node app (``ts/flow.js``, the twin of ``flow_app.py``) is served beside a real ``perdure
dev`` subprocess that syncs it with ``-u``, with the SDK's defaults (async checkpointing on).
Events go in through ``POST /e/{key}``; the runs are read from ``/api/v1/runs`` and
``/v1/events/{id}/runs``. To keep the test cheap, the scenarios run at once against one app and
one server per backend (each on its own function); a failure names the scenario.

Both SDKs spell the same options differently in ``/fn/register`` (concurrency as a number, an
object or an array; throttle's ``burst`` sent or left out): the last test checks that the
registration bodies of the two twin apps map onto the same :class:`FlowControl`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
import uvicorn
from flow_app import APP_ID as PY_APP_ID
from flow_app import Seen
from flow_app import build as build_py_app
from sdk_app import free_port, sync
from sdk_apps import Served, client, every_option_functions, fastapi_app
from ts_world import World, ts_world

from conftest import new_pg_schema_url
from perdure.engine.flow.options import Concurrency, FlowControl, Throttle
from perdure.inngest.functions import InngestFunction, parse_register

APP_ID = "itsflow"
DEADLINE = 60.0
ENDED = {"completed", "failed", "cancelled", "skipped"}
HELD = ("single-skip", "single-cancel", "prioritized", "timed")
FUNCTIONS = (
    "debounced", "rated", "throttled", "per-user", "single-skip", "single-cancel", "batched",
    "prioritized", "idempotent", "timed",
)  # fmt: skip
OPTIONS = ("opt-limited", "opt-windowed", "opt-debounced", "opt-batched")  # never triggered


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp(f"ts-flow-{request.param}")
    with ExitStack() as stack:
        database_url = None  # perdure dev's own SQLite file in the world's directory
        if request.param == "postgres":  # a fresh schema, dropped afterwards
            database_url = stack.enter_context(contextmanager(new_pg_schema_url)())
        w = stack.enter_context(
            ts_world(
                tmp,
                checkpointing=True,
                script="flow.js",
                app_id=APP_ID,
                functions=len(FUNCTIONS) + len(OPTIONS) + 1,  # and opt-limited's on-failure
                database_url=database_url,
            )
        )
        yield w
        log = w.dev_log.read_text()
        assert "Traceback" not in log, log


class Flow:
    """Async clients of perdure and of the Node app, with the helpers the scenarios share."""

    def __init__(self, http: httpx.AsyncClient, node: httpx.AsyncClient) -> None:
        self.http = http
        self.node = node

    async def post(self, name: str, *datas: dict[str, Any]) -> list[str]:
        """Send events named ``name`` in one ``POST /e/{key}``; their ids."""
        res = await self.http.post("/e/test-key", json=[{"name": name, "data": d} for d in datas])
        assert res.status_code == 200, res.text
        ids: list[str] = res.json()["ids"]
        assert len(ids) == len(datas)
        return ids

    async def event_runs(self, event_id: str) -> list[dict[str, Any]]:
        """``GET /v1/events/{id}/runs``."""
        res = await self.http.get(f"/v1/events/{event_id}/runs")
        assert res.status_code == 200, res.text
        runs: list[dict[str, Any]] = res.json()["data"]
        return runs

    async def run(self, run_id: str) -> dict[str, Any]:
        """``GET /api/v1/runs/{id}``."""
        res = await self.http.get(f"/api/v1/runs/{run_id}")
        assert res.status_code == 200, res.text
        run: dict[str, Any] = res.json()
        return run

    async def run_of(self, event_id: str) -> dict[str, Any]:
        """The one run the event made (waits for it to exist)."""
        end = time.monotonic() + DEADLINE
        while True:
            runs = await self.event_runs(event_id)
            if runs:
                (run,) = runs
                return await self.run(run["run_id"])
            if time.monotonic() > end:
                pytest.fail(f"event {event_id} made no run")
            await asyncio.sleep(0.02)

    async def ended(self, run_id: str) -> dict[str, Any]:
        end = time.monotonic() + DEADLINE
        while True:
            run = await self.run(run_id)
            if run["status"] in ENDED:
                return run
            if time.monotonic() > end:
                pytest.fail(f"run {run_id} is {run['status']}")
            await asyncio.sleep(0.02)

    async def ended_of(self, *event_ids: str) -> list[dict[str, Any]]:
        """The ended run of each event, in order."""
        return [await self.ended((await self.run_of(e))["id"]) for e in event_ids]

    async def runs(self, fn: str, count: int) -> list[dict[str, Any]]:
        """The ended runs of function ``fn``, oldest first, once there are ``count``."""
        end = time.monotonic() + DEADLINE
        while True:
            res = await self.http.get(
                "/api/v1/runs", params={"function_id": f"{APP_ID}-{fn}", "limit": 50}
            )
            assert res.status_code == 200, res.text
            runs: list[dict[str, Any]] = res.json()["runs"]
            done = [r for r in runs if r["status"] in ENDED]
            if len(done) >= count:
                return sorted(done, key=lambda r: str(r["id"]))
            if time.monotonic() > end:
                pytest.fail(f"{fn}: {len(done)} of {count} runs ended: {runs}")
            await asyncio.sleep(0.05)

    async def state(self) -> dict[str, Any]:
        """What the Node app's functions saw (``GET /state``)."""
        res = await self.node.get("/state")
        assert res.status_code == 200, res.text
        state: dict[str, Any] = res.json()
        return state

    async def flag(self, label: str) -> None:
        """Wait until the body labelled ``label`` started in the app."""
        end = time.monotonic() + DEADLINE
        while f"started:{label}" not in (await self.state())["flags"]:
            if time.monotonic() > end:
                pytest.fail(f"the body {label} never started")
            await asyncio.sleep(0.02)

    async def release(self, name: str) -> None:
        """Let the bodies held under ``name`` return."""
        res = await self.node.post(f"/release/{name}")
        assert res.status_code == 200, res.text

    async def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        """The checkpoints the SDK posted for the run, once there is one and the call that
        posted it has ended (the SDK posts, and would retry, inside that call)."""
        end = time.monotonic() + DEADLINE
        while True:
            state = await self.state()
            mine = [c for c in state["checkpoints"] if f"/{run_id}/" in c["path"]]
            if mine and not state["inflight"].get(run_id):
                return mine
            if time.monotonic() > end:
                pytest.fail(f"no checkpoint of run {run_id} with its call ended: {mine}")
            await asyncio.sleep(0.02)

    async def calls(self, fn: str) -> list[list[dict[str, Any]]]:
        """The ``data`` of the events of each call of ``fn``'s handler."""
        calls: list[list[dict[str, Any]]] = (await self.state())["calls"].get(fn, [])
        return calls


def _seconds(a: str | None, b: str | None) -> float:
    assert a is not None and b is not None
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def _reason(run: dict[str, Any], *fields: str) -> tuple[Any, ...]:
    reason = run["reason"]
    assert isinstance(reason, dict), run
    return tuple(reason.get(f) for f in fields)


# ---------------------------------------------------------------------- scenarios


async def debounce(f: Flow) -> None:
    """Three events of one key within the period make one run, with the last event's data;
    another key gets its own run."""
    a1, a2, a3 = [(await f.post("flow/debounce", {"user": "a", "n": n}))[0] for n in (1, 2, 3)]
    (b1,) = await f.post("flow/debounce", {"user": "b", "n": 9})
    runs = await f.runs("debounced", 2)
    assert len(runs) == 2
    by_user = {r["output"]["user"]: r for r in runs}
    assert by_user["a"]["status"] == "completed", by_user["a"]["error"]
    assert by_user["a"]["output"] == {"user": "a", "n": 3}
    assert by_user["a"]["event"]["id"] == a3
    assert by_user["b"]["output"] == {"user": "b", "n": 9}
    assert by_user["b"]["event"]["id"] == b1
    assert _reason(by_user["a"], "option") == ("debounce",)
    assert sorted(c[0]["n"] for c in await f.calls("debounced")) == [3, 9]
    assert [r["run_id"] for r in await f.event_runs(a3)] == [by_user["a"]["id"]]
    assert await f.event_runs(a1) == [] and await f.event_runs(a2) == []


async def rate_limit(f: Flow) -> None:
    """limit 1 per minute per key: the second event of a key makes a skipped run that never
    executes; another key runs."""
    a1, a2, b1 = await f.post(
        "flow/rate", {"user": "a", "n": 1}, {"user": "a", "n": 2}, {"user": "b", "n": 3}
    )
    first, second, other = await f.ended_of(a1, a2, b1)
    assert first["status"] == "completed" and first["output"] == {"user": "a", "n": 1}
    assert other["status"] == "completed" and other["output"] == {"user": "b", "n": 3}
    assert second["status"] == "skipped", second
    assert _reason(second, "option", "decision") == ("rate_limit", "skipped")
    assert second["started_at"] is None and second["output"] is None
    (shown,) = await f.event_runs(a2)
    assert shown["status"] == "Skipped"
    assert sorted(c[0]["n"] for c in await f.calls("rated")) == [1, 3]


async def throttle(f: Flow) -> None:
    """limit 1 per 1 s and no burst sent (Inngest's default, 1: two may start at once): the
    third run of three sent together is delayed to the next slot, not dropped."""
    ids = await f.post("flow/throttle", *({"n": n} for n in (1, 2, 3)))
    runs = await f.ended_of(*ids)
    assert [r["status"] for r in runs] == ["completed"] * 3, [r["error"] for r in runs]
    assert [r["output"]["n"] for r in runs] == [1, 2, 3]
    first, _, third = runs
    assert _reason(third, "option", "decision") == ("throttle", "delayed")
    assert _seconds(first["started_at"], third["started_at"]) >= 0.95
    assert sorted(c[0]["n"] for c in await f.calls("throttled")) == [1, 2, 3]


async def concurrency_key(f: Flow) -> None:
    """limit 1 keyed on event.data.user (one object, not an array): the two runs of user a
    never overlap; the run of user b overlaps one of a's."""
    ids = await f.post(
        "flow/user",
        {"user": "a", "label": "a1"},
        {"user": "a", "label": "a2"},
        {"user": "b", "label": "b1"},
    )
    runs = await f.ended_of(*ids)
    assert [r["status"] for r in runs] == ["completed"] * 3, [r["error"] for r in runs]
    assert [r["output"]["label"] for r in runs] == ["a1", "a2", "b1"]
    assert runs[2]["output"]["overlapped"] is True  # b saw a running, from inside its step
    bodies = {label: (start, end) for label, start, end in (await f.state())["bodies"]["per-user"]}
    a_first, a_second = sorted([bodies["a1"], bodies["a2"]])
    assert a_second[0] >= a_first[1], "two runs of user a overlapped"
    b_start, b_end = bodies["b1"]
    assert any(s < b_end and b_start < e for s, e in (a_first, a_second)), bodies


async def singleton_skip(f: Flow) -> None:
    """mode skip: a run of a key while one is active is skipped; another key runs."""
    (a1,) = await f.post("flow/single-skip", {"user": "a", "n": 1, "hold": True})
    active = await f.run_of(a1)
    await f.flag("single-skip:1")
    a2, b1 = await f.post("flow/single-skip", {"user": "a", "n": 2}, {"user": "b", "n": 3})
    (skipped,) = await f.ended_of(a2)
    assert skipped["status"] == "skipped", skipped
    assert _reason(skipped, "option", "decision", "active_run_id") == (
        "singleton",
        "skipped",
        active["id"],
    )
    (other,) = await f.ended_of(b1)
    assert other["status"] == "completed" and other["output"] == {"user": "b", "n": 3}
    await f.release("single-skip")
    done = await f.ended(active["id"])
    assert done["status"] == "completed", done["error"]
    assert done["output"] == {"user": "a", "n": 1, "hold": True}
    assert sorted(c[0]["n"] for c in await f.calls("single-skip")) == [1, 3]


async def singleton_cancel(f: Flow) -> None:
    """mode cancel: a new run of a key cancels the active one, which records why, and runs."""
    (a1,) = await f.post("flow/single-cancel", {"user": "a", "n": 1, "hold": True})
    first = await f.run_of(a1)
    await f.flag("single-cancel:1")
    (a2,) = await f.post("flow/single-cancel", {"user": "a", "n": 2})
    second = await f.run_of(a2)
    cancelled = await f.ended(first["id"])
    assert cancelled["status"] == "cancelled", cancelled
    assert _reason(cancelled, "option", "decision", "replaced_by") == (
        "singleton",
        "cancelled",
        second["id"],
    )
    replacement = await f.ended(second["id"])
    assert replacement["status"] == "completed", replacement["error"]
    assert replacement["output"] == {"user": "a", "n": 2}
    await f.release("single-cancel")
    assert (await f.run(first["id"]))["output"] is None


async def batch(f: Flow) -> None:
    """maxSize 3: three events make one run whose handler gets the three in ``events``; two
    more are flushed by the timeout (1 s after the first of them) into a run of their own."""
    full = await f.post("flow/batch", *({"n": n} for n in (1, 2, 3)))
    (run,) = await f.ended_of(full[0])
    assert run["status"] == "completed", run["error"]
    assert run["output"] == {"ns": [1, 2, 3], "first": 1}
    assert [e["id"] for e in run.get("events") or []] == full
    partial = await f.post("flow/batch", {"n": 4}, {"n": 5})
    (flushed,) = await f.ended_of(partial[0])
    assert flushed["status"] == "completed", flushed["error"]
    assert flushed["output"] == {"ns": [4, 5], "first": 4}
    assert _seconds(flushed["created_at"], flushed["started_at"]) >= 0.95
    assert sorted(await f.calls("batched"), key=len, reverse=True) == [
        [{"n": 1}, {"n": 2}, {"n": 3}],
        [{"n": 4}, {"n": 5}],
    ]
    assert len(await f.runs("batched", 2)) == 2


async def priority(f: Flow) -> None:
    """concurrency 1 (a bare number): while one run holds the slot, two runs of priority 0
    then one of priority 60 queue; the later, higher one starts first."""
    (blocker,) = await f.post("flow/priority", {"label": "blocker", "hold": True})
    await f.flag("blocker")
    low1, low2, high = [
        (await f.post("flow/priority", {"label": label, "p": p}))[0]
        for label, p in (("low1", 0), ("low2", 0), ("high", 60))
    ]
    waiting = await f.run_of(low1)
    assert _reason(waiting, "option") == ("concurrency",), waiting
    await f.release("prioritized")
    runs = await f.ended_of(blocker, high, low1, low2)
    assert [r["status"] for r in runs] == ["completed"] * 4, [r["error"] for r in runs]
    assert (await f.state())["order"] == ["blocker", "high", "low1", "low2"]
    started = [datetime.fromisoformat(r["started_at"]) for r in runs]
    assert started == sorted(started)


async def idempotency(f: Flow) -> None:
    """One run per event.data.order: a second event with a used order is skipped."""
    x1, x2, y1 = await f.post(
        "flow/idempotent", {"order": "x", "n": 1}, {"order": "x", "n": 2}, {"order": "y", "n": 3}
    )
    first, again, other = await f.ended_of(x1, x2, y1)
    assert first["status"] == "completed" and first["output"] == {"order": "x", "n": 1}
    assert other["status"] == "completed" and other["output"] == {"order": "y", "n": 3}
    assert again["status"] == "skipped", again
    assert _reason(again, "option", "run_id") == ("idempotency", first["id"])
    assert sorted(c[0]["n"] for c in await f.calls("idempotent")) == [1, 3]


async def timeouts(f: Flow) -> None:
    """finish 1 s: a run still in its step after 1 s is cancelled, with the reason."""
    (e,) = await f.post("flow/timed", {})
    run = await f.run_of(e)
    await f.flag("timed")
    cancelled = await f.ended(run["id"])
    await f.release("timed")
    assert cancelled["status"] == "cancelled", cancelled
    assert _reason(cancelled, "option", "timeout") == ("timeouts", "finish")
    assert _seconds(cancelled["started_at"], cancelled["ended_at"]) >= 0.95
    # The released step's checkpoint comes too late: 409, and the SDK halts (no retries).
    posts = await f.checkpoints(run["id"])
    assert [(c["status"], c["steps"]) for c in posts] == [(409, ["slow"])], posts
    assert (await f.run(run["id"]))["status"] == "cancelled"


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


@asynccontextmanager
async def _flow(world: World) -> AsyncIterator[Flow]:
    async with (
        httpx.AsyncClient(base_url=world.http.base_url, timeout=30) as http,
        httpx.AsyncClient(base_url=world.node.base_url, timeout=30) as node,
    ):
        yield Flow(http, node)


async def test_every_flow_control_option_of_the_typescript_sdk(world: World) -> None:
    synced = {f"{APP_ID}-{fn}" for fn in (*FUNCTIONS, *OPTIONS, "opt-limited-failure")}
    assert world.functions() == synced
    async with _flow(world) as f:
        names = list(SCENARIOS)
        try:
            results = await asyncio.gather(
                *(SCENARIOS[n](f) for n in names), return_exceptions=True
            )
        finally:
            for name in HELD:
                await f.release(name)
    failed = {n: r for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)}
    if failed:
        report = "\n".join(f"{n}: {type(r).__name__}: {r}" for n, r in failed.items())
        raise AssertionError(f"{len(failed)} scenario(s) failed:\n{report}") from next(
            iter(failed.values())
        )


# ---------------------------------------------------------------------- the two SDKs


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test's process owns the signals
        pass


@contextmanager
def _python_twins() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Serve the Python SDK's twins of the TS app (``flow_app.py``, and the app of
    ``sdk_apps.every_option_functions``) and make them sync; the two registration bodies they
    sent (both to ``flow_app``'s own ``/fn/register``, which keeps them: no server is needed)."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    flow = build_py_app(Seen(), origin)
    server = _Server(uvicorn.Config(flow, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="python-twin", daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < end, "the Python app did not start"
            time.sleep(0.02)
        flow_body = asyncio.run(sync(f"{origin}/api/inngest", flow))
        shop = client("shop", origin)
        with Served(fastapi_app({"/a": (shop, every_option_functions(shop))})) as served:
            options_body = asyncio.run(sync(f"{served.url}/a/api/inngest", flow))
        assert options_body["appname"] == "shop", options_body
        yield flow_body, options_body
    finally:
        server.should_exit = True
        thread.join(10)


def _functions(body: dict[str, Any], prefix: str) -> dict[str, InngestFunction]:
    return {f.id.removeprefix(prefix): f for f in parse_register(body).functions}


def test_both_sdks_register_the_same_flow_control(world: World) -> None:
    """The same options, declared with each SDK, make the same functions (FlowControl,
    triggers, retries), though the two registration bodies spell some of them differently."""
    ts_body = world.state()["registrations"][-1]
    with _python_twins() as (py_flow, py_options):
        pass
    ts_raw = {f["id"].removeprefix(f"{APP_ID}-"): f for f in ts_body["functions"]}
    py_raw = {f["id"].removeprefix(f"{PY_APP_ID}-"): f for f in py_flow["functions"]}
    # What differs on the wire: TS sends the options as the user wrote them, Python normalizes.
    assert ts_raw["per-user"]["concurrency"] == {"limit": 1, "key": "event.data.user"}
    assert py_raw["per-user"]["concurrency"] == [{"limit": 1, "key": "event.data.user"}]
    assert ts_raw["prioritized"]["concurrency"] == 1
    assert py_raw["prioritized"]["concurrency"] == [{"limit": 1}]
    assert "burst" not in ts_raw["throttled"]["throttle"]
    assert py_raw["throttled"]["throttle"]["burst"] == 1
    # TS's cancelOn `match: "data.id"` arrives as the same `if` as Python's if_exp.
    assert ts_raw["opt-limited"]["cancel"] == [
        {"event": "shop/order.cancelled", "timeout": "1d", "if": "event.data.id == async.data.id"}
    ]

    ts_fns = _functions(ts_body, f"{APP_ID}-")
    py_fns = {
        **_functions(py_flow, f"{PY_APP_ID}-"),
        **{f"opt-{k}": f for k, f in _functions(py_options, "shop-").items()},
    }
    assert set(ts_fns) == set(py_fns) == {*FUNCTIONS, *OPTIONS, "opt-limited-failure"}
    for fn in (*FUNCTIONS, *OPTIONS):
        ts, py = ts_fns[fn], py_fns[fn]
        assert ts.flow == py.flow, fn
        assert ts.flow != FlowControl(), fn  # each declares an option
        assert ts.triggers == py.triggers, fn
        assert ts.retry.retries == py.retry.retries, fn
    assert ts_fns["per-user"].flow.concurrency == (Concurrency(1, "event.data.user"),)
    assert ts_fns["prioritized"].flow.concurrency == (Concurrency(1),)
    assert ts_fns["throttled"].flow.throttle == Throttle(1, "1s", 1)
    assert ts_fns["opt-limited"].flow.throttle == Throttle(5, "1m", 2, "event.data.user")
    assert ts_fns["opt-limited"].flow.concurrency == (
        Concurrency(2, "event.data.user", "fn"),
        Concurrency(5, "event.data.tenant", "env"),
    )
    # The on-failure handlers differ by SDK, as their registrations say: Python declares no
    # retry for them, TS one.
    failure = "opt-limited-failure"
    assert (ts_fns[failure].retry.retries, py_fns[failure].retry.retries) == (1, 0)
