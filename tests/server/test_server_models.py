"""The request models agree with the engine's own rules, and refuse what could never work."""

from __future__ import annotations

import re
import sys

import pytest

import perdure
from perdure.engine.triggers import validate_event_name
from perdure.errors import InvalidInputError
from perdure.server import create_app
from perdure.server.models import event_name_pattern


def test_the_event_name_pattern_is_the_engine_rule_on_every_code_point() -> None:
    pattern = re.compile(event_name_pattern())
    disagree = []
    for cp in range(sys.maxunicode + 1):
        char = chr(cp)
        try:
            validate_event_name(char)
            valid = True
        except InvalidInputError:
            valid = False
        if valid != bool(pattern.fullmatch(char)):
            disagree.append(hex(cp))
    assert disagree == []


@pytest.mark.parametrize("token", ["tökén-0123456789", "a b", "tab\there", "new\nline"])
async def test_a_token_that_could_never_match_is_refused(sqlite_url: str, token: str) -> None:
    app = perdure.App("tokens", sqlite_url)
    with pytest.raises(InvalidInputError, match="printable ASCII"):
        create_app(app, dev=False, api_token=token)


async def test_a_malformed_allow_list_is_refused(sqlite_url: str) -> None:
    app = perdure.App("hosts", sqlite_url)
    for bad in (["http://x/"], [" , "], ["a b"], ["[::1"]):
        with pytest.raises(InvalidInputError, match="allowed host"):
            create_app(app, dev=True, api_token=None, allowed_hosts=bad)
