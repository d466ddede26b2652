"""The commit semantics both backends implement, written once.

- **Fencing.** A write of a worker names the lease token it claimed the run with; it applies only
  while the run is ``running`` with that token (each backend checks it in its own dialect).
- **Write after outcome.** In one ``commit(ops)``, an op that follows an outcome of the same run
  and token is rejected without being looked at: the run ended (or was handed back) first.
  Across commits the fence does the same (an ended run is no longer ``running``).
- **Errors the store records itself** (a cancellation, an invoke timeout) are the typed
  descriptors of :mod:`perdure.engine.failures`, encoded once here.
- **Event ids deduplicate** within :data:`EVENT_DEDUPE_SECONDS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from perdure.engine.failures import INVOKE_TIMEOUT, RUN_CANCELLED
from perdure.store.base import StepWrite, WriteOp

EVENT_DEDUPE_SECONDS: Final = 24 * 3600.0
"""How long an event id is remembered: a second event with the same id inside this window is a
duplicate (not stored, starts nothing)."""

CANCELLED_ERROR: Final = RUN_CANCELLED.to_json()
"""The error recorded on a cancelled run and on its parent's ``invoke`` step."""

INVOKE_TIMEOUT_ERROR: Final = INVOKE_TIMEOUT.to_json()
"""The error recorded on an ``invoke`` step whose child did not end before the deadline."""

DONE_STATUSES: Final = ("completed", "failed")
"""Step statuses that end a step (its ``ended_at`` is set)."""


def live_ops(ops: Sequence[WriteOp]) -> list[bool]:
    """Per op: ``False`` if it follows an outcome of the same run and lease token in ``ops``
    (the write-after-outcome rule), else ``True`` (it still has to pass the fence)."""
    live = [True] * len(ops)
    if len(ops) == 1:
        return live
    ended: set[tuple[str, int]] | None = None  # no set, no tuples until the first outcome
    for i, op in enumerate(ops):
        if ended is not None and (op.run_id, op.token) in ended:
            live[i] = False
        elif type(op) is not StepWrite:
            if ended is None:
                ended = set()
            ended.add((op.run_id, op.token))
    return live
