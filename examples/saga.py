"""A saga: book a flight, a hotel and a car; undo what was booked if a later booking fails.

There is no transaction spanning three booking systems. A saga replaces it: do each booking as a
step, and when one fails *for good*, run a compensating step for each booking already made, in
reverse order (cancel the hotel, then the flight).

"For good" means one of:

- the step raised :class:`perdure.NonRetriableError` (the car rental says "no cars left": retrying
  cannot help), or
- the step kept failing until its retries were exhausted (the hotel API is down).

Either way perdure raises :class:`perdure.StepError` inside the function, at the step's call, with
the step id and the original error's type and message, and the function may catch it. Each
compensation is its own step, so it is checkpointed and retried like any other: if the worker
crashes halfway through the rollback, the replay skips the cancellations already done and
finishes the rest. If a compensation itself fails for good, its StepError propagates and the run
fails, which is what you want to alert on (a human has to look).

Run it::

    python examples/saga.py

It books one trip that succeeds, one where the car is unavailable (NonRetriableError) and one
where the hotel API keeps timing out (retries exhausted), and prints each summary and the steps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import perdure

BOOK_TRIP = "book-trip"

# Retry a failing booking twice (3 attempts in all), quickly, so the demo runs in a second.
# Production code would keep the default policy (4 retries, exponential backoff from 1 s).
DEMO_RETRIES = perdure.RetryPolicy(retries=2, initial_delay=0.05, max_delay=0.2)


# --------------------------------------------------------------------------- fake services
# Each booking takes the trip id, so a retried call can be made idempotent by the provider
# (the usual way to make "at-least-once" step bodies safe). Special values in the trip request
# make the fake providers fail, so the failure paths can be shown.


def book_flight(trip_id: str, route: str) -> str:
    """Reserve a seat; return the confirmation code."""
    return f"FL-{trip_id}-{route}"


def book_hotel(trip_id: str, hotel: str) -> str:
    """Reserve a room. The "Flaky Inn" API always times out (a transient error: retried)."""
    if hotel == "Flaky Inn":
        raise TimeoutError(f"{hotel} booking API timed out")
    return f"HT-{trip_id}-{hotel.replace(' ', '')}"


def book_car(trip_id: str, car: str) -> str:
    """Rent a car. Convertibles are sold out: a permanent failure, not worth retrying."""
    if car == "convertible":
        raise perdure.NonRetriableError(f"no {car} available")
    return f"CR-{trip_id}-{car}"


def cancel_booking(kind: str, confirmation: str) -> str:
    """Cancel a booking (the compensation of every kind of booking, in this demo)."""
    return f"cancelled {kind} {confirmation}"


# --------------------------------------------------------------------------- the saga


def make_app(database_url: str | None = None) -> perdure.App:
    """Build the app (``None``: ``PERDURE_DATABASE_URL`` or a SQLite file under ./.perdure/)."""
    app = perdure.App("example-saga", database_url, retry_policy=DEMO_RETRIES)

    @app.function(id=BOOK_TRIP)
    async def book_trip(ctx: perdure.Context) -> dict[str, Any]:
        trip: dict[str, Any] = ctx.event.data
        trip_id: str = trip["trip_id"]
        # What has been booked so far, in order: (kind, confirmation). The list is rebuilt on
        # every replay from the steps' checkpointed outputs, so it is always accurate.
        booked: list[tuple[str, str]] = []
        try:
            flight = await ctx.step.run("book-flight", book_flight, trip_id, trip["route"])
            booked.append(("flight", flight))
            hotel = await ctx.step.run("book-hotel", book_hotel, trip_id, trip["hotel"])
            booked.append(("hotel", hotel))
            car = await ctx.step.run("book-car", book_car, trip_id, trip["car"])
            booked.append(("car", car))
        except perdure.StepError as failure:
            # A booking failed for good. Undo the others, newest first, each in its own step.
            compensated: list[str] = []
            for kind, confirmation in reversed(booked):
                await ctx.step.run(f"cancel-{kind}", cancel_booking, kind, confirmation)
                compensated.append(kind)
            return {
                "status": "rolled_back",
                "failed_step": failure.step_id,
                "error": f"{failure.error_type}: {failure.error_message}",
                "compensated": compensated,
            }
        return {"status": "booked", "bookings": dict(booked)}

    return app


# The app for `perdure worker examples.saga:app`.
app = make_app()

TRIPS: dict[str, dict[str, Any]] = {
    "success": {"route": "CDG-JFK", "hotel": "Grand Hotel", "car": "compact"},
    "car sold out (NonRetriableError)": {
        "route": "CDG-LIS",
        "hotel": "Grand Hotel",
        "car": "convertible",
    },
    "hotel API down (retries exhausted)": {
        "route": "CDG-BER",
        "hotel": "Flaky Inn",
        "car": "compact",
    },
}


async def main() -> None:
    """Book the three demo trips and print what happened."""
    demo = make_app()
    async with demo, demo.worker():
        for n, (label, trip) in enumerate(TRIPS.items(), start=1):
            handle = await demo.start(BOOK_TRIP, {"trip_id": f"T{n}", **trip})
            summary = await handle.result(timeout=30)
            run = await demo.get_run(handle.run_id)
            print(f"trip {n}, {label}:")
            print(f"  summary: {summary}")
            print(
                "  steps:   "
                + ", ".join(
                    f"{s.id} ({s.status}, {s.attempts} attempt{'s' if s.attempts > 1 else ''})"
                    for s in run.steps
                )
            )


if __name__ == "__main__":
    asyncio.run(main())
