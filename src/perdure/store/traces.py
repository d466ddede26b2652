"""The part of the storage protocol that keeps a run's trace context (OpenTelemetry).

A run's ``trace`` column holds JSON text written by the runtime's tracing
(:mod:`perdure.runtime.tracing`): the W3C ``traceparent`` of the run's first attempt span and
of its latest one, so an attempt on any worker can link to them. The store treats it as an
opaque string: nothing else reads it, and nothing is written while tracing is off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

TRACE_KEY: Final = "trace"
"""The key of a run's input event under which the caller's trace context travels (the W3C
``traceparent``/``tracestate`` carrier), next to ``id``, ``name``, ``data``, ``user``, ``ts``;
like ``schedule``, it is not part of :class:`~perdure.types.Event`."""


class TraceStore(Protocol):
    """Where the trace context of runs is kept."""

    async def set_run_trace(self, run_id: str, token: int, trace: str) -> bool:
        """Record ``trace`` for the run while ``token`` is its lease token (a worker whose
        lease was taken over writes nothing); whether it was written."""
        ...

    async def run_traces(self, run_ids: Sequence[str]) -> dict[str, str]:
        """The recorded trace of each of ``run_ids`` that has one."""
        ...
