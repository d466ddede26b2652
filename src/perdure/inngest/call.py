"""The call request perdure sends an Inngest SDK to run (part of) a function (protocol §6.1-6.3).

Pure: no I/O. A *discovery* call (``stepId=step``) runs the function from the top with the
memoized steps; a *targeted* call (``stepId=<hashed id>``) runs only that planned step.

The body holds every field the SDKs read: ``event``, ``events``, ``steps``, ``ctx`` (``run_id``,
``attempt``, ``max_attempts``, ``stack``, ``disable_immediate_execution``, ``use_api``), the
request ``version`` and ``use_api``. It is sent with sorted keys and no whitespace (the JCS
form the SDKs verify signatures over; the numbers perdure stores are already canonical).

``ctx.fn_id`` and ``ctx.qi_id`` are sent when the server serves the checkpoint routes (the TS
SDK's checkpointing turns on with them).

Large payloads (§6.3), decided as the Go server does: when the memoized steps are over
:data:`MAX_INLINE_STATE` they are left out (``steps: {}``), and when the whole body is still
over :data:`MAX_REQUEST_BODY` the events are left out too (``events: []``; ``event`` is always
sent). Either way ``use_api`` is true, at the top level (read by the Python SDK) and in ``ctx``
(read by the TS SDK), and the SDK fetches both from ``GET /v0/runs/{run_id}/batch`` and
``GET /v0/runs/{run_id}/actions`` (:mod:`perdure.inngest.run_state`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

DISCOVERY = "step"
#: The name Inngest gives the event that starts an invoked run (perdure's own is renamed).
INNGEST_INVOKED = "inngest/function.invoked"
PERDURE_INVOKED = "perdure/function.invoked"
#: Request version perdure sends before an SDK told it which it speaks ("SDK decides").
UNKNOWN_VERSION = -1
#: The largest call body sent with the run's state inline (Inngest's ``MaxSDKRequestBodySize``).
MAX_REQUEST_BODY = 4 * 1024 * 1024
#: Memoized steps over this many bytes of JSON are never inlined (room for the rest of the body).
MAX_INLINE_STATE = MAX_REQUEST_BODY - 1024


def sdk_event(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored event as the SDKs require it: ``id``, ``name``, ``data``, ``user``, ``ts``."""
    out = dict(stored)
    if out.get("name") == PERDURE_INVOKED:
        out["name"] = INNGEST_INVOKED
    if not isinstance(out.get("data"), dict):
        out["data"] = {}
    if not isinstance(out.get("user"), dict):
        out["user"] = {}
    out.setdefault("id", "")
    out.setdefault("ts", 0)
    return out


@dataclass(frozen=True, slots=True)
class CallRequest:
    """One call: the URL (with its ``stepId``), headers and body."""

    url: str
    headers: dict[str, str]
    body: bytes


def step_url(url: str, step_id: str) -> str:
    """The function's step URL with its ``stepId`` query parameter set to ``step_id`` (the
    other parameters kept as they are)."""
    head, tail = _split_url(url)
    return f"{head}stepId={quote(step_id, safe='')}{tail}"


@functools.lru_cache(maxsize=4096)
def _split_url(url: str) -> tuple[str, str]:
    """``url`` as the text before and after its ``stepId`` parameter's place (parsed once per
    function URL: parsing it for every call cost more than building the body)."""
    base, _, fragment = url.partition("#")
    path, _, query = base.partition("?")
    kept = [p for p in query.split("&") if p and p.split("=", 1)[0] != "stepId"]
    head = f"{path}?{'&'.join(kept)}&" if kept else f"{path}?"
    return head, f"#{fragment}" if fragment else ""


def build_call(
    *,
    url: str,
    step_id: str,
    run_id: str,
    events: Sequence[Mapping[str, Any]],
    steps: Mapping[str, Any],
    stack: Sequence[str],
    attempt: int,
    max_attempts: int,
    disable_immediate_execution: bool,
    version: int,
    server_kind: str,
    fn_id: str | None = None,
    qi_id: str | None = None,
) -> CallRequest:
    """The call request for ``step_id`` (:data:`DISCOVERY` or a hashed step id).

    ``fn_id`` and ``qi_id`` (the function's UUID, the claim's queue item) turn the TS SDK's
    async checkpointing on (:mod:`perdure.inngest.checkpoint`); without them it is off."""
    sent = [sdk_event(e) for e in events]
    body: dict[str, Any] = {
        "event": sent[0] if sent else sdk_event({}),
        "events": sent,
        "steps": dict(steps),
        "defers": {},
        "ctx": {
            "run_id": run_id,
            "env": "",
            "step_id": DISCOVERY,
            "attempt": attempt,
            "max_attempts": max_attempts,
            "stack": {"stack": list(stack), "current": len(stack)},
            "disable_immediate_execution": disable_immediate_execution,
            "use_api": False,
        },
        "version": version,
        "use_api": False,
    }
    if fn_id is not None and qi_id is not None:
        body["ctx"]["fn_id"] = fn_id
        body["ctx"]["qi_id"] = qi_id
    encoded = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    if len(encoded) > MAX_INLINE_STATE:
        encoded = _trimmed(body, encoded)
    headers = {
        "content-type": "application/json",
        "x-inngest-server-kind": server_kind,
        "x-inngest-req-version": str(version),
        "x-run-id": run_id,
        "x-inngest-step-id": step_id,
    }
    return CallRequest(step_url(url, step_id), headers, encoded)


def _trimmed(body: dict[str, Any], encoded: bytes) -> bytes:
    """``body`` (encoded: ``encoded``) with the state the SDK must fetch left out (see the
    module docstring); ``encoded`` itself when everything fits."""
    if len(orjson.dumps(body["steps"])) > MAX_INLINE_STATE:
        body["steps"] = {}
        body["use_api"] = body["ctx"]["use_api"] = True
        encoded = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    if len(encoded) > MAX_REQUEST_BODY:
        body["steps"], body["events"] = {}, []
        body["use_api"] = body["ctx"]["use_api"] = True
        encoded = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return encoded
