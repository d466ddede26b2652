"""The ``perdure`` command line, one module per command group.

Every option has a ``PERDURE_*`` environment twin, shown in each command's ``--help``
(``--database-url`` is ``PERDURE_DATABASE_URL``). Bad arguments print one line starting with
``error:`` and exit with status 2; other failures print one line and exit with status 1.
``PERDURE_DEBUG=1`` adds the traceback of unexpected errors. Database passwords are never
printed.

- :mod:`perdure.cli.root`: the group and :func:`main` (the ``perdure`` console script);
- :mod:`perdure.cli.serving`: ``dev``, ``server``, ``worker``;
- :mod:`perdure.cli.send`: ``send``; :mod:`perdure.cli.runs`: ``runs list|show|cancel``;
  :mod:`perdure.cli.functions`: ``functions``; :mod:`perdure.cli.admin`: ``migrate``,
  ``version``;
- :mod:`perdure.cli.options` (shared options, database URL rules, loading apps) and
  :mod:`perdure.cli.output` (tables, JSON, one-line messages, password redaction).
"""

from __future__ import annotations

from perdure.cli.root import cli, main

__all__ = ["cli", "main"]
