"""Whether the runtime traces, decided without importing OpenTelemetry unless it is wanted.

Tracing is an optional extra (``pip install 'perdure[otel]'``). The runtime holds a
:class:`~perdure.runtime.otel.RunTracer` or ``None``; every traced place in the runtime and the
Python driver checks that one attribute, so with tracing off nothing else happens on the hot
path and :mod:`opentelemetry` is never imported.

The setting (``App(..., tracing=...)``):

- ``None`` (the default): automatic. Tracing is on when, at the time the app opens,
  OpenTelemetry is already imported in the process and a real tracer provider is configured
  globally (``opentelemetry.trace.set_tracer_provider``); otherwise off (the app's runtime
  decides when it opens, so a provider configured after ``App()`` counts). An app never imports
  OpenTelemetry on its own in this mode.
- ``True``: on, with the global tracer provider (spans go nowhere until one is configured);
  :class:`~perdure.errors.InvalidInputError` from ``App()`` if the extra is not
  installed.
- a ``TracerProvider``: on, with that provider (tests use the SDK's in-memory exporter).
- ``False``: off.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from perdure.errors import InvalidInputError

if TYPE_CHECKING:
    from perdure.runtime.otel import RunTracer


def resolve(setting: Any) -> RunTracer | None:
    """The tracer for ``setting`` (see the module docs), or ``None`` when tracing is off."""
    if setting is False:
        return None
    if setting is None:
        if "opentelemetry.trace" not in sys.modules:
            return None
        try:
            from perdure.runtime import otel
        except ImportError:  # pragma: no cover - the api is there, the module imports it
            return None
        provider = otel.configured_provider()
        return None if provider is None else otel.RunTracer(provider)
    try:
        from perdure.runtime import otel
    except ImportError as exc:
        raise InvalidInputError(
            "tracing needs OpenTelemetry: pip install 'perdure[otel]' "
            f"(opentelemetry-api and opentelemetry-sdk; {exc})"
        ) from exc
    return otel.RunTracer(None if setting is True else setting)
