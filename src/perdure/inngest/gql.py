"""The GraphQL subset of the Inngest dev server at ``POST /v0/gql`` (protocol §11).

What the SDKs' test helpers and tools query, and nothing more: a hand-written parser for
GraphQL operations (fields, aliases, arguments, variables, inline fragments; no named fragments
or directives) and resolvers over perdure's query layer:

- ``run(runID)``: ``id status output startedAt endedAt function {id name slug}`` and
  ``trace(preview)``: the run's span (``name status stepType stepOp attempts outputID stepID
  spanID isRoot queuedAt startedAt endedAt metadata childrenSpans``) with one child span per
  recorded step in call order, named with the user's step id.
- ``runTrigger(runID) {payloads eventName IDs timestamp}``: the triggering events as JSON text.
- ``runTraceSpanOutputByID(outputID) {data input error {message name stack cause}}``: ``data``
  is the JSON text of the unwrapped output; ``error`` for a failed step or run.
- ``event(query: {eventId})`` / ``eventV2(id)``: an event and its runs (``functionRuns``,
  ``runs``); ``events(query)``: recent events.
- ``mutation cancelRun(runID)``.

An unknown run, event or output id is a GraphQL error (``errors`` with the field's ``path``),
with ``null`` for the field, as the Go server answers; a syntax error or an unknown field is
an error with no ``data``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from perdure.errors import RunNotFoundError
from perdure.inngest.state import sdk_error
from perdure.query import EventInfo
from perdure.types import RunInfo, RunStatus, StepInfo, iso_utc

__all__ = ["Field", "GqlError", "GraphQL", "parse"]


class GqlError(Exception):
    """A request error (syntax, unknown field, bad argument): no data."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _FieldError(Exception):
    """A field could not be resolved (unknown id): ``null`` and an error at its path."""


# ---------------------------------------------------------------------- parsing

_TOKEN = re.compile(
    r"""
    (?P<skip>[\s,\ufeff]+|\#[^\n]*)
  | (?P<spread>\.\.\.)
  | (?P<punct>[{}()\[\]:!$=@])
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Field:
    """A selected field: its response key, name, arguments (variables resolved) and selection."""

    key: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    selection: tuple[Field, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    kind: str
    name: str | None
    selection: tuple[Field, ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise GqlError(f"Syntax Error: unexpected character {text[pos]!r} at {pos}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        if kind != "skip":
            out.append((kind, m.group()))
    return out


class _Parser:
    def __init__(self, text: str, variables: Mapping[str, Any]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.variables = variables

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value) or (kind and tok[0] != kind):
            want = value or kind or "a token"
            got = "end of input" if tok is None else repr(tok[1])
            raise GqlError(f"Syntax Error: expected {want}, found {got}")
        self.i += 1
        return tok[1]

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1] == value and tok[0] != "string"

    def operations(self) -> list[Operation]:
        ops = []
        while self.peek() is not None:
            if self.at("{"):
                ops.append(Operation("query", None, self.selection()))
                continue
            kind = self.take(kind="name")
            if kind == "fragment":
                raise GqlError("named fragments are not supported by perdure's GraphQL")
            if kind not in ("query", "mutation"):
                raise GqlError(f"unsupported operation type {kind!r}")
            name = self.take(kind="name") if self.peek() and self.peek()[0] == "name" else None  # type: ignore[index]
            if self.at("("):
                self.variable_definitions()
            ops.append(Operation(kind, name, self.selection()))
        if not ops:
            raise GqlError("Syntax Error: the document has no operation")
        return ops

    def variable_definitions(self) -> None:
        self.take("(")
        while not self.at(")"):
            self.take("$")
            name = self.take(kind="name")
            self.take(":")
            self.type_ref()
            if self.at("="):
                self.take("=")
                default = self.value(const=True)
                if name not in self.variables:
                    self.variables = {**self.variables, name: default}
        self.take(")")

    def type_ref(self) -> None:
        if self.at("["):
            self.take("[")
            self.type_ref()
            self.take("]")
        else:
            self.take(kind="name")
        if self.at("!"):
            self.take("!")

    def selection(self) -> tuple[Field, ...]:
        self.take("{")
        fields: list[Field] = []
        while not self.at("}"):
            if self.at("..."):
                self.take("...")
                if self.at("on"):
                    self.take("on")
                    self.take(kind="name")
                    fields.extend(self.selection())  # one object type per field here
                    continue
                raise GqlError("named fragments are not supported by perdure's GraphQL")
            key = name = self.take(kind="name")
            if self.at(":"):
                self.take(":")
                name = self.take(kind="name")
            args: dict[str, Any] = {}
            if self.at("("):
                self.take("(")
                while not self.at(")"):
                    arg = self.take(kind="name")
                    self.take(":")
                    args[arg] = self.value()
                self.take(")")
            if self.at("@"):
                raise GqlError("directives are not supported by perdure's GraphQL")
            sub = self.selection() if self.at("{") else ()
            fields.append(Field(key, name, args, sub))
        self.take("}")
        if not fields:
            raise GqlError("Syntax Error: empty selection")
        return tuple(fields)

    def value(self, const: bool = False) -> Any:
        tok = self.peek()
        if tok is None:
            raise GqlError("Syntax Error: expected a value, found end of input")
        kind, text = tok
        if kind == "punct" and text == "$" and not const:
            self.take("$")
            name = self.take(kind="name")
            return self.variables.get(name)
        if kind == "string":
            self.i += 1
            return orjson.loads(text)
        if kind == "number":
            self.i += 1
            return orjson.loads(text)
        if text == "[":
            self.take("[")
            items = []
            while not self.at("]"):
                items.append(self.value(const))
            self.take("]")
            return items
        if text == "{":
            self.take("{")
            obj: dict[str, Any] = {}
            while not self.at("}"):
                key = self.take(kind="name")
                self.take(":")
                obj[key] = self.value(const)
            self.take("}")
            return obj
        if kind == "name":
            self.i += 1
            return {"true": True, "false": False, "null": None}.get(text, text)
        raise GqlError(f"Syntax Error: unexpected {text!r}")


def parse(
    query: str, variables: Mapping[str, Any] | None = None, operation: str | None = None
) -> Operation:
    """The operation to execute (``operation`` names it when the document has several)."""
    ops = _Parser(query, dict(variables or {})).operations()
    if operation:
        for op in ops:
            if op.name == operation:
                return op
        raise GqlError(f"Unknown operation named {operation!r}")
    if len(ops) > 1:
        raise GqlError("operationName is required when the document has several operations")
    return ops[0]


# ---------------------------------------------------------------------- objects

_RUN_STATUS = {
    RunStatus.QUEUED: "QUEUED",
    RunStatus.RUNNING: "RUNNING",
    RunStatus.SLEEPING: "RUNNING",
    RunStatus.WAITING: "RUNNING",
    RunStatus.COMPLETED: "COMPLETED",
    RunStatus.FAILED: "FAILED",
    RunStatus.CANCELLED: "CANCELLED",
}
_STEP_STATUS = {
    "completed": "COMPLETED",
    "failed": "FAILED",
    "retrying": "RUNNING",
    "running": "RUNNING",
    "sleeping": "WAITING",
    "waiting": "WAITING",
    "invoking": "WAITING",
}
_STEP_OP = {"run": "RUN", "sleep": "SLEEP", "wait": "WAIT_FOR_EVENT", "invoke": "INVOKE"}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso_utc(value)


def _run_status(run: RunInfo) -> str:
    return _RUN_STATUS.get(run.status, str(run.status).upper())


def run_error_body(run: RunInfo) -> Any:
    """A failed run's output as Inngest shows it: the SDK's error body, else perdure's error."""
    if run.error is None:
        return None
    return sdk_error(_json(run.error)) if "inngest" in run.error else run.error


def _run_output(run: RunInfo) -> str | None:
    if run.status is RunStatus.COMPLETED:
        return _json(run.output)
    if run.status is RunStatus.FAILED:
        return _json(run_error_body(run))
    return None


def _error_object(error: dict[str, Any] | None) -> dict[str, Any] | None:
    if error is None:
        return None
    sdk = sdk_error(_json(error))
    stack = sdk.get("stack")
    cause = sdk.get("cause")
    return {
        "message": str(sdk.get("message") or ""),
        "name": str(sdk.get("name") or "Error"),
        "stack": stack if isinstance(stack, str) else None,
        "cause": None if cause is None else _json(cause),
    }


class GraphQL:
    """Executes the GraphQL subset over ``app`` (its query layer and ``cancel``);
    ``step_names(key)`` names a step's span (the user's step id for a hashed one)."""

    def __init__(self, app: Any, step_names: Callable[[str], str] | None = None) -> None:
        self.app = app
        self._name = step_names or (lambda key: key)
        self._roots: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "run": self._run,
            "functionRun": self._function_run,
            "runTrigger": self._run_trigger,
            "runTraceSpanOutputByID": self._span_output,
            "event": self._event,
            "eventV2": self._event_v2,
            "events": self._events,
        }
        self._mutations: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "cancelRun": self._cancel,
        }

    async def execute(
        self, query: Any, variables: Any = None, operation: Any = None
    ) -> dict[str, Any]:
        """The response document for one request body's fields."""
        try:
            if not isinstance(query, str) or not query.strip():
                raise GqlError("the request has no query")
            if variables is not None and not isinstance(variables, dict):
                raise GqlError("variables must be an object")
            op = parse(query, variables, operation if isinstance(operation, str) else None)
        except GqlError as exc:
            return {"errors": [{"message": exc.message}]}
        roots = self._mutations if op.kind == "mutation" else self._roots
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for f in op.selection:
            if f.name == "__typename":
                data[f.key] = "Mutation" if op.kind == "mutation" else "Query"
                continue
            resolver = roots.get(f.name)
            if resolver is None:
                kind = "Mutation" if op.kind == "mutation" else "Query"
                return {"errors": [{"message": f'Cannot query field "{f.name}" on type "{kind}".'}]}
            try:
                value = await resolver(f.args)
                data[f.key] = _project(value, f, [f.key])
            except _FieldError as exc:
                data[f.key] = None
                errors.append({"message": str(exc), "path": [f.key]})
            except GqlError as exc:
                return {"errors": [{"message": exc.message, "path": [f.key]}]}
        out: dict[str, Any] = {"data": data}
        if errors:
            out["errors"] = errors
        return out

    # ------------------------------------------------------------------ resolvers

    async def _get_run(self, args: dict[str, Any], name: str = "runID") -> RunInfo:
        run_id = args.get(name)
        if not isinstance(run_id, str) or not run_id:
            raise GqlError(f"argument {name!r} (a string) is required")
        try:
            info: RunInfo = await self.app.query.get_run(run_id, steps=True)
        except RunNotFoundError:
            raise _FieldError(f"run not found: {run_id}") from None
        return info

    async def _run(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._run_object(await self._get_run(args))

    async def _function_run(self, args: dict[str, Any]) -> dict[str, Any]:
        query = args.get("query")
        run_id = query.get("functionRunId") if isinstance(query, dict) else None
        return self._run_object(await self._get_run({"runID": run_id}))

    async def _cancel(self, args: dict[str, Any]) -> dict[str, Any]:
        run = await self._get_run(args)
        await self.app.cancel(run.id)
        return self._run_object(await self._get_run(args))

    def _run_object(self, run: RunInfo) -> dict[str, Any]:
        fn = {"id": run.function_id, "name": run.function_id, "slug": run.function_id}
        return {
            "__typename": "FunctionRunV2",
            "id": run.id,
            "status": _run_status(run),
            "output": _run_output(run),
            "queuedAt": _iso(run.created_at),
            "startedAt": _iso(run.started_at),
            "endedAt": _iso(run.ended_at),
            "eventName": run.event.name,
            "functionID": run.function_id,
            "function": fn,
            "trace": self._trace(run),
        }

    def _trace(self, run: RunInfo) -> dict[str, Any]:
        children = [self._step_span(run, s) for s in sorted(run.steps, key=lambda s: s.position)]
        return {
            "__typename": "RunTraceSpan",
            "name": run.function_id,
            "status": _run_status(run),
            "stepType": "",
            "stepOp": None,
            "stepID": None,
            "spanID": run.id,
            "traceID": run.id,
            "runID": run.id,
            "isRoot": True,
            "attempts": run.attempt,
            "outputID": f"run:{run.id}",
            "queuedAt": _iso(run.created_at),
            "startedAt": _iso(run.started_at),
            "endedAt": _iso(run.ended_at),
            "duration": None,
            "metadata": [],
            "childrenSpans": children,
        }

    def _step_span(self, run: RunInfo, step: StepInfo) -> dict[str, Any]:
        op = _STEP_OP.get(step.kind, step.kind.upper())
        return {
            "__typename": "RunTraceSpan",
            "name": step.name or self._name(step.id),
            "status": _STEP_STATUS.get(step.status, step.status.upper()),
            "stepType": op,
            "stepOp": op,
            "stepID": step.id,
            "spanID": f"{run.id}:{step.position}",
            "traceID": run.id,
            "runID": run.id,
            "isRoot": False,
            "attempts": step.attempts,
            "outputID": f"step:{run.id}:{step.id}",
            "queuedAt": _iso(step.started_at),
            "startedAt": _iso(step.started_at),
            "endedAt": _iso(step.ended_at),
            "duration": None,
            "metadata": [],
            "childrenSpans": [],
        }

    async def _run_trigger(self, args: dict[str, Any]) -> dict[str, Any]:
        run = await self._get_run(args)
        events = run.events if run.events is not None else [run.event]
        payloads = [_json(e.to_dict()) for e in events]
        return {
            "__typename": "RunTraceTrigger",
            "payloads": payloads,
            "eventName": run.event.name,
            "IDs": [e.id for e in events],
            "timestamp": _iso(run.created_at),
            "isBatch": run.events is not None,
            "batchID": None,
            "cron": None,
        }

    async def _span_output(self, args: dict[str, Any]) -> dict[str, Any]:
        output_id = args.get("outputID")
        if not isinstance(output_id, str):
            raise GqlError("argument 'outputID' (a string) is required")
        kind, _, rest = output_id.partition(":")
        if kind == "run":
            run = await self._get_run({"runID": rest})
            failed = run.status is RunStatus.FAILED
            return _output(None if failed else _run_output(run), run.error if failed else None)
        if kind == "step":
            run_id, _, key = rest.partition(":")
            run = await self._get_run({"runID": run_id})
            for step in run.steps:
                if step.id == key:
                    done = step.status == "completed"
                    return _output(_json(step.output) if done else None, step.error)
        raise _FieldError(f"output not found: {output_id}")

    async def _find_event(self, event_id: Any) -> EventInfo:
        if not isinstance(event_id, str) or not event_id:
            raise GqlError("an event id (a string) is required")
        info: EventInfo | None = await self.app.query.get_event(event_id)
        if info is None:
            raise _FieldError(f"event not found: {event_id}")
        return info

    async def _event_runs(self, info: EventInfo) -> list[dict[str, Any]]:
        runs = []
        for run_id in info.run_ids:
            try:
                run = await self.app.query.get_run(run_id, steps=False)
            except RunNotFoundError:
                continue
            runs.append(
                {
                    "__typename": "FunctionRun",
                    "id": run.id,
                    "status": _run_status(run),
                    "output": _run_output(run),
                    "startedAt": _iso(run.started_at),
                    "endedAt": _iso(run.ended_at),
                    "function": {"id": run.function_id, "name": run.function_id},
                }
            )
        return runs

    def _event_object(self, info: EventInfo, runs: list[dict[str, Any]]) -> dict[str, Any]:
        event = info.event
        return {
            "__typename": "Event",
            "id": event.get("id"),
            "name": event.get("name"),
            "payload": _json(event.get("data", {})),
            "raw": _json(event),
            "createdAt": _iso(info.received_at),
            "receivedAt": _iso(info.received_at),
            "occurredAt": event.get("ts"),
            "idempotencyKey": event.get("id"),
            "functionRuns": runs,
            "runs": runs,
            "status": "COMPLETED" if runs else "NO_FUNCTIONS",
        }

    async def _event(self, args: dict[str, Any]) -> dict[str, Any]:
        query = args.get("query")
        event_id = query.get("eventId") if isinstance(query, dict) else None
        info = await self._find_event(event_id)
        return self._event_object(info, await self._event_runs(info))

    async def _event_v2(self, args: dict[str, Any]) -> dict[str, Any]:
        info = await self._find_event(args.get("id"))
        return self._event_object(info, await self._event_runs(info))

    async def _events(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        query = args.get("query")
        query = query if isinstance(query, dict) else {}
        name = query.get("name") if isinstance(query.get("name"), str) else None
        page = await self.app.query.list_events(name=name, before=None, limit=100)
        return [self._event_object(i, []) for i in page.items]


def _output(data: str | None, error: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "__typename": "RunTraceSpanOutput",
        "data": data,
        "input": None,
        "error": _error_object(error),
    }


def _project(value: Any, f: Field, path: list[str]) -> Any:
    """``value`` reduced to the selection of ``f`` (an unknown field is a request error)."""
    if not f.selection:
        if isinstance(value, dict | list) and f.name not in ("payloads", "IDs", "metadata"):
            raise GqlError(f'Field "{f.name}" of type object must have a selection of subfields.')
        return value
    if value is None:
        return None
    if isinstance(value, list):
        return [_project(v, f, path) for v in value]
    if not isinstance(value, dict):
        raise GqlError(f'Field "{f.name}" must not have a selection since it has no subfields.')
    out: dict[str, Any] = {}
    for sub in f.selection:
        if sub.name not in value:
            kind = value.get("__typename", "Object")
            raise GqlError(f'Cannot query field "{sub.name}" on type "{kind}".')
        out[sub.key] = _project(value[sub.name], sub, [*path, sub.key])
    return out
