"""Storage backends behind one protocol (:class:`~perdure.store.base.Store`)."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from perdure.clock import Clock
from perdure.environments import DEFAULT_ENV, check_env
from perdure.errors import InvalidInputError
from perdure.store.base import Store

DEFAULT_SQLITE_PATH = os.path.join(".perdure", "perdure.db")


def default_url() -> str:
    """``PERDURE_DATABASE_URL``, else a SQLite file under ``./.perdure/``."""
    return os.environ.get("PERDURE_DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"


def env_url(url: str, env: str) -> str:
    """The database URL of environment ``env`` on the database ``url`` (see
    :mod:`perdure.environments`): ``url`` itself for ``default``; on PostgreSQL the schema
    ``perdure_env_<env>`` (``<schema>_env_<env>`` when the URL names a ``schema``); on SQLite
    the file ``<name>.env-<env><suffix>`` beside the database file (``perdure.db`` ->
    ``perdure.env-staging.db``)."""
    check_env(env)
    if env == DEFAULT_ENV:
        return url
    if url.startswith("sqlite://"):
        head, sep, query = url.partition("?")
        folder, slash, name = head.rpartition("/")
        stem, dot, suffix = name.rpartition(".")
        if not dot or not stem:
            stem, suffix = name, ""
        else:
            suffix = "." + suffix
        return f"{folder}{slash}{stem}.env-{env}{suffix}{sep}{query}"
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        base = next((v for k, v in params if k == "schema"), "") or "public"
        schema = f"perdure_env_{env}" if base == "public" else f"{base}_env_{env}"
        if len(schema) > 63:
            raise InvalidInputError(
                f"the schema of environment {env!r} would be {schema!r}, over PostgreSQL's "
                "63 characters: use a shorter environment or schema name"
            )
        params = [(k, v) for k, v in params if k != "schema"] + [("schema", schema)]
        return urlunsplit(parts._replace(query=urlencode(params, quote_via=quote)))
    return url  # open_store refuses it with the reason


def open_store(url: str, *, clock: Clock | None = None) -> Store:
    """Build (not yet open) the store for a database URL.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (SQLite options as query
    parameters: ``?synchronous=NORMAL``), or ``postgresql://user@host:port/db``.
    """
    if url.startswith("sqlite://"):
        from perdure.store.sqlite import SqliteStore

        rest = url[len("sqlite://") :]
        if not rest.startswith("/"):
            raise InvalidInputError(f"SQLite URL must look like sqlite:///path.db, not {url!r}")
        path, _, query = rest[1:].partition("?")
        if not path or path == ":memory:":
            raise InvalidInputError(
                "SQLite needs a file path (in-memory databases cannot be shared between the "
                "writer and readers): sqlite:///path.db"
            )
        options = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        unknown = set(options) - {"synchronous", "busy_timeout"}
        if unknown:
            raise InvalidInputError(f"unknown SQLite URL option(s): {', '.join(sorted(unknown))}")
        try:
            busy_timeout = float(options.get("busy_timeout", "10"))
        except ValueError:
            busy_timeout = -1.0
        if not 0 <= busy_timeout < 1e6:
            raise InvalidInputError(
                f"busy_timeout must be a number of seconds, not {options['busy_timeout']!r}"
            )
        return SqliteStore(
            path,
            clock=clock,
            synchronous=options.get("synchronous", "FULL"),
            busy_timeout=busy_timeout,
        )
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from perdure.store.postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover
            raise InvalidInputError(f"PostgreSQL support is not available: {exc}") from None
        store: Store = PostgresStore(url, clock=clock)
        return store
    raise InvalidInputError(
        f"unsupported database URL {url!r}: use sqlite:///path.db or postgresql://..."
    )
