"""A multi-step workflow: user signup.

Signing a user up touches three systems: our database (create the account), the mail provider
(send the welcome email) and the CRM (add the contact). Each call is a *step*: perdure runs it
once and checkpoints its result in the database before the function moves on. If the process
dies between two steps, a new worker replays the function from the top and every completed step
is answered from its checkpoint, so the account is not created twice and the email is not sent
twice.

The CRM in this demo is flaky: it fails the first time it sees an address. perdure retries only
that step (with backoff); the account and the email, already checkpointed, are not redone. The
recorded steps (``app.get_run``) show it: ``add-to-crm`` took 2 attempts, the others 1.

Run it::

    python examples/simple_workflow.py

It uses ``PERDURE_DATABASE_URL`` if set, else a SQLite file under ``./.perdure/``. To run the
same functions in a separate worker process: ``perdure worker examples.simple_workflow:app``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import Any

import perdure

SIGNUP = "user-signup"  # the function's id: start it with app.start(SIGNUP, data)

# A fast retry policy so the demo does not wait long for the CRM retry. The default is 4
# retries starting at 1 s, doubling up to 5 minutes, with full jitter.
DEMO_RETRIES = perdure.RetryPolicy(retries=4, initial_delay=0.1, max_delay=1.0)


# --------------------------------------------------------------------------- fake services
# In a real app these would call a database, a mail API and a CRM API.


@dataclasses.dataclass
class Account:
    """A user account. Steps may return dataclasses (or pydantic models): when the step
    function's return annotation names the type, the checkpointed JSON comes back as it."""

    user_id: str
    email: str
    name: str


def create_account(email: str, name: str) -> Account:
    """Insert the user (a plain ``def``: perdure runs sync step bodies in a thread)."""
    return Account(user_id=f"u_{uuid.uuid4().hex[:8]}", email=email, name=name)


async def send_welcome_email(account: Account) -> str:
    """Send the welcome email (an ``async def`` works just as well)."""
    await asyncio.sleep(0.05)  # the mail API call
    return f"msg_{account.user_id}"


_crm_seen: set[str] = set()


def add_to_crm(email: str) -> str:
    """Add the contact to the CRM. Fails once per address, like a flaky network would."""
    if email not in _crm_seen:
        _crm_seen.add(email)
        raise ConnectionError("CRM timed out")
    return f"crm_{email.split('@')[0]}"


# --------------------------------------------------------------------------- the workflow


def make_app(database_url: str | None = None) -> perdure.App:
    """Build the app. ``database_url=None`` means ``PERDURE_DATABASE_URL`` or ``./.perdure/``.

    A factory lets tests point the same functions at a temporary database. In your own code a
    module-level ``app = perdure.App("shop")`` with decorated functions is all you need.
    """
    app = perdure.App("example-signup", database_url, retry_policy=DEMO_RETRIES)

    @app.function(id=SIGNUP)
    async def user_signup(ctx: perdure.Context) -> dict[str, Any]:
        # ctx.event.data is the data given to app.start (or the triggering event's data).
        email: str = ctx.event.data["email"]
        name: str = ctx.event.data.get("name", email)

        # Step 1: its result (an Account) is checkpointed before we go on.
        account = await ctx.step.run("create-account", create_account, email, name)
        # Step 2: uses step 1's output. On a replay `account` comes from the checkpoint.
        message_id = await ctx.step.run("send-welcome-email", send_welcome_email, account)
        # Step 3: fails on its first attempt; only this step is retried.
        crm_id = await ctx.step.run("add-to-crm", add_to_crm, email)

        # The function's return value is the run's output (JSON).
        return {"user_id": account.user_id, "welcome_email": message_id, "crm_id": crm_id}

    return app


# The app for `perdure worker examples.simple_workflow:app`.
app = make_app()


async def main() -> None:
    """Start a worker in-process, sign a user up, print the output and the recorded steps."""
    demo = make_app()
    async with demo, demo.worker():
        email = f"ada.{uuid.uuid4().hex[:6]}@example.com"
        started = time.monotonic()
        handle = await demo.start(SIGNUP, {"email": email, "name": "Ada Lovelace"})
        print(f"started run {handle.run_id} for {email}")
        output = await handle.result(timeout=30)
        print(f"completed in {time.monotonic() - started:.2f}s with output: {output}")

        run = await demo.get_run(handle.run_id)
        print(f"run status: {run.status.value}; recorded steps:")
        for step in run.steps:
            print(
                f"  {step.position}. {step.id:<20} {step.status:<10} "
                f"attempts={step.attempts}  output={step.output}"
            )


if __name__ == "__main__":
    asyncio.run(main())
