"""The request and response models of keys, sessions and the audit trail
(:mod:`perdure.server.access_api`): they validate the requests and describe the answers in
the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from perdure.keys import SCOPES
from perdure.server.models import NO_NUL, _Page

Scope = Literal["admin", "read", "ingest", "worker"]
assert set(Scope.__args__) == set(SCOPES)  # type: ignore[attr-defined]

MAX_EXPIRES = 100 * 365 * 86400
NAME = r"^[^\x00]*[^\s\x00][^\x00]*$"
"""A key's name: not only spaces, no NUL."""


class KeyIn(BaseModel):
    """The body of ``POST /api/v1/keys``."""

    model_config = ConfigDict(extra="forbid", strict=True, title="KeyIn")

    name: Annotated[str, Field(min_length=1, max_length=200, pattern=NAME)] = Field(
        description="What the key is for (shown in lists and the audit trail)."
    )
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=4)] = Field(
        description="admin (everything), read, ingest (send events), worker (read, send "
        "events, start runs, register functions)."
    )
    expires_in: Annotated[int, Field(gt=0, le=MAX_EXPIRES)] | None = Field(
        default=None, description="Seconds until the key stops working (none: never)."
    )

    @field_validator("expires_in", mode="before")
    @classmethod
    def _integral(cls, value: Any) -> Any:
        # JSON Schema's integers include 1.0: an integral number is an integer
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class Login(BaseModel):
    """The body of ``POST /auth/login``."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Login")

    token: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)] = Field(
        description="A key's token (from perdure keys create or POST /api/v1/keys)."
    )


class AuditQuery(_Page):
    """The query of ``GET /api/v1/audit``."""

    run_id: Annotated[str, Field(max_length=200, pattern=NO_NUL)] | None = Field(
        default=None, description="Only the entries of this run."
    )
    cursor: Annotated[str, Field(pattern=r"^[0-9]{1,18}$")] | None = Field(
        default=None, description="The next_cursor of the previous page."
    )


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Key(_Open):
    """An API key (never its token)."""

    id: str
    name: str
    scopes: list[str]
    prefix: str = Field(description="The token's first characters, to tell keys apart.")
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="To the minute.")
    revoked_at: datetime | None


class KeyList(_Open):
    """The keys of the caller's environment, newest first."""

    keys: list[Key]


class CreatedKey(_Open):
    """A new key and its token: shown only in this answer."""

    key: Key
    token: str


class AuditEntry(_Open):
    """Who did what, when."""

    seq: int
    at: datetime
    actor: str = Field(description="key:<id>, token, dev, cli:<user>@<host> or app:<name>.")
    action: str = Field(
        description="cancel, rerun, replay, rerun_of, replay_of, pause, resume, key.create, "
        "key.revoke."
    )
    run_id: str | None
    target: str | None = Field(description="The other run, the function or the key.")
    detail: dict[str, Any] | None


class AuditPage(_Open):
    """A page of the audit trail, newest first."""

    entries: list[AuditEntry]
    next_cursor: str | None


class SessionKey(_Open):
    """The key of a session."""

    id: str
    name: str | None
    scopes: list[str]


class Session(_Open):
    """Who the request is: its environment and scopes, and the CSRF token a browser sends
    back in X-CSRF-Token (null without a session)."""

    auth: bool = Field(description="False on perdure dev (no authentication).")
    env: str
    key: SessionKey | None
    scopes: list[str]
    csrf: str | None


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (KeyList, CreatedKey, Key, AuditPage, Session)
"""The models of this module the OpenAPI document's responses refer to."""
