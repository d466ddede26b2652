"""The Python driver: executes functions registered with ``@app.function`` in this process.

An ``async def`` function runs in the run's own task (which is what an abort cancels: no extra
task per run); a plain ``def`` function runs in a thread of the driver's function pool, whose
size bounds how many run at once. Sync step bodies called from async functions run in a
separate pool, so that they can run in parallel.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from perdure import serde
from perdure._signals import Fatal, LeaseLost, Suspend
from perdure.drivers.python.context import Context, SyncContext
from perdure.drivers.python.execution import RunExecution
from perdure.engine.attempts import Failure, retry_delay
from perdure.engine.failures import ErrorInfo
from perdure.errors import PayloadTooLargeError, SerializationError, StoreUnavailableError
from perdure.functions import FunctionDef
from perdure.runtime.attempt import Attempt
from perdure.store.base import Outcome

log = logging.getLogger("perdure.worker")


class PythonDriver:
    """Executes the attempts of the Python functions in ``functions`` (a live mapping: functions
    registered later are hosted too)."""

    def __init__(self, functions: Mapping[str, FunctionDef], *, sync_concurrency: int = 32) -> None:
        self._functions = functions
        self.step_pool = ThreadPoolExecutor(sync_concurrency, thread_name_prefix="perdure-step")
        self.sync_pool = ThreadPoolExecutor(sync_concurrency, thread_name_prefix="perdure-fn")

    @property
    def functions(self) -> Mapping[str, FunctionDef]:
        """The functions this driver executes."""
        return self._functions

    async def close(self) -> None:
        """Stop the thread pools (threads still running finish on their own)."""
        self.step_pool.shutdown(wait=False, cancel_futures=True)
        self.sync_pool.shutdown(wait=False, cancel_futures=True)

    async def execute(self, attempt: Attempt) -> Outcome | None:
        """Run the function once, from the top, answering recorded steps from ``attempt``."""
        fdef = self._functions[attempt.function.id]
        ex = RunExecution(attempt, fdef, self.step_pool)
        try:
            result: Any
            if fdef.is_async:
                ex.task = asyncio.current_task()
                result = await fdef.fn(Context(ex))
            else:
                # In the run's context: the function's thread logs with its run.
                run = contextvars.copy_context().run
                fut = asyncio.get_running_loop().run_in_executor(
                    self.sync_pool, run, fdef.fn, SyncContext(ex)
                )
                ex.task = fut
                result = await fut
        except Suspend:
            return ex.suspension()
        except LeaseLost:
            return None
        except asyncio.CancelledError:
            if attempt.aborted:
                return None
            raise
        except StoreUnavailableError as exc:
            # The store failed under the function (not the function itself): no attempt is
            # spent; the lease expires and the run is replayed from its checkpoints.
            log.warning("run %s: the store is unavailable (%s); stopping it here", ex.run_id, exc)
            return None
        except Fatal as fatal:
            return _fail(attempt, ErrorInfo.of(fatal.error))
        except Exception as exc:
            if attempt.aborted:
                return None
            failure = Failure.of(exc)
            delay = retry_delay(fdef.retry, attempt.attempt + 1, failure)
            if delay is None:
                return _fail(attempt, failure.error)
            return Outcome(
                attempt.run_id,
                attempt.token,
                "retry",
                error=failure.error.to_json(),
                available_at=attempt.now() + delay,
            )
        if attempt.aborted:
            return None
        if ex.suspended:
            return ex.suspension()
        limit = attempt.runtime.limits.run_output
        try:
            output = serde.dumps_limited(result, "the run's output", limit)
        except (PayloadTooLargeError, SerializationError) as exc:
            return _fail(attempt, ErrorInfo.of(exc))
        return Outcome(attempt.run_id, attempt.token, "complete", output=output)


def _fail(attempt: Attempt, error: ErrorInfo) -> Outcome:
    return Outcome(attempt.run_id, attempt.token, "fail", error=error.to_json())
