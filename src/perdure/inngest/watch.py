"""Keeping every server's view of the Inngest apps current, and retiring removed functions.

Several servers may share one database, and an app syncs with one of them (``POST
/fn/register`` through a load balancer). The registry is in the database, so every process
routes events to the new functions at once; executing them needs the *driver* of each server
to host them, and each worker to schedule their crons and watch their timeouts.
:class:`RegistryWatcher` reads the registry every ``interval`` seconds (one indexed read of the
function table) and, when the Inngest functions differ from what the driver hosts, replaces
them there and tells its listeners (the worker's :meth:`~perdure.runtime.worker.Worker.refresh`).
The server that took the sync does the same at once, without waiting for a pass.

:func:`retire_runs` is what happens to the runs of a function an app no longer declares: they
cannot execute any more (the app does not serve it), so each one that has not ended is
cancelled with a ``reason`` naming the function and its app (visible in the REST API, the CLI
and GraphQL), rather than staying queued for ever. A run in flight is fenced by the cancel and
stops at its next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence

from perdure.app import App
from perdure.engine.flow.reasons import reason
from perdure.functions import FunctionRecord
from perdure.inngest.driver import InngestDriver
from perdure.inngest.functions import InngestApp, InngestFunction
from perdure.store.base import RunFilter

log = logging.getLogger("perdure.inngest")

__all__ = ["RegistryWatcher", "retire_runs"]

_LIVE = ("queued", "running", "sleeping", "waiting")
_PAGE = 500


def removed_reason(function_id: str, app_id: str) -> str:
    """The ``reason`` of a run cancelled because its function was removed (JSON text, as the
    flow-control reasons: :func:`perdure.engine.flow.reasons.reason`)."""
    message = f"the function {function_id!r} was removed from the Inngest app {app_id!r}"
    return reason("sync", "cancelled", message, function_id=function_id, app_id=app_id)


async def retire_runs(app: App, function_ids: Sequence[str], app_id: str) -> int:
    """Cancel the runs that have not ended of functions removed from ``app_id``; how many."""
    store = app.store
    done = 0
    for fid in function_ids:
        reason = removed_reason(fid, app_id)
        for status in _LIVE:
            while True:
                rows = await store.list_runs(RunFilter(status, fid, None, _PAGE))
                for row in rows:
                    cancelled = await store.cancel_run(row.id, reason=reason)
                    if cancelled is not None and cancelled.status == "cancelled":
                        app.runtime.hub.abort(row.id)
                        app.runtime.metrics.run_ended(fid, "cancelled")
                        done += 1
                if len(rows) < _PAGE:
                    break
    if done:
        log.info("cancelled %d run(s) of removed function(s) of app %r", done, app_id)
    return done


def stored_apps(records: Iterable[FunctionRecord]) -> list[InngestApp]:
    """The Inngest apps whose functions ``records`` hold (native functions left out), by id."""
    by_app: dict[str, list[InngestFunction]] = {}
    for record in records:
        fn = InngestFunction.from_record(record)
        if fn is not None:
            by_app.setdefault(fn.app_id, []).append(fn)
    apps = []
    for app_id, fns in sorted(by_app.items()):
        url = next((f.app_url for f in fns if f.app_url), "")
        apps.append(InngestApp(app_id, url, None, None, tuple(fns)))
    return apps


class RegistryWatcher:
    """Keeps ``driver`` hosting the Inngest functions of the registry (see the module
    docstring); ``listeners`` are called after every change of what it hosts."""

    def __init__(self, app: App, driver: InngestDriver, *, interval: float = 2.0) -> None:
        self.app = app
        self.driver = driver
        self.interval = interval
        self.listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.apps: list[InngestApp] = []
        """The Inngest apps of the registry as last read."""

    def changed(self) -> None:
        """What the driver hosts changed: tell the listeners."""
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # one listener's bug must not stop the others
                log.exception("a registry listener failed")

    async def refresh(self) -> bool:
        """Read the registry; host what it holds now (also kept in :attr:`apps`). Whether
        anything changed."""
        self.apps = stored_apps(await self.app.store.list_functions())
        hosted = {fid: fn.record() for fid, fn in self.driver.functions.items()}
        stored = {fn.id: fn.record() for a in self.apps for fn in a.functions}
        self.passes += 1
        if hosted == stored:
            return False
        for app_id in {f.app_id for f in self.driver.functions.values()} - {
            a.id for a in self.apps
        }:
            self.driver.remove_app(app_id)
        for app in self.apps:
            self.driver.replace_app(app)
        self.changed()
        return True

    async def run(self) -> None:
        """Refresh every interval until cancelled (a failed read is logged and retried)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception as exc:  # the store is away: next pass
                log.warning("reading the Inngest apps failed (%s); trying again", exc)

    def start(self) -> None:
        """Watch in the background of the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="inngest-watch")

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
