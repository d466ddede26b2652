"""Scheduling: a cron-triggered daily digest, and durable sleeps.

**Cron.** ``daily_digest`` has the trigger ``perdure.cron("0 7 * * *", tz="Europe/Paris")``: every
day at 07:00 Paris time (so 05:00 UTC in summer and 06:00 UTC in winter; DST is handled) a worker's
scheduler creates one run, however many workers share the database. The run's event is
``perdure/scheduled.timer`` and its data carries the tick (``scheduled_at``, UTC). If no worker
was up at 07:00, the most recent missed tick runs once when one comes back, if it is less than
24 hours old (``catchup=``; ``0`` skips missed ticks).

**Durable sleep.** The digest is compiled at 07:00 but must go out in the 09:00 send window, so
the function sleeps until then with ``ctx.step.sleep_until``. A sleeping run holds no worker and
no memory: it is a row in the database with a wake-up time. A restart or deploy during the sleep
changes nothing; when the time comes, any worker picks the run up, replays it (the compiled digest
comes from its checkpoint, not recompiled) and sends. ``send_reminder`` does the same with a
relative ``ctx.step.sleep`` ("3d", "1h30m", a timedelta or seconds).

Run it::

    python examples/scheduling.py

Waiting for 07:00 Paris would make a dull demo, so the script prints when the cron trigger will
next fire, then starts ``send_reminder`` directly with a 3-second sleep and shows the run asleep,
then resumed. The tests (tests/examples/test_examples.py) use ``perdure.testing.ManualClock`` to
fire the cron tick and to let a 3-day sleep pass instantly.

Note: run as a script, the worker also hosts the cron trigger. If you ran the script in the last
24 hours on the same database, it may catch up a missed 07:00 tick and start a digest run; that
run completes (or sleeps until 09:00 Paris) like a real one would.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import perdure
from perdure.testing import ManualClock

DAILY_DIGEST = "daily-digest"
SEND_REMINDER = "send-reminder"

TIME_ZONE = "Europe/Paris"
# Every day at 07:00, Paris time. Five fields (minute hour day month weekday); six fields add
# seconds in front.
DIGEST_SCHEDULE = perdure.cron("0 7 * * *", tz=TIME_ZONE)
SEND_WINDOW_HOUR = 9  # the digest goes out at 09:00 local time


# --------------------------------------------------------------------------- fake services


def compile_digest(day: str) -> dict[str, Any]:
    """Gather yesterday's activity (a slow database query in real life)."""
    return {"day": day, "new_orders": 42, "new_users": 7}


def send_digest(digest: dict[str, Any]) -> str:
    """Email the digest to the team."""
    return f"digest-{digest['day']}-sent"


def send_reminder_email(user: str, about: str) -> str:
    """Email a reminder."""
    return f"reminded {user} about {about}"


def send_window(tick: datetime) -> datetime:
    """09:00 in Paris on the local day of the cron tick (an aware datetime).

    Derived from the tick, never from "now", so every replay computes the same instant.
    """
    local = tick.astimezone(ZoneInfo(TIME_ZONE))
    return local.replace(hour=SEND_WINDOW_HOUR, minute=0, second=0, microsecond=0)


# --------------------------------------------------------------------------- the functions


def make_app(database_url: str | None = None, *, clock: ManualClock | None = None) -> perdure.App:
    """Build the app (``None``: ``PERDURE_DATABASE_URL`` or a SQLite file under ./.perdure/).

    ``clock``: tests pass a :class:`~perdure.testing.ManualClock` to move time by hand.
    """
    app = perdure.App("example-scheduling", database_url, clock=clock)

    @app.function(id=DAILY_DIGEST, trigger=DIGEST_SCHEDULE)
    async def daily_digest(ctx: perdure.Context) -> dict[str, Any]:
        # A cron run's event data: {"cron", "tz", "scheduled_at" (ISO, UTC), "missed"}.
        # Started by hand (app.start), there is no tick: use the event's own time.
        scheduled_at = ctx.event.data.get("scheduled_at")
        tick = datetime.fromisoformat(scheduled_at) if scheduled_at else ctx.event.time
        day = tick.astimezone(ZoneInfo(TIME_ZONE)).date().isoformat()

        digest = await ctx.step.run("compile-digest", compile_digest, day)
        # Suspend until the send window. If it has already passed (a late catch-up run), the
        # step completes at once.
        await ctx.step.sleep_until("wait-for-send-window", send_window(tick))
        message = await ctx.step.run("send-digest", send_digest, digest)
        return {"day": day, "message": message}

    @app.function(id=SEND_REMINDER)
    async def send_reminder(ctx: perdure.Context) -> str:
        user: str = ctx.event.data["user"]
        about: str = ctx.event.data.get("about", "your trial")
        # "3d" in real life; the demo passes "3s". The run sleeps in the database, not here.
        await ctx.step.sleep("wait", ctx.event.data.get("delay", "3d"))
        return await ctx.step.run("send-reminder", send_reminder_email, user, about)

    return app


# The app for `perdure worker examples.scheduling:app`.
app = make_app()


async def wait_for_status(
    handle: perdure.RunHandle, status: perdure.RunStatus, timeout: float = 10.0
) -> None:
    """Poll the run's status until it is ``status`` (for the demo's narration)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await handle.status() == status:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"run {handle.run_id} did not become {status.value} in {timeout}s")


async def main() -> None:
    """Show the cron schedule, then a 3-second durable sleep."""
    now = datetime.now(UTC)
    tick = DIGEST_SCHEDULE.schedule.next_after(now)
    print(
        f"{DAILY_DIGEST} runs on cron {DIGEST_SCHEDULE.expr!r} in {DIGEST_SCHEDULE.tz}; "
        f"next tick: {tick.astimezone(ZoneInfo(TIME_ZONE)):%Y-%m-%d %H:%M %Z} "
        f"({tick:%H:%M} UTC), digest sent at {send_window(tick):%H:%M %Z}"
    )

    demo = make_app()
    async with demo, demo.worker():
        started = time.monotonic()
        handle = await demo.start(SEND_REMINDER, {"user": "ada", "delay": "3s"})
        # Watch the run go to sleep: it is then only a row in the database.
        await wait_for_status(handle, perdure.RunStatus.SLEEPING)
        run = await demo.get_run(handle.run_id)
        sleep = run.steps[-1]  # the "wait" step, with its wake-up time
        print(
            f"reminder run {handle.run_id} is {run.status.value}; "
            f"step {sleep.id!r} wakes at {sleep.wake_at:%H:%M:%S} UTC"
        )
        result = await handle.result(timeout=30)
        print(f"resumed after {time.monotonic() - started:.1f}s: {result}")


if __name__ == "__main__":
    asyncio.run(main())
