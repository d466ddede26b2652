"""Identifiers: ULIDs (26 characters, Crockford base32, time-ordered).

Run and event ids sort by creation time, which makes cursor pagination a simple ``id < cursor``.
Ids made in one process are strictly increasing even within a millisecond (the random part is
incremented).
"""

from __future__ import annotations

import base64
import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# RFC 4648 base32 (what base64.b32encode speaks) translated to Crockford's alphabet.
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0
_last_prefix = ""
_RAND_MAX = (1 << 80) - 1


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id() -> str:
    """A new ULID, strictly greater than any id made before it in this process."""
    global _last_ms, _last_rand, _last_prefix
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            rand = _last_rand + 1
            if rand > _RAND_MAX:  # pragma: no cover - 2**80 ids in one millisecond
                ms += 1
                rand = int.from_bytes(os.urandom(10), "big") >> 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1
        if ms != _last_ms or not _last_prefix:
            _last_prefix = _encode(ms, 10)
        _last_ms, _last_rand = ms, rand
        prefix = _last_prefix
    # 80 random bits are exactly 16 base32 characters.
    return prefix + base64.b32encode(rand.to_bytes(10, "big")).decode().translate(_TO_CROCKFORD)


def id_time_ms(ulid: str) -> int:
    """The millisecond timestamp encoded in a ULID."""
    value = 0
    for ch in ulid[:10].upper():
        value = value * 32 + _ALPHABET.index(ch)
    return value


def is_valid(value: str) -> bool:
    """Whether ``value`` looks like a ULID."""
    return len(value) == 26 and all(ch in _ALPHABET for ch in value.upper())
