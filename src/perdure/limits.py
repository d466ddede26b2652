"""Payload limits."""

from __future__ import annotations

from dataclasses import dataclass

_KiB = 1024
_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Payload limits, in bytes of JSON. Over a limit: :class:`~perdure.errors.
    PayloadTooLargeError` (HTTP 413) and nothing is written."""

    event: int = 512 * _KiB
    run_input: int = 4 * _MiB
    run_output: int = 4 * _MiB
    step_output: int = 4 * _MiB
