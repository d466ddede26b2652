"""signing.py and auth.py, checked against the official Python SDK's own functions: its request
verification (which re-canonicalizes the body with the ``jcs`` package), its response signing,
its bearer hash."""

from __future__ import annotations

import json
import math
from typing import Any

import jcs  # type: ignore[import-untyped]  # the canonicalizer the Python SDK uses
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from inngest._internal import net, server_lib, transforms

from perdure.inngest import signing
from perdure.inngest.auth import InngestKeys, ResponseSignatureError

KEY = "signkey-prod-" + "ab" * 32
OTHER = "signkey-prod-" + "cd" * 32
NOW = 1_800_000_000.0
CLOUD = server_lib.ServerKind.CLOUD

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


def sdk_sig(body: bytes, key: str, ts: int) -> str:
    """The SDK's response signature (it returns an error value instead of raising)."""
    sig = net.sign_response(body, key, ts)
    assert isinstance(sig, str)
    return sig


def _no_surrogates(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_json_is_what_the_sdk_computes(value: Any) -> None:
    if not _no_surrogates(value):
        with pytest.raises(ValueError):
            signing.canonical_json(value)
        return
    ours = signing.canonical_json(value)
    assert ours == jcs.canonicalize(value)
    # the SDK re-canonicalizes what it receives: a canonical body is its own canonical form
    assert transforms.canonicalize(ours) == ours
    assert signing.canonicalize(ours) == ours


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_are_ecmascript_doubles(x: float) -> None:
    text = signing.canonical_json(x).decode()
    assert float(text) == x or (x == 0 and text == "0")
    assert text == jcs.canonicalize(x).decode()


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (100.0, "100"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (-0.0, "0"),
        (2**60, "1152921504606847000"),
        (5e-324, "5e-324"),
    ],
)
def test_number_forms(x: float, text: str) -> None:
    assert signing.canonical_json(x).decode() == text


def test_non_json_values_are_refused() -> None:
    for bad in (math.nan, math.inf, {1: "a"}, {"a": object()}):
        with pytest.raises(ValueError):
            signing.canonical_json(bad)
    with pytest.raises(ValueError):
        signing.canonicalize(b"{not json")
    assert signing.canonicalize(b"") == b""


@settings(max_examples=200, deadline=None)
@given(json_values, st.integers(min_value=1, max_value=2**40))  # the SDK skips a t of 0
def test_the_sdk_accepts_our_request_signatures(value: Any, ts: int) -> None:
    if not _no_surrogates(value):
        return
    body = signing.canonical_json(value)
    header = signing.sign(body, KEY, ts)
    got = net.validate_request_sig(
        body=body,
        headers={"x-inngest-signature": header},
        mode=CLOUD,
        signing_key=KEY,
        signing_key_fallback=None,
    )
    assert got == KEY
    # and our own verify agrees with the SDK's signing of the same request
    assert net.sign_request(body, KEY, ts) == header
    assert signing.verify(body, header, [KEY], ts) == KEY


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.floats(min_value=-299, max_value=299))
def test_we_accept_the_sdks_response_signatures_within_the_tolerance(
    body: bytes, skew: float
) -> None:
    header = sdk_sig(body, KEY, int(NOW))
    assert signing.verify(body, header, [OTHER, KEY], NOW + skew) == KEY


def test_bad_signatures_are_refused_with_their_reason() -> None:
    body = b'{"a":1}'
    header = signing.sign(body, KEY, NOW)
    with pytest.raises(signing.SignatureError) as exc:
        signing.verify(body, header, [OTHER], NOW)
    assert exc.value.reason == "mismatch"
    with pytest.raises(signing.SignatureError) as exc:
        signing.verify(b'{"a":2}', header, [KEY], NOW)
    assert exc.value.reason == "mismatch"
    with pytest.raises(signing.SignatureError) as exc:
        signing.verify(body, header, [KEY], NOW + 301)
    assert exc.value.reason == "stale"
    with pytest.raises(signing.SignatureError) as exc:
        signing.verify(body, header, [KEY], NOW - 301)  # from the future
    assert exc.value.reason == "stale"
    for header_value, reason in [
        (None, "missing"),
        ("", "missing"),
        ("s=abc", "malformed"),
        ("t=x&s=abc", "malformed"),
        ("t=1", "malformed"),
    ]:
        with pytest.raises(signing.SignatureError) as exc:
            signing.verify(body, header_value, [KEY], NOW)
        assert exc.value.reason == reason


def test_signing_keys_and_bearer_tokens() -> None:
    # protocol §12's example: secret 12345678
    assert signing.bearer_token("12345678") == (
        "b2ed992186a5cb19f6668aade821f502c1d00970dfd0e35128d51bac4649916c"
    )
    assert signing.bearer_token(KEY) == transforms.hash_signing_key(KEY)
    assert signing.secret(KEY) == "ab" * 32 == signing.secret("ab" * 32)
    hashed = transforms.hash_signing_key(KEY)
    assert signing.bearer_matches(f"Bearer {hashed}", [KEY])  # the Python SDK's form
    assert signing.bearer_matches(f"Bearer signkey-prod-{hashed}", [KEY])  # the TS SDK's
    assert signing.bearer_matches(f"bearer {'ab' * 32}", [KEY])  # the raw secret (Go allows)
    assert signing.bearer_matches(f"Bearer {hashed}", [OTHER, KEY])  # a fallback key
    assert not signing.bearer_matches(f"Bearer {hashed}", [OTHER])
    assert not signing.bearer_matches("Bearer undefined", [KEY])
    assert not signing.bearer_matches(None, [KEY])
    assert not signing.bearer_matches(hashed, [KEY])  # no scheme
    assert not signing.bearer_matches("Bearer ", [KEY])
    for bad in ("", "signkey-prod-", "xyz", "abc", "signkey-test-12 34"):
        with pytest.raises(ValueError):
            signing.check_signing_key(bad)
    secretish = "signkey-prod-zz" + "a" * 40
    with pytest.raises(ValueError) as exc:
        signing.check_signing_key(secretish)
    assert "a" * 40 not in str(exc.value)  # never echo a key
    assert signing.check_signing_key(f"  {KEY} ") == KEY


def test_keys_sign_verify_and_never_show_themselves() -> None:
    keys = InngestKeys.create(KEY, [OTHER, " ", KEY], ["ek-1", "ek-2"])
    assert keys.signing_keys == (KEY, OTHER)
    assert KEY not in repr(keys) and "ek-1" not in repr(keys) and "ab" * 8 not in repr(keys)
    assert keys.event_key_ok("ek-2") and not keys.event_key_ok("ek-3")
    assert not keys.event_key_ok("")
    assert keys.authorized(f"Bearer {transforms.hash_signing_key(OTHER)}")
    body, header = keys.sign_body(b'{"b": 1.0, "a": [2]}', NOW)
    assert body == b'{"a":[2],"b":1}'
    assert signing.verify(body, header, [KEY], NOW) == KEY
    # an answer signed by the app with either key passes; unsigned, stale or forged ones fail
    answer = b'{"ok":true}'
    for key in (KEY, OTHER):
        signed = {"X-Inngest-Signature": sdk_sig(answer, key, int(NOW))}
        keys.check_response(200, signed, answer, NOW + 10)
    keys.check_response(201, {}, b" ", NOW)  # streamed answers carry nothing to check
    with pytest.raises(ResponseSignatureError, match="HTTP 200"):
        keys.check_response(200, {}, answer, NOW)
    stale = {"x-inngest-signature": sdk_sig(answer, KEY, int(NOW - 3600))}
    with pytest.raises(ResponseSignatureError, match="from now"):
        keys.check_response(200, stale, answer, NOW)
    forged = {"x-inngest-signature": sdk_sig(b'{"ok":false}', KEY, int(NOW))}
    with pytest.raises(ResponseSignatureError, match="does not match"):
        keys.check_response(200, forged, answer, NOW)
    with pytest.raises(ValueError, match="event key is empty"):
        InngestKeys.create(KEY, [], [" "])
