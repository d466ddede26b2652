"""The examples in examples/: driven in-process on a temporary database, and run as scripts.

Each example module exposes ``make_app(database_url, ...)``; the tests build the app on a fresh
SQLite file, drive it through the public API and check real outcomes. Long waits (a cron tick at
07:00, a 3-day sleep, a 1-hour payment window) use :class:`perdure.testing.ManualClock`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import perdure
from perdure.testing import ManualClock

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    module_name = f"perdure_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and type hints look the module up
    spec.loader.exec_module(module)
    return module


simple_workflow = load_example("simple_workflow")
scheduling = load_example("scheduling")
saga = load_example("saga")
fan_out = load_example("fan_out")
event_driven = load_example("event_driven")


async def wait_status(
    app: perdure.App, run_id: str, status: perdure.RunStatus, timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await app.get_run(run_id, steps=False)).status == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} never became {status.value}")


async def runs_of(
    app: perdure.App, function_id: str, n: int, timeout: float = 10.0
) -> list[perdure.RunInfo]:
    deadline = time.monotonic() + timeout
    runs: list[perdure.RunInfo] = []
    while time.monotonic() < deadline:
        runs = await app.list_runs(function=function_id)
        if len(runs) >= n:
            return runs
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {n} run(s) of {function_id}, found {len(runs)}")


def steps_by_position(run: perdure.RunInfo) -> list[perdure.StepInfo]:
    return sorted(run.steps, key=lambda s: s.position)


# --------------------------------------------------------------------------- simple workflow


async def test_simple_workflow_checkpoints_each_step(sqlite_url: str) -> None:
    app = simple_workflow.make_app(sqlite_url)
    email = f"grace.{uuid.uuid4().hex[:8]}@example.com"  # the fake CRM fails once per address
    async with app, app.worker():
        handle = await app.start(simple_workflow.SIGNUP, {"email": email})
        output = await handle.result(timeout=20)
        run = await app.get_run(handle.run_id)

    assert run.status == perdure.RunStatus.COMPLETED
    assert run.output == output
    steps = steps_by_position(run)
    assert [(s.id, s.status) for s in steps] == [
        ("create-account", "completed"),
        ("send-welcome-email", "completed"),
        ("add-to-crm", "completed"),
    ]
    # The flaky CRM step was retried; the steps before it ran once (answered from checkpoints).
    assert [s.attempts for s in steps] == [1, 1, 2]
    account = steps[0].output
    assert account["email"] == email
    assert account["name"] == email  # no name given: the email is used
    assert output == {
        "user_id": account["user_id"],
        "welcome_email": f"msg_{account['user_id']}",
        "crm_id": f"crm_{email.split('@')[0]}",
    }


# --------------------------------------------------------------------------- scheduling


async def test_scheduling_cron_tick_fires_and_digest_sleeps_until_send_window(
    sqlite_url: str,
) -> None:
    from perdure.runtime.scheduler import trigger_key

    # 04:59 UTC on 1 June 2026 is 06:59 in Paris (summer time, UTC+2).
    clock = ManualClock(datetime(2026, 6, 1, 4, 59, tzinfo=UTC))
    app = scheduling.make_app(sqlite_url, clock=clock)
    async with app, app.worker():
        # Wait until the scheduler has seen the trigger (it then fires from its next tick on).
        key = trigger_key(scheduling.DIGEST_SCHEDULE)
        for _ in range(250):
            if await app.store.cron_last_tick(scheduling.DAILY_DIGEST, key) is not None:
                break
            await asyncio.sleep(0.02)
        assert await app.list_runs() == []

        await clock.advance(minutes=1, seconds=1)  # 07:00:01 in Paris: the tick fires
        (run,) = await runs_of(app, scheduling.DAILY_DIGEST, 1)
        assert run.event.name == "perdure/scheduled.timer"
        assert run.event.data["scheduled_at"] == "2026-06-01T05:00:00Z"

        # The digest is compiled, then the run sleeps until 09:00 Paris (07:00 UTC).
        await wait_status(app, run.id, perdure.RunStatus.SLEEPING)
        info = await app.get_run(run.id)
        compiled, window = steps_by_position(info)
        assert (compiled.id, compiled.status) == ("compile-digest", "completed")
        assert compiled.output["day"] == "2026-06-01"
        assert window.id == "wait-for-send-window"
        assert window.wake_at == datetime(2026, 6, 1, 7, 0, tzinfo=UTC)

        await clock.advance(hours=1)  # 08:00:01: still asleep
        await asyncio.sleep(0.2)
        assert (await app.get_run(run.id, steps=False)).status == perdure.RunStatus.SLEEPING

        await clock.advance(hours=1)  # 09:00:01: the digest goes out
        assert await app.handle(run.id).result(timeout=10) == {
            "day": "2026-06-01",
            "message": "digest-2026-06-01-sent",
        }
        assert len(await app.list_runs(function=scheduling.DAILY_DIGEST)) == 1


async def test_scheduling_three_day_sleep_passes_instantly(sqlite_url: str) -> None:
    clock = ManualClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    app = scheduling.make_app(sqlite_url, clock=clock)
    async with app, app.worker():
        handle = await app.start(scheduling.SEND_REMINDER, {"user": "ada"})  # delay: "3d"
        await wait_status(app, handle.run_id, perdure.RunStatus.SLEEPING)
        (sleep,) = (await app.get_run(handle.run_id)).steps
        assert sleep.wake_at == datetime(2026, 1, 8, 12, 0, tzinfo=UTC)

        await clock.advance(days=2, hours=23)
        await asyncio.sleep(0.2)
        assert await handle.status() == perdure.RunStatus.SLEEPING

        started = time.monotonic()
        await clock.advance(hours=1)
        assert await handle.result(timeout=10) == "reminded ada about your trial"
        assert time.monotonic() - started < 5


def test_scheduling_send_window_is_local_time_across_dst() -> None:
    winter = scheduling.send_window(datetime(2026, 1, 15, 6, 0, tzinfo=UTC))
    summer = scheduling.send_window(datetime(2026, 7, 15, 5, 0, tzinfo=UTC))
    assert winter.astimezone(UTC) == datetime(2026, 1, 15, 8, 0, tzinfo=UTC)
    assert summer.astimezone(UTC) == datetime(2026, 7, 15, 7, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- saga


async def book(app: perdure.App, trip: dict[str, Any]) -> tuple[Any, perdure.RunInfo]:
    handle = await app.start(saga.BOOK_TRIP, trip)
    summary = await handle.result(timeout=20)
    return summary, await app.get_run(handle.run_id)


async def test_saga_books_everything_on_the_happy_path(sqlite_url: str) -> None:
    app = saga.make_app(sqlite_url)
    async with app, app.worker():
        summary, run = await book(
            app, {"trip_id": "T1", "route": "CDG-JFK", "hotel": "Grand Hotel", "car": "compact"}
        )
    assert summary == {
        "status": "booked",
        "bookings": {
            "flight": "FL-T1-CDG-JFK",
            "hotel": "HT-T1-GrandHotel",
            "car": "CR-T1-compact",
        },
    }
    assert [s.id for s in steps_by_position(run)] == ["book-flight", "book-hotel", "book-car"]


async def test_saga_compensates_in_reverse_when_a_booking_is_non_retriable(
    sqlite_url: str,
) -> None:
    app = saga.make_app(sqlite_url)
    async with app, app.worker():
        summary, run = await book(
            app, {"trip_id": "T2", "route": "CDG-LIS", "hotel": "Grand Hotel", "car": "convertible"}
        )
    assert summary == {
        "status": "rolled_back",
        "failed_step": "book-car",
        "error": "NonRetriableError: no convertible available",
        "compensated": ["hotel", "flight"],
    }
    assert run.status == perdure.RunStatus.COMPLETED  # the saga handled the failure
    steps = steps_by_position(run)
    assert [(s.id, s.status, s.attempts) for s in steps] == [
        ("book-flight", "completed", 1),
        ("book-hotel", "completed", 1),
        ("book-car", "failed", 1),  # NonRetriableError: not retried
        ("cancel-hotel", "completed", 1),
        ("cancel-flight", "completed", 1),
    ]
    assert steps[3].output == "cancelled hotel HT-T2-GrandHotel"
    assert steps[4].output == "cancelled flight FL-T2-CDG-LIS"
    # Compensations ran strictly after one another, newest booking first.
    assert steps[3].ended_at is not None and steps[4].started_at is not None
    assert steps[3].ended_at <= steps[4].started_at


async def test_saga_compensates_when_retries_are_exhausted(sqlite_url: str) -> None:
    app = saga.make_app(sqlite_url)
    async with app, app.worker():
        summary, run = await book(
            app, {"trip_id": "T3", "route": "CDG-BER", "hotel": "Flaky Inn", "car": "compact"}
        )
    assert summary == {
        "status": "rolled_back",
        "failed_step": "book-hotel",
        "error": "TimeoutError: Flaky Inn booking API timed out",
        "compensated": ["flight"],
    }
    steps = steps_by_position(run)
    assert [(s.id, s.status) for s in steps] == [
        ("book-flight", "completed"),
        ("book-hotel", "failed"),
        ("cancel-flight", "completed"),
    ]
    assert steps[1].attempts == saga.DEMO_RETRIES.retries + 1
    assert steps[1].error is not None and steps[1].error["type"] == "TimeoutError"
    assert "book-car" not in {s.id for s in steps}


# --------------------------------------------------------------------------- fan-out


async def test_fan_out_runs_the_quotes_in_parallel(sqlite_url: str) -> None:
    app = fan_out.make_app(sqlite_url)
    n, latency = len(fan_out.SUPPLIERS), 1.0
    async with app, app.worker():
        handle = await app.start(fan_out.BEST_PRICE, {"product": "kettle", "latency": latency})
        result = await handle.result(timeout=60)
        run = await app.get_run(handle.run_id)

    assert result == {
        "product": "kettle",
        "best": {"supplier": "umbrella", "product": "kettle", "price": 99.9},
        "quotes": n,
    }
    steps = steps_by_position(run)
    assert [s.id for s in steps] == [f"quote-{s}" for s in fan_out.SUPPLIERS]
    starts = [s.started_at for s in steps]
    ends = [s.ended_at for s in steps]
    assert all(t is not None for t in starts + ends)
    # Every quote started before any finished: they all overlapped (not a wall-clock bound,
    # which a loaded machine breaks).
    assert max(t for t in starts if t) < min(t for t in ends if t)


# --------------------------------------------------------------------------- event-driven


async def test_event_driven_order_resumes_on_the_matching_payment(sqlite_url: str) -> None:
    app = event_driven.make_app(sqlite_url)
    async with app, app.worker():
        handle = await event_driven.place_order(app, {"order_id": "A1", "items": ["book"]})
        await event_driven.wait_until_waiting(handle)
        await app.send(perdure.Event("order.paid", {"order_id": "OTHER", "amount": 1}))
        await asyncio.sleep(0.2)
        assert await handle.status() == perdure.RunStatus.WAITING  # not its payment
        (paid_id,) = await app.send(perdure.Event("order.paid", {"order_id": "A1", "amount": 9}))
        result = await handle.result(timeout=10)
        run = await app.get_run(handle.run_id)

    assert result == {
        "order_id": "A1",
        "status": "shipped",
        "payment": {"order_id": "A1", "amount": 9},
        "tracking": "TRACK-A1",
    }
    assert run.event.name == "order.placed"
    steps = steps_by_position(run)
    assert [s.id for s in steps] == ["reserve-stock", "wait-for-payment", "ship"]
    assert steps[1].output["id"] == paid_id  # the step recorded the event that resumed it


async def test_event_driven_payment_timeout_returns_none(sqlite_url: str) -> None:
    clock = ManualClock()
    app = event_driven.make_app(sqlite_url, clock=clock)
    async with app, app.worker():
        handle = await event_driven.place_order(app, {"order_id": "B2", "items": ["lamp"]})
        await event_driven.wait_until_waiting(handle)
        await clock.advance(minutes=59)
        await asyncio.sleep(0.2)
        assert await handle.status() == perdure.RunStatus.WAITING
        await clock.advance(minutes=1, seconds=1)  # the 1-hour payment window closes
        result = await handle.result(timeout=10)
        # A payment after the timeout changes nothing.
        await app.send(perdure.Event("order.paid", {"order_id": "B2", "amount": 9}))
        await asyncio.sleep(0.2)
        run = await app.get_run(handle.run_id)

    assert result == {"order_id": "B2", "status": "expired", "payment": None}
    steps = steps_by_position(run)
    assert [s.id for s in steps] == ["reserve-stock", "wait-for-payment", "release-stock"]
    assert steps[1].status == "completed" and steps[1].output is None
    assert run.output == result


# --------------------------------------------------------------------------- as scripts

SCRIPT_OUTPUT = {
    "simple_workflow": [
        "completed in",
        "run status: completed",
        "create-account       completed  attempts=1",
        "add-to-crm           completed  attempts=2",
    ],
    "scheduling": [
        "daily-digest runs on cron '0 7 * * *' in Europe/Paris",
        "is sleeping; step 'wait' wakes at",
        "reminded ada about your trial",
    ],
    "saga": [
        "'status': 'booked'",
        "'failed_step': 'book-car'",
        "'compensated': ['hotel', 'flight']",
        "'failed_step': 'book-hotel'",
        "book-hotel (failed, 3 attempts), cancel-flight (completed, 1 attempt)",
    ],
    "fan_out": [
        "best offer: umbrella at 99.9",
        "5 quote steps of 1 s each finished in",
    ],
    "event_driven": [
        "'status': 'shipped'",
        "'status': 'expired', 'payment': None",
        "step returned None (timed out)",
    ],
}


@pytest.mark.parametrize("name", sorted(SCRIPT_OUTPUT))
def test_example_runs_as_a_script(name: str, tmp_path: Path) -> None:
    env = dict(os.environ, PERDURE_DATABASE_URL=f"sqlite:///{tmp_path}/script.db")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    for expected in SCRIPT_OUTPUT[name]:
        assert expected in proc.stdout, f"{expected!r} not in:\n{proc.stdout}"
    assert not (tmp_path / ".perdure").exists()  # it used PERDURE_DATABASE_URL
    if name == "fan_out":
        # "5 quote steps of 1 s each finished in 1.01s": parallel, not 5 s.
        line = next(x for x in proc.stdout.splitlines() if "finished in" in x)
        seconds = float(line.split("finished in ")[1].split("s")[0])
        assert seconds < 3.0, line
        assert elapsed < 30
