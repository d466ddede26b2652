"""The Inngest driver: executes runs of functions served by apps on the official Inngest SDKs.

It satisfies the runtime's :class:`~perdure.runtime.driver.Driver` seam: the worker claims runs
of the functions in :attr:`InngestDriver.functions` (kept up to date by app syncs through
:meth:`InngestDriver.replace_app`) and hands each attempt to :meth:`InngestDriver.execute`,
which calls the app over HTTP (:mod:`perdure.inngest.executor`) and returns one outcome.

HTTP: one shared :class:`aiohttp.ClientSession` (connection reuse across runs), a connect
timeout and a long read timeout (a step body runs inside the request), no retries at the HTTP
level: a failed call is a failed attempt, retried per the function's policy. aiohttp, not httpx
(perdure's client elsewhere), on this one hot path: a call cost perdure 1.1 ms of CPU with an
``httpx.AsyncClient`` and 0.3 ms with aiohttp, sequentially, and 2.0-2.3 ms against 0.2-0.3 ms
with 200 runs at once (httpcore's pool walks all its connections on every request and answer);
measured by replaying the 4 call requests of a 3-step run of bench/inngest_bench.py's app.
"""

from __future__ import annotations

import io
import time
from collections import OrderedDict
from collections.abc import Iterable

import aiohttp
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
#: Connections kept to the apps at most (calls beyond wait for one), and seconds an idle one
#: stays open.
MAX_CONNECTIONS = 1000
KEEPALIVE_SECONDS = 15.0
_STREAM_ABOVE = 1 << 20


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
        self._http = http
        self._aio: aiohttp.ClientSession | None = None
        self._call_timeout = call_timeout
        self._timeout = httpx.Timeout(call_timeout, connect=CONNECT_TIMEOUT)
        self.requests = 0
        """Call requests made (all runs), for diagnostics and tests."""
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
        body, headers = request.body, request.headers
        if self.keys is not None:
            body, signature = self.keys.sign_body(body, time.time())
            headers = {**headers, "x-inngest-signature": signature}
        if self._http is not None:
            response = await self._http.post(
                request.url, content=body, headers=headers, timeout=self._timeout
            )
            status, got, content = response.status_code, dict(response.headers), response.content
        else:
            session = self._session()
            # A large body goes as a stream (aiohttp would copy bytes over 1 MiB in one write).
            data: bytes | io.BytesIO = body if len(body) <= _STREAM_ABOVE else io.BytesIO(body)
            async with session.post(
                request.url, data=data, headers=headers, allow_redirects=False
            ) as answer:
                content = await answer.read()
                status = answer.status
                got = {k.lower(): v for k, v in answer.headers.items()}
        if self.keys is not None:
            self.keys.check_response(status, got, content, time.time())
        return status, got, content

    def _session(self) -> aiohttp.ClientSession:
        session = self._aio
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=MAX_CONNECTIONS, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS
            )
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=CONNECT_TIMEOUT, sock_read=self._call_timeout
            )
            session = self._aio = aiohttp.ClientSession(
                connector=connector, timeout=timeout, auto_decompress=True
            )
        return session

    async def close(self) -> None:
        """Close the driver's own HTTP session (the worker stopped); a client given to the
        driver is left open (its owner closes it)."""
        session, self._aio = self._aio, None
        if session is not None:
            await session.close()
