"""Apps on the real Inngest Python SDK (``inngest`` 0.5.x), for the sync and event tests."""

from __future__ import annotations

import datetime
import socket
import threading
import time
from typing import Any

import fastapi
import inngest.fast_api
import uvicorn

import inngest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def capture_registrations(api: fastapi.FastAPI) -> None:
    """Serve ``POST /fn/register`` on the app itself: the registration bodies the SDK sends when
    its serve URL gets the sync ``PUT`` (with ``api_base_url`` = the app's own origin) are kept
    in ``api.state.registrations``, for a test to post to perdure (``sdk_app.sync``)."""
    registrations: list[dict[str, Any]] = []

    @api.post("/fn/register")
    async def register(request: fastapi.Request) -> dict[str, Any]:
        registrations.append(await request.json())
        return {"ok": True, "modified": True}

    api.state.registrations = registrations


def client(app_id: str, origin: str) -> inngest.Inngest:
    """A dev-mode SDK client talking to ``origin`` (both the API and the event API)."""
    return inngest.Inngest(
        app_id=app_id,
        is_production=False,
        api_base_url=origin,
        event_api_base_url=origin,
    )


def every_option_functions(c: inngest.Inngest) -> list[inngest.Function[Any]]:
    """Functions declaring every flow-control option the SDK has, and an on_failure handler."""

    async def on_failure(ctx: inngest.Context) -> None:
        return None

    @c.create_function(
        fn_id="limited",
        name="Limited",
        retries=2,
        trigger=inngest.TriggerEvent(event="shop/order.placed", expression="event.data.n > 1"),
        concurrency=[
            inngest.Concurrency(limit=2, key="event.data.user", scope="fn"),
            inngest.Concurrency(limit=5, key="event.data.tenant", scope="account"),
        ],
        throttle=inngest.Throttle(
            limit=5, period=datetime.timedelta(minutes=1), key="event.data.user", burst=2
        ),
        priority=inngest.Priority(run="event.data.vip ? 120 : 0"),
        timeouts=inngest.Timeouts(
            start=datetime.timedelta(seconds=30), finish=datetime.timedelta(minutes=10)
        ),
        cancel=[
            inngest.Cancel(
                event="shop/order.cancelled",
                if_exp="event.data.id == async.data.id",
                timeout=datetime.timedelta(days=1),
            )
        ],
        singleton=inngest.Singleton(key="event.data.user", mode="cancel"),
        on_failure=on_failure,
    )
    async def limited(ctx: inngest.Context) -> str:
        return "ok"

    @c.create_function(
        fn_id="windowed",
        trigger=[
            inngest.TriggerEvent(event="shop/*"),
            inngest.TriggerCron(cron="TZ=Europe/Paris 0 9 * * *"),
        ],
        rate_limit=inngest.RateLimit(
            limit=10, period=datetime.timedelta(hours=1), key="event.data.user"
        ),
        idempotency="event.data.order",
    )
    async def windowed(ctx: inngest.Context) -> None:
        return None

    @c.create_function(
        fn_id="debounced",
        trigger=inngest.TriggerEvent(event="shop/search"),
        debounce=inngest.Debounce(
            period=datetime.timedelta(seconds=5), key="event.data.user",
            timeout=datetime.timedelta(minutes=1),
        ),
    )  # fmt: skip
    async def debounced(ctx: inngest.Context) -> None:
        return None

    @c.create_function(
        fn_id="batched",
        trigger=inngest.TriggerEvent(event="shop/click"),
        batch_events=inngest.Batch(
            max_size=10, timeout=datetime.timedelta(seconds=5), key="event.data.user"
        ),
    )
    async def batched(ctx: inngest.Context) -> int:
        return len(ctx.events)

    return [limited, windowed, debounced, batched]


def simple_functions(c: inngest.Inngest, *names: str) -> list[inngest.Function[Any]]:
    """One function per name, each triggered by ``test/<name>`` and returning its name."""
    out = []
    for name in names:

        def make(n: str) -> inngest.Function[Any]:
            @c.create_function(fn_id=n, trigger=inngest.TriggerEvent(event=f"test/{n}"))
            async def fn(ctx: inngest.Context) -> str:
                return n

            return fn

        out.append(make(name))
    return out


def fastapi_app(
    mounts: dict[str, tuple[inngest.Inngest, list[inngest.Function[Any]]]],
) -> fastapi.FastAPI:
    """A FastAPI app serving each SDK app at its path (``/a/api/inngest`` ...)."""
    app = fastapi.FastAPI()
    for prefix, (c, fns) in mounts.items():
        sub = fastapi.FastAPI()
        inngest.fast_api.serve(sub, c, fns)
        app.mount(prefix, sub)
    return app


class Served:
    """A FastAPI app served by uvicorn in a thread, on a free port."""

    def __init__(self, app: fastapi.FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
