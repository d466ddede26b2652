"""The root of the error tree, apart so that the pure duration parser can raise
:class:`InvalidInputError` without importing the rest of :mod:`perdure.errors` (which needs the
parser for :class:`~perdure.errors.RetryAfterError`). Import these from :mod:`perdure.errors`."""

from __future__ import annotations


class PerdureError(Exception):
    """A perdure error."""

    code: str = "error"

    def __init__(self, message: str | None = None) -> None:
        if message is None:
            message = (type(self).__doc__ or "").strip().splitlines()[0]
        super().__init__(message)
        self.message = message


class InvalidInputError(PerdureError, ValueError):
    """The input is invalid."""

    code = "invalid_input"


PerdureError.__module__ = "perdure.errors"
InvalidInputError.__module__ = "perdure.errors"
