"""Functions of apps on the official Inngest SDKs, as perdure hosts them.

An app syncs by sending its configuration to ``POST /fn/register`` (:func:`parse_register`).
Each function of it becomes an :class:`InngestFunction`: an ordinary perdure function (it
satisfies :class:`~perdure.runtime.ports.HostedFunction`) whose runs the Inngest driver
executes by calling the app's step URL. Its :meth:`InngestFunction.record` keeps everything in
the function's ``config`` (``driver: "inngest"``, the step URL, the app, the Inngest JSON as
registered, the retry policy, the flow control), so that any perdure process on the database
rebuilds it without the app: :meth:`InngestFunction.from_record`.

Payload rules (Inngest's, see ``shared/protocols/inngest.md`` §4.2): the app id is ``appName``
(TS) or ``appname`` (Python), compared case-insensitively like every top-level key; function ids
are the composite ``<app id>-<fn id>``; ``steps.step.retries.attempts`` is the number of
*retries* (default 4, at most 20); cron triggers may carry a ``TZ=Zone`` prefix; ``jitter`` is
accepted and not applied yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from perdure.engine.backoff import RetryPolicy
from perdure.engine.flow.options import FlowControl
from perdure.errors import InvalidInputError
from perdure.functions import CronTrigger, EventTrigger, FunctionRecord, Trigger
from perdure.inngest.options import flow_from_config

__all__ = [
    "DEFAULT_RETRIES",
    "DRIVER",
    "MAX_RETRIES",
    "InngestApp",
    "InngestFunction",
    "parse_function",
    "parse_register",
]

DRIVER = "inngest"
"""The ``config["driver"]`` of an Inngest function's record."""
DEFAULT_RETRIES = 4
"""Retries when the app declares none (Inngest's default: 5 attempts in all)."""
MAX_RETRIES = 20
"""The most retries Inngest allows (larger values are clamped, as Inngest does)."""
MAX_FUNCTIONS = 1000
MAX_TRIGGERS = 10
_MAX_ID = 200
_TZ_PREFIX = re.compile(r"^(?:CRON_)?TZ=(\S+)\s+(.+)$")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _text(where: str, value: Any, *, limit: int = 2048) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{where} must be a non-empty string, got {_kind(value)}")
    if len(value) > limit:
        raise InvalidInputError(f"{where} is longer than {limit} characters")
    return value


def _http_url(where: str, value: Any) -> str:
    url = _text(where, value)
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        raise InvalidInputError(f"{where} must be an absolute http(s) URL, got {url!r}")
    return url


@dataclass(frozen=True)
class InngestFunction:
    """One function of an Inngest app (satisfies ``runtime.ports.HostedFunction``)."""

    id: str
    app_id: str
    name: str
    url: str
    """The step URL the driver calls (``steps.step.runtime.url``, with ``fnId`` and
    ``stepId`` in its query; the driver replaces ``stepId``)."""
    triggers: tuple[Trigger, ...]
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(retries=DEFAULT_RETRIES))
    max_crashes: int = 10
    flow: FlowControl = field(default_factory=FlowControl)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    """The function's JSON as the app registered it."""
    app_url: str = ""
    """The app's serve URL (what a sync ``PUT`` goes to)."""

    def record(self) -> FunctionRecord:
        """The stored form: routes events and rebuilds this function in any process."""
        return FunctionRecord(
            id=self.id,
            app=self.app_id,
            triggers=self.triggers,
            config={
                "driver": DRIVER,
                "url": self.url,
                "app": self.app_id,
                "app_url": self.app_url,
                "name": self.name,
                "inngest": self.raw,
                "retries": self.retry.retries,
                "retry_initial_delay": self.retry.initial_delay,
                "retry_max_delay": self.retry.max_delay,
                "retry_factor": self.retry.factor,
                "max_crashes": self.max_crashes,
                **({"flow": self.flow.to_dict()} if not self.flow.empty else {}),
            },
        )

    @classmethod
    def from_record(cls, record: FunctionRecord) -> InngestFunction | None:
        """The function a record describes; ``None`` for a function of another driver (a
        native Python function)."""
        config = record.config
        if config.get("driver") != DRIVER:
            return None
        defaults = RetryPolicy()
        return cls(
            id=record.id,
            app_id=str(config.get("app", record.app)),
            name=str(config.get("name", record.id)),
            url=str(config["url"]),
            triggers=record.triggers,
            retry=RetryPolicy(
                retries=int(config.get("retries", DEFAULT_RETRIES)),
                initial_delay=float(config.get("retry_initial_delay", defaults.initial_delay)),
                max_delay=float(config.get("retry_max_delay", defaults.max_delay)),
                factor=float(config.get("retry_factor", defaults.factor)),
            ),
            max_crashes=int(config.get("max_crashes", 10)),
            flow=record.flow,
            raw=dict(config.get("inngest") or {}),
            app_url=str(config.get("app_url", "")),
        )


@dataclass(frozen=True)
class InngestApp:
    """An app as one ``/fn/register`` payload describes it."""

    id: str
    url: str
    framework: str | None
    sdk: str | None
    functions: tuple[InngestFunction, ...]
    app_version: str | None = None
    deploy_type: str | None = None


def _trigger(where: str, value: Any) -> Trigger:
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where} must be an object, got {_kind(value)}")
    try:
        if value.get("event") is not None:
            name = _text(f"{where}.event", value["event"], limit=255)
            expression = value.get("expression")
            if expression is not None and not isinstance(expression, str):
                raise InvalidInputError(f"{where}.expression must be a string")
            return EventTrigger(name, expression or None)
        if value.get("cron") is not None:
            expr = _text(f"{where}.cron", value["cron"], limit=255).strip()
            tz = "UTC"
            prefixed = _TZ_PREFIX.match(expr)
            if prefixed is not None:
                tz, expr = prefixed.group(1), prefixed.group(2).strip()
            return CronTrigger(expr, tz)
    except InvalidInputError as exc:
        if exc.message.startswith(where):
            raise
        raise InvalidInputError(f"{where}: {exc.message}") from None
    raise InvalidInputError(f"{where} must have 'event' or 'cron'")


def _retries(where: str, step: dict[str, Any]) -> int:
    retries = step.get("retries")
    if retries is None:
        return DEFAULT_RETRIES
    if not isinstance(retries, dict):
        raise InvalidInputError(f"{where}.retries must be an object, got {_kind(retries)}")
    attempts = retries.get("attempts")
    if attempts is None:
        return DEFAULT_RETRIES
    if isinstance(attempts, float) and attempts.is_integer():
        attempts = int(attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise InvalidInputError(
            f"{where}.retries.attempts must be an integer >= 0, got {attempts!r}"
        )
    return min(attempts, MAX_RETRIES)


def parse_function(
    value: Any,
    *,
    app_id: str,
    app_url: str = "",
    where: str = "function",
    retry_policy: RetryPolicy | None = None,
) -> InngestFunction:
    """One function of a ``/fn/register`` payload (InvalidInputError naming the field)."""
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where} must be an object, got {_kind(value)}")
    fid = _text(f"{where}.id", value.get("id"), limit=_MAX_ID)
    if any(ch.isspace() for ch in fid):
        raise InvalidInputError(f"{where}.id {fid!r} must not contain whitespace")
    where = f"function {fid!r}"
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidInputError(f"{where}: name must be a string, got {_kind(name)}")
    raw_triggers = value.get("triggers") or []
    if not isinstance(raw_triggers, list):
        raise InvalidInputError(f"{where}: triggers must be an array, got {_kind(raw_triggers)}")
    if len(raw_triggers) > MAX_TRIGGERS:
        raise InvalidInputError(
            f"{where}: at most {MAX_TRIGGERS} triggers, got {len(raw_triggers)}"
        )
    triggers = tuple(_trigger(f"{where}: triggers[{i}]", t) for i, t in enumerate(raw_triggers))
    steps = value.get("steps")
    if not isinstance(steps, dict) or not steps:
        raise InvalidInputError(f"{where}: steps must be an object with the step 'step'")
    step = steps.get("step", next(iter(steps.values())))
    if not isinstance(step, dict):
        raise InvalidInputError(f"{where}: steps.step must be an object, got {_kind(step)}")
    runtime = step.get("runtime")
    if not isinstance(runtime, dict):
        raise InvalidInputError(f"{where}: steps.step.runtime must be an object")
    kind = runtime.get("type", "http")
    if kind == "ws":
        raise InvalidInputError(
            f"{where}: the Connect transport (runtime type 'ws') is not supported; serve the "
            "app over HTTP"
        )
    if kind != "http":
        raise InvalidInputError(f"{where}: steps.step.runtime.type must be 'http', got {kind!r}")
    url = _http_url(f"{where}: steps.step.runtime.url", runtime.get("url"))
    policy = retry_policy or RetryPolicy()
    retry = RetryPolicy(
        retries=_retries(f"{where}: steps.step", step),
        initial_delay=policy.initial_delay,
        max_delay=policy.max_delay,
        factor=policy.factor,
    )
    try:
        flow = flow_from_config(value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc.message}") from None
    if flow.batch is not None and any(isinstance(t, CronTrigger) for t in triggers):
        raise InvalidInputError(f"{where}: batchEvents needs event triggers, not cron")
    return InngestFunction(
        id=fid,
        app_id=app_id,
        name=name or fid,
        url=url,
        triggers=triggers,
        retry=retry,
        max_crashes=10,
        flow=flow,
        raw=value,
        app_url=app_url,
    )


def _get(payload: dict[str, Any], *names: str) -> Any:
    """A top-level field, whatever the case of its name (Go decodes JSON case-insensitively;
    the SDKs spell ``appName``/``appname``, ``deployType``/``deploy_type``)."""
    wanted = {n.lower() for n in names}
    for key, value in payload.items():
        if key.lower() in wanted:
            return value
    return None


def _optional_text(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{where} must be a string, got {_kind(value)}")
    return value


def parse_register(payload: Any, *, retry_policy: RetryPolicy | None = None) -> InngestApp:
    """The app a ``/fn/register`` payload describes; InvalidInputError says precisely what is
    wrong (nothing is registered from an invalid payload)."""
    if not isinstance(payload, dict):
        raise InvalidInputError(f"the body must be a JSON object, got {_kind(payload)}")
    app_id = _get(payload, "appName", "app_name")
    if app_id is None or (isinstance(app_id, str) and not app_id.strip()):
        raise InvalidInputError("the app name ('appName' or 'appname') is missing or empty")
    app_id = _text("appName", app_id, limit=_MAX_ID)
    url = _http_url("url", _get(payload, "url"))
    framework = _optional_text("framework", _get(payload, "framework"))
    sdk = _optional_text("sdk", _get(payload, "sdk"))
    app_version = _optional_text("appVersion", _get(payload, "appVersion", "app_version"))
    deploy_type = _optional_text("deployType", _get(payload, "deployType", "deploy_type"))
    if deploy_type is not None and deploy_type not in ("ping", "connect"):
        raise InvalidInputError(f"deployType must be 'ping' or 'connect', got {deploy_type!r}")
    raw_functions = _get(payload, "functions")
    if raw_functions is None:
        raw_functions = []
    if not isinstance(raw_functions, list):
        raise InvalidInputError(f"functions must be an array, got {_kind(raw_functions)}")
    if len(raw_functions) > MAX_FUNCTIONS:
        raise InvalidInputError(
            f"an app has at most {MAX_FUNCTIONS} functions, got {len(raw_functions)}"
        )
    functions = tuple(
        parse_function(
            f, app_id=app_id, app_url=url, where=f"functions[{i}]", retry_policy=retry_policy
        )
        for i, f in enumerate(raw_functions)
    )
    seen: set[str] = set()
    for f in functions:
        if f.id in seen:
            raise InvalidInputError(f"function id {f.id!r} appears twice in the app")
        seen.add(f.id)
    return InngestApp(
        id=app_id,
        url=url,
        framework=framework,
        sdk=sdk,
        functions=functions,
        app_version=app_version,
        deploy_type=deploy_type,
    )
