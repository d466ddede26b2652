"""Functions of apps on the official Inngest SDKs, as perdure hosts them.

Minimal version (the Inngest HTTP driver's needs); the sync helper's version replaces it: the
interface is the one agreed in the design (``InngestFunction``, ``InngestApp``,
``parse_register``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perdure.engine.backoff import RetryPolicy
from perdure.engine.flow.options import FlowControl
from perdure.errors import InvalidInputError
from perdure.functions import CronTrigger, EventTrigger, FunctionRecord, Trigger

DRIVER = "inngest"
DEFAULT_RETRIES = 4  # Inngest's server default when a function declares none


@dataclass(frozen=True)
class InngestFunction:
    """One function of an Inngest app (satisfies ``runtime.ports.HostedFunction``)."""

    id: str
    app_id: str
    name: str
    url: str
    triggers: tuple[Trigger, ...]
    retry: RetryPolicy
    max_crashes: int = 3
    flow: FlowControl = field(default_factory=FlowControl)
    raw: dict[str, Any] = field(default_factory=dict)

    def record(self) -> FunctionRecord:
        """The stored form: enough for any perdure process to rebuild the function."""
        return FunctionRecord(
            self.id,
            self.app_id,
            self.triggers,
            {
                "driver": DRIVER,
                "url": self.url,
                "app": self.app_id,
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
        """Rebuild from the store (``None``: not an Inngest function)."""
        config = record.config
        if config.get("driver") != DRIVER:
            return None
        return cls(
            id=record.id,
            app_id=str(config.get("app", record.app)),
            name=str(config.get("name", record.id)),
            url=str(config["url"]),
            triggers=record.triggers,
            retry=RetryPolicy(
                retries=int(config.get("retries", DEFAULT_RETRIES)),
                initial_delay=float(config.get("retry_initial_delay", 1.0)),
                max_delay=float(config.get("retry_max_delay", 300.0)),
                factor=float(config.get("retry_factor", 2.0)),
            ),
            max_crashes=int(config.get("max_crashes", 3)),
            flow=record.flow,
            raw=dict(config.get("inngest") or {}),
        )


@dataclass(frozen=True)
class InngestApp:
    """An app as it synced: its id, URL, framework, SDK and functions."""

    id: str
    url: str
    framework: str | None
    sdk: str | None
    functions: tuple[InngestFunction, ...]


def _key(payload: dict[str, Any], *names: str) -> Any:
    lowered = {k.lower(): v for k, v in payload.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def parse_function(app_id: str, raw: Any) -> InngestFunction:
    """One element of a registration's ``functions`` (the parts the driver needs)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise InvalidInputError("each function needs a non-empty string id")
    fid = raw["id"]
    try:
        step = raw["steps"]["step"]
        url = step["runtime"]["url"]
    except (KeyError, TypeError):
        raise InvalidInputError(f"function {fid!r}: steps.step.runtime.url is missing") from None
    if not isinstance(url, str) or not url:
        raise InvalidInputError(f"function {fid!r}: steps.step.runtime.url must be a URL")
    retries = DEFAULT_RETRIES
    declared = (step.get("retries") or {}).get("attempts") if isinstance(step, dict) else None
    if declared is not None:
        if isinstance(declared, bool) or not isinstance(declared, int) or declared < 0:
            raise InvalidInputError(f"function {fid!r}: retries.attempts must be >= 0")
        retries = min(declared, 20)
    triggers: list[Trigger] = []
    for t in raw.get("triggers") or []:
        if isinstance(t, dict) and isinstance(t.get("event"), str):
            triggers.append(EventTrigger(t["event"], t.get("expression")))
        elif isinstance(t, dict) and isinstance(t.get("cron"), str):
            triggers.append(CronTrigger(t["cron"]))
        else:
            raise InvalidInputError(f"function {fid!r}: a trigger needs an event or a cron")
    return InngestFunction(
        id=fid,
        app_id=app_id,
        name=str(raw.get("name") or fid),
        url=url,
        triggers=tuple(triggers),
        retry=RetryPolicy(retries=retries),
        raw=raw,
    )


def parse_register(payload: dict[str, Any]) -> InngestApp:
    """A ``/fn/register`` body (both key spellings) as an app; ``InvalidInputError`` if bad."""
    if not isinstance(payload, dict):
        raise InvalidInputError("the registration must be a JSON object")
    app_id = _key(payload, "appName")
    if not isinstance(app_id, str) or not app_id:
        raise InvalidInputError("appName must be a non-empty string")
    url = payload.get("url")
    if not isinstance(url, str) or not url:
        raise InvalidInputError("url must be a non-empty string")
    functions = payload.get("functions")
    if not isinstance(functions, list):
        raise InvalidInputError("functions must be an array")
    return InngestApp(
        id=app_id,
        url=url,
        framework=payload.get("framework"),
        sdk=payload.get("sdk"),
        functions=tuple(parse_function(app_id, f) for f in functions),
    )
