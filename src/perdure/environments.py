"""Environments: named, isolated namespaces on one database (like Temporal namespaces and
Inngest environments).

Everything an environment holds (functions, runs, steps, events, schedules, keys, sessions,
audit) lives in its own tables: a PostgreSQL schema of its own, or a SQLite file of its own
beside the database file (:func:`perdure.store.env_url` maps a database URL and an environment
to that place). No query can therefore reach across environments, whatever its filters, and
the hot path pays nothing for the isolation (no extra column or predicate in any claim).

The environment named :data:`DEFAULT_ENV` is the database URL itself, so a database written
before environments existed is the ``default`` environment, unchanged.

An app picks its environment with ``App(..., env=...)``, else ``PERDURE_ENV``, else
``default``; the CLI with ``perdure --env NAME`` (``PERDURE_ENV``). A key belongs to the
environment whose tables hold it (see :mod:`perdure.keys`).
"""

from __future__ import annotations

import os
import re

from perdure.errors import InvalidInputError

DEFAULT_ENV = "default"
"""The environment of a database URL as given."""

ENV_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
"""Environment names: a lower-case letter, then up to 39 lower-case letters, digits or ``_``
(so that a name maps to a PostgreSQL schema name and a file name unchanged)."""


def check_env(name: object) -> str:
    """``name`` if it is a valid environment name, else :class:`InvalidInputError`."""
    if not isinstance(name, str) or not ENV_NAME.match(name):
        raise InvalidInputError(
            f"invalid environment name {name!r}: use a lower-case letter, then up to 39 "
            "lower-case letters, digits or underscores (e.g. 'staging', 'pr_142')"
        )
    return name


def env_from_environment() -> str:
    """``PERDURE_ENV`` (validated), else :data:`DEFAULT_ENV`."""
    return check_env(os.environ.get("PERDURE_ENV") or DEFAULT_ENV)
