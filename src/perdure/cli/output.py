"""What the CLI prints: JSON, tables, one-line messages, and database URLs without secrets."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import click
import orjson

from perdure.types import RunInfo

_STATUS_COLORS = {
    "completed": "green",
    "failed": "red",
    "cancelled": "bright_black",
    "running": "cyan",
}
_PASSWORD_PARAM = re.compile(r"(?i)([?&]password=)[^&#]*")
_SECRETS: dict[str, str] = {}
"""Text that must never be printed, and what is printed instead (see :func:`hide_url`)."""


# ---------------------------------------------------------------------- secrets


def _parts(url: str) -> tuple[str, str, str, str]:
    """``url`` as ``(scheme://, user information with its @ or "", the rest of the
    authority, the path and query)``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", "", "", url
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    at = authority.rfind("@") + 1
    return scheme + sep, authority[:at], authority[at:], tail


def _redact_userinfo(userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    return f"{user}:***@" if colon else userinfo


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (in the user information and in a
    ``password=`` query parameter): ``postgresql://user:***@host/db``."""
    scheme, userinfo, host, tail = _parts(url)
    tail = _PASSWORD_PARAM.sub(lambda m: m.group(1) + "***", tail)
    return scheme + _redact_userinfo(userinfo) + host + tail


def hide_url(url: str) -> None:
    """Remember ``url``'s secrets: :func:`scrub` takes them out of every message printed."""
    redacted = redact_url(url)
    if redacted == url:
        return
    _SECRETS[url] = redacted
    _, userinfo, _, tail = _parts(url)
    if _redact_userinfo(userinfo) != userinfo:
        _SECRETS[userinfo] = _redact_userinfo(userinfo)
    for match in _PASSWORD_PARAM.finditer(tail):
        _SECRETS[match.group(0)] = match.group(1) + "***"


def scrub(text: str) -> str:
    """``text`` without the secrets :func:`hide_url` was told about."""
    for raw in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(raw, _SECRETS[raw])
    return text


def one_line(text: str) -> str:
    """A message on one line (a driver's message may span several), without secrets."""
    parts = [p.strip() for p in scrub(text).splitlines() if p.strip()]
    out = ""
    for part in parts:
        if not out:
            out = part
        elif out[-1] in ".:;,!?":
            out = f"{out} {part}"
        else:
            out = f"{out}; {part}"
    return out


# ---------------------------------------------------------------------- values


def dumps(value: Any, *, pretty: bool = False) -> str:
    """``value`` as JSON text."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(value, option=option).decode()


def short(value: Any, width: int = 60) -> str:
    """``value`` as JSON, cut to ``width`` characters."""
    text = dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def duration(run: RunInfo) -> str:
    """How long a run took (``...``: still going; ``-``: not started)."""
    if run.started_at is None:
        return "-"
    end = run.ended_at
    if end is None:
        return "..."
    seconds = (end - run.started_at).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.1f}m"


def status(value: str) -> str:
    """A run or step status, coloured (unless ``NO_COLOR`` or not a terminal)."""
    return click.style(value, fg=_STATUS_COLORS.get(value))


def error_text(error: dict[str, Any]) -> str:
    """A recorded error as ``Type: message``."""
    return f"{error.get('type')}: {error.get('message')}"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], status_column: int | None = None
) -> None:
    """Print aligned columns under bold headers; ``status_column`` is coloured."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    click.echo(click.style(line.rstrip(), bold=True))
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        if status_column is not None:
            cells[status_column] = (
                status(row[status_column]) + cells[status_column][len(row[status_column]) :]
            )
        click.echo("  ".join(cells).rstrip())
