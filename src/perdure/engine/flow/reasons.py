"""The ``reason`` a run records when flow control delays, skips or cancels it (JSON text in
the run's row, shown by ``GET /api/v1/runs/{id}`` and ``perdure runs show``)."""

from __future__ import annotations

from typing import Any

from perdure import serde

__all__ = ["reason"]


def reason(option: str, decision: str, message: str, **details: Any) -> str:
    """``{"option": "rate_limit", "decision": "skipped", "message": "...", **details}``:
    ``option`` is the option's name as on ``@app.function`` (``concurrency``, ``throttle``,
    ``rate_limit``, ``debounce``, ``batch``, ``singleton``, ``idempotency``, ``cancel_on``,
    ``timeouts``; and ``sync`` for a run cancelled because a re-sync removed its Inngest
    function); ``decision`` what it did (``delayed``, ``skipped``, ``cancelled``,
    ``debounced``, ``batched``); ``message`` one sentence for people; ``details`` such as the
    key, the limit, or until when."""
    return serde.dumps({"option": option, "decision": decision, "message": message, **details})
