"""Signing keys, request signatures and bearer tokens, as the official Inngest SDKs use them.

Pure: no I/O, no clock (callers pass ``now``). The wire rules (protocol §12, checked against
the Python SDK 0.5.x ``net``/``transforms`` modules and the TypeScript SDK's ``net`` helpers):

- A signing key is ``signkey-<env>-<hex>`` or the bare ``<hex>``; the *secret* is what follows
  the ``signkey-<word>-`` prefix. It must be a non-empty, even-length hex string (both SDKs
  hex-decode it to make their bearer token).
- Signature header: ``X-Inngest-Signature: t=<unix seconds>&s=<hex>`` where ``s`` is
  HMAC-SHA256 keyed with the secret *as UTF-8 text* (not hex-decoded) over ``body || str(t)``.
- The Python SDK re-canonicalizes a request body (RFC 8785, JSON Canonicalization Scheme)
  before it checks the signature; the TS SDK checks the raw bytes. A body that *is* canonical
  satisfies both: :func:`canonical_json` makes it. Responses are signed over their raw bytes.
- Bearer token (SDK -> server): ``sha256(hex_decode(secret))`` as hex. The TS SDK keeps the
  ``signkey-<env>-`` prefix in front of the hash, Python sends the bare hash; the Go server
  strips the prefix and accepts the hash or the raw secret. :func:`bearer_matches` does so.
- Freshness: the TS SDK rejects a signature more than 5 minutes old; :func:`verify` applies a
  tolerance in both directions (a clock ahead of ours must not open a longer replay window).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "SignatureError",
    "bearer_matches",
    "bearer_token",
    "canonical_json",
    "canonicalize",
    "check_signing_key",
    "parse_signature",
    "secret",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-Inngest-Signature"
DEFAULT_TOLERANCE = 300.0
"""Seconds a signature's timestamp may differ from now (the TS SDK's 5 minutes)."""

_PREFIX = re.compile(r"^signkey-\w+-")
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_MAX_SAFE = 2**53
_encode_str: Callable[[str], str] = json.encoder.encode_basestring


class SignatureError(ValueError):
    """A signature is missing, malformed, stale or does not match (``reason`` says which)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# ---------------------------------------------------------------------- keys


def secret(key: str) -> str:
    """The key material of a signing key: ``key`` without its ``signkey-<env>-`` prefix."""
    return _PREFIX.sub("", key.strip(), count=1)


def check_signing_key(key: str) -> str:
    """``key`` stripped of surrounding space; ValueError unless its secret is even-length hex
    (what both SDKs hex-decode). The message never contains the key."""
    key = key.strip()
    material = secret(key)
    if not material:
        raise ValueError("the signing key is empty")
    if not _HEX.match(material):
        raise ValueError(
            "a signing key must be a hex string of even length, optionally prefixed with "
            "'signkey-<env>-' (for instance: openssl rand -hex 32)"
        )
    return key


def bearer_token(key: str) -> str:
    """The token an SDK sends as ``Authorization: Bearer <token>`` for ``key`` (the Python
    SDK's form: the bare hex SHA-256 of the hex-decoded secret)."""
    return hashlib.sha256(bytes.fromhex(secret(key))).hexdigest()


def bearer_matches(authorization: str | None, keys: Iterable[str]) -> bool:
    """Whether an ``Authorization`` header carries one of ``keys``: ``Bearer`` and the hashed
    secret (with or without a ``signkey-<env>-`` prefix), or the raw secret itself."""
    if not authorization:
        return False
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    presented = secret(token.strip()).lower().encode()
    if not presented:
        return False
    ok = False
    for key in keys:
        for expected in (bearer_token(key), secret(key).lower()):
            ok |= hmac.compare_digest(presented, expected.encode())
    return ok


# ---------------------------------------------------------------------- canonical JSON


def canonical_json(value: Any) -> bytes:
    """``value`` as RFC 8785 canonical JSON (UTF-8): keys sorted by UTF-16 code units, no
    whitespace, numbers as IEEE doubles in ECMAScript form (integers beyond 2**53 lose
    precision, as in every JCS implementation). ValueError for NaN, infinities, non-string
    keys and values JSON cannot hold."""
    out: list[str] = []
    _encode(value, out.append)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise ValueError(f"the value holds a string that is not valid Unicode: {exc}") from None


def canonicalize(body: bytes) -> bytes:
    """A JSON document's canonical form (empty stays empty); ValueError if it is not JSON."""
    if not body:
        return body
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    return canonical_json(value)


def _encode(value: Any, emit: Callable[[str], Any]) -> None:
    if isinstance(value, str):
        emit(_encode_str(value))
    elif value is None:
        emit("null")
    elif value is True:
        emit("true")
    elif value is False:
        emit("false")
    elif isinstance(value, int):
        emit(str(value) if -_MAX_SAFE <= value <= _MAX_SAFE else _number(float(value)))
    elif isinstance(value, float):
        emit(_number(value))
    elif isinstance(value, dict):
        keys = list(value)
        for k in keys:
            if not isinstance(k, str):
                raise ValueError(f"object keys must be strings, got {type(k).__name__}")
        if all(k.isascii() for k in keys):
            keys.sort()
        else:
            keys.sort(key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        emit("{")
        for i, k in enumerate(keys):
            if i:
                emit(",")
            emit(_encode_str(k))
            emit(":")
            _encode(value[k], emit)
        emit("}")
    elif isinstance(value, list | tuple):
        emit("[")
        for i, item in enumerate(value):
            if i:
                emit(",")
            _encode(item, emit)
        emit("]")
    else:
        raise ValueError(f"{type(value).__name__} is not a JSON value")


def _number(x: float) -> str:
    """ECMAScript's Number.prototype.toString for a finite double (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not a JSON number")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr gives the shortest digits that round-trip, as ECMAScript requires
    parsed = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, parsed.digits)).rstrip("0")
    exponent = int(parsed.exponent) + (len(parsed.digits) - len(digits))
    n = len(digits) + exponent  # value = 0.<digits> * 10**n
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = digits[0] + (f".{digits[1:]}" if k > 1 else "") + ("e+" if e > 0 else "e-")
        text += str(abs(e))
    return sign + text


# ---------------------------------------------------------------------- signatures


def _mac(body: bytes, key: str, ts: int) -> str:
    mac = hmac.new(secret(key).encode("utf-8"), body, hashlib.sha256)
    mac.update(str(ts).encode("ascii"))
    return mac.hexdigest()


def sign(body: bytes, key: str, now: float) -> str:
    """The ``X-Inngest-Signature`` value for ``body`` signed with ``key`` at ``now``."""
    ts = int(now)
    return f"t={ts}&s={_mac(body, key, ts)}"


def parse_signature(header: str | None) -> tuple[int, str]:
    """``(timestamp, hex signature)`` of a signature header; SignatureError if absent or
    malformed."""
    if not header or not header.strip():
        raise SignatureError("missing", f"no {SIGNATURE_HEADER} header")
    fields = parse_qs(header.strip())
    try:
        ts = int(fields["t"][0])
        sig = fields["s"][0].strip().lower()
    except (KeyError, IndexError, ValueError):
        raise SignatureError("malformed", f"the {SIGNATURE_HEADER} header is malformed") from None
    if not sig:
        raise SignatureError("malformed", f"the {SIGNATURE_HEADER} header is malformed")
    return ts, sig


def verify(
    body: bytes,
    header: str | None,
    keys: Sequence[str],
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """The key (of ``keys``, tried in order) whose signature ``header`` carries for ``body``.
    SignatureError (reason ``missing``, ``malformed``, ``stale`` or ``mismatch``) otherwise; a
    timestamp more than ``tolerance`` seconds from ``now`` either way is ``stale``."""
    ts, sig = parse_signature(header)
    if abs(now - ts) > tolerance:
        raise SignatureError(
            "stale",
            f"the signature's timestamp is {abs(now - ts):.0f} s from now "
            f"(at most {tolerance:.0f} s allowed)",
        )
    for key in keys:
        if hmac.compare_digest(sig.encode(), _mac(body, key, ts).encode()):
            return key
    raise SignatureError("mismatch", "the signature does not match the signing key")
