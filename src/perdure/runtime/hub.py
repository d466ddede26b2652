"""The hub: what the runtime tells the rest of the process, and how the process finds its
workers.

- **Finished runs** are announced here: by a local worker the moment its outcome commits, and by
  the store (another process, or a notification) on a best-effort basis. Result waiters
  (``handle.result()``) listen.
- **Local workers** attach themselves while they run, so that a client in the same process can
  create a run already leased to one of them, abort a cancelled run at once, and skip polling
  for runs a local worker will report itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from perdure.store.base import ClaimedRun

#: ``listener(run_id, status, output, error)``: a run reached a terminal state.
FinishedListener = Callable[[str, str, str | None, str | None], None]
#: ``listener(run_ids)``: the store says these runs may have ended.
ElsewhereListener = Callable[[Sequence[str]], None]


class LocalWorker(Protocol):
    """What the hub needs of a worker running in this process."""

    @property
    def id(self) -> str:
        """The worker's id (its lease owner name)."""
        ...

    @property
    def lease_seconds(self) -> float:
        """The lease it takes."""
        ...

    def holds(self, run_id: str) -> bool:
        """Whether it is executing the run now."""
        ...

    def reserve(self, function_id: str) -> bool:
        """Reserve a slot for a run of ``function_id`` about to be created leased to it."""
        ...

    def unreserve(self) -> None:
        """Give a reserved slot back."""
        ...

    def launch_started(self, claimed: ClaimedRun, asked_at: float) -> None:
        """Execute a run created already leased to it."""
        ...

    def abort_run(self, run_id: str) -> None:
        """Stop executing a run (it was cancelled)."""
        ...

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming and give the runs in flight back."""
        ...


class RunHub:
    """Announcements of finished runs, and the registry of this process's workers."""

    def __init__(self) -> None:
        self.workers: list[LocalWorker] = []
        self._finished: list[FinishedListener] = []
        self._elsewhere: list[ElsewhereListener] = []

    # ------------------------------------------------------------------ workers

    def attach(self, worker: LocalWorker) -> None:
        """A worker of this process started."""
        if worker not in self.workers:
            self.workers.append(worker)

    def detach(self, worker: LocalWorker) -> None:
        """A worker of this process stopped."""
        if worker in self.workers:
            self.workers.remove(worker)

    def reserve(self, function_id: str) -> LocalWorker | None:
        """A local worker with a slot reserved for a run of ``function_id``, if any."""
        return next((w for w in self.workers if w.reserve(function_id)), None)

    def held_locally(self, run_id: str) -> bool:
        """Whether a local worker is executing the run (it will announce its end)."""
        return any(w.holds(run_id) for w in self.workers)

    def abort(self, run_id: str) -> None:
        """The run was cancelled: local workers stop executing it."""
        for worker in self.workers:
            worker.abort_run(run_id)

    # ------------------------------------------------------------------ finished runs

    def on_finished(self, listener: FinishedListener) -> None:
        """Call ``listener`` for every run announced as finished."""
        self._finished.append(listener)

    def on_finished_elsewhere(self, listener: ElsewhereListener) -> None:
        """Call ``listener`` with run ids the store says may have ended."""
        self._elsewhere.append(listener)

    def finished(self, run_id: str, status: str, output: str | None, error: str | None) -> None:
        """A run reached a terminal state (known for sure: its outcome committed)."""
        for listener in self._finished:
            listener(run_id, status, output, error)

    def finished_elsewhere(self, run_ids: Sequence[str]) -> None:
        """The store reports runs that ended (another process, or a notification)."""
        for listener in self._elsewhere:
            listener(run_ids)
