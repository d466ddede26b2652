"""The Inngest driver: executes runs of functions served by apps on the official Inngest SDKs.

It satisfies the runtime's :class:`~perdure.runtime.driver.Driver` seam: the worker claims runs
of the functions in :attr:`InngestDriver.functions` (kept up to date by app syncs through
:meth:`InngestDriver.replace_app`) and hands each attempt to :meth:`InngestDriver.execute`,
which calls the app over HTTP (:mod:`perdure.inngest.executor`) and returns one outcome.

HTTP: one shared :class:`httpx.AsyncClient` (connection reuse across runs), a connect timeout
and a long read timeout (a step body runs inside the request), no retries at the HTTP level:
a failed call is a failed attempt, retried per the function's policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterable

import httpx

from perdure.inngest.auth import InngestKeys
from perdure.inngest.call import CallRequest
from perdure.inngest.executor import Execution
from perdure.inngest.functions import InngestApp, InngestFunction
from perdure.runtime.attempt import Attempt
from perdure.store.base import Outcome

#: Seconds to connect to an app; seconds a call may take (the step bodies it runs included).
CONNECT_TIMEOUT = 10.0
CALL_TIMEOUT = 900.0


class StepNames(OrderedDict[str, str]):
    """Hashed step id -> the user's step id, as the SDKs report it with every op (the hash is
    SHA-1 of the id, so the mapping holds for every run). Kept in memory, the most recent
    ``limit`` ids: after a restart, steps not seen again are named by their hashed id."""

    def __init__(self, limit: int = 100_000) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)


class InngestDriver:
    """Executes attempts of Inngest-SDK functions by calling their apps.

    ``server_kind`` is sent as ``X-Inngest-Server-Kind`` (``dev``, or ``cloud`` when
    self-hosted with keys); ``http`` is a client to use instead of the driver's own (not closed
    by the driver); ``keys``: self-hosted mode, calls are signed and answers verified (see
    :mod:`perdure.inngest.auth`)."""

    def __init__(
        self,
        *,
        server_kind: str = "dev",
        http: httpx.AsyncClient | None = None,
        call_timeout: float = CALL_TIMEOUT,
        keys: InngestKeys | None = None,
        checkpointing: bool = False,
    ) -> None:
        self.server_kind = server_kind
        self.keys = keys
        self.checkpointing = checkpointing
        """Send ``ctx.fn_id``/``ctx.qi_id`` (the TS SDK checkpoints): only where the server's
        checkpoint routes (:mod:`perdure.inngest.checkpoint`) run in this process."""
        self.live: dict[str, Execution] = {}
        """The executions in progress, by run id (for the checkpoint routes)."""
        self.functions: dict[str, InngestFunction] = {}
        self._own_http = http is None
        self._http = http
        self._timeout = httpx.Timeout(call_timeout, connect=CONNECT_TIMEOUT)
        self.requests = 0
        """Call requests made (all runs), for diagnostics and tests."""
        self._closing: set[asyncio.Task[None]] = set()
        self.step_names = StepNames()
        """The user's step ids by hashed id (what GraphQL trace spans are named)."""

    # ------------------------------------------------------------------ functions

    def replace_app(self, app: InngestApp) -> None:
        """Host ``app``'s functions, replacing those it had before (removed ones are dropped:
        their runs are no longer claimed here)."""
        self.remove_app(app.id, keep=(f.id for f in app.functions))
        for fn in app.functions:
            self.functions[fn.id] = fn

    def remove_app(self, app_id: str, keep: Iterable[str] = ()) -> None:
        """Stop hosting the functions of ``app_id`` (except ``keep``)."""
        kept = set(keep)
        for fid in [f.id for f in self.functions.values() if f.app_id == app_id]:
            if fid not in kept:
                del self.functions[fid]

    # ------------------------------------------------------------------ execution

    async def execute(self, attempt: Attempt) -> Outcome | None:
        """Call the app until the run ends or must wait; see :mod:`perdure.inngest.executor`."""
        fn = self.functions.get(attempt.function.id)
        if fn is None:
            fn = attempt.function  # type: ignore[assignment]
            if not isinstance(fn, InngestFunction):  # pragma: no cover - claims are filtered
                return None
        execution = Execution(
            attempt,
            fn,
            self._post,
            server_kind=self.server_kind,
            checkpointing=self.checkpointing,
            names=self.step_names,
        )
        self.live[attempt.run_id] = execution
        try:
            return await execution.run()
        finally:
            if self.live.get(attempt.run_id) is execution:
                del self.live[attempt.run_id]
            self.requests += execution.requests

    async def _post(self, request: CallRequest) -> tuple[int, dict[str, str], bytes]:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self._timeout,
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
                follow_redirects=False,
            )
        body, headers = request.body, request.headers
        if self.keys is not None:
            body, signature = self.keys.sign_body(body, time.time())
            headers = {**headers, "x-inngest-signature": signature}
        response = await self._http.post(
            request.url, content=body, headers=headers, timeout=self._timeout
        )
        if self.keys is not None:
            self.keys.check_response(
                response.status_code, response.headers, response.content, time.time()
            )
        return response.status_code, dict(response.headers), response.content

    def close(self) -> None:
        """Close the driver's own HTTP client (the worker stopped)."""
        http, self._http = self._http, None
        if http is None or not self._own_http:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: nothing left to close on
            task = asyncio.get_running_loop().create_task(http.aclose())
            self._closing.add(task)  # referenced until done (the loop keeps only weak refs)
            task.add_done_callback(self._closing.discard)
